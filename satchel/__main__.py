from satchel.cli import main

main()
