from apiserver.main import main

main()
