"""DVC experiments read from git refs: the real project ``dvc exp run`` made (tests/fixtures/make_dvc_exp.py,
committed as a git bundle), checked value by value; hostile refs and a git that is missing or hangs."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mlrepo.commands.operations.ages import Age
from mlrepo.commands.operations.guards import DVC_EXPERIMENT, Guards, protection
from mlrepo.repo_index.readers.dvc_exps import read_experiments
from treeutil import FIXTURES

BUNDLE = FIXTURES / "dvc_exp" / "project.bundle"
# what each experiment's commit holds (make_dvc_exp.py: acc = 1 - lr, loss = lr * epochs)
EXPECTED = {
    "exp-lr01": ({"train.lr": 0.1, "train.epochs": 3, "train.optimizer": "adam"}, {"acc": 0.9, "loss": 0.3}),
    "exp-lr02": ({"train.lr": 0.2, "train.epochs": 3, "train.optimizer": "adam"}, {"acc": 0.8, "loss": 0.6}),
    "exp-lr03": ({"train.lr": 0.3, "train.epochs": 5, "train.optimizer": "adam"}, {"acc": 0.7, "loss": 1.5}),
}


def _git(cwd: Path, *args: str, stdin: bytes | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, input=stdin,
                          env=env).stdout.decode().strip()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The fixture project cloned from its bundle, with its experiment refs (a clone leaves refs/exps out)."""
    dest = tmp_path / "proj"
    subprocess.run(["git", "clone", "-q", str(BUNDLE), str(dest)], check=True)
    _git(dest, "fetch", "-q", str(BUNDLE), "refs/exps/*:refs/exps/*")
    return dest


def _by_name(project: Path, **kw) -> dict:
    return {r.name: r for r in read_experiments(str(project), **kw)}


def test_every_param_and_metric_of_every_experiment(project: Path) -> None:
    found = _by_name(project)
    assert set(found) == set(EXPECTED)  # dvc's refs/exps/exec/EXEC_HEAD is bookkeeping, not an experiment
    for name, (params, metrics) in EXPECTED.items():
        rec = found[name]
        assert rec.errors == []
        assert rec.format == "dvc-exp" and rec.line == "proj" and rec.status == "finished"
        assert rec.params == params
        assert {m.name: m.value for m in rec.metrics} == metrics
        ref = _git(project, "for-each-ref", "--format=%(objectname) %(refname)", f"refs/exps/*/*/{name}")
        commit, refname = ref.split(" ")
        assert rec.source_id == commit
        assert rec.path == os.path.join(str(project), ".git", refname)  # no folder of its own
        assert not os.path.isdir(rec.path)
        when = int(_git(project, "show", "-s", "--format=%ct", commit))
        assert rec.created_at == datetime.fromtimestamp(when, timezone.utc)


def test_a_project_without_its_own_git_has_no_experiments(tmp_path: Path) -> None:
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    assert read_experiments(str(tmp_path)) == []


def test_prune_keeps_an_experiment_with_the_reason(project: Path) -> None:
    rec = _by_name(project)["exp-lr01"]
    row = {"id": "x", "format": rec.format, "status": rec.status, "path": rec.path, "tags": [],
           "updated_at": rec.updated_at, "name": rec.name}
    guards = Guards(str(project.parent), datetime.now(timezone.utc), Age(), {}, {}, {}, {})
    assert protection(row, guards) == DVC_EXPERIMENT.format(name="exp-lr01")


def _experiment_commit(project: Path, name: str, files: dict[str, bytes]) -> str:
    """A commit on top of the baseline holding ``files``, behind an experiment ref, as dvc would make it."""
    base = _git(project, "rev-parse", "HEAD")
    _git(project, "checkout", "-q", "--detach", base)
    for rel, data in files.items():
        (project / rel).write_bytes(data)
        _git(project, "add", rel)
    _git(project, "commit", "-q", "-m", name)
    commit = _git(project, "rev-parse", "HEAD")
    _git(project, "update-ref", f"refs/exps/{base[:2]}/{base[2:]}/{name}", commit)
    _git(project, "checkout", "-q", "main")
    return commit


def test_a_huge_metrics_blob_is_not_read(project: Path) -> None:
    _experiment_commit(project, "exp-huge", {"metrics.json": b'{"acc": 0.5, "pad": "' + b"x" * 3_000_000 + b'"}'})
    found = _by_name(project, max_bytes=2**20)
    assert found["exp-huge"].metrics == []
    assert found["exp-huge"].errors == ["metrics.json in experiment exp-huge: larger than 1 MiB, not read"]
    assert {m.name: m.value for m in found["exp-lr02"].metrics} == EXPECTED["exp-lr02"][1]  # the others intact


def test_a_broken_metrics_file_is_that_experiments_error(project: Path) -> None:
    _experiment_commit(project, "exp-bad", {"metrics.json": b'{"acc": 0.5'})
    found = _by_name(project)
    assert found["exp-bad"].errors and found["exp-bad"].errors[0].startswith("metrics.json in experiment exp-bad:")
    assert found["exp-bad"].params == EXPECTED["exp-lr01"][0] | {"train.lr": 0.05}  # the baseline's params.yaml


def test_refs_to_a_missing_object_and_to_a_blob(project: Path) -> None:
    base = _git(project, "rev-parse", "HEAD")
    ghost = project / ".git" / "refs" / "exps" / base[:2] / base[2:] / "exp-ghost"
    ghost.write_text("1" * 40 + "\n")  # a ref to an object git does not have (a pruned or half-copied repo)
    blob = _git(project, "hash-object", "-w", "--stdin", stdin=b"not a commit")
    _git(project, "update-ref", f"refs/exps/{base[:2]}/{base[2:]}/exp-blob", blob)
    found = _by_name(project)
    assert found["exp-ghost"].errors == ["experiment exp-ghost: its commit 111111111111 is missing"]
    assert found["exp-blob"].errors == [f"experiment exp-blob: its commit {blob[:12]} is a blob, not a commit"]
    assert found["exp-lr03"].params == EXPECTED["exp-lr03"][0]  # one bad ref costs only its own row


def test_git_missing_is_one_clear_message(project: Path, tmp_path: Path) -> None:
    [rec] = read_experiments(str(project), git=str(tmp_path / "no-such-git"))
    assert rec.errors == ["git is not installed (or not on PATH): DVC experiments cannot be read"]
    assert rec.format == "dvc-exp" and rec.name == "experiments"


def test_a_hanging_git_is_bounded_by_the_timeout(project: Path, tmp_path: Path) -> None:
    hang = tmp_path / "git"
    hang.write_text("#!/bin/sh\nexec sleep 60\n")  # a git stuck on a dead network mount or a lock
    hang.chmod(hang.stat().st_mode | stat.S_IXUSR)
    [rec] = read_experiments(str(project), git=str(hang), timeout=0.5)
    assert rec.errors == ["git did not answer within 0.5 s: DVC experiments not read"]


def test_a_failing_git_says_why(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()  # a repository folder emptied by hand: git does not take it for one
    [rec] = read_experiments(str(tmp_path))
    assert rec.errors[0].startswith("git for-each-ref failed: fatal:")


def test_a_partial_clones_upload_pack_is_never_run(project: Path, tmp_path: Path) -> None:
    """A missing object in a partial clone makes git fetch it from the promisor remote, running the repository's own
    ``remote.origin.uploadpack``: ROOT is untrusted, so that command must never run."""
    base = _git(project, "rev-parse", "HEAD")
    ghost = project / ".git" / "refs" / "exps" / base[:2] / base[2:] / "exp-ghost"
    ghost.write_text("1" * 40 + "\n")
    marker = tmp_path / "ran"
    for key, value in [("core.repositoryformatversion", "1"), ("extensions.partialClone", "origin"),
                       ("remote.origin.url", str(project)), ("remote.origin.promisor", "true"),
                       ("remote.origin.uploadpack", f"touch {marker}; git-upload-pack")]:
        _git(project, "config", key, value)
    subprocess.run(["git", "--git-dir", str(project / ".git"), "cat-file", "-e", "1" * 40], capture_output=True)
    assert marker.exists()  # the repository is armed: plain git runs its command
    marker.unlink()
    found = _by_name(project)
    assert not marker.exists()
    assert found["exp-ghost"].errors == ["experiment exp-ghost: its commit 111111111111 is missing"]
    assert found["exp-lr01"].params == EXPECTED["exp-lr01"][0]


def test_a_file_name_with_a_line_break_is_that_experiments_error(project: Path) -> None:
    """``cat-file --batch`` reads one name a line: "a\\nb" would be two requests, and every later answer would
    belong to the wrong experiment."""
    dvc_yaml = b'metrics: ["a\\nb", metrics.json]\n'
    _experiment_commit(project, "exp-nl", {"dvc.yaml": dvc_yaml, "metrics.json": b'{"acc": 0.42}'})
    found = _by_name(project)
    assert found["exp-nl"].errors == ["'a\\nb' in experiment exp-nl: a file name with a line break, not read"]
    assert {m.name: m.value for m in found["exp-nl"].metrics} == {"acc": 0.42}
    for name, (params, metrics) in EXPECTED.items():  # every other experiment keeps its own values
        assert (found[name].params, {m.name: m.value for m in found[name].metrics}) == (params, metrics)
        assert found[name].errors == []


def test_answers_that_do_not_pair_with_the_requests_are_one_message(project: Path, tmp_path: Path) -> None:
    """A git whose ``--batch-check`` drops an answer (a stand-in for any shift): no row gets another's values."""
    real = shutil.which("git")
    short = tmp_path / "git"
    short.write_text(f'#!/bin/sh\ncase "$*" in *--batch-check*) "{real}" "$@" | sed \'$d\';; '
                     f'*) exec "{real}" "$@";; esac\n')
    short.chmod(0o755)
    [rec] = read_experiments(str(project), git=str(short))
    assert rec.errors == ["git cat-file gave 2 answers to 3 requests: DVC experiments not read"]


def test_a_commit_time_past_year_9999_costs_only_its_time(project: Path) -> None:
    """A hand-made commit may say any time; one that ``datetime`` cannot hold must not sink the other experiments."""
    base = _git(project, "rev-parse", "HEAD")
    tree = _git(project, "rev-parse", "HEAD^{tree}")
    raw = (f"tree {tree}\nparent {base}\nauthor t <t@example.com> 99999999999999 +0000\n"
           f"committer t <t@example.com> 99999999999999 +0000\n\nfar future\n").encode()
    commit = _git(project, "hash-object", "-w", "-t", "commit", "--literally", "--stdin", stdin=raw)
    _git(project, "update-ref", f"refs/exps/{base[:2]}/{base[2:]}/exp-future", commit)
    found = _by_name(project)
    assert found["exp-future"].errors == [] and found["exp-future"].created_at is None
    assert found["exp-future"].params == EXPECTED["exp-lr01"][0] | {"train.lr": 0.05}  # the baseline's tree
    for name, (params, metrics) in EXPECTED.items():
        assert (found[name].params, {m.name: m.value for m in found[name].metrics}) == (params, metrics)


def test_exactly_the_limit_of_experiments_has_no_note_and_one_more_has(project: Path) -> None:
    """The fixture's three experiments under a limit of three: all read, no note; under two: the note says so."""
    at_limit = read_experiments(str(project), limit=3)
    assert sorted(r.name for r in at_limit) == sorted(EXPECTED) and all(r.errors == [] for r in at_limit)
    over = read_experiments(str(project), limit=2)
    assert [r.name for r in over] == ["exp-lr01", "exp-lr02"]
    assert over[-1].errors == ["only the first 2 of 3 experiments (by name) are indexed"]
