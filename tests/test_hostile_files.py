"""A hostile disk: YAML alias bombs, FIFOs where metadata or the cache should be, files nested past any use, names
made of markup and terminal escapes. Every command finishes in seconds, in bounded memory, lists every normal model,
reports each hostile one in plain words, and prints no raw control byte in the human formats."""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import mlrepo
import pytest
from mlrepo.commands.views.text import visible
from mlrepo.repo_index.cache import cache_dir

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(9))
SELF = "acc: &a [1, *a]\n"
DEEP_JSON = "[" * 100_000 + "]" * 100_000
GOOD_META = [{"type": "model", "metrics": [{"name": "f1", "value": 0.5}], "params": {"lr": 0.1}}]
ESC_NAMES = {
    "osc52": "clip\x1b]52;c;ZWNobyBwd25lZA==\x07",
    "clear": "clear\x1b[2J\x1b[H",
    "title": "title\x1b]0;pwned\x07",
    "cr": "over\rwrite",
    "bidi": "evil\u202etxt.exe",
    "c1": "csi\x9b31m",
}
MARKUP_NAMES = ["x[/nothing]", "[link=https://evil.example]click[/link]", "[red on red]hidden[/]"]
MARKUP_FOLDERS = ["x[bold]", "[link=https:evil.example]click", "[red on red]hidden"]  # no "/" in a folder name
#: a Python class name in a message meant for users
CLASS_NAME = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception|Warning)\b")


def _write(folder: Path, name: str, content: str | bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _fifo(folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    os.mkfifo(folder / name)


def _cascade(folder: Path, metrics=None, params=None, name: str = "meta.json") -> Path:
    meta = [{"type": "model", "metrics": metrics or [{"name": "f1", "value": 0.5}], "params": params or {"lr": 0.1}}]
    return _write(folder, name, json.dumps(meta))


def hostile_root(root: Path) -> tuple[set[str], dict[str, str]]:
    """Normal models next to hostile ones. Returns (paths of the normal models, hostile model path -> what it is)."""
    normal = set()
    for i in range(4):
        path = root / "ok" / "line" / f"{i:05d}"
        _cascade(path, [{"name": "f1", "value": 0.5 + i / 10}], {"lr": 0.1 * (i + 1), "opt": "sgd"})
        normal.add(str(path))
    bad: dict[str, str] = {}
    for line in ("bomb", "fifo/cascade", "num"):  # Cascade lines: a numbered folder in one is a model, unreadable or not
        _write(root / line / "line", "meta.json", '[{"type": "line"}]')

    def hostile(path: Path, what: str) -> None:
        bad[str(path)] = what

    # (2) alias bombs and other costly YAML, in each reader's YAML file
    hostile(_write(root / "bomb" / "line" / "00000", "meta.yml", "- type: model\n  params:\n    " +
                   BOMB.replace("\n", "\n    ")).parent, "alias bomb in a Cascade meta.yml")
    hostile(_write(root / "bomb" / "generic", "metrics.yaml", BOMB).parent, "alias bomb in metrics.yaml")
    hostile(_write(root / "bomb" / "lightning_logs" / "version_0", "hparams.yaml", BOMB).parent,
            "alias bomb in hparams.yaml")
    _write(root / "bomb" / "lightning_logs" / "version_0", "metrics.csv", "epoch,step,f1\n0,0,0.5\n")
    hostile(_write(root / "bomb" / "selfref", "metrics.yaml", SELF).parent, "an alias inside itself")
    hostile(_write(root / "deep" / "json", "metrics.json", DEEP_JSON).parent, "JSON nested 100,000 deep")
    nested: dict = {"f1": 0.5}
    for _ in range(300):
        nested = {"k": nested}
    hostile(_write(root / "deep" / "dict", "metrics.json", json.dumps(nested)).parent, "a mapping 300 deep")
    hostile(_write(root / "deep" / "yaml", "metrics.yaml", "a:\n" + "".join(
        "  " * i + "b:\n" for i in range(1, 400)) + "  " * 400 + "c: 1\n").parent, "YAML nested 400 deep")
    # (3) FIFOs named like metadata
    for where, name in (("fifo/cascade/line/00000", "meta.json"), ("fifo/generic", "metrics.json"),
                        ("fifo/lightning_logs/version_0", "hparams.yaml"), ("fifo/hf/checkpoint-5", "trainer_state.json")):
        _fifo(root / where, name)
        hostile(root / where, f"a FIFO named {name}")
    _write(root / "fifo" / "lightning_logs" / "version_0", "metrics.csv", "epoch,step,f1\n0,0,0.5\n")
    # (7) values Python cannot hold, a metric without a name
    hostile(_write(root / "num" / "huge", "metrics.json", '{"f1": 1' + "0" * 5000 + "}").parent,
            "a 5000-digit number")
    hostile(_write(root / "num" / "overflow", "metrics.json", '{"f1": ' + "9" * 400 + "}").parent,
            "a number past float range")
    hostile(_cascade(root / "num" / "line" / "00000", [{"name": None, "value": 0.7}, {"name": "f1", "value": 0.6}]
                     ).parent, "a metric with a null name")
    # (4) markup and terminal escapes in names, metric names, params and tags
    for i, (name, folder) in enumerate(zip(MARKUP_NAMES, MARKUP_FOLDERS, strict=True)):
        path = root / "markup" / "line" / folder
        _cascade(path, [{"name": name, "value": 0.1 * i}, {"name": "f1", "value": 0.3}], {"note": name})
        hostile(path, "markup in names")
    for key, name in ESC_NAMES.items():
        path = root / "esc" / "line" / name
        meta = [{"type": "model", "metrics": [{"name": "f1", "value": 0.4}, {"name": f"m{name}", "value": 1.0}],
                 "params": {"p": name, name: 1}, "tags": [name], "description": name}]
        _write(path, "meta.json", json.dumps(meta))
        hostile(path, f"terminal escape ({key})")
    return normal, bad


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "hostile"


def test_every_hostile_model_is_reported_in_plain_words(root):
    normal, bad = hostile_root(root)
    start = time.perf_counter()
    idx = mlrepo.open_index(root, use_cache=False)
    assert time.perf_counter() - start < 30
    rows = {r["path"]: r for r in idx.df.iter_rows(named=True)}
    assert normal <= set(rows)
    for path in normal:
        assert rows[path]["error"] is None
    errors = {path: rows[path]["error"] for path in bad if path in rows}
    for path, what in bad.items():
        if what.startswith(("markup", "terminal")):
            continue  # well-formed: listed, shown as text (see the CLI tests)
        assert path in rows, f"{what}: not listed"
        error = errors[path]
        assert error, f"{what}: no error reported"
        assert not CLASS_NAME.search(error), f"{what}: {error}"
    said = "\n".join(f"{bad[p]}: {e}" for p, e in errors.items() if e)
    assert "alias bomb" in errors[str(root / "bomb" / "generic")]
    assert "alias bomb" in errors[str(root / "bomb" / "lightning_logs" / "version_0")], said
    assert "alias bomb" in errors[str(root / "bomb" / "line" / "00000")], said
    assert "refers to itself" in errors[str(root / "bomb" / "selfref")]
    assert "nested too deeply" in errors[str(root / "deep" / "json")]
    assert "nested too deeply" in errors[str(root / "deep" / "dict")]
    assert "named pipe" in errors[str(root / "fifo" / "generic")]
    assert "named pipe" in errors[str(root / "fifo" / "cascade" / "line" / "00000")]
    assert "without a name" in errors[str(root / "num" / "line" / "00000")]
    assert rows[str(root / "num" / "line" / "00000")]["metrics.f1"] == 0.6


def test_a_fifo_in_place_of_the_cache_is_not_waited_on(tmp_path):
    root = tmp_path / "r"
    _cascade(root / "line" / "00000")
    assert len(mlrepo.open_index(root)) == 1
    folder = Path(cache_dir(str(root)))
    for name in ("index.json", "index.arrow"):
        os.unlink(folder / name)
        os.mkfifo(folder / name)
    start = time.perf_counter()
    idx = mlrepo.open_index(root)  # rebuilt (the cache is never trusted over the disk), never blocked
    assert len(idx) == 1 and time.perf_counter() - start < 20


def _run(*args: object, timeout: float = 60) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mlrepo", *map(str, args)], capture_output=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    return proc, time.perf_counter() - start


#: bytes no human format may print: C0 controls but newline, DEL, C1 controls (UTF-8), bidi overrides (UTF-8)
RAW = re.compile(rb"[\x00-\x09\x0b-\x1f\x7f]|\xc2[\x80-\x9f]|\xe2\x80[\x8e\x8f\xaa-\xae]|\xe2\x81[\xa6-\xa9]")


def test_done_when_ls_show_history_best_on_a_hostile_root(root, tmp_path):
    """The issue's "done when": seconds, under 1 GB, every normal model listed, no raw control byte."""
    normal, bad = hostile_root(root)
    runs = [("ls", root), ("ls", root, "--format", "csv"), ("ls", root, "--format", "md"),
            ("ls", root, "--columns", "all"), ("history", root, "--metric", "f1"),
            ("best", root, "--metric", "f1", "--per", "line"), ("best", root, "--metric", "f1", "--format", "path"),
            ("ls", root, "--where", "tags = 'best'")]
    listed = json.loads(_run("ls", root, "--format", "json")[0].stdout)
    by_path = {r["path"]: r for r in listed}
    assert normal <= set(by_path)
    for name in ESC_NAMES.values():  # json keeps the values intact (its own escaping)
        assert any(r["name"] == name for r in listed)
    shown = [p for p, what in bad.items() if what.startswith(("markup", "terminal"))]
    ids = [by_path[p]["id"] for p in [*shown, str(root / "bomb" / "generic"), str(root / "fifo" / "generic")]]
    with_root = (root,) if _show_takes_root() else ()
    runs += [("show", *with_root, i) for i in ids] + [("diff", *with_root, ids[0], ids[-1])]
    for args in runs:
        proc, seconds = _run(*args, timeout=60)
        assert proc.returncode in (0, 1, 2), (args, proc.stderr)
        assert b"Traceback" not in proc.stderr, (args, proc.stderr.decode(errors="replace"))
        assert seconds < 30, (args, seconds)
        for stream in (proc.stdout, proc.stderr):
            hit = RAW.search(stream)
            assert hit is None, (args, stream[max(0, hit.start() - 40):hit.end() + 40])
        assert not CLASS_NAME.search(proc.stderr.decode(errors="replace")), (args, proc.stderr)
    table = _run("ls", root, "--columns", "id,path")[0].stdout.decode()
    for path in normal:
        assert os.path.basename(path) in table
    names = _run("ls", root, "--columns", "name")[0].stdout.decode()
    assert all(folder in names for folder in MARKUP_FOLDERS), names
    assert "x[/nothing]" in _run("ls", root, "--columns", "all")[0].stdout.decode()  # a metric column's name
    assert visible(ESC_NAMES["clear"]) in _run("ls", root, "--columns", "name")[0].stdout.decode()
    where = _run("ls", root, "--where", "tags = 'best'")[0]
    assert where.returncode == 2 and b"tags contains" in where.stderr
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    assert peak < 1 << 30, f"a command took {peak / 2**20:.0f} MiB"


def _show_takes_root() -> bool:
    """Whether ``show``/``diff`` take ROOT first (another change is making them so) or find the root themselves."""
    usage = subprocess.run([sys.executable, "-m", "mlrepo", "show", "--help"], capture_output=True, text=True).stdout
    return "ROOT" in usage.split("\n")[0]


def test_markup_in_a_metric_name_does_not_sink_ls(tmp_path):
    root = tmp_path / "r"
    _cascade(root / "line" / "00000", [{"name": "x[/nothing]", "value": 1.0}])
    proc, _ = _run("ls", root)
    assert proc.returncode == 0, proc.stderr
    assert b"x[/nothing]" in proc.stdout


async def test_the_tui_shows_a_hostile_root_as_text(root):
    """The TUI on the same root: every model listed, no raw control byte on screen, markup shown as itself."""
    from mlrepo.tui.app import MlrepoApp
    from mlrepo.tui.history import HistoryScreen

    normal, bad = hostile_root(root)
    app = MlrepoApp(str(root))
    async with app.run_test(size=(200, 60)) as pilot:
        for _ in range(200):  # wait for the index (a state, not a time)
            await pilot.pause(0.05)
            if app.checked and not str(app.query_one("#status").render()).startswith("indexing"):
                break
        status = str(app.query_one("#status").render())
        assert status.startswith(f"{len(app.index.df)} models"), status
        shown = set(app.frame["id"].to_list())
        assert {r["id"] for r in app.index.df.iter_rows(named=True) if r["path"] in normal} <= shown
        screen = app.export_screenshot()
        hit = RAW.search(screen.encode())
        assert hit is None, screen[max(0, hit.start() - 60):hit.end() + 60]
        assert "[red on red]hidden" in screen.replace("&#160;", " ")  # markup shown as text, not applied
        await pilot.press("h")
        for _ in range(100):
            await pilot.pause(0.05)
            if isinstance(app.screen, HistoryScreen):
                break
        assert isinstance(app.screen, HistoryScreen)
        hit = RAW.search(app.export_screenshot().encode())
        assert hit is None


@pytest.mark.parametrize(("expr", "said"), [
    ("tags = 'best'", "tags is a list; to test for one of its values write tags contains 'x'"),
    ("tags > 1", "tags is a list"),
    ("metrics.f1 > 'abc'", "compares a text value with a number"),
    ("name + 1 > 2", "arithmetic on a text value"),
    ("lower(metrics.f1) = 'x'", "metrics.f1 holds numbers, but the function wants text"),
    ("created_at > 'someday'", "is not a date or time"),
])
def test_where_errors_say_what_is_wrong_in_the_languages_terms(tmp_path, expr, said):
    from mlrepo.errors import UsageError
    from mlrepo.repo_index.filtering import where

    _cascade(tmp_path / "r" / "line" / "00000")
    idx = mlrepo.open_index(tmp_path / "r")
    with pytest.raises(UsageError) as caught:
        where(idx.df, expr, idx.metrics)
    assert said in str(caught.value)
    assert "cannot cast" not in str(caught.value) and not CLASS_NAME.search(str(caught.value))


def test_a_null_metric_name_in_an_mlflow_store_is_reported(copy_fixture):
    """A metric row without a name (an empty key: a damaged or hand-edited store) is reported on its run."""
    import sqlite3

    from treeutil import FIXTURES

    store = copy_fixture(FIXTURES / "mlflow_sqlite", "store")
    con = sqlite3.connect(store / "mlflow.db")
    run = con.execute("SELECT run_uuid FROM runs WHERE name = 'lr-small'").fetchone()[0]
    con.execute("CREATE TEMP TABLE t AS SELECT * FROM latest_metrics WHERE run_uuid = ? LIMIT 1", (run,))
    con.execute("UPDATE t SET key = ''")  # the schema says NOT NULL: an empty key is the nameless one it allows
    con.execute("INSERT INTO latest_metrics SELECT * FROM t")
    con.commit()
    con.close()
    idx = mlrepo.open_index(store, use_cache=False)
    row = idx.df.filter(idx.df["name"] == "lr-small").row(0, named=True)
    assert row["error"] and "no name" in row["error"]
