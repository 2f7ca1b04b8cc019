"""ModelCheckpoint's state read from Lightning .ckpt files (lightning 2.6.6, tests/fixtures/make_lightning_ckpt.py)
without torch and without running anything from the pickle; the best and last checkpoints tagged and kept."""

from __future__ import annotations

import csv
import io
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import mlrepo
from mlrepo.repo_index.readers.ckpt_state import cached_state, read_state
from treeutil import mlrepo as run_cli, trash_env

LOGS = Path(__file__).parent / "fixtures" / "lightning_ckpt" / "lightning_logs"


def tags_by_version(root: Path) -> dict[str, tuple[list[str], str | None]]:
    index = mlrepo.open_index(root, use_cache=False)
    return {r["name"]: (r["tags"], r["error"]) for r in index.df.to_dicts()}


def best_epoch(version: Path) -> int:
    """The epoch of the lowest val_loss in Lightning's own metrics.csv."""
    with open(version / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["val_loss"]]
    return int(min(rows, key=lambda r: float(r["val_loss"]))["epoch"])


def test_best_and_last_checkpoints_are_tagged():
    epoch = best_epoch(LOGS / "version_0")
    best = next(p.name for p in (LOGS / "version_0" / "checkpoints").glob(f"epoch={epoch}-*.ckpt"))
    assert tags_by_version(LOGS.parent) == {
        "version_0": ([f"best_checkpoint=checkpoints/{best}", "last_checkpoint=checkpoints/last.ckpt"], None),
        # resumed from version_0 without validating: Lightning kept version_0's best_model_path
        "version_1": ([f"best_checkpoint=../version_0/checkpoints/{best}", "last_checkpoint=checkpoints/last.ckpt"], None),
    }
    state = read_state(str(LOGS / "version_1" / "checkpoints" / "last.ckpt"))
    assert state.step == 18 and state.best[0][1].endswith(f"/version_0/checkpoints/{best}")


def test_a_version_holding_another_versions_best_is_never_removed(tmp_path):
    root = tmp_path / "logs"
    shutil.copytree(LOGS.parent, root)
    env = trash_env(tmp_path)
    archive = run_cli("archive", root, "logs/lightning_logs/version_0", "--recent", "0", "--yes", env=env)
    # a named model that is not archived fails the command, with the reason
    assert archive.code == 1 and "holds lightning_logs/version_1's best checkpoint (checkpoints/epoch=" in archive.err
    assert not list((root / ".mlrepo").glob("archive/**/*.tar*"))
    prune = run_cli("prune", root, "--keep-top", "1", "--metric", "val_loss", "--recent", "0", "--delete", "--yes",
                    env=env)
    assert prune.code == 0, prune.err
    assert (root / "lightning_logs" / "version_0" / "checkpoints").is_dir()
    # once version_1 is gone, version_0 is a version like any other
    shutil.rmtree(root / "lightning_logs" / "version_1")
    prune = run_cli("prune", root, "--keep-top", "0", "--keep-last", "0", "--metric", "val_loss", "--recent", "0",
                    "--delete", "--yes", env=env)
    assert prune.code == 0, prune.err
    assert not (root / "lightning_logs" / "version_0").exists()


def version_with(tmp_path: Path, ckpts: dict[str, bytes | None]) -> Path:
    """A copy of version_0 whose checkpoints/ holds only ``ckpts`` (None: a FIFO of that name)."""
    root = tmp_path / "logs"
    version = root / "lightning_logs" / "version_0"
    shutil.copytree(LOGS / "version_0", version)
    shutil.rmtree(version / "checkpoints")
    (version / "checkpoints").mkdir()
    for name, data in ckpts.items():
        if data is None:
            os.mkfifo(version / "checkpoints" / name)
        else:
            (version / "checkpoints" / name).write_bytes(data)
    return root


def torch_zip(pickled: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", pickled)
        z.writestr("archive/version", "3\n")
    return buf.getvalue()


class Call:
    """Pickles as a call of ``func(*args)``, as a hostile checkpoint would."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def test_a_hostile_pickle_runs_nothing(tmp_path):
    canary, canary2 = tmp_path / "canary", tmp_path / "canary2"
    evil = {"global_step": 99, "callbacks": {"ModelCheckpoint{}": {
        "dirpath": Call(os.system, f"touch {canary}"),
        "best_model_path": Call(eval, f"__import__('os').system('touch {canary2}')"),
        "last_model_path": Call(open, str(tmp_path / "canary3"), "w")}}}
    data = pickle.dumps(evil)
    root = version_with(tmp_path, {"evil.ckpt": torch_zip(data)})
    result = run_cli("ls", root, "--format", "json")
    assert result.code == 0, result.err
    assert tags_by_version(root) == {"version_0": ([], None)}  # read quietly: the calls gave no paths
    assert not canary.exists() and not canary2.exists() and not (tmp_path / "canary3").exists()
    pickle.loads(data)  # the same bytes through a plain unpickler do run: the canary proves the test bites
    assert canary.exists() and canary2.exists()


def test_cut_junk_and_fifo_checkpoints_say_so_or_stay_quiet(tmp_path):
    real = (LOGS / "version_0" / "checkpoints" / "last.ckpt").read_bytes()
    root = version_with(tmp_path, {"cut.ckpt": real[: len(real) // 2]})
    assert tags_by_version(root) == {"version_0": ([], "checkpoints/cut.ckpt: not a readable checkpoint (a torch zip "
                                                       "cut short or of another kind)")}
    shutil.rmtree(root)
    root = version_with(tmp_path, {"junk.ckpt": torch_zip(b"\x80\x04not a pickle at all")})
    assert tags_by_version(root) == {"version_0": ([], "checkpoints/junk.ckpt: its checkpoint data is not a "
                                                       "readable pickle")}
    shutil.rmtree(root)
    # a FIFO is never opened (no hang); a checkpoint being written beside a whole one: the whole one is read
    root = version_with(tmp_path, {"x.ckpt": None, "last.ckpt": real, "epoch=9-step=99.ckpt": real[:100]})
    result = run_cli("ls", root, "--format", "json", timeout=60)
    assert result.code == 0 and "Traceback" not in result.err
    tags, error = tags_by_version(root)["version_0"]
    assert "last_checkpoint=checkpoints/last.ckpt" in tags and error is None


def test_the_state_is_cached_by_the_files_stamp(tmp_path):
    path = tmp_path / "last.ckpt"
    shutil.copy(LOGS / "version_0" / "checkpoints" / "last.ckpt", path)
    first = cached_state(str(path))
    assert cached_state(str(path)) is first
    shutil.copy(LOGS / "version_1" / "checkpoints" / "last.ckpt", path)  # rewritten: a new stamp, read again
    assert cached_state(str(path)).step == 18 != first.step


def test_placeholder_checkpoints_are_not_read_and_their_version_is_kept(tmp_path):
    """A remote root's mirror holds a checkpoint as a sparse placeholder of its size (no data): the state is not
    read from zeros, the version says so in its tags, and prune keeps it with the reason."""
    root = version_with(tmp_path, {})
    for ckpt in (LOGS / "version_0" / "checkpoints").iterdir():
        with open(root / "lightning_logs" / "version_0" / "checkpoints" / ckpt.name, "wb") as f:
            f.truncate(ckpt.stat().st_size)  # sparse: no block allocated
    assert tags_by_version(root) == {"version_0": (["checkpoint_state=unread"], None)}
    prune = run_cli("prune", root, "--keep-top", "0", "--keep-last", "0", "--metric", "val_loss", "--recent", "0",
                    "--delete", "--yes", env=trash_env(tmp_path))
    assert prune.code == 0, prune.err
    assert "ModelCheckpoint state was not read" in prune.out
    assert (root / "lightning_logs" / "version_0" / "checkpoints").is_dir()
