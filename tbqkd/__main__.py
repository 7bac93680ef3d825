from tbqkd.cli import main

main()
