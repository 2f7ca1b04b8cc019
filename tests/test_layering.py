"""The layers hold at run time too (harlequin's rule): the index and the operations load no UI library, and the
installed wheel holds every module of the source tree."""

import subprocess
import sys
from pathlib import Path

import pytest

UI = ("textual", "click", "rich")


@pytest.mark.parametrize("modules", [
    "mlrepo.repo_index, mlrepo.repo_index.index, mlrepo.repo_index.live",
    "mlrepo.commands.operations, mlrepo.commands.operations.moves",
])
def test_index_and_operations_load_no_ui_library(modules):
    code = (f"import sys, {modules};"
            f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {UI!r});"
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cli_does_not_load_textual():
    code = ("import sys, mlrepo.commands.cli, mlrepo.commands.views.tables;"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'textual'); print(bad); sys.exit(bool(bad))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_installed_package_holds_every_source_module():
    """CI installs the built wheel: a subpackage or data file the build leaves out fails here."""
    import mlrepo

    source = Path(__file__).resolve().parent.parent
    installed = Path(mlrepo.__file__).resolve().parent
    wanted = {p.relative_to(source) for top in ("repo_index", "commands", "tui")
              for p in (source / top).rglob("*") if p.suffix in (".py", ".tcss") and "__pycache__" not in p.parts}
    wanted |= {Path("__init__.py"), Path("__main__.py"), Path("errors.py"), Path("py.typed")}
    missing = sorted(str(p) for p in wanted if not (installed / p).is_file())
    assert not missing, f"not in the installed package: {missing}"
    assert not (installed / "tests").exists() or installed == source, "tests/ shipped inside the wheel"
