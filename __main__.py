from mlrepo.commands.cli import main

if __name__ == "__main__":  # worker processes (spawn) import this module too: they must not run the CLI
    main()
