from raftreg.cli.main import main

main()
