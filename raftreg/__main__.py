from raftreg.cli.entry import main

main()
