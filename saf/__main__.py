from saf.cli import main

main()
