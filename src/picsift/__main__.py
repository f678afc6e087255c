from picsift.cli.app import main

main()
