"""A realistic demo repository: a Cascade 0.18 workspace (hyperparameter sweeps whose metrics follow the params),
an MLflow file store and a Lightning log folder, all in the layouts those tools write.

The benchmark harness uses the same writer, scaled up, so the demo and the benchmarks share one notion of a
"realistic" model folder.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

#: (repo, line, base params, knobs a sweep turns, metric names)
LINES: list[tuple[str, str, dict[str, object], dict[str, list[object]]]] = [
    ("vision", "resnet_sweep", {"model": "resnet18", "epochs": 10, "batch_size": 64,
                                "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9}, "augment": {"flip": True}},
     {"epochs": [10, 20, 30, 50], "optimizer.lr": [0.1, 0.05, 0.01, 0.001], "batch_size": [32, 64, 128],
      "optimizer.name": ["sgd", "adam"], "augment.flip": [True, False]}),
    ("vision", "vit_tiny", {"model": "vit-tiny", "epochs": 30, "batch_size": 128, "dropout": 0.1,
                            "optimizer": {"name": "adamw", "lr": 0.001, "weight_decay": 0.05}},
     {"epochs": [30, 60, 90], "optimizer.lr": [0.001, 0.0005, 0.002], "dropout": [0.0, 0.1, 0.2],
      "optimizer.weight_decay": [0.05, 0.1]}),
    ("tabular", "gbm", {"model": "lightgbm", "n_estimators": 200, "max_depth": 6, "learning_rate": 0.1,
                        "subsample": 0.8},
     {"n_estimators": [100, 200, 500, 1000], "max_depth": [4, 6, 8, 12], "learning_rate": [0.1, 0.05, 0.01],
      "subsample": [0.6, 0.8, 1.0]}),
    ("tabular", "logreg", {"model": "logreg", "C": 1.0, "penalty": "l2", "max_iter": 100},
     {"C": [0.01, 0.1, 1.0, 10.0], "penalty": ["l1", "l2"], "max_iter": [100, 500]}),
    ("nlp", "bert_finetune", {"model": "bert-base", "epochs": 3, "seq_len": 128, "warmup": 0.1,
                              "optimizer": {"name": "adamw", "lr": 3e-5}},
     {"epochs": [2, 3, 4], "seq_len": [128, 256, 512], "optimizer.lr": [2e-5, 3e-5, 5e-5], "warmup": [0.0, 0.1]}),
]
EPOCH = datetime(2026, 9, 1, 9, 0, tzinfo=timezone.utc)


@dataclass(slots=True)
class DemoSpec:
    models_per_line: int = 12
    lines: int = len(LINES)  # line templates are reused (with a numeric suffix) beyond the five above
    artifact_bytes: tuple[int, int] = (20_000, 400_000)
    mlflow_runs: int = 8
    lightning_versions: int = 3
    seed: int = 7


def _set(params: dict, dotted: str, value: object) -> None:
    *path, last = dotted.split(".")
    for key in path:
        params = params.setdefault(key, {})
    params[last] = value


def _get(params: dict, dotted: str) -> object:
    for key in dotted.split("."):
        params = params[key]
    return params


def _quality(params: dict, knobs: dict, rng: random.Random) -> float:
    """A score in (0, 1) that depends on where each knob sits in its range, plus noise."""
    score = 0.0
    for i, (knob, values) in enumerate(sorted(knobs.items())):
        pos = values.index(_get(params, knob)) / max(len(values) - 1, 1)
        score += math.sin(1.3 + pos * (2 + i % 3)) * 0.3 / len(knobs)
    return min(0.99, max(0.05, 0.64 + score + rng.gauss(0, 0.015)))


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def _cascade(root: str, spec: DemoSpec, rng: random.Random) -> int:
    os.makedirs(root, exist_ok=True)
    _write(os.path.join(root, "meta.json"), json.dumps([{"name": "cascade.workspaces.workspace.Workspace",
                                                         "type": "workspace", "root": root}], indent=4))
    count = 0
    for n in range(spec.lines):
        repo, line, base, knobs = LINES[n % len(LINES)]
        if n >= len(LINES):
            line = f"{line}_{n // len(LINES)}"
        line_dir = os.path.join(root, repo, line)
        os.makedirs(line_dir, exist_ok=True)
        repo_meta = os.path.join(root, repo, "meta.json")
        if not os.path.exists(repo_meta):
            _write(repo_meta, json.dumps([{"name": "cascade.repos.repo.Repo", "type": "repo"}], indent=4))
        _write(os.path.join(line_dir, "meta.json"),
               json.dumps([{"name": "cascade.lines.model_line.ModelLine", "type": "model_line",
                            "len": spec.models_per_line}], indent=4))
        history: list[tuple[dict, float]] = []
        start = EPOCH + timedelta(days=n * 3)
        for i in range(spec.models_per_line):
            if history:
                # continue from the best so far most of the time, as people do; change one or two knobs
                parent = max(history, key=lambda h: h[1])[0] if rng.random() < 0.7 else rng.choice(history)[0]
                params = json.loads(json.dumps(parent))
                for knob in rng.sample(sorted(knobs), k=rng.choice((1, 1, 2))):
                    _set(params, knob, rng.choice([v for v in knobs[knob] if v != _get(params, knob)]))
            else:
                params = json.loads(json.dumps(base))
            quality = _quality(params, knobs, rng)
            history.append((params, quality))
            created = start + timedelta(hours=i * 5, minutes=rng.randrange(60))
            metrics = [
                {"name": "accuracy", "value": round(quality, 4), "dataset": "holdout", "split": "val",
                 "direction": "up"},
                {"name": "accuracy", "value": round(quality - abs(rng.gauss(0.015, 0.01)), 4),
                 "dataset": "holdout", "split": "test", "direction": "up"},
                {"name": "f1", "value": round(quality - 0.03 + rng.gauss(0, 0.01), 4)},
                {"name": "loss", "value": round(-math.log(quality) + abs(rng.gauss(0, 0.01)), 4), "direction": "down"},
            ]
            model_dir = os.path.join(line_dir, f"{i:05d}")
            os.makedirs(os.path.join(model_dir, "artifacts"), exist_ok=True)
            slug = f"{rng.choice(ADJECTIVES)}_{rng.choice(ANIMALS)}"
            tags = ["best"] if i and quality >= max(q for _, q in history) and rng.random() < 0.5 else []
            block = {"name": f"{repo}.{line}.Model", "description": None, "tags": tags, "type": "model",
                     "created_at": created.isoformat(), "saved_at": created.isoformat(),
                     "metrics": metrics, "params": params, "slug": slug, "path": model_dir}
            _write(os.path.join(model_dir, "meta.json"), json.dumps([block], indent=4))
            _write(os.path.join(model_dir, "SLUG"), slug)
            with open(os.path.join(model_dir, "artifacts", "model.bin"), "wb") as fh:
                fh.write(rng.randbytes(rng.randrange(*spec.artifact_bytes)) if spec.artifact_bytes[1] else b"")
            stamp = created.timestamp()
            for dirpath, _dirs, files in os.walk(model_dir):
                for name in files:
                    os.utime(os.path.join(dirpath, name), (stamp, stamp))
            count += 1
    return count


def _mlflow(root: str, spec: DemoSpec, rng: random.Random) -> int:
    store = os.path.join(root, "mlruns")
    exp_id = "271828182845904523"
    exp_dir = os.path.join(store, exp_id)
    os.makedirs(exp_dir, exist_ok=True)
    _write(os.path.join(exp_dir, "meta.yaml"),
           f"artifact_location: file://{exp_dir}\nexperiment_id: '{exp_id}'\nlifecycle_stage: active\n"
           "name: churn-model\n")
    for i in range(spec.mlflow_runs):
        run_id = uuid.UUID(int=rng.getrandbits(128)).hex
        run_dir = os.path.join(exp_dir, run_id)
        for sub in ("metrics", "params", "tags", "artifacts"):
            os.makedirs(os.path.join(run_dir, sub), exist_ok=True)
        start = int((EPOCH + timedelta(days=20, hours=i * 7)).timestamp() * 1000)
        status = 1 if i == spec.mlflow_runs - 1 else 3
        _write(os.path.join(run_dir, "meta.yaml"),
               f"artifact_uri: file://{run_dir}/artifacts\nend_time: {'null' if status == 1 else start + 3_600_000}\n"
               f"experiment_id: '{exp_id}'\nlifecycle_stage: active\nrun_id: {run_id}\nrun_name: xgb-{i:02d}\n"
               f"start_time: {start}\nstatus: {status}\nuser_id: demo\n")
        depth, lr = rng.choice((3, 5, 7, 9)), rng.choice((0.3, 0.1, 0.03))
        for key, value in {"max_depth": depth, "learning_rate": lr, "n_estimators": 100 * (i % 4 + 1)}.items():
            _write(os.path.join(run_dir, "params", key), str(value))
        _write(os.path.join(run_dir, "tags", "mlflow.runName"), f"xgb-{i:02d}")
        auc = 0.8 + 0.02 * math.log(depth) - abs(lr - 0.1) * 0.3
        lines_auc, lines_loss = [], []
        for step in range(10):
            t = start + step * 60_000
            lines_auc.append(f"{t} {auc * (1 - math.exp(-(step + 1) / 3)) + rng.gauss(0, 0.003):.5f} {step}")
            lines_loss.append(f"{t} {0.7 * math.exp(-(step + 1) / 4) + 0.2 + rng.gauss(0, 0.005):.5f} {step}")
        _write(os.path.join(run_dir, "metrics", "val_auc"), "\n".join(lines_auc) + "\n")
        _write(os.path.join(run_dir, "metrics", "val_loss"), "\n".join(lines_loss) + "\n")
        with open(os.path.join(run_dir, "artifacts", "model.xgb"), "wb") as fh:
            fh.write(rng.randbytes(rng.randrange(*spec.artifact_bytes)) if spec.artifact_bytes[1] else b"")
    return spec.mlflow_runs


def _lightning(root: str, spec: DemoSpec, rng: random.Random) -> int:
    base = os.path.join(root, "speech", "lightning_logs")
    for v in range(spec.lightning_versions):
        vdir = os.path.join(base, f"version_{v}")
        os.makedirs(os.path.join(vdir, "checkpoints"), exist_ok=True)
        lr = (0.01, 0.003, 0.001, 0.0003)[v % 4]
        _write(os.path.join(vdir, "hparams.yaml"),
               f"lr: {lr}\nbatch_size: 32\nencoder:\n  layers: {4 + v}\n  hidden: 256\n")
        rows = ["epoch,step,train_loss,val_loss,val_wer"]
        for epoch in range(5):
            rows.append(f"{epoch},{epoch * 10 + 9},{1.5 * math.exp(-epoch / (2 + v)) + rng.gauss(0, 0.01):.4f},,")
            wer = 0.4 * math.exp(-epoch / (3 + v)) + 0.1
            rows.append(f"{epoch},{epoch * 10 + 9},,{1.6 * math.exp(-epoch / (2 + v)) + 0.1:.4f},{wer:.4f}")
        _write(os.path.join(vdir, "metrics.csv"), "\n".join(rows) + "\n")
        with open(os.path.join(vdir, "checkpoints", f"epoch=4-step={50 + v}.ckpt"), "wb") as fh:
            fh.write(rng.randbytes(rng.randrange(*spec.artifact_bytes)) if spec.artifact_bytes[1] else b"")
    return spec.lightning_versions


def write_demo(root: str, spec: DemoSpec | None = None) -> int:
    """Write the demo under ``root`` (created if missing); returns the number of models written."""
    spec = spec or DemoSpec()
    rng = random.Random(spec.seed)
    os.makedirs(root, exist_ok=True)
    count = _cascade(os.path.join(root, "workspace"), spec, rng)
    if spec.mlflow_runs:
        count += _mlflow(root, spec, rng)
    if spec.lightning_versions:
        count += _lightning(root, spec, rng)
    return count


def cached_demo(cache_root: str) -> str:
    """The demo for ``tui --demo``, under ``cache_root``: written on first use, and again when this writer changes
    (the folder is named by a hash of this file; older ones are removed). Written beside and renamed into place,
    so an interrupted write never leaves half a demo."""
    with open(__file__, "rb") as fh:
        version = hashlib.sha1(fh.read()).hexdigest()[:10]
    root = os.path.join(cache_root, f"demo-{version}")
    if os.path.isdir(root):
        return root
    os.makedirs(cache_root, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".demo-", dir=cache_root)
    write_demo(staging)
    try:
        os.rename(staging, root)
    except OSError:  # another mlrepo wrote it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    for name in os.listdir(cache_root):
        if (name == "demo" or name.startswith(("demo-", ".demo-"))) and name != os.path.basename(root):
            shutil.rmtree(os.path.join(cache_root, name), ignore_errors=True)
    return root


ADJECTIVES = ["amber", "brisk", "calm", "dapper", "eager", "fancy", "gentle", "hardy", "icy", "jolly", "keen",
              "lucid", "mellow", "nimble", "opal", "plucky", "quiet", "rapid", "sunny", "tidy"]
ANIMALS = ["otter", "lynx", "heron", "ibex", "koala", "lemur", "marten", "newt", "ocelot", "puffin", "quokka",
           "raven", "stoat", "tapir", "urchin", "vole", "walrus", "yak", "zebu", "finch"]
