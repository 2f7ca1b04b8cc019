"""DVC experiments in the index: the real project ``dvc exp run`` made (tests/fixtures/make_dvc_exp.py), listed
beside its project row, cached and revalidated from its refs (no git process when nothing changed), never pruned,
and hostile ``.git`` contents answered with a note instead of a hang or a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import mlrepo
from treeutil import FIXTURES, mlrepo as run_mlrepo

BUNDLE = FIXTURES / "dvc_exp" / "project.bundle"
GIT = shutil.which("git") or "git"
# what dvc wrote (make_dvc_exp.py: params.yaml with -S overrides; metrics.json: acc = 1 - lr, loss = lr * epochs)
EXPECTED = {
    "exp-lr01": ({"train.lr": 0.1, "train.epochs": 3, "train.optimizer": "adam"}, {"acc": 0.9, "loss": 0.3}),
    "exp-lr02": ({"train.lr": 0.2, "train.epochs": 3, "train.optimizer": "adam"}, {"acc": 0.8, "loss": 0.6}),
    "exp-lr03": ({"train.lr": 0.3, "train.epochs": 5, "train.optimizer": "adam"}, {"acc": 0.7, "loss": 1.5}),
}
BASELINE = ({"train.lr": 0.05, "train.epochs": 3, "train.optimizer": "adam"}, {"acc": 0.95, "loss": 0.15})


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run([GIT, *args], cwd=cwd, check=True, capture_output=True).stdout.decode().strip()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """ROOT holding the fixture project, cloned from its bundle with its experiment refs."""
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run([GIT, "clone", "-q", str(BUNDLE), str(root / "proj")], check=True)
    _git(root / "proj", "fetch", "-q", str(BUNDLE), "refs/exps/*:refs/exps/*")
    return root


@pytest.fixture
def no_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``git`` first on PATH that only records that it was run: the log stays absent when git is never asked."""
    shim = tmp_path / "shim"
    shim.mkdir()
    log = tmp_path / "git-calls.log"
    (shim / "git").write_text(f'#!/bin/sh\necho "$@" >> "{log}"\nexit 1\n')
    (shim / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    return log


def _split(row: dict) -> tuple[dict, dict]:
    def part(prefix: str) -> dict:
        return {k.removeprefix(prefix): v for k, v in row.items() if k.startswith(prefix) and v is not None}
    return part("params."), part("metrics.")


def _experiments(index) -> dict[str, dict]:
    return {r["name"]: r for r in index.df.to_dicts() if r["format"] == "dvc-exp"}


def test_ls_lists_every_experiment_beside_the_project(root: Path) -> None:
    refs = _git(root / "proj", "for-each-ref", "--format=%(refname)", "refs/exps").splitlines()
    base = _git(root / "proj", "rev-parse", "HEAD")
    ghost = root / "proj" / ".git" / "refs" / "exps" / base[:2] / base[2:] / "exp-ghost"
    ghost.write_text("1" * 40 + "\n")  # a ref to an object git does not have (a pruned or half-copied repository)
    done = run_mlrepo("ls", root, "--format", "json")
    assert done.code == 0 and "Traceback" not in done.err, done.err
    rows = json.loads(done.out)
    [project] = [r for r in rows if r["format"] == "dvc"]
    assert (project["path"], project["error"]) == (str(root / "proj"), None)
    assert _split(project) == BASELINE  # the workspace: the baseline commit's run
    exps = {r["name"]: r for r in rows if r["format"] == "dvc-exp"}
    assert exps.pop("exp-ghost")["error"] == "experiment exp-ghost: its commit 111111111111 is missing"
    assert set(exps) == set(EXPECTED) and len(rows) == 5  # one bad ref costs only its own row
    for name, expected in EXPECTED.items():
        row = exps[name]
        assert _split(row) == expected  # every param and metric, exactly as dvc recorded them
        ref = next(ref for ref in refs if ref.endswith(f"/{name}"))
        assert row["path"] == str(root / "proj" / ".git" / ref)
        assert not os.path.isdir(row["path"])  # a row without a folder
        assert (row["repo"], row["line"], row["status"], row["error"]) == ("root", "proj", "finished", None)
        assert (row["size_bytes"], row["n_files"]) == (0, 0)


def test_cached_rows_follow_the_refs_and_a_warm_run_runs_no_git(root: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    project = root / "proj"
    assert set(_experiments(mlrepo.open_index(root))) == set(EXPECTED)
    log = tmp_path / "git-calls.log"
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "git").write_text(f'#!/bin/sh\necho "$@" >> "{log}"\nexit 1\n')
    (shim / "git").chmod(0o755)
    path = os.environ["PATH"]
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{path}")
    warm = mlrepo.open_index(root)
    assert not log.exists() and warm.stats.read == 0  # stamps only: no git process, nothing read again
    assert {n: _split(r) for n, r in _experiments(warm).items()} == EXPECTED

    base = _git(project, "rev-parse", "HEAD")
    lr02 = _git(project, "rev-parse", f"refs/exps/{base[:2]}/{base[2:]}/exp-lr02")
    _git(project, "update-ref", f"refs/exps/{base[:2]}/{base[2:]}/exp-again", lr02)  # a new `dvc exp run`
    _git(project, "update-ref", "-d", f"refs/exps/{base[:2]}/{base[2:]}/exp-lr01")  # `dvc exp remove exp-lr01`
    monkeypatch.setenv("PATH", path)
    changed = _experiments(mlrepo.open_index(root))
    assert set(changed) == {"exp-again", "exp-lr02", "exp-lr03"}
    assert _split(changed["exp-again"]) == EXPECTED["exp-lr02"]

    _git(project, "pack-refs", "--all")  # loose refs move into packed-refs: the same experiments
    packed = mlrepo.open_index(root)
    assert {n: _split(r) for n, r in _experiments(packed).items()} == {
        "exp-again": EXPECTED["exp-lr02"], "exp-lr02": EXPECTED["exp-lr02"], "exp-lr03": EXPECTED["exp-lr03"]}
    assert not list((project / ".git" / "refs" / "exps").rglob("exp-*"))
    _git(project, "update-ref", "-d", f"refs/exps/{base[:2]}/{base[2:]}/exp-again")  # now only packed-refs changes
    assert set(_experiments(mlrepo.open_index(root))) == {"exp-lr02", "exp-lr03"}


def test_prune_and_archive_keep_every_experiment_and_say_why(root: Path) -> None:
    plan = run_mlrepo("prune", root, "--keep-top", "1", "--metric", "acc", "--recent", "0", "--dry-run",
                      "--format", "json")
    assert plan.code == 0, plan.err
    models = {m["path"]: m for m in json.loads(plan.out)["models"]}
    exps = {p: m for p, m in models.items() if "/.git/refs/exps/" in p}
    assert len(exps) == 3
    for path, model in exps.items():
        assert model["action"] == "keep"
        assert (f"a DVC experiment (a git ref, no folder of its own): remove it with "
                f"`dvc exp remove {os.path.basename(path)}`") in model["reasons"]
    before = _git(root / "proj", "for-each-ref", "refs/exps")
    done = run_mlrepo("archive", root, "--where", "format = 'dvc-exp'", "--yes")
    assert done.code == 0, done.err
    assert "archive 0 of 3 models" in done.out and "a DVC experiment (a git ref" in done.out
    assert _git(root / "proj", "for-each-ref", "refs/exps") == before  # nothing moved, no ref touched
    assert not (root / ".mlrepo" / "archive").exists() or not any((root / ".mlrepo" / "archive").iterdir())


def _note(root: Path) -> dict:
    """The one experiments row of the project under ``root``, which says why its experiments were not read."""
    index = mlrepo.open_index(root)
    assert index.counts_by_format() == {"dvc": 1, "dvc-exp": 1}
    return _experiments(index)["experiments"]


def test_a_git_file_has_no_experiments_and_a_link_out_of_root_is_a_note_and_no_git_runs(root: Path, tmp_path: Path,
                                                                                          no_git: Path) -> None:
    project = root / "proj"
    outside = tmp_path / "outside.git"
    (project / ".git").rename(outside)
    (project / ".git").write_text(f"gitdir: {outside}\n")  # a worktree or submodule pointer: not its own repository
    for _run in range(2):  # no phantom error row, cold or warm
        index = mlrepo.open_index(root)
        assert index.counts_by_format() == {"dvc": 1}
        assert index.df["error"].to_list() == [None]
    (project / ".git").unlink()
    (project / ".git").symlink_to(outside)  # leads out of ROOT: not followed
    assert _note(root)["error"] == (".git is a symbolic link, not the repository folder: DVC "
                                    "experiments not read")
    assert not no_git.exists()


@pytest.mark.parametrize("where", ["packed-refs", "HEAD", "refs/exps/ab/fifo"])
def test_a_fifo_in_git_is_a_note_not_a_hang(root: Path, no_git: Path, where: str) -> None:
    fifo = root / "proj" / ".git" / where
    if fifo.exists():
        fifo.unlink()
    fifo.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(fifo)
    error = _note(root)["error"]
    assert error.startswith(f".git/{where} is a named pipe")
    assert error.endswith("git not run, DVC experiments not read")
    assert not no_git.exists()


def test_a_huge_packed_refs_is_read_without_a_hang(root: Path) -> None:
    project = root / "proj"
    _git(project, "pack-refs", "--all")
    packed = project / ".git" / "packed-refs"
    header, *lines = packed.read_bytes().splitlines()
    head = _git(project, "rev-parse", "HEAD").encode()
    lines += [head + b" refs/tags/t%07d" % n for n in range(300_000)]  # ~18 MB of tags
    assert not any(line.startswith(b"^") for line in lines)  # no annotated tags: no peeled lines
    lines.sort(key=lambda line: line.split(b" ", 1)[1])  # git keeps packed-refs sorted by name
    packed.write_bytes(b"\n".join([header, *lines]) + b"\n")
    assert packed.stat().st_size > 15_000_000
    assert {n: _split(r) for n, r in _experiments(mlrepo.open_index(root)).items()} == EXPECTED


def test_the_live_index_follows_new_experiments_and_keeps_them_when_the_project_changes(root: Path) -> None:
    from mlrepo.repo_index.live import ChangeBatch, LiveIndex

    batches: list[ChangeBatch] = []
    said: list[str] = []
    live = LiveIndex(root, on_change=batches.append, on_warning=said.append, settle=0.2)
    live.start()
    try:
        def names() -> set[str]:
            df = live.index.df
            return set(df.filter(df["format"] == "dvc-exp")["name"].to_list())

        def wait(cond) -> None:  # for a state, not for a time: the deadline only ends a broken run
            deadline = time.monotonic() + 20
            while not cond():
                assert time.monotonic() < deadline, [(e.event, e.name) for b in batches for e in b.events]
                time.sleep(0.02)

        assert names() == set(EXPECTED)
        project = root / "proj"
        base = _git(project, "rev-parse", "HEAD")
        lr03 = _git(project, "rev-parse", f"refs/exps/{base[:2]}/{base[2:]}/exp-lr03")
        _git(project, "update-ref", f"refs/exps/{base[:2]}/{base[2:]}/exp-live", lr03)
        wait(lambda: "exp-live" in names())
        (project / "notes.txt").write_text("the project changes; its experiments stay\n")
        wait(lambda: any(e.event == "updated" and e.name == "proj" for b in batches for e in b.events))
        assert names() == {*EXPECTED, "exp-live"}
        _git(project, "update-ref", "-d", f"refs/exps/{base[:2]}/{base[2:]}/exp-lr01")
        wait(lambda: "exp-lr01" not in names())
        assert names() == {"exp-lr02", "exp-lr03", "exp-live"}
    finally:
        live.stop()
    assert said == []


def test_a_shared_cold_scan_reads_the_experiments_where_the_project_is_read(root: Path) -> None:
    """A cold index shares its work with processes: the project is a task (``run_task``), and its experiments
    come with it, as in one process."""
    from mlrepo.repo_index import parallel
    from mlrepo.repo_index.rows import merge_rows, scanned_rows
    from mlrepo.repo_index.scanner import Scanner
    from mlrepo.repo_index.table import frame_of

    serial = Scanner(str(root)).scan()
    result, rows = parallel.scan(Scanner(str(root)), workers=1, serial_work=0)
    shared, alone = frame_of(merge_rows(rows)), frame_of(merge_rows([scanned_rows(serial)]))
    assert result.stores == serial.stores and list(result.stores) == ["proj/.git"]
    assert sorted(shared["_rel"].to_list()) == sorted(alone["_rel"].to_list())
    exps = shared.filter(shared["format"] == "dvc-exp")
    assert sorted(exps["name"].to_list()) == sorted(EXPECTED)
    assert set(exps["_store"].to_list()) == {"proj/.git"}


def test_show_an_experiment_lists_its_params_and_no_files(root: Path) -> None:
    """An experiment has no folder: ``show`` gives its params and metrics, and no files panel that cannot list."""
    done = run_mlrepo("show", root, "exp-lr03")
    assert done.code == 0, done.err
    assert "dvc-exp" in done.out and "train.epochs" in done.out and "1.5" in done.out
    assert "─ files ─" not in done.out and "cannot list" not in done.out
    project = run_mlrepo("show", root, "proj")
    assert project.code == 0 and "─ files ─" in project.out and "dvc.yaml" in project.out  # a project's folder is still listed


def test_best_path_of_an_experiment_says_how_to_get_its_files(root: Path) -> None:
    """``best --format path`` hands a folder to a script; an experiment has none, so it says what DVC offers."""
    done = run_mlrepo("best", root, "--metric", "loss", "--mode", "max", "--format", "path")
    assert done.code == 1 and done.out == ""
    assert "exp-lr03" in done.err and "`dvc exp apply exp-lr03`" in done.err and "Traceback" not in done.err


@pytest.mark.parametrize(("where", "error"), [
    ("include", ".git/config includes other files"),
    ("includeIf", ".git/config includes other files"),
    ("objects/info/alternates", ".git/objects/info/alternates is a named pipe, not a regular file"),
    ("objects/pack/pack-fifo.idx", ".git/objects/pack/pack-fifo.idx is a named pipe, not a regular file"),
    ("commondir", ".git/commondir points at another repository"),
])
def test_a_fifo_that_git_would_open_is_a_note_not_a_hang(root: Path, tmp_path: Path, no_git: Path, where: str,
                                                          error: str) -> None:
    """git reads a config include, the alternates file and every pack it finds: a named pipe there holds it until
    its timeout, on every run. Refused before git runs (an include wherever it points: git's rules decide where)."""
    git_dir = root / "proj" / ".git"
    if where.startswith("include"):
        os.mkfifo(tmp_path / "fifo.cfg")
        section = "[include]" if where == "include" else '[includeIf "gitdir:/"]'
        with open(git_dir / "config", "a") as config:
            config.write(f"{section}\n\tpath = {tmp_path / 'fifo.cfg'}\n")
    elif where == "commondir":  # the repository's config, objects and refs would be read from there, unchecked
        os.mkfifo(tmp_path / "fifo.cfg")
        (tmp_path / "other.git").mkdir()
        os.symlink(tmp_path / "fifo.cfg", tmp_path / "other.git" / "config")
        (git_dir / "commondir").write_text(f"{tmp_path / 'other.git'}\n")
    else:
        (git_dir / where).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(git_dir / where)
    assert _note(root)["error"] == f"{error}: git not run, DVC experiments not read"
    assert not no_git.exists()


def test_a_ref_rewritten_in_place_with_its_mtime_put_back_changes_the_stamp(root: Path) -> None:
    """Same inode, size and mtime (a copy tool that keeps times): the ctime still says the ref moved."""
    from mlrepo.repo_index.readers.dvc_exps import DvcExpStore

    project = root / "proj"
    base = _git(project, "rev-parse", "HEAD")
    ref = project / ".git" / "refs" / "exps" / base[:2] / base[2:] / "exp-lr01"
    lr02 = _git(project, "rev-parse", f"refs/exps/{base[:2]}/{base[2:]}/exp-lr02")
    store = DvcExpStore()
    before, st = store.stamp(str(project / ".git")), ref.stat()
    with open(ref, "r+") as f:  # in place: the same inode and size
        f.write(lr02 + "\n")
    os.utime(ref, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = ref.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)
    assert store.stamp(str(project / ".git")) != before
