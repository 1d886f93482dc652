from afgen.cli import main

main()
