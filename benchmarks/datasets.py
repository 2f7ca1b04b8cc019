"""Synthetic benchmark repositories, made once and cached under ``benchmarks/data/`` (git-ignored).

Cascade: ``mlrepo.commands.operations.demo.write_demo`` scaled up (the same writer the demo uses, so "realistic" means the same
thing in both): ``workspace/<repo>/<line>/00000/{meta.json,SLUG,artifacts/model.bin}``, 100 models per line,
artifacts of 200-2000 bytes. A dataset is written to ``<name>.tmp`` and renamed when complete; a ``<name>.json``
stamp next to it records the spec, so a changed spec (or an interrupted write) is regenerated, anything else reused.

MLflow: a file store written by MLflow itself (``make_mlflow_store.py``, run in an interpreter that has mlflow).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
GENERATOR_VERSION = 1
MODELS_PER_LINE = 100
ARTIFACT_BYTES = (200, 2000)


def _stamp_ok(stamp_path: str, want: dict) -> bool:
    try:
        with open(stamp_path, encoding="utf-8") as fh:
            have = json.load(fh)
    except (OSError, ValueError):
        return False
    return all(have.get(k) == v for k, v in want.items())


def _write_stamp(stamp_path: str, stamp: dict) -> None:
    with open(stamp_path, "w", encoding="utf-8") as fh:
        json.dump(stamp, fh, indent=2)


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
    if os.path.isdir(root) and _stamp_ok(stamp_path, want):
        with open(stamp_path, encoding="utf-8") as fh:
            return root, json.load(fh)
    os.makedirs(DATA, exist_ok=True)
    tmp = root + ".tmp"
    for stale in (tmp, root):
        if os.path.exists(stale):
            shutil.rmtree(stale)
    log(f"  generating {name} with write_demo({spec}) ...")
    start = time.perf_counter()
    count = write_demo(tmp, spec)
    seconds = time.perf_counter() - start
    if count != n_models:
        raise SystemExit(f"write_demo wrote {count} models, expected {n_models}")
    os.rename(tmp, root)
    stamp = {**want, "generated_in_s": round(seconds, 2), "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    _write_stamp(stamp_path, stamp)
    log(f"  generated {n_models} models in {seconds:.1f} s")
    return root, stamp


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
    if os.path.isdir(root) and _stamp_ok(stamp_path, want):
        with open(stamp_path, encoding="utf-8") as fh:
            return root, json.load(fh)
    os.makedirs(DATA, exist_ok=True)
    if os.path.exists(root):  # an interrupted write: no stamp
        shutil.rmtree(root)
    log(f"  generating {name} with mlflow {version} ({python}) ...")
    start = time.perf_counter()
    # the store must be written at its final path: MLflow records absolute artifact locations in meta.yaml
    subprocess.run([python, os.path.join(HERE, "make_mlflow_store.py"), root, str(n_runs)],
                   check=True, env=mlflow_env(), cwd=DATA)
    seconds = time.perf_counter() - start
    stamp = {**want, "generated_in_s": round(seconds, 2), "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    _write_stamp(stamp_path, stamp)
    log(f"  generated {n_runs} MLflow runs in {seconds:.1f} s")
    return root, stamp
