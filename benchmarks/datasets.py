"""Synthetic benchmark repositories, made once and cached under ``benchmarks/data/`` (git-ignored).

Cascade: ``mlrepo.commands.operations.demo.write_demo`` scaled up (the same writer the demo uses, so "realistic" means the same
thing in both): ``workspace/<repo>/<line>/00000/{meta.json,SLUG,artifacts/model.bin}``, 100 models per line,
artifacts of 200-2000 bytes. A dataset is written to ``<name>.tmp`` and renamed when complete; a ``<name>.json``
stamp next to it records the spec, so a changed spec (or an interrupted write) is regenerated, anything else reused.

Mixed (``--shape mixed``): a second shape, as an independent run measured it: 80% Cascade models with one weights
file beside ``meta.json`` (``<repo>/<line>/00000/{meta.json,model.bin}``, no inner folder), 10% Lightning versions
(``lightning_logs/version_N/{hparams.yaml,metrics.csv,checkpoints/epoch=..ckpt}``) and 10% Hugging Face Trainer
checkpoints (``checkpoint-N/{trainer_state.json,config.json,model.safetensors,optimizer.pt}``), 100 per group.

MLflow: a file store written by MLflow itself (``make_mlflow_store.py``, run in an interpreter that has mlflow).
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
GENERATOR_VERSION = 1
MODELS_PER_LINE = 100
ARTIFACT_BYTES = (200, 2000)
SHAPES = ("cascade", "mixed")
#: the metadata files of each shape, for the baseline's ``find -name ... | xargs cat``
META_NAMES = {"cascade": ("meta.json",), "mixed": ("meta.json", "hparams.yaml", "metrics.csv", "trainer_state.json")}


def _stamp_ok(stamp_path: str, want: dict) -> bool:
    try:
        with open(stamp_path, encoding="utf-8") as fh:
            have = json.load(fh)
    except (OSError, ValueError):
        return False
    return all(have.get(k) == v for k, v in want.items())


def _reuse_or_clear(root: str, stamp_path: str, want: dict) -> dict | None:
    """The stamp of the tree at ``root`` when it was generated as ``want`` asks; else None, with the tree and any
    interrupted ``.tmp`` write removed so that it is generated afresh."""
    if os.path.isdir(root) and _stamp_ok(stamp_path, want):
        with open(stamp_path, encoding="utf-8") as fh:
            return json.load(fh)
    os.makedirs(DATA, exist_ok=True)
    for stale in (root + ".tmp", root):
        if os.path.exists(stale):
            shutil.rmtree(stale)
    return None


def _publish(tmp: str, root: str, count: int, n_models: int) -> None:
    """The tree written at ``tmp`` becomes ``root``, once it holds the models asked for."""
    if count != n_models:
        raise SystemExit(f"wrote {count} models, expected {n_models}")
    os.rename(tmp, root)


def _write_stamp(stamp_path: str, want: dict, seconds: float) -> dict:
    """The stamp of a tree generated as ``want`` asks, written beside it: what the next run reuses it by."""
    stamp = {**want, "generated_in_s": round(seconds, 2), "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    with open(stamp_path, "w", encoding="utf-8") as fh:
        json.dump(stamp, fh, indent=2)
    return stamp


def cascade_repo(n_models: int, log=print) -> tuple[str, dict]:
    """Path of a Cascade workspace root with ``n_models`` models (generated on first use) and its stamp."""
    from mlrepo.commands.operations.demo import DemoSpec, write_demo

    if n_models % MODELS_PER_LINE:
        raise SystemExit(f"sizes must be multiples of {MODELS_PER_LINE}, got {n_models}")
    name = f"cascade-{n_models}"
    root = os.path.join(DATA, name)
    stamp_path = root + ".json"
    spec = DemoSpec(models_per_line=MODELS_PER_LINE, lines=n_models // MODELS_PER_LINE,
                    artifact_bytes=ARTIFACT_BYTES, mlflow_runs=0, lightning_versions=0, seed=7)
    want = {"generator": GENERATOR_VERSION, "models": n_models, "models_per_line": spec.models_per_line,
            "lines": spec.lines, "artifact_bytes": list(spec.artifact_bytes), "seed": spec.seed}
    kept = _reuse_or_clear(root, stamp_path, want)
    if kept is not None:
        return root, kept
    tmp = root + ".tmp"
    log(f"  generating {name} with write_demo({spec}) ...")
    start = time.perf_counter()
    count = write_demo(tmp, spec)
    seconds = time.perf_counter() - start
    _publish(tmp, root, count, n_models)
    stamp = _write_stamp(stamp_path, want, seconds)
    log(f"  generated {n_models} models in {seconds:.1f} s")
    return root, stamp


def dataset(shape: str, n_models: int, log=print) -> tuple[str, dict]:
    """Path and stamp of the ``shape`` repository with ``n_models`` models."""
    return cascade_repo(n_models, log=log) if shape == "cascade" else mixed_repo(n_models, log=log)


def mixed_repo(n_models: int, log=print) -> tuple[str, dict]:
    """Path of a mixed repository (see the module's docstring) with ``n_models`` models and its stamp."""
    from mlrepo.commands.operations.demo import DemoSpec, write_demo

    group = MODELS_PER_LINE * 10
    if n_models % group:
        raise SystemExit(f"mixed sizes must be multiples of {group}, got {n_models}")
    name = f"mixed-{n_models}"
    root = os.path.join(DATA, name)
    stamp_path = root + ".json"
    tenth = n_models // 10
    spec = DemoSpec(models_per_line=MODELS_PER_LINE, lines=8 * tenth // MODELS_PER_LINE,
                    artifact_bytes=ARTIFACT_BYTES, mlflow_runs=0, lightning_versions=0, seed=11)
    want = {"generator": GENERATOR_VERSION, "shape": "mixed", "models": n_models, "cascade": 8 * tenth,
            "lightning": tenth, "hf-trainer": tenth, "per_group": MODELS_PER_LINE,
            "artifact_bytes": list(ARTIFACT_BYTES), "seed": spec.seed}
    kept = _reuse_or_clear(root, stamp_path, want)
    if kept is not None:
        return root, kept
    tmp = root + ".tmp"
    log(f"  generating {name} ...")
    start = time.perf_counter()
    count = write_demo(tmp, spec)
    for dirpath, dirnames, files in os.walk(os.path.join(tmp, "workspace")):
        if "artifacts" in dirnames and "meta.json" in files:  # a model: its weights file beside meta.json
            stamp = os.stat(os.path.join(dirpath, "artifacts", "model.bin")).st_mtime
            os.rename(os.path.join(dirpath, "artifacts", "model.bin"), os.path.join(dirpath, "model.bin"))
            os.rmdir(os.path.join(dirpath, "artifacts"))
            os.unlink(os.path.join(dirpath, "SLUG"))
            os.utime(dirpath, (stamp, stamp))
            dirnames.clear()
    rng = random.Random(spec.seed)
    count += _lightning_versions(os.path.join(tmp, "lightning"), tenth, rng)
    count += _hf_checkpoints(os.path.join(tmp, "hf"), tenth, rng)
    seconds = time.perf_counter() - start
    _publish(tmp, root, count, n_models)
    stamp = _write_stamp(stamp_path, want, seconds)
    log(f"  generated {n_models} models in {seconds:.1f} s")
    return root, stamp


def _weights(path: str, rng: random.Random) -> None:
    with open(path, "wb") as fh:
        fh.write(rng.randbytes(rng.randrange(*ARTIFACT_BYTES)))


def _lightning_versions(base: str, n: int, rng: random.Random) -> int:
    """``n`` Lightning versions, ``MODELS_PER_LINE`` per ``lightning_logs`` folder, as the CSVLogger and
    ModelCheckpoint write them (the layout of tests/fixtures/lightning)."""
    for v in range(n):
        vdir = os.path.join(base, f"exp{v // MODELS_PER_LINE:04d}", "lightning_logs", f"version_{v % MODELS_PER_LINE}")
        os.makedirs(os.path.join(vdir, "checkpoints"))
        lr = rng.choice((0.1, 0.03, 0.01, 0.003))
        with open(os.path.join(vdir, "hparams.yaml"), "w") as fh:
            fh.write(f"batch_size: 16\nlr: {lr}\nmodel_name: linear\noptimizer:\n  momentum: 0.0\n  name: sgd\n")
        rows = ["epoch,step,train_loss,val_acc,val_loss"]
        for epoch in range(3):
            rows.append(f"{epoch},{epoch * 3 + 2},{2.5 * math.exp(-epoch) + rng.gauss(0, 0.05):.6f},,")
            rows.append(f"{epoch},{epoch * 3 + 2},,{0.5 + 0.1 * epoch + rng.gauss(0, 0.02):.4f},"
                        f"{1.5 * math.exp(-epoch) + 0.1:.6f}")
        with open(os.path.join(vdir, "metrics.csv"), "w") as fh:
            fh.write("\n".join(rows) + "\n")
        _weights(os.path.join(vdir, "checkpoints", "epoch=2-step=8.ckpt"), rng)
    return n


def _hf_checkpoints(base: str, n: int, rng: random.Random) -> int:
    """``n`` Hugging Face Trainer checkpoints, ``MODELS_PER_LINE`` per output folder (the layout of
    tests/fixtures/hf_trainer: trainer_state.json with its log_history beside the weights)."""
    for c in range(n):
        step = 4 * (c % MODELS_PER_LINE + 1)
        cdir = os.path.join(base, f"run{c // MODELS_PER_LINE:04d}", f"checkpoint-{step}")
        os.makedirs(cdir)
        history = []
        for s in range(4, step + 1, 4):
            history.append({"epoch": s / 4, "grad_norm": round(rng.random(), 6), "learning_rate": 0.05 * (1 - s / 500),
                            "loss": round(0.7 * math.exp(-s / 100) + rng.gauss(0, 0.01), 6), "step": s})
            if s % 20 == 0 or s == step:
                history.append({"epoch": s / 4, "eval_loss": round(0.68 * math.exp(-s / 120), 6),
                                "eval_runtime": 0.0107, "step": s})
        state = {"best_global_step": step, "best_metric": history[-1]["eval_loss"], "epoch": step / 4,
                 "eval_steps": 4, "global_step": step, "is_hyper_param_search": False,
                 "is_local_process_zero": True, "is_world_process_zero": True, "log_history": history,
                 "logging_steps": 4, "max_steps": 4 * MODELS_PER_LINE, "num_train_epochs": MODELS_PER_LINE,
                 "save_steps": 4, "total_flos": 875520.0, "train_batch_size": 8, "trial_name": None,
                 "trial_params": None}
        with open(os.path.join(cdir, "trainer_state.json"), "w") as fh:
            json.dump(state, fh, indent=2)
        with open(os.path.join(cdir, "config.json"), "w") as fh:
            json.dump({"architectures": ["BertForSequenceClassification"], "hidden_size": 32}, fh, indent=2)
        _weights(os.path.join(cdir, "model.safetensors"), rng)
        _weights(os.path.join(cdir, "optimizer.pt"), rng)
    return n


def mlflow_python() -> str | None:
    """An interpreter that can import mlflow: $MLRUNS_PYTHON, /tmp/fixenv, or this one."""
    candidates = [os.environ.get("MLFLOW_BENCH_PYTHON"), "/tmp/fixenv/bin/python", sys.executable]
    for py in candidates:
        if py and os.path.exists(py):
            probe = subprocess.run([py, "-c", "import mlflow; print(mlflow.__version__)"],
                                   capture_output=True, text=True)
            if probe.returncode == 0:
                return py
    return None


def mlflow_env() -> dict[str, str]:
    env = dict(os.environ)
    env["MLFLOW_ALLOW_FILE_STORE"] = "true"
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def mlflow_store(n_runs: int, python: str, log=print) -> tuple[str, dict]:
    """A folder holding ``mlruns/`` with ``n_runs`` runs logged by MLflow's own client."""
    name = f"mlflow-{n_runs}"
    root = os.path.join(DATA, name)
    stamp_path = root + ".json"
    version = subprocess.run([python, "-c", "import mlflow; print(mlflow.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    want = {"generator": GENERATOR_VERSION, "runs": n_runs, "mlflow": version}
    kept = _reuse_or_clear(root, stamp_path, want)  # an interrupted write has no stamp: removed
    if kept is not None:
        return root, kept
    log(f"  generating {name} with mlflow {version} ({python}) ...")
    start = time.perf_counter()
    # the store must be written at its final path: MLflow records absolute artifact locations in meta.yaml
    subprocess.run([python, os.path.join(HERE, "make_mlflow_store.py"), root, str(n_runs)],
                   check=True, env=mlflow_env(), cwd=DATA)
    seconds = time.perf_counter() - start
    stamp = _write_stamp(stamp_path, want, seconds)
    log(f"  generated {n_runs} MLflow runs in {seconds:.1f} s")
    return root, stamp
