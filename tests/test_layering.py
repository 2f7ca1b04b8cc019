"""repo_index and commands never load textual (harlequin's rule): checked in a clean interpreter."""

import subprocess
import sys


def test_index_and_cli_do_not_import_textual():
    code = ("import sys, mlrepo, mlrepo.repo_index, mlrepo.commands.cli, mlrepo.commands.views;"
            "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'));"
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
