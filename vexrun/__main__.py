from vexrun.cli import main

main()
