from skiff.cli.main import main

main()
