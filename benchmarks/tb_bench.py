"""Indexing a 10 MB TensorBoard event file full of images: the reader must skip them by length, well under a second.

    .venv/bin/python benchmarks/tb_bench.py                 # 10 MB, 5 repeats
    .venv/bin/python benchmarks/tb_bench.py --mb 50 --repeat 3

The event file is written by the real writer, in an interpreter that has it: ``torch.utils.tensorboard`` where
``torch`` and ``tensorboard`` import, else ``tensorboardX`` (the same record format; torch's writer was derived from
it). mlrepo itself needs neither. The interpreter is ``$TB_BENCH_PYTHON``, else ``/tmp/tbbench/bin/python``, else
the current one, whichever can import a writer (make one with ``python -m venv /tmp/tbbench && /tmp/tbbench/bin/pip
install tensorboardX pillow numpy``). Without one the benchmark says so and exits 1. This file runs in that
interpreter too (``--write``), so it imports only the standard library at the top.

The file (``benchmarks/data/tb-<MB>mb/with/runs/images/``, git-ignored, written once per spec): 4 scalar tags over
``steps`` steps, then noise images of 3x64x64 (PNG, ~12 KB each, incompressible) at every step until the file is
``--mb`` MB. The values are known, so the benchmark also checks that every scalar's last value was read exactly.

Measured (wall time, median of ``--repeat`` fresh subprocesses; page cache warm: each tree is read once first):

- ``mlrepo index ROOT --rebuild`` of the root holding the event file, and of the same root without it (one empty
  run folder): their difference is what the event file costs;
- baselines: ``python -c pass`` (interpreter start) and ``cat FILE > /dev/null`` (reading the bytes);
- in process: ``TensorBoardReader().read(place)`` of the run folder alone (median of ``--repeat`` calls after one
  warm-up), the reader's own time without interpreter start, imports or the index around it: with curves (what
  ``mlrepo history`` and the TUI's curves pay) and as the index reads it (``without_history``: no curve kept).

Target (#14): the reader's own time, with curves, well under a second (checked: under 0.25 s). Results go to
``benchmarks/results/tb-latest.md``.
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
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "tb-latest.md")
MB = 1_000_000
TAGS = ("loss", "acc", "lr", "grad_norm")
READER_MAX = 0.25  # seconds: "well under a second"
WRITER_CHECK = ("import importlib.util as u, sys; "
                "sys.exit(0 if (u.find_spec('torch') and u.find_spec('tensorboard')) or u.find_spec('tensorboardX') "
                "else 1)")


# -- writing (runs in the writer's interpreter) -----------------------------------------------------------------------
def scalar(tag: str, step: int) -> float:
    """The value of ``tag`` at ``step``: known here, so the read values can be checked exactly (float32-exact)."""
    return float((TAGS.index(tag) + 1) * 0.5 + step / 1024)


def write(run: str, mb: int, steps: int) -> None:
    """Write one event file of about ``mb`` MB under ``run`` with the real writer; print what was written."""
    import numpy as np

    try:
        from torch.utils.tensorboard import SummaryWriter
        writer_name = "torch.utils.tensorboard"
    except ImportError:
        from tensorboardX import SummaryWriter  # type: ignore[no-redef]
        writer_name = "tensorboardX"
    rng = np.random.default_rng(0)
    os.makedirs(run, exist_ok=True)
    writer = SummaryWriter(log_dir=run)
    for step in range(steps):
        for tag in TAGS:
            writer.add_scalar(tag, scalar(tag, step), step)
    writer.flush()
    [events] = [os.path.join(run, n) for n in os.listdir(run) if n.startswith("events.out.tfevents.")]
    images = 0
    while os.path.getsize(events) < mb * MB:
        writer.add_image(f"sample/{images % 8}", rng.random((3, 64, 64), dtype=np.float32), images)
        images += 1
        if images % 50 == 0:
            writer.flush()
    writer.close()
    print(json.dumps({"writer": writer_name, "file": events, "bytes": os.path.getsize(events), "images": images,
                      "steps": steps}))


# -- measuring (runs in mlrepo's interpreter) -------------------------------------------------------------------------
def writer_python() -> str | None:
    for candidate in (os.environ.get("TB_BENCH_PYTHON"), "/tmp/tbbench/bin/python", sys.executable):
        if candidate and os.path.exists(candidate) and subprocess.run(
                [candidate, "-c", WRITER_CHECK], stderr=subprocess.DEVNULL).returncode == 0:
            return candidate
    return None


def ensure_data(mb: int, steps: int) -> tuple[str, str, dict]:
    """(root with the event file, root without it, what was written); written once per spec."""
    base = os.path.join(HERE, "data", f"tb-{mb}mb")
    spec_file = os.path.join(base, "spec.json")
    spec = {"mb": mb, "steps": steps, "tags": TAGS, "version": 1}
    if os.path.exists(spec_file):
        with open(spec_file) as fh:
            saved = json.load(fh)
        if saved.get("spec") == json.loads(json.dumps(spec)):
            return os.path.join(base, "with"), os.path.join(base, "without"), saved["written"]
    python = writer_python()
    if python is None:
        sys.exit("tb_bench: no interpreter can import torch.utils.tensorboard or tensorboardX; set TB_BENCH_PYTHON "
                 "(see this file's docstring)")
    shutil.rmtree(base, ignore_errors=True)
    out = subprocess.run([python, __file__, "--write", os.path.join(base, "with", "runs", "images"), "--mb",
                          str(mb), "--steps", str(steps)], check=True, capture_output=True, text=True).stdout
    written = json.loads(out.strip().splitlines()[-1])
    os.makedirs(os.path.join(base, "without", "runs", "images"))
    with open(spec_file, "w") as fh:
        json.dump({"spec": spec, "written": written}, fh)
    return os.path.join(base, "with"), os.path.join(base, "without"), written


def timed(cmd: list[str] | str, repeat: int, shell: bool = False) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, shell=shell, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.append(time.perf_counter() - start)
    return out


def reader_inproc(run: str, repeat: int, curves: bool) -> tuple[list[float], dict[str, float]]:
    """The reader's own time; ``curves`` False reads as the index does (``without_history``: no curve kept)."""
    from contextlib import nullcontext

    from mlrepo.repo_index.readers import Place
    from mlrepo.repo_index.readers.history import without_history
    from mlrepo.repo_index.readers.tensorboard import TensorBoardReader

    place = Place(path=run, rel="runs/images", names=frozenset(os.listdir(run)), parent_names=frozenset())
    reader = TensorBoardReader()
    rec = reader.read(place)  # warm-up
    times = []
    for _ in range(repeat):
        with nullcontext() if curves else without_history():
            start = time.perf_counter()
            rec = reader.read(place)
            times.append(time.perf_counter() - start)
    if rec.errors:
        raise SystemExit(f"tb_bench: the reader reported {rec.errors}")
    return times, {m.name: m.value for m in rec.metrics}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=int, default=10)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--write", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.write:
        write(args.write, args.mb, args.steps)
        return
    with_root, without_root, written = ensure_data(args.mb, args.steps)
    run = os.path.join(with_root, "runs", "images")
    mlrepo = [sys.executable, "-m", "mlrepo", "index", "--rebuild"]
    for root in (with_root, without_root):  # warm the page cache, and fail loudly before anything is timed
        subprocess.run([*mlrepo, root], check=True, stdout=subprocess.DEVNULL)
    rows = {
        "mlrepo index --rebuild, root with the event file": timed([*mlrepo, with_root], args.repeat),
        "mlrepo index --rebuild, same root without it": timed([*mlrepo, without_root], args.repeat),
        "python -c pass": timed([sys.executable, "-c", "pass"], args.repeat),
        "cat FILE > /dev/null": timed(f"cat {written['file']} > /dev/null", args.repeat, shell=True),
    }
    reader_times, metrics = reader_inproc(run, args.repeat, curves=True)
    rows["TensorBoardReader().read(run), in process, with curves"] = reader_times
    rows["the same as the index reads it (without_history)"] = reader_inproc(run, args.repeat, curves=False)[0]
    last = args.steps - 1
    expected = {tag: scalar(tag, last) for tag in TAGS}
    if metrics != expected:
        raise SystemExit(f"tb_bench: read {metrics}, wrote {expected}")
    med = {k: statistics.median(v) for k, v in rows.items()}
    cost = med["mlrepo index --rebuild, root with the event file"] - med["mlrepo index --rebuild, same root without it"]
    reader = med["TensorBoardReader().read(run), in process, with curves"]
    ok = reader < READER_MAX
    lines = [
        f"# TensorBoard event file with images ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
        f"File: {written['bytes'] / MB:.1f} MB by {written['writer']}: {len(TAGS)} scalar tags x {written['steps']} "
        f"steps, {written['images']} images (3x64x64 PNG). Every scalar's last value read exactly: yes.",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"median of {args.repeat} (min-max).",
        "",
        "| measurement | median s | min-max s |",
        "|---|---|---|",
        *(f"| {k} | {statistics.median(v):.3f} | {min(v):.3f}-{max(v):.3f} |" for k, v in rows.items()),
        "",
        f"- the event file's cost in `mlrepo index --rebuild` (with - without): {cost:.3f} s",
        f"- the reader's own time: {reader:.3f} s, {written['bytes'] / MB / reader:.0f} MB/s "
        f"(target < {READER_MAX} s: {'PASS' if ok else 'FAIL'})",
    ]
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
