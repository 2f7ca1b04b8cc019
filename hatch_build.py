"""Editable installs (``pip install -e .``). The project root *is* the ``mlrepo`` package (DESIGN.md wants
``repo_index/``, ``commands/`` and ``tui/`` at top level), and hatchling cannot rename a folder in dev mode. So the
editable install puts ``.editable/`` on ``sys.path``, a folder holding one link, ``mlrepo -> ..``. Wheels never
contain this file's work: they map the folders by ``sources`` in ``pyproject.toml``."""

from __future__ import annotations

import os

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class EditableLink(BuildHookInterface):
    def initialize(self, version: str, build_data: dict) -> None:
        if version != "editable":
            return
        folder = os.path.join(self.root, ".editable")
        os.makedirs(folder, exist_ok=True)
        link = os.path.join(folder, "mlrepo")
        if not os.path.islink(link):
            os.symlink(os.pardir, link)
