"""Rich renderings shared by the CLI and the TUI (a model's panel, a diff, history trees, plans); never click."""
