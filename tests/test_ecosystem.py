"""mlrepo as users of uv, gh and ruff expect a CLI to be (issue 16, and ROOT from issue 12.6), each item through the
installed ``mlrepo`` console script, as typed in a shell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest
from treeutil import CASCADE_018, FIXTURES

MLREPO = str(Path(sys.executable).parent / "mlrepo")


def run(*args: object, env: dict[str, str] | None = None, cwd: object = None, extra_env: dict | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess:
    full = {**(env or os.environ), **(extra_env or {})}
    return subprocess.run([MLREPO, *map(str, args)], capture_output=True, text=True, env=full, cwd=cwd,
                          stdin=subprocess.DEVNULL, timeout=timeout)


@pytest.fixture
def home(tmp_path):
    """A user whose home, caches and config are under tmp (nothing of the real user's is read or written)."""
    h = tmp_path / "home"
    (h / ".cache").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLREPO_", "XDG_", "NO_COLOR", "FORCE_COLOR"))}
    env.update(HOME=str(h), XDG_CACHE_HOME=str(h / ".cache"), XDG_CONFIG_HOME=str(h / ".config"),
               XDG_DATA_HOME=str(h / ".local" / "share"))
    return h, env


@pytest.fixture
def ws(copy_fixture):
    from treeutil import age

    root = copy_fixture(CASCADE_018, "repo")
    age(root)
    return root


# -- first contact ------------------------------------------------------------------------------------------------
def test_bare_mlrepo_prints_help_and_exits_0(home):
    r = run(env=home[1])
    assert r.returncode == 0 and "Usage: mlrepo" in r.stdout and "completion" in r.stdout and r.stderr == ""


@pytest.mark.parametrize("args", [["--help"], ["--version"], [], ["ls", "--help"], ["best", "--help"],
                                  ["completion", "bash"]])
def test_help_and_version_load_neither_polars_nor_rich(args, home):
    r = run(*args, env=home[1], extra_env={"PYTHONPROFILEIMPORTTIME": "1"})  # -X importtime, for the script
    assert r.returncode == 0, r.stderr[-500:]
    loaded = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "click" in loaded and "polars" not in loaded and "rich" not in loaded  # click: the profile was on


@pytest.mark.parametrize("args", [["--help"], ["--version"], []])
def test_help_lists_every_command_without_loading_its_module(args, home):
    """A command's module loads when the command is named: the help lists each from LazyGroup.SUMMARIES. (Seen in
    sys.modules: ``-X importtime`` does not report importlib.import_module, which the group loads them with.)"""
    import click
    from mlrepo.commands.cli import LazyGroup, cli

    assert sorted(LazyGroup.SUMMARIES) == cli.list_commands(click.Context(cli))
    code = ("import sys\nfrom mlrepo.commands.cli import LazyGroup, main\n"
            f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
            "lazy = {target.partition(':')[0] for target in LazyGroup.LAZY.values()}\n"
            "print(sorted(m for m in sys.modules if m in lazy or m.split('.')[0] in ('polars', 'rich')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=home[1])
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1] == "[]", proc.stdout[-300:] + proc.stderr[-500:]
    if args != ["--version"]:
        assert all(f"  {name} " in proc.stdout for name in LazyGroup.SUMMARIES), proc.stdout


def _tab(words: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """What bash asks when TAB is pressed after ``words`` (click's protocol, as the printed script uses it)."""
    parts = words.split(" ")
    return run(env=env, extra_env={"PYTHONPROFILEIMPORTTIME": "1", "_MLREPO_COMPLETE": "bash_complete",
                                   "COMP_WORDS": words, "COMP_CWORD": str(len(parts) - 1)})


def test_completion_scripts_and_tab_from_the_cached_index_without_polars(ws, home):
    _, env = home
    for shell in ("bash", "zsh", "fish"):
        r = run("completion", shell, env=env)
        assert r.returncode == 0 and "_MLREPO_COMPLETE" in r.stdout, (shell, r.stderr)
    assert run("completion", "tcsh", env=env).returncode == 2
    assert run("index", ws, env=env).returncode == 0
    env = {**env, "MLREPO_ROOT": str(ws)}
    r = _tab("mlrepo best --metric f1.", env)
    offered = {line.split(",", 1)[1] for line in r.stdout.splitlines()}
    assert offered == {"f1.digits.test", "f1.digits.val"}, r.stdout
    r = _tab(f"mlrepo ls {ws} --columns id,param", env)
    assert "id,params.optimizer.lr" in r.stdout
    ids = json.loads(run("ls", ws, "--format", "json", env=env).stdout)
    r = _tab(f"mlrepo show {ids[0]['id'][:3]}", env)
    assert ids[0]["id"] in r.stdout
    loaded = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "mlrepo.commands.cli.complete" in loaded and "polars" not in loaded


def _in_a_terminal(args: list[str], env: dict[str, str], columns: int = 60) -> str:
    """What ``mlrepo ARGS`` writes to a real pseudo-terminal (stdin, stdout and stderr on it), every byte in order:
    the line that is erased at the end is in here, as a terminal received it."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen([MLREPO, *args], stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    received = bytearray()
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the last holder of the terminal is gone
            break
        if not chunk:
            break
        received += chunk
    os.close(master)
    assert proc.wait(timeout=120) == 0, received.decode(errors="replace")
    return received.decode()


def test_a_cold_index_shows_progress_on_a_terminal_only(tmp_path, home):
    """The progress line as a user sees it: on the terminal at once for a cold index, one line wide, the root's
    name as text, erased before the summary; ``-q`` and a stderr that is no terminal print the summary alone."""
    _, env = home
    root = tmp_path / ("deep" * 12) / "runs \x1b[31mred"
    for i in range(3):
        (root / "line" / f"m{i}").mkdir(parents=True)
        (root / "line" / f"m{i}" / "metrics.json").write_text(f'{{"f1": 0.{i}}}')
    escaped = str(root).replace("\x1b", "\\x1b")
    summary = f"3 models (generic 3) under {escaped}"
    shown = _in_a_terminal(["index", str(root)], env)
    progress, _, rest = shown.partition(summary)
    assert progress.startswith("\r\x1b[Kindexing ") and progress.endswith("\r\x1b[K"), shown
    drawn = [line for line in progress.split("\r\x1b[K") if line]
    assert drawn and all(len(line) <= 59 and line.startswith("indexing …") and "\\x1b[31mred … " in line
                         and line.endswith(" s (-q hides this)") for line in drawn), drawn
    assert "\x1b[31m" not in shown and rest.startswith("\r\n0 could not be read fully")
    quiet = _in_a_terminal(["-q", "index", str(root), "--rebuild"], env)
    assert "indexing" not in quiet and quiet.startswith(summary), quiet
    for args in (["index", str(root), "--rebuild"], ["-q", "index", str(root)]):
        r = subprocess.run([MLREPO, *args], capture_output=True, text=True, env=env, timeout=120)
        lines = r.stdout.splitlines()
        assert r.returncode == 0 and r.stderr == "" and len(lines) == 3 and lines[0] == summary, r
        assert lines[1] == "0 could not be read fully" and lines[2].startswith("read ")


# -- ROOT ---------------------------------------------------------------------------------------------------------
def test_empty_or_missing_root_is_a_usage_error_at_once(tmp_path, home):
    _, env = home
    for args in (["ls", ""], ["restore", "/typo-no-such", "--all", "--yes"], ["prune", "", "--dry-run"],
                 ["show", "", "abc1"], ["ls", tmp_path / "nope"]):
        start = time.monotonic()
        r = run(*args, env=env, cwd=tmp_path)
        assert r.returncode == 2, (args, r.stderr)
        assert ("empty" in r.stderr or "no such folder" in r.stderr) and "Traceback" not in r.stderr
        assert time.monotonic() - start < 10
    assert not (tmp_path / ".mlrepo").exists()
    r = run("ls", env=env, cwd=tmp_path, extra_env={"MLREPO_ROOT": ""})
    assert r.returncode == 2 and "MLREPO_ROOT" in r.stderr


def test_home_and_system_folders_are_not_indexed_whole_without_yes(home, ws):
    h, env = home
    (h / "notes").mkdir()
    for args, cwd in ((["ls"], h), (["ls", "~"], ws), (["prune", "/", "--keep-last", "1", "--dry-run"], ws),
                      (["index", "/usr"], ws), (["show", "abcd"], h)):
        r = run(*args, env=env, cwd=cwd)
        assert r.returncode == 2 and "not a model store" in r.stderr and "--yes" in r.stderr, (args, r.stderr)
    assert not os.path.exists("/.mlrepo") and not (h / ".mlrepo").exists()
    r = run("ls", "--yes", "--format", "json", env=env, cwd=h)
    assert r.returncode == 0 and json.loads(r.stdout) == []


def test_root_from_the_environment_and_the_argument(ws, home, tmp_path):
    _, env = home
    r = run("ls", "--format", "json", env=env, cwd=tmp_path, extra_env={"MLREPO_ROOT": str(ws)})
    assert r.returncode == 0 and len(json.loads(r.stdout)) == 14
    r = run("ls", ws / "tabular", "--format", "json", env=env, cwd=tmp_path, extra_env={"MLREPO_ROOT": str(ws)})
    assert {x["line"] for x in json.loads(r.stdout)} == {"rf_baseline", "sgd_sweep"}  # the argument wins


def test_models_outside_root_and_short_or_ambiguous_ids(ws, home, tmp_path):
    _, env = home
    other = tmp_path / "other" / "m"
    other.mkdir(parents=True)
    for args in (["archive", ws, other, "--dry-run"], ["restore", "--root", ws, other],
                 ["diff", ws, other, "tabular/rf_baseline/00001"]):
        r = run(*args, env=env, cwd=ws)
        assert r.returncode == 2 and "not under ROOT" in r.stderr, (args, r.stderr)
    rows = json.loads(run("ls", ws, "--format", "json", env=env).stdout)
    first = rows[0]["id"]
    r = run("show", ws, first[:2], env=env)
    assert r.returncode == 2 and "too short" in r.stderr and first in r.stderr
    r = run("show", ws, "00002", env=env)  # the name of several models: each is listed with its id
    assert r.returncode == 2 and "matches" in r.stderr and "rf_baseline/00002" in r.stderr


def test_dry_runs_write_nothing_into_root(ws, home):
    _, env = home
    before = sorted(p.relative_to(ws) for p in ws.rglob("*"))
    for args in (["prune", ws, "--keep-last", "1", "--dry-run"], ["archive", ws, "--where", "true", "--dry-run"],
                 ["restore", ws, "--all", "--dry-run"]):
        r = run(*args, env=env)
        assert r.returncode == 0, (args, r.stderr)
    assert sorted(p.relative_to(ws) for p in ws.rglob("*")) == before


# -- config and environment ---------------------------------------------------------------------------------------
def test_config_files_env_and_precedence(ws, home, tmp_path):
    h, env = home
    (ws / "mlrepo.toml").write_text('metric = "precision"\ncolumns = ["id", "name"]\nkeep-top = 1\n')
    r = run("best", ws, env=env)
    assert r.returncode == 0 and "metrics.precision" in r.stderr, r.stderr
    r = run("ls", ws, "--format", "csv", env=env)
    assert r.stdout.splitlines()[0] == "id,name"
    r = run("best", ws, env=env, extra_env={"MLREPO_METRIC": "score_d"})  # the environment beats the file
    assert "metrics.score_d" in r.stderr
    r = run("best", ws, "--metric", "loss.val", env=env, extra_env={"MLREPO_METRIC": "score_d"})  # the flag wins
    assert "metrics.loss.val" in r.stderr
    r = run("config", "--format", "json", env=env, cwd=ws / "tabular", extra_env={"MLREPO_METRIC": "score_d"})
    doc = json.loads(r.stdout)
    found = {s["setting"]: (s["value"], s["source"]) for s in doc["settings"]}
    assert found["metric"] == (["score_d"], "MLREPO_METRIC")
    assert found["columns"] == (["id", "name"], str(ws / "mlrepo.toml"))
    assert found["keep-top"] == (1, str(ws / "mlrepo.toml")) and found["per"] == (None, "default")
    # pyproject.toml's [tool.mlrepo] and the user's config; a user root is relative to its file
    (ws / "mlrepo.toml").unlink()
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "pyproject.toml").write_text('[tool.mlrepo]\nroot = "../repo"\nmetric = "loss.val"\n')
    r = run("best", env=env, cwd=tmp_path / "proj")
    assert r.returncode == 0 and "metrics.loss.val" in r.stderr and r.stdout.startswith(str(ws)), r.stderr
    user = h / ".config" / "mlrepo" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text('metric = "score_d"\ncolor = "never"\n')
    r = run("config", env=env, cwd=tmp_path / "proj")
    assert "loss.val" in r.stdout and str(tmp_path / "proj" / "pyproject.toml") in r.stdout
    assert "never" in r.stdout and str(user) in r.stdout
    user.write_text("metric = [1, 2]\n")
    r = run("ls", ws, env=env)
    assert r.returncode == 2 and "metric" in r.stderr and str(user) in r.stderr
    user.write_text("nonsense = 1\n")
    assert "unknown setting" in run("ls", ws, env=env).stderr


# -- machine output -----------------------------------------------------------------------------------------------
def test_json_for_every_listing_and_inspecting_command(ws, home, tmp_path):
    _, env = home
    idx = json.loads(run("index", ws, "--format", "json", env=env).stdout)
    assert idx["schema_version"] == 1 and idx["models"] == 14 and idx["by_format"] == {"cascade": 14}
    assert [u["error"] for u in idx["unreadable"]] == ["metric 'loss' is NaN"]
    rows = json.loads(run("ls", ws, "--format", "json", env=env).stdout)
    assert all(r["schema_version"] == 1 for r in rows) and list(rows[0])[:2] == ["schema_version", "id"]
    shown = json.loads(run("show", ws, "rf_baseline/00002", "--format", "json", env=env).stdout)
    assert isinstance(shown, dict) and shown["name"] == "00002" and shown["schema_version"] == 1
    diff = json.loads(run("diff", ws, "rf_baseline/00001", "rf_baseline/00002", "--format", "json",
                          "--changed", env=env).stdout)
    assert diff["a"]["name"] == "00001" and all(k["differs"] for k in diff["keys"])
    assert {"key": "params.epochs", "a": 10, "b": 30, "differs": True} in diff["keys"]
    hist = json.loads(run("history", ws, "--line", "tabular/rf_baseline", "--metric", "metrics.accuracy", "--format",
                          "json", env=env).stdout)
    (line,) = hist["lines"]
    assert hist["metric"] == "metrics.accuracy" and line["line"] == "rf_baseline"
    assert line["roots"][0]["children"][0]["changes"]
    assert run("pin", ws, "rf_baseline/00002", env=env).returncode == 0
    assert run("archive", ws, "rf_baseline/00001", "--yes", env=env).returncode == 0
    for args in (["best", ws, "--metric", "metrics.accuracy"], ["du", ws, "--by", "line"], ["pin"],
                 ["restore", ws, "--all", "--dry-run"], ["prune", ws, "--keep-last", "1", "--dry-run"],
                 ["archive", ws, "rf_baseline/00003", "--dry-run"]):
        r = run(*args, "--format", "json", env=env, cwd=ws)
        assert r.returncode == 0, (args, r.stderr)
        doc = json.loads(r.stdout)
        assert (doc["schema_version"] if isinstance(doc, dict) else {d["schema_version"] for d in doc}) in (1, {1}), (
            args, r.stdout)
    (pinned,) = json.loads(run("pin", "--format", "json", env=env, cwd=ws).stdout)
    assert pinned["path"].endswith("rf_baseline/00002") and pinned["note"] == "" and pinned["pinned_at"]
    out = tmp_path / "models.parquet"
    assert run("export", ws, "--format", "parquet", "-o", out, env=env).returncode == 0
    import pyarrow.parquet as pq

    assert pq.read_metadata(out).metadata[b"mlrepo.schema_version"] == b"1"
    csv = run("export", ws, "--format", "csv", "--where", "tags contains 'best'", env=env).stdout
    assert "best;candidate" in csv  # the documented tag separator


def test_piped_to_head_exits_quietly(home, tmp_path):
    """``mlrepo … | head -1``: the reader takes a line and closes the pipe while mlrepo still writes. The pipe holds
    one page (4 KiB, not the 64 KiB a shell gives it) and every output here is larger, so the closed pipe is really
    hit, without waiting on time; mlrepo stops quietly with 0, as ripgrep and git do."""
    import fcntl

    _, env = home
    demo = tmp_path / "demo"
    assert run("demo", demo, env=env).returncode == 0
    for cmd in ("ls --format jsonl", "export --format jsonl", "export --format csv", "export --format md", "history",
                "prune --keep-last 1 --recent 0m --dry-run --format json", "prune --keep-last 1 --dry-run", "ls",
                "du --by model"):
        whole = run(*cmd.split(), demo, env=env)
        assert whole.returncode == 0 and len(whole.stdout.encode()) > 4096 + 512, (cmd, len(whole.stdout))
        read_end, write_end = os.pipe()
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
        proc = subprocess.Popen([MLREPO, *cmd.split(), str(demo)], stdout=write_end, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, env=env, text=True)
        os.close(write_end)
        first = os.read(read_end, 20)  # unbuffered: the rest stays in the pipe, mlrepo blocks on a full pipe
        os.close(read_end)
        _, errors = proc.communicate(timeout=120)
        assert proc.returncode == 0 and first, (cmd, errors)
        assert "Error" not in errors and "Broken" not in errors and "Traceback" not in errors, (cmd, errors)


def test_color_and_width_through_a_pipe(ws, home):
    _, env = home
    r = run("ls", ws, env=env, extra_env={"FORCE_COLOR": "1"})
    assert "\x1b[" in r.stdout and max(len(line) for line in r.stdout.splitlines()) > 200  # not cut to 80
    r = run("--color", "never", "ls", ws, env=env, extra_env={"FORCE_COLOR": "1"})
    assert "\x1b[" not in r.stdout
    r = run("--color", "always", "ls", ws, env=env)
    assert "\x1b[" in r.stdout
    r = run("ls", ws, env=env, extra_env={"MLREPO_COLOR": "always"})
    assert "\x1b[" in r.stdout
    assert run("--color", "sometimes", "ls", ws, env=env).returncode == 2
    assert run("ls", ws, env=env).stderr.strip() == "14 models"
    assert run("-q", "ls", ws, env=env).stderr == ""  # -q: no notes (and no progress line on a terminal)


def test_sizes_are_decimal_and_labelled_so(ws, home):
    _, env = home
    rows = json.loads(run("ls", ws, "--format", "json", env=env).stdout)
    table = run("ls", ws, "--columns", "id,size_bytes", env=env).stdout
    for row in rows:
        shown = next(line for line in table.splitlines() if row["id"] in line)
        assert f"{row['size_bytes'] / 1000:.1f} kB" in shown, (row["size_bytes"], shown)
    assert "KB" not in table and "KiB" not in table


# -- filters ------------------------------------------------------------------------------------------------------
def test_filters_mlflow_users_type(copy_fixture, home):
    _, env = home
    root = copy_fixture(FIXTURES / "mlflow_file", "m")
    rows = json.loads(run("ls", root, "--format", "json", env=env).stdout)
    tagged = [r for r in rows if "team=infra" in r["tags"]]
    assert tagged and all(r["tags.team"] == "infra" for r in tagged)

    def names(where: str) -> set[str]:
        r = run("ls", root, "--where", where, "--format", "json", env=env)
        assert r.returncode == 0, (where, r.stderr)
        return {x["name"] for x in json.loads(r.stdout)}

    assert names("tags.team = 'infra'") == names("tags contains 'team=infra'") == {r["name"] for r in tagged}
    finished = {r["name"] for r in rows if r["status"] == "active"}
    assert names("attributes.status = 'FINISHED'") == finished
    run_id = os.path.basename(rows[1]["path"])
    assert names(f"run_id = '{run_id}'") == names(f"attributes.run_id = '{run_id}'") == {rows[1]["name"]}
    assert names("attributes.run_name = 'lr-small'") == {"lr-small"}


def test_a_bare_metric_name_resolves_alike_everywhere(ws, home):
    _, env = home
    for args in (["best", ws, "--metric", "f1"], ["ls", ws, "--sort", "f1"], ["ls", ws, "--where", "f1 > 0.5"],
                 ["history", ws, "--metric", "f1"], ["prune", ws, "--keep-top", "1", "--metric", "f1", "--dry-run"],
                 ["ls", ws, "--columns", "id,f1"], ["archive", ws, "--where", "f1 > 0.5", "--dry-run"],
                 ["export", ws, "--where", "metrics.f1 > 0.5"]):
        r = run(*args, env=env)
        assert r.returncode == 2 and "f1' is ambiguous: it names" in r.stderr, (args, r.stderr)
        assert "metrics.f1.digits.test" in r.stderr and "metrics.f1.digits.val" in r.stderr
    assert run("ls", ws, "--where", "created_at > '2020-01-01T00:00:00Z'", env=env).returncode == 0
    r = run("ls", ws, "--where", "created_at > 'yesterday'", env=env)
    assert r.returncode == 2 and "not a date" in r.stderr


# -- packaging ----------------------------------------------------------------------------------------------------
def test_package_metadata_and_a_light_install():
    import mlrepo

    meta = metadata.metadata("mlrepo")
    assert meta["Version"] == mlrepo.__version__ == run("--version").stdout.split()[-1]  # --version reads no dist
    assert (meta["License-Expression"] or meta["License"]) == "MIT"  # by the backend's metadata version
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert urls["Source"].startswith("https://github.com/")
    assert "Programming Language :: Python :: 3.13" in meta.get_all("Classifier")
    requires = metadata.requires("mlrepo")
    pandas = [r.replace('"', "'") for r in requires if r.startswith("pandas")]
    assert pandas and all("extra == 'pandas'" in r or "extra == 'test'" in r for r in pandas)
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert "](screenshots/" not in readme and "pipx install" in readme and "uv tool install" in readme


def test_to_pandas_without_pandas_says_which_extra(ws):
    code = ("import sys; sys.modules['pandas'] = None\n"  # Python's own way to make an import fail
            "import mlrepo\nidx = mlrepo.open_index(sys.argv[1])\n"
            "try:\n    idx.to_pandas()\nexcept ModuleNotFoundError as exc:\n    print(exc)\n"
            "print(len(idx), '<table' in idx._repr_html_(), repr(idx))")
    r = subprocess.run([sys.executable, "-c", code, str(ws)], capture_output=True, text=True, timeout=60)
    lines = r.stdout.splitlines()
    assert "pip install 'mlrepo[pandas]'" in lines[0], r.stderr
    assert lines[1].startswith("14 True <mlrepo Index of")
