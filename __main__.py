from mlrepo.commands.cli import main

main()
