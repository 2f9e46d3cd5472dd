from skiff.dns.main import main

main()
