"""The operations that act on a repository, as a layer of their own (restic's ``PlanPrune`` -> ``Execute``, DVC's
``dvc/repo/gc.py``): plan what to keep and remove, then move models one journaled step at a time.

The CLI (``commands.cli``) and the TUI (``tui``) are thin shells over these names; nothing here imports click,
rich or textual (import-linter contracts in ``pyproject.toml``). Progress goes to a callback, never to a screen.
"""

from mlrepo.commands.operations.execute import (
    How,
    Outcome,
    Progress,
    Report,
    recover_pending,
    remove_models,
    restore_models,
)
from mlrepo.commands.operations.plan import (
    Decision,
    KeepRules,
    Plan,
    RestoreItem,
    parse_age,
    plan_prune,
    plan_restore,
    plan_selection,
)

__all__ = ["Decision", "How", "KeepRules", "Outcome", "Plan", "Progress", "Report", "RestoreItem", "parse_age", "plan_prune",
           "plan_restore", "plan_selection", "recover_pending", "remove_models", "restore_models"]
