"""What-if experiments on a cold ``open_index``: each variant is a monkeypatch applied from outside ``repo_index``
(nothing in the package is edited), timed in a fresh interpreter so one variant cannot warm up another.

    .venv/bin/python benchmarks/experiments.py [--models 20000] [--variants shipped,gc-off,fix-setdefault,...]

Variants (combine with ``+``):

- ``shipped``: as is.
- ``gc-off``: ``gc.disable()`` around ``open_index`` (also reports the time the cyclic GC took in ``shipped``).
- ``fix-setdefault``: ``table.build_frame`` with ``d.setdefault(key, [None] * n)[i] = v`` replaced by a lookup
  that allocates the n-long column only when the key is new (the shipped form allocates it on *every* call, so
  build_frame is O(models x keys x models)).
- ``serial``: the scanner's thread pool replaced by an inline executor (no threads).
- ``switch``: ``sys.setswitchinterval(0.0005)`` (default 0.005): the main thread, which lists folders and so drops
  the GIL on every syscall, waits less to get it back from the CPU-bound workers.

Prints one line per variant and writes ``results/experiments-<N>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
sys.path.insert(0, HERE)

CHILD = r'''
import gc, inspect, json, sys, time
HERE, VARIANT, ROOT = sys.argv[1:4]
sys.path.insert(0, HERE)
from mlrepo.repo_index import index as index_mod, table as table_mod, scanner as scanner_mod
variant = set(VARIANT.split("+"))
notes = []
if "fix-setdefault" in variant:
    src = inspect.getsource(table_mod.build_frame)
    new = src.replace('params.setdefault(f"params.{key}", [None] * n)[i] = _param_value(value)',
                      '_slot(params, f"params.{key}", n)[i] = _param_value(value)')
    new = new.replace("metrics.setdefault(key, [None] * n)[i] = value", "_slot(metrics, key, n)[i] = value")
    if new == src:
        notes.append("fix-setdefault: pattern not found, build_frame unchanged")
    ns = dict(vars(table_mod))
    exec("def _slot(d, k, n):\n    col = d.get(k)\n    if col is None:\n        col = d[k] = [None] * n\n    return col\n" + new, ns)
    index_mod.build_frame = ns["build_frame"]
if "switch" in variant:  # a shorter GIL switch interval: the walking thread waits less after each syscall
    sys.setswitchinterval(0.0005)
if "serial" in variant:
    from profile_index import InlineExecutor
    scanner_mod.ThreadPoolExecutor = InlineExecutor
gc_time = [0.0, 0, None]
def _cb(phase, info):
    if phase == "start":
        gc_time[2] = time.perf_counter()
    elif gc_time[2] is not None:
        gc_time[0] += time.perf_counter() - gc_time[2]
        gc_time[1] += 1
gc.callbacks.append(_cb)
if "gc-off" in variant:
    gc.disable()
phases = {}
def wrap(owner, name):
    fn = getattr(owner, name)
    def w(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            phases[name] = phases.get(name, 0.0) + time.perf_counter() - t
    setattr(owner, name, w)
wrap(scanner_mod.Scanner, "scan")
wrap(index_mod, "build_frame")
t = time.perf_counter()
idx = index_mod.open_index(ROOT, rebuild=True)
total = time.perf_counter() - t
gc.enable()
import resource
print(json.dumps({"variant": VARIANT, "open_s": total, "models": len(idx), "gc_s": gc_time[0],
                  "gc_collections": gc_time[1], "phases": phases, "notes": notes,
                  "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "columns": idx.df.width}))
'''


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=20_000)
    ap.add_argument("--variants", default="shipped,gc-off,fix-setdefault,fix-setdefault+gc-off,"
                                          "fix-setdefault+gc-off+serial")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--tag", default="", help="suffix of the output file name")
    args = ap.parse_args()
    import datasets

    root = datasets.cascade_repo(args.models)[0]
    out = []
    for variant in args.variants.split(","):
        for _ in range(args.repeat):
            proc = subprocess.run([sys.executable, "-c", CHILD, HERE, variant, root], capture_output=True, text=True)
            if proc.returncode:
                print(f"{variant}: failed\n{proc.stderr[-2000:]}")
                continue
            data = json.loads(proc.stdout.strip().splitlines()[-1])
            out.append(data)
            ph = ", ".join(f"{k} {v:.2f} s" for k, v in data["phases"].items())
            print(f"{variant:<32} open_index {data['open_s']:7.2f} s  (gc {data['gc_s']:.2f} s in "
                  f"{data['gc_collections']} collections; {ph}; peak RSS {data['maxrss_mib']:.0f} MiB; "
                  f"{data['models']} models, {data['columns']} columns) {' '.join(data['notes'])}", flush=True)
    os.makedirs(RESULTS, exist_ok=True)
    from run import code_fingerprint

    name = f"experiments-{args.models}{'-' + args.tag if args.tag else ''}.json"
    with open(os.path.join(RESULTS, name), "w", encoding="utf-8") as fh:
        json.dump({"root": root, "code_sha1": code_fingerprint(), "runs": out}, fh, indent=2)


if __name__ == "__main__":
    main()
