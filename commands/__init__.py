"""What mlrepo does to a repository, in three layers: ``operations`` (plan, prune, archive, restore; no UI),
``views`` (rich renderings shared by the CLI and the TUI) and ``cli`` (the click commands, a thin shell)."""
