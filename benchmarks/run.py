"""mlrepo performance harness: one command, every measurement next to its baseline.

    .venv/bin/python benchmarks/run.py [--sizes 1000,20000,100000] [--shapes cascade,mixed] [--repeat 5] [--quick]
                                       [--no-watch-rows]

See benchmarks/README.md for what is measured and how to read the results.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
sys.path.insert(0, HERE)

import datasets  # noqa: E402
from watch_daemon import running_watch  # noqa: E402

PY = sys.executable
BIN = os.path.dirname(PY)
MLREPO = os.path.join(BIN, "mlrepo")
MLREPO_CMD = [MLREPO] if os.path.exists(MLREPO) else [PY, "-m", "mlrepo"]
INPROC = os.path.join(HERE, "inproc.py")
#: Every timed process runs with MLREPO_WATCH=off (a stray `mlrepo watch` must not answer for it), except the rows
#: answered by the watch the harness starts, which require it (`ls` then exits 1 if the watch did not answer).
WATCH_OFF = {**os.environ, "MLREPO_WATCH": "off"}
WATCH_REQUIRE = {**os.environ, "MLREPO_WATCH": "require"}
WATCH_DAEMON_ENV = {k: v for k, v in os.environ.items() if k != "MLREPO_WATCH"}

#: The targets of the performance issue (#18): bar and goal.
COLD_MAX, COLD_GOAL = 1.0, 0.75  # cold index / (du + find|cat), at 20k and 100k
WARM_MAX, WARM_GOAL = 0.30, 0.10  # warm ls / (du + find|cat), at 20k and 100k
WARM_SMALL_MAX, WARM_SMALL_GOAL = 1.5, 1.0  # warm ls / baseline at 1k: the fixed start cost
MLFLOW_MIN, MLFLOW_GOAL = 10.0, 20.0  # mlflow.search_runs / mlrepo cold, i.e. mlrepo at least 10x faster
RSS_MAX = 600 * 2**20  # peak RSS of `mlrepo index --rebuild` at 100k, bytes
TARGET_SIZES = (20_000, 100_000)
SMALL_SIZE = 1_000


def log(msg: str = "") -> None:
    print(msg, flush=True)


# -- running and timing ----------------------------------------------------------------------------------------------
class Failed(RuntimeError):
    pass


def run_timed(cmd: list[str] | str, *, shell: bool = False, env: dict | None = None,
              capture: bool = True) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (bytes, from wait4's rusage) and stdout of one subprocess (env: WATCH_OFF unless
    given)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, shell=shell, env=WATCH_OFF if env is None else env,
                                stdout=out if capture else subprocess.DEVNULL, stderr=err, cwd=PROJECT)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        if proc.returncode != 0:
            shown = cmd if isinstance(cmd, str) else shlex.join(cmd)
            raise Failed(f"{shown} exited {proc.returncode}: {err.read().decode('utf-8', 'replace')[-2000:]}")
    return wall, usage.ru_maxrss * 1024, stdout


def stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values),
            "values": [round(v, 6) for v in values]}


def ratio(a: dict | None, b: dict | None) -> float | None:
    if not a or not b or not b["median"]:
        return None
    return a["median"] / b["median"]


def find_cat_cmd(root: str, shape: str = "cascade") -> str:
    """``find`` the shape's metadata files and ``cat`` them: reading what an index must read, at least."""
    names = " -o ".join(f"-name {shlex.quote(n)}" for n in datasets.META_NAMES[shape])
    return f"find {shlex.quote(root)} {names} | xargs cat > /dev/null"


def baseline_cmd(root: str, shape: str = "cascade") -> str:
    return f"du -s {shlex.quote(root)} > /dev/null; {find_cat_cmd(root, shape)}"


def loadavg() -> list[float]:
    try:
        with open("/proc/loadavg") as fh:
            return [float(x) for x in fh.read().split()[:3]]
    except OSError:
        return []


def code_fingerprint() -> str:
    """A hash of the package's sources (repo_index, commands), to tell whether the code changed during a run."""
    import hashlib

    h = hashlib.sha1()
    for sub in ("repo_index", "commands"):
        for dirpath, dirnames, files in sorted(os.walk(os.path.join(PROJECT, sub))):
            dirnames.sort()
            for name in sorted(files):
                if name.endswith(".py"):
                    h.update(os.path.relpath(os.path.join(dirpath, name), PROJECT).encode())
                    with open(os.path.join(dirpath, name), "rb") as fh:
                        h.update(fh.read())
    return h.hexdigest()[:12]


# -- machine --------------------------------------------------------------------------------------------------------
def _read_int(path: str) -> int | None:
    try:
        with open(path) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    ram = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    ram = int(line.split()[1]) * 1024
    except OSError:
        pass
    versions = json.loads(subprocess.run(
        [PY, "-c", "import json, sys, polars, orjson, yaml; from importlib.metadata import version; "
                   "print(json.dumps({'python': sys.version.split()[0], 'polars': polars.__version__, "
                   "'orjson': orjson.__version__, 'pyyaml': yaml.__version__, "
                   "'pyyaml_c_loader': hasattr(yaml, 'CSafeLoader'), 'mlrepo': version('mlrepo')}))"],
        capture_output=True, text=True, check=True).stdout)
    fstype = None
    try:
        fstype = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "-T", datasets.DATA if os.path.isdir(
            datasets.DATA) else HERE], capture_output=True, text=True).stdout.strip() or None
    except OSError:
        pass
    git = {}
    try:
        git["head"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT, capture_output=True,
                                     text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "repo_index", "commands"], cwd=PROJECT,
                               capture_output=True, text=True).stdout.splitlines()
        git["dirty"] = [line[3:] for line in dirty]
    except OSError:
        pass
    git["code_sha1"] = code_fingerprint()
    return {"host": socket.gethostname(), "cpu": cpu, "cores": os.cpu_count(),
            "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "ram_bytes": ram, "kernel": platform.release(), "os": platform.platform(), "fs": fstype,
            "max_user_watches": _read_int("/proc/sys/fs/inotify/max_user_watches"),
            **versions, "git": git}


# -- one Cascade repository ------------------------------------------------------------------------------------------
def model_dirs(root: str, count: int) -> list[str]:
    """``count`` model folders of the first line, for the "one model changed" measurement."""
    ws = os.path.join(root, "workspace")
    repo = sorted(d for d in os.listdir(ws) if os.path.isdir(os.path.join(ws, d)))[0]
    line = sorted(d for d in os.listdir(os.path.join(ws, repo)) if os.path.isdir(os.path.join(ws, repo, d)))[0]
    line_dir = os.path.join(ws, repo, line)
    models = sorted(d for d in os.listdir(line_dir) if d.isdigit())
    return [os.path.join(line_dir, m) for m in models[1:count + 1]]


def change_meta(model_dir: str, k: int) -> None:
    """Edit one model's meta.json in place, as a user or a re-save would (a description and a metric change)."""
    path = os.path.join(model_dir, "meta.json")
    with open(path, encoding="utf-8") as fh:
        blocks = json.load(fh)
    blocks[0]["description"] = f"benchmark edit {k}"
    blocks[0]["metrics"][0]["value"] = round(blocks[0]["metrics"][0]["value"] - 0.0001 * (k + 1), 6)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(blocks, fh, indent=4)


@contextlib.contextmanager
def edited_models(root: str, count: int, skip: int = 0):
    """``count`` model folders (after the first ``skip``) whose meta.json the block edits (``change_meta``); their
    bytes and times are put back when it ends. The caller re-reads them (an ``ls``) so that the cache matches."""
    targets = model_dirs(root, skip + count)[skip:]
    originals = {}
    for d in targets:
        p = os.path.join(d, "meta.json")
        st = os.stat(p)
        with open(p, "rb") as fh:
            originals[p] = (fh.read(), st.st_atime_ns, st.st_mtime_ns)
    try:
        yield targets
    finally:
        for p, (data, atime, mtime) in originals.items():
            with open(p, "wb") as fh:
                fh.write(data)
            os.utime(p, ns=(atime, mtime))


def ls_checked(ls_cmd: list[str], env: dict | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS of one ``ls --limit 1 --format csv``, which must print its header and one row."""
    wall, rss, out = run_timed(ls_cmd, env=env)
    if len(out.strip().splitlines()) != 2:
        raise Failed(f"ls printed {out!r}")
    return wall, rss


def watch_rows(root: str, repeat: int, ls_cmd: list[str], base: str, base_t: list[float]) -> dict:
    """Warm ``ls`` answered by a running ``mlrepo watch ROOT`` (MLREPO_WATCH=require): ``repeat`` x unchanged,
    interleaved with the baseline (pooled into ``base_t``), and ``repeat`` x right after one meta.json changed."""
    watch_t, changed_t = [], []
    with running_watch([*MLREPO_CMD, "watch", root], env=WATCH_DAEMON_ENV, cwd=PROJECT) as watch:
        log(f"  watch ready in {fmt_s(watch.ready_s)}: {watch.line}")
        if "; answering ls and best" not in watch.line:  # it says why not (polling past the watch limit...)
            why = watch.line.partition("not answering other commands: ")[2].partition("; Ctrl-C")[0]
            return {"watch_ls": None, "watch_ls_changed": None, "watch_ready": stats([watch.ready_s]),
                    "watch_line": watch.line, "watch_skipped": f"the watch did not answer: {why or watch.line}"}
        log(f"  warm, answered by mlrepo watch: {repeat} x (baseline, MLREPO_WATCH=require mlrepo ls ...)")
        for _ in range(repeat):
            base_t.append(run_timed(base, shell=True, capture=False)[0])
            watch_t.append(ls_checked(ls_cmd, WATCH_REQUIRE)[0])
        log(f"  answered by mlrepo watch, right after one model's meta.json changed: {repeat} x")
        with edited_models(root, repeat, skip=repeat) as targets:  # not the models the disk rows edited
            for k, d in enumerate(targets):
                change_meta(d, k)
                changed_t.append(run_timed(ls_cmd, env=WATCH_REQUIRE)[0])
    if watch.exit_code != 0:
        log(f"  WARNING: mlrepo watch exited {watch.exit_code} on SIGINT: {' | '.join(watch.stderr_tail[-3:])}")
    run_timed(ls_cmd)  # re-read the restored models, so the cache matches the dataset again
    return {"watch_ls": stats(watch_t), "watch_ls_changed": stats(changed_t), "watch_ready": stats([watch.ready_s]),
            "watch_line": watch.line, "watch_exit": watch.exit_code}


def parse_index_count(stdout: str) -> int | None:
    m = re.match(r"(\d+) models", stdout.strip())
    return int(m.group(1)) if m else None


def inproc(args: list[str]) -> tuple[float, dict]:
    wall, _rss, out = run_timed([PY, INPROC, *args])
    return wall, json.loads(out.strip().splitlines()[-1])


def bench_cascade(n: int, repeat: int, rss_check: bool, shape: str = "cascade", lean: bool = False,
                  watch: bool = True) -> dict:
    root, stamp = datasets.dataset(shape, n, log=log)
    res: dict = {"shape": shape, "models": n, "root": root, "dataset": stamp, "load_before": loadavg()}
    index_cmd = [*MLREPO_CMD, "index", root, "--rebuild"]
    ls_cmd = [*MLREPO_CMD, "ls", root, "--limit", "1", "--format", "csv"]
    base = baseline_cmd(root, shape)

    # warm-up (not measured): pulls the tree into the page cache for both sides and leaves a settled cache
    log("  warm-up: baseline, index --rebuild, ls")
    run_timed(base, shell=True, capture=False)
    _w, _r, out = run_timed(index_cmd)
    res["indexed_models"] = parse_index_count(out)
    res["index_output"] = out.strip().splitlines()
    if res["indexed_models"] != n:
        log(f"  WARNING: mlrepo index reported {res['indexed_models']} models, expected {n}")
    run_timed(ls_cmd)

    base_t, cold_t, cold_rss, warm_t = [], [], [], []
    rss_time_v = None
    time_v = rss_check and os.path.exists("/usr/bin/time")
    log(f"  cold: {repeat} x (baseline, mlrepo index --rebuild)"
        + (" (the first under /usr/bin/time -v, to cross-check peak RSS)" if time_v else ""))
    for k in range(repeat):
        base_t.append(run_timed(base, shell=True, capture=False)[0])
        if k == 0 and time_v:  # GNU time only forks and waits: its overhead is well under a millisecond
            with tempfile.NamedTemporaryFile("r", suffix=".txt") as tv:
                wall, rss, _out = run_timed(["/usr/bin/time", "-v", "-o", tv.name, *index_cmd])
                m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", tv.read())
                rss_time_v = int(m.group(1)) * 1024 if m else None
        else:
            wall, rss, _out = run_timed(index_cmd)
        cold_t.append(wall)
        cold_rss.append(rss)
    run_timed(ls_cmd)  # settle: the cache is current and the next ls is a pure revalidation
    log(f"  warm: {repeat} x (baseline, mlrepo ls --limit 1 --format csv), nothing changed")
    warm_rss = []
    for _ in range(repeat):
        base_t.append(run_timed(base, shell=True, capture=False)[0])
        wall, rss = ls_checked(ls_cmd)
        warm_t.append(wall)
        warm_rss.append(rss)

    log(f"  warm after one model's meta.json changed: {repeat} x")
    changed_t = []
    try:
        with edited_models(root, repeat) as targets:
            for k, d in enumerate(targets):
                change_meta(d, k)
                changed_t.append(run_timed(ls_cmd)[0])
    finally:
        run_timed(ls_cmd)  # re-read the restored models, so the cache matches the dataset again
    res.update(watch_rows(root, repeat, ls_cmd, base, base_t) if watch else
               {"watch_ls": None, "watch_ls_changed": None, "watch_skipped": "--no-watch-rows"})

    du_t: list[float] = []
    cat_t: list[float] = []
    ip_cold: list[dict] = []
    ip_warm: list[dict] = []
    if not lean:
        log(f"  baseline parts: {repeat} x du -s, {repeat} x find|xargs cat")
        q = shlex.quote(root)
        for _ in range(repeat):
            du_t.append(run_timed(f"du -s {q} > /dev/null", shell=True, capture=False)[0])
            cat_t.append(run_timed(find_cat_cmd(root, shape), shell=True, capture=False)[0])
        log(f"  in-process: {repeat} x open_index cold, {repeat} x warm")
        for mode, bucket in (("cold", ip_cold), ("warm", ip_warm)):
            for _ in range(repeat):
                wall, data = inproc(["open", root, mode])
                data["wall_s"] = wall
                bucket.append(data)

    def st(values: list[float]) -> dict | None:
        return stats(values) if values else None

    res.update({
        "baseline": stats(base_t), "baseline_du": st(du_t), "baseline_find_cat": st(cat_t),
        "cold_index": stats(cold_t), "cold_index_rss": stats(cold_rss), "peak_rss_time_v": rss_time_v,
        "warm_ls": stats(warm_t), "warm_ls_rss": stats(warm_rss), "warm_ls_changed": stats(changed_t),
        "inproc_cold_open": st([d["open_s"] for d in ip_cold]),
        "inproc_cold_import": st([d["import_s"] for d in ip_cold]),
        "inproc_cold_wall": st([d["wall_s"] for d in ip_cold]),
        "inproc_warm_open": st([d["open_s"] for d in ip_warm]),
        "inproc_warm_import": st([d["import_s"] for d in ip_warm]),
        "inproc_warm_wall": st([d["wall_s"] for d in ip_warm]),
        "inproc_samples": {"cold": ip_cold, "warm": ip_warm},
        "load_after": loadavg(),
    })
    res["ratios"] = {
        "cold_index/baseline": ratio(res["cold_index"], res["baseline"]),
        "warm_ls/baseline": ratio(res["warm_ls"], res["baseline"]),
        "warm_ls_changed/baseline": ratio(res["warm_ls_changed"], res["baseline"]),
        "watch_ls/baseline": ratio(res["watch_ls"], res["baseline"]),
        "watch_ls_changed/baseline": ratio(res["watch_ls_changed"], res["baseline"]),
        "inproc_cold_open/baseline": ratio(res["inproc_cold_open"], res["baseline"]),
        "inproc_warm_open/baseline": ratio(res["inproc_warm_open"], res["baseline"]),
    }
    return res


# -- startup --------------------------------------------------------------------------------------------------------
def bench_startup(repeat: int) -> dict:
    log("startup: python -c pass, import mlrepo.commands.cli, mlrepo --help")
    bare = [run_timed([PY, "-c", "pass"])[0] for _ in range(repeat)]
    cli_wall = [run_timed([PY, "-c", "import mlrepo.commands.cli"])[0] for _ in range(repeat)]
    cli_in = [inproc(["import-cli"])[1]["import_s"] for _ in range(repeat)]
    helps = [run_timed([*MLREPO_CMD, "--help"])[0] for _ in range(repeat)]
    return {"python_bare": stats(bare), "import_cli_wall": stats(cli_wall), "import_cli_inproc": stats(cli_in),
            "mlrepo_help": stats(helps)}


# -- MLflow ---------------------------------------------------------------------------------------------------------
def bench_mlflow(n_runs: int, repeat: int) -> dict:
    py = datasets.mlflow_python()
    if py is None:
        log("  no interpreter with mlflow (set MLFLOW_BENCH_PYTHON or create /tmp/fixenv): skipped")
        return {"skipped": "no interpreter with mlflow"}
    root, stamp = datasets.mlflow_store(n_runs, py, log=log)
    res: dict = {"runs": n_runs, "root": root, "dataset": stamp, "mlflow_python": py, "load_before": loadavg()}
    env = datasets.mlflow_env()
    search_cmd = [py, os.path.join(HERE, "mlflow_search.py"), root]
    index_cmd = [*MLREPO_CMD, "index", root, "--rebuild"]
    ls_cmd = [*MLREPO_CMD, "ls", root, "--limit", "1", "--format", "csv"]
    log("  warm-up: search_runs, index --rebuild")
    _w, _r, out = run_timed(search_cmd, env=env)
    res["search_runs_returned"] = json.loads(out.strip().splitlines()[-1])["runs"]
    _w, _r, out = run_timed(index_cmd)
    res["index_output"] = out.strip().splitlines()
    ml_wall, ml_in, ml_imp, cold, warm = [], [], [], [], []
    log(f"  {repeat} x (mlflow.search_runs, mlrepo index --rebuild, mlrepo ls)")
    for _ in range(repeat):
        wall, _rss, out = run_timed(search_cmd, env=env)
        data = json.loads(out.strip().splitlines()[-1])
        ml_wall.append(wall)
        ml_in.append(data["search_s"])
        ml_imp.append(data["import_s"])
        cold.append(run_timed(index_cmd)[0])
        warm.append(run_timed(ls_cmd)[0])
    ip, ip_warm = [], []
    for _ in range(repeat):
        _wall, data = inproc(["open", root, "cold"])
        ip.append(data)
    for _ in range(repeat):
        ip_warm.append(inproc(["open", root, "warm"])[1])
    res["mlrepo_models"] = ip[-1]["by_format"]
    n_mlflow = ip[-1]["by_format"].get("mlflow", 0)
    if n_mlflow == 0:
        res["note"] = "mlrepo indexed 0 mlflow models from the store (reader not ready?)"
        log("  NOTE: " + res["note"])
    elif n_mlflow != res["search_runs_returned"]:
        res["note"] = f"mlrepo indexed {n_mlflow} mlflow runs, search_runs returned {res['search_runs_returned']}"
        log("  NOTE: " + res["note"])
    res.update({
        "mlflow_search_wall": stats(ml_wall), "mlflow_search_call": stats(ml_in), "mlflow_import": stats(ml_imp),
        "mlrepo_index_cold": stats(cold), "mlrepo_ls_warm": stats(warm),
        "mlrepo_inproc_cold_open": stats([d["open_s"] for d in ip]),
        "mlrepo_inproc_warm_open": stats([d["open_s"] for d in ip_warm]),
        "load_after": loadavg(),
    })
    res["speedups"] = {  # how many times faster mlrepo is
        "wall: search_runs incl. import / mlrepo index --rebuild": ratio(res["mlflow_search_wall"],
                                                                         res["mlrepo_index_cold"]),
        "in-process: search_runs call / open_index cold": ratio(res["mlflow_search_call"],
                                                                res["mlrepo_inproc_cold_open"]),
        "wall: search_runs incl. import / mlrepo ls (warm)": ratio(res["mlflow_search_wall"], res["mlrepo_ls_warm"]),
        "in-process: search_runs call / open_index warm": ratio(res["mlflow_search_call"],
                                                                res["mlrepo_inproc_warm_open"]),
    }
    return res


# -- verdicts -------------------------------------------------------------------------------------------------------
def verdicts(results: dict) -> list[dict]:
    rows = []

    def add(target: str, measured: float | None, ok: bool | None, goal: bool | None = None, note: str = "") -> None:
        status = "not measured" if ok is None else ("PASS" if ok else "FAIL")
        if ok and goal is not None:
            status += " (goal met)" if goal else " (goal not met)"
        rows.append({"target": target, "measured": measured, "status": status, "note": note})

    def check(target: str, value: float | None, bar: float, goal: float, note: str) -> None:
        add(target, value, None if value is None else value <= bar, None if value is None else value <= goal, note)

    shapes = list(dict.fromkeys(r.get("shape", "cascade") for r in results["cascade"])) or ["cascade"]
    for shape in shapes:
        by_size = {r["models"]: r for r in results["cascade"] if r.get("shape", "cascade") == shape}
        tag = "" if shape == "cascade" else f"[{shape}] "  # the cascade shape keeps the names earlier runs used
        sizes = sorted(set(TARGET_SIZES) | set(by_size))
        for n in sizes:
            r = by_size.get(n)
            extra = "" if n in TARGET_SIZES else "informational (not a target size)"
            check(f"{tag}cold index {n:,} <= {COLD_MAX}x baseline (goal {COLD_GOAL}x)",
                  r["ratios"]["cold_index/baseline"] if r else None, COLD_MAX, COLD_GOAL, extra)
        for n in sizes:
            r = by_size.get(n)
            bar, goal = (WARM_SMALL_MAX, WARM_SMALL_GOAL) if n == SMALL_SIZE else (WARM_MAX, WARM_GOAL)
            extra = "" if n in TARGET_SIZES or n == SMALL_SIZE else "informational (not a target size)"
            check(f"{tag}warm ls {n:,} (unchanged) <= {bar}x baseline (goal {goal}x)",
                  r["ratios"]["warm_ls/baseline"] if r else None, bar, goal, extra)
            check(f"{tag}warm ls {n:,} (one meta.json changed) <= {bar}x baseline (goal {goal}x)",
                  r["ratios"]["warm_ls_changed/baseline"] if r else None, bar, goal,
                  "same threshold applied to the changed case" + (f"; {extra}" if extra else ""))
        for n in sizes:
            r = by_size.get(n)
            bar, goal = (WARM_SMALL_MAX, WARM_SMALL_GOAL) if n == SMALL_SIZE else (WARM_MAX, WARM_GOAL)
            extra = "" if n in TARGET_SIZES or n == SMALL_SIZE else "informational (not a target size)"
            skipped = (r or {}).get("watch_skipped", "")
            for case, key in (("unchanged", "watch_ls/baseline"),
                              ("one meta.json changed", "watch_ls_changed/baseline")):
                check(f"{tag}warm ls {n:,} answered by `mlrepo watch` ({case}) <= {bar}x baseline (goal {goal}x)",
                      r["ratios"][key] if r else None, bar, goal,
                      "; ".join(filter(None, [f"skipped ({skipped})" if skipped else "", extra])))
        big = by_size.get(100_000)
        rss = max(filter(None, [big["cold_index_rss"]["max"], big.get("peak_rss_time_v")])) if big else None
        add(f"{tag}peak RSS of mlrepo index --rebuild at 100,000 < {RSS_MAX // 2**20} MiB", rss,
            None if rss is None else rss < RSS_MAX)
    ml = results.get("mlflow") or {}
    for key, val in (ml.get("speedups") or {}).items():
        warm = "warm" in key
        add(f"MLflow >= {MLFLOW_MIN:.0f}x faster, goal {MLFLOW_GOAL:.0f}x ({key})", val,
            None if val is None else val >= MLFLOW_MIN, None if val is None else val >= MLFLOW_GOAL,
            note="; ".join(filter(None, [ml.get("note", ""), "informational: with mlrepo's cache" if warm else ""])))
    if not ml.get("speedups"):
        add(f"MLflow >= {MLFLOW_MIN:.0f}x faster", None, None, note=ml.get("skipped", ""))
    return rows


# -- report ---------------------------------------------------------------------------------------------------------
def fmt_s(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.2f} s"


def fmt_b(v: float | None) -> str:
    return "—" if v is None else f"{v / 2**20:.0f} MiB"


def fmt_x(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}x"


def srow(label: str, s: dict | None, base: dict | None = None, fmt=fmt_s) -> str:
    label = label.replace("|", "\\|")
    if not s:
        return f"| {label} | — | — | — | — | — | — |"
    r = ratio(s, base) if base else None
    return (f"| {label} | {fmt(s['median'])} | {fmt(s['min'])} | {fmt(s['max'])} | {s['n']} | "
            f"{fmt_s(base['median']) if base else ''} | {fmt_x(r) if base else ''} |")


HEAD = "| measurement | median | min | max | n | baseline median | ratio (mlrepo / baseline) |\n|---|---|---|---|---|---|---|"


def markdown(results: dict) -> str:
    m = results["machine"]
    out = [f"# mlrepo benchmarks — {results['date']} on {m['host']}", ""]
    if results["quick"]:
        out += ["**Quick run** (`--quick`: 1k models, 2 repeats) — a smoke test, not a measurement.", ""]
    out += [
        "Produced by `.venv/bin/python benchmarks/run.py " + " ".join(results["argv"]) + "` "
        f"in {results['total_seconds']:.0f} s. Raw data: `{os.path.basename(results['json_path'])}`.", "",
        "## Machine", "",
        "| | |", "|---|---|",
        f"| CPU | {m['cpu']} |", f"| cores | {m['cores']} (usable: {m['cores_usable']}) |",
        f"| RAM | {m['ram_bytes'] / 2**30:.1f} GiB |" if m.get("ram_bytes") else "| RAM | ? |",
        f"| OS / kernel | {m['os']} |", f"| filesystem of benchmarks/data | {m['fs']} |",
        f"| fs.inotify.max_user_watches (the watch polls, and does not answer, past 90% of it) | "
        f"{m.get('max_user_watches')} |",
        f"| Python | {m['python']} |", f"| polars | {m['polars']} |",
        f"| orjson / PyYAML (C loader) | {m['orjson']} / {m['pyyaml']} ({m['pyyaml_c_loader']}) |",
        f"| mlrepo | {m['mlrepo']} at git {m['git'].get('head')}"
        + (f", uncommitted changes in: {', '.join(m['git']['dirty'])}" if m["git"].get("dirty") else "") + " |",
        f"| sources (sha1 of repo_index/ + commands/ *.py) | {m['git'].get('code_sha1')} at start, "
        f"{results.get('code_sha1_end')} at end"
        + (" — **changed during the run**" if results.get("code_sha1_end") != m["git"].get("code_sha1") else "")
        + " |",
        f"| load average at start / end | {results['load_start']} / {results['load_end']} |",
        "",
        "## Method", "",
        "- Every number is the wall time of a fresh subprocess (`time.perf_counter` around `Popen` + `wait4`), "
        "unless marked in-process. Each is the **median of n runs**; min and max are shown.",
        "- **Page cache: warm for both sides.** Caches are not dropped (that needs root and would measure the "
        "disk rather than the code); instead each tree is walked once by the baseline and once by "
        "`mlrepo index --rebuild` before anything is timed, so every timed run, mlrepo and baseline alike, reads "
        "from a warm page cache. Cold means *no mlrepo cache* (`--rebuild`), not a cold disk.",
        "- Baseline = `du -s ROOT > /dev/null; find ROOT -name meta.json | xargs cat > /dev/null` in one "
        "`sh -c` (the sum of both: sizing every file and reading every metadata file, which is what an index must "
        "do at least). Baseline runs are interleaved with the mlrepo runs (one each, alternately) and pooled.",
        "- Warm = `mlrepo ls ROOT --limit 1 --format csv` with `<root>/.mlrepo/` current. *Changed*: before each "
        "run, one (different) model's meta.json is edited in place; the edits are reverted afterwards.",
        "- Answered by `mlrepo watch` = after the warm rows, `mlrepo watch ROOT` is started in the background "
        "(stdout discarded) and nothing is timed until its stderr says `watching ...` (it is ready to answer). Then "
        "`MLREPO_WATCH=require mlrepo ls ROOT --limit 1 --format csv`, interleaved with the baseline as above; with "
        "`require` the command exits 1 unless the watch answered, and any non-zero exit stops the benchmark, so "
        "these rows are the watch's answers. *Changed*: one other model's meta.json is edited right before each "
        "run, with no wait (the watch syncs before it answers). The watch is then stopped with SIGINT. Every other "
        "mlrepo run has `MLREPO_WATCH=off`, so no watch answers for it."
        + ("" if results.get("watch_rows", True) else " **Skipped in this run** (`--no-watch-rows`)."),
        "- In-process = `benchmarks/inproc.py` in a fresh interpreter timing `from mlrepo.repo_index import "
        "open_index` and `open_index(ROOT, rebuild=...)` with its own `perf_counter`.",
        "- Peak RSS from `wait4`'s `ru_maxrss` of each `mlrepo index --rebuild`, cross-checked with "
        "`/usr/bin/time -v` (wrapping the first timed cold run at the largest size).",
        "- The machine is shared (other work may run at the same time); see the load averages.",
        "",
        "## Targets", "",
        "| target | measured | result | note |", "|---|---|---|---|",
    ]
    for v in results["verdicts"]:
        meas = v["measured"]
        shown = (fmt_b(meas) if "RSS" in v["target"] else fmt_x(meas)) if meas is not None else "—"
        out.append(f"| {v['target']} | {shown} | **{v['status']}** | {v['note']} |")
    st = results.get("startup")
    if st:
        out += ["", "## Startup", "", HEAD,
                srow("`python -c pass`", st["python_bare"]),
                srow("`python -c 'import mlrepo.commands.cli'` (wall)", st["import_cli_wall"]),
                srow("import of `mlrepo.commands.cli` alone (in-process)", st["import_cli_inproc"]),
                srow("`mlrepo --help`", st["mlrepo_help"])]
    for r in results["cascade"]:
        b = r["baseline"]
        shape = r.get("shape", "cascade")
        d = r["dataset"]
        what = (f"{d.get('lines')} lines x {d.get('models_per_line')} models" if shape == "cascade" else
                f"Cascade {d.get('cascade')} (weights beside meta.json), Lightning {d.get('lightning')}, "
                f"HF Trainer checkpoints {d.get('hf-trainer')}")
        metas = " -o ".join(datasets.META_NAMES[shape])
        out += ["", f"## {'Cascade workspace' if shape == 'cascade' else 'Mixed tree'}, {r['models']:,} models", "",
                f"`{r['root']}` — {what}, artifacts {d.get('artifact_bytes')} bytes. `mlrepo index` said: "
                f"`{' / '.join(r['index_output'])}`.", "", HEAD,
                srow(f"baseline: du -s + find {metas} | xargs cat", b),
                srow("  part: du -s", r["baseline_du"]),
                srow(f"  part: find {metas} | xargs cat", r["baseline_find_cat"]),
                srow("**cold**: `mlrepo index --rebuild`", r["cold_index"], b),
                srow("**warm**: `mlrepo ls --limit 1 --format csv`, nothing changed", r["warm_ls"], b),
                srow("**warm, one meta.json changed**: `mlrepo ls ...`", r["warm_ls_changed"], b),
                srow("**answered by `mlrepo watch`**: `MLREPO_WATCH=require mlrepo ls ...`, nothing changed",
                     r.get("watch_ls"), b),
                srow("**answered by `mlrepo watch`, one meta.json changed**", r.get("watch_ls_changed"), b),
                srow("`mlrepo watch ROOT` from its start until ready (its `watching ` line)", r.get("watch_ready")),
                srow("in-process `open_index(rebuild=True)` (work only)", r["inproc_cold_open"], b),
                srow("in-process `open_index()` warm (work only)", r["inproc_warm_open"], b),
                srow("in-process `import mlrepo.repo_index`", r["inproc_warm_import"]),
                srow("in-process subprocess wall, cold (startup + import + work)", r["inproc_cold_wall"]),
                srow("in-process subprocess wall, warm (startup + import + work)", r["inproc_warm_wall"]),
                srow("peak RSS, `mlrepo index --rebuild`", r["cold_index_rss"], fmt=fmt_b),
                srow("peak RSS, `mlrepo ls` warm", r["warm_ls_rss"], fmt=fmt_b)]
        if r.get("peak_rss_time_v"):
            out.append(f"\n`/usr/bin/time -v` cross-check: maximum resident set size {fmt_b(r['peak_rss_time_v'])}.")
    ml = results.get("mlflow")
    if ml and not ml.get("skipped"):
        out += ["", f"## MLflow file store, {ml['runs']:,} runs (written by mlflow {ml['dataset'].get('mlflow')})", "",
                f"`search_runs` returned {ml['search_runs_returned']} runs; mlrepo indexed {ml['mlrepo_models']}."
                + (f" **{ml['note']}**" if ml.get("note") else ""), "",
                "| measurement | median | min | max | n |", "|---|---|---|---|---|"]
        for label, key in (("`mlflow.search_runs(search_all_experiments=True)`, wall incl. interpreter + import",
                            "mlflow_search_wall"),
                           ("  the `search_runs` call alone (in-process)", "mlflow_search_call"),
                           ("  `import mlflow` alone (in-process)", "mlflow_import"),
                           ("`mlrepo index --rebuild` (wall)", "mlrepo_index_cold"),
                           ("in-process `open_index(rebuild=True)`", "mlrepo_inproc_cold_open"),
                           ("in-process `open_index()`, warm", "mlrepo_inproc_warm_open"),
                           ("`mlrepo ls --limit 1 --format csv`, warm (wall)", "mlrepo_ls_warm")):
            s = ml[key]
            out.append(f"| {label} | {fmt_s(s['median'])} | {fmt_s(s['min'])} | {fmt_s(s['max'])} | {s['n']} |")
        out += ["", "| speed-up (MLflow time / mlrepo time) | |", "|---|---|"]
        out += [f"| {k} | {fmt_x(v)} |" for k, v in ml["speedups"].items()]
    elif ml:
        out += ["", "## MLflow", "", f"Skipped: {ml['skipped']}"]
    return "\n".join(out) + "\n"


# -- main -----------------------------------------------------------------------------------------------------------
def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,20000,100000", help="Cascade repository sizes (models), comma-separated")
    ap.add_argument("--shapes", default=",".join(datasets.SHAPES),
                    help="tree shapes: cascade (the demo's), mixed (weights beside meta.json, Lightning, HF)")
    ap.add_argument("--repeat", type=int, default=5, help="runs per measurement (median reported)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 1k models, 2 repeats, a 100-run MLflow store")
    ap.add_argument("--mlflow-runs", type=int, default=2000, help="runs in the MLflow file store (0: skip)")
    ap.add_argument("--no-startup", action="store_true", help="skip the interpreter/import startup measurements")
    ap.add_argument("--lean", action="store_true",
                    help="only the issue's table: skip the baseline's parts and the in-process timings of the trees")
    ap.add_argument("--no-watch-rows", action="store_true",
                    help="skip the rows answered by a running `mlrepo watch` (MLREPO_WATCH=require)")
    args = ap.parse_args(argv)
    sizes = [int(s.replace("_", "").replace("k", "000")) for s in args.sizes.split(",") if s.strip()]
    repeat = args.repeat
    mlflow_runs = args.mlflow_runs
    if args.quick:
        sizes, repeat, mlflow_runs = [1000], 2, min(mlflow_runs, 100) if mlflow_runs else 0
    if repeat < 1:
        ap.error("--repeat must be at least 1")
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    if any(s not in datasets.SHAPES for s in shapes):
        ap.error(f"--shapes: choose from {', '.join(datasets.SHAPES)}")

    started = time.perf_counter()
    now = dt.datetime.now().astimezone()
    results: dict = {"date": now.strftime("%Y-%m-%d %H:%M %Z"), "argv": argv, "quick": args.quick,
                     "sizes": sizes, "shapes": shapes, "repeat": repeat, "watch_rows": not args.no_watch_rows,
                     "load_start": loadavg()}
    log(f"mlrepo benchmarks: sizes {sizes}, {repeat} repeats, MLflow runs {mlflow_runs or 'skipped'}")
    results["machine"] = machine()
    log(f"machine: {results['machine']['cpu']}, {results['machine']['cores']} cores, python "
        f"{results['machine']['python']}, polars {results['machine']['polars']}")
    log(f"disk: {subprocess.run(['df', '-h', HERE], capture_output=True, text=True).stdout.splitlines()[-1]}")

    # as `pip install` leaves a package: bytecode compiled (an editable checkout under PYTHONDONTWRITEBYTECODE
    # would otherwise compile every changed module in every timed process)
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([PY, "-m", "compileall", "-q", *(os.path.join(package, p) for p in (
        "__init__.py", "__main__.py", "repo_index", "commands", "tui"))], check=True, stdout=subprocess.DEVNULL)
    results["startup"] = None if args.no_startup else bench_startup(repeat)
    results["cascade"] = []
    for shape in shapes:
        for n in sizes:
            log(f"{shape} {n:,} models")
            results["cascade"].append(bench_cascade(n, repeat, rss_check=(n == max(sizes)), shape=shape,
                                                      lean=args.lean, watch=not args.no_watch_rows))
            r = results["cascade"][-1]
            log(f"  baseline {fmt_s(r['baseline']['median'])}, cold {fmt_s(r['cold_index']['median'])} "
                f"({fmt_x(r['ratios']['cold_index/baseline'])}), warm ls {fmt_s(r['warm_ls']['median'])} "
                f"({fmt_x(r['ratios']['warm_ls/baseline'])}), changed {fmt_s(r['warm_ls_changed']['median'])}, "
                f"peak RSS {fmt_b(r['cold_index_rss']['max'])}")
            if r["watch_ls"]:
                log(f"  answered by mlrepo watch: ls {fmt_s(r['watch_ls']['median'])} "
                    f"({fmt_x(r['ratios']['watch_ls/baseline'])}), changed {fmt_s(r['watch_ls_changed']['median'])} "
                    f"({fmt_x(r['ratios']['watch_ls_changed/baseline'])})")
    if mlflow_runs:
        log(f"mlflow {mlflow_runs:,} runs")
        results["mlflow"] = bench_mlflow(mlflow_runs, repeat)
        sp = results["mlflow"].get("speedups") or {}
        for k, v in sp.items():
            log(f"  {k}: {fmt_x(v)}")
    results["load_end"] = loadavg()
    results["code_sha1_end"] = code_fingerprint()
    if results["code_sha1_end"] != results["machine"]["git"]["code_sha1"]:
        log("WARNING: repo_index/commands sources changed while the benchmark ran; the numbers mix two versions")
    results["verdicts"] = verdicts(results)
    results["total_seconds"] = time.perf_counter() - started

    os.makedirs(RESULTS, exist_ok=True)
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", results["machine"]["host"])
    suffix = "-quick" if args.quick else ""
    json_path = os.path.join(RESULTS, f"{now.strftime('%Y-%m-%d')}-{host}{suffix}.json")
    md_path = os.path.join(RESULTS, f"latest{suffix}.md")
    results["json_path"] = json_path
    with open(json_path, "w", encoding="utf-8") as fh:
        json.dump(results, fh, indent=2, default=str)
    with open(md_path, "w", encoding="utf-8") as fh:
        fh.write(markdown(results))
    log("")
    for v in results["verdicts"]:
        log(f"  {v['status']:<24} {v['target']}")
    log(f"\nwrote {os.path.relpath(json_path, PROJECT)} and {os.path.relpath(md_path, PROJECT)} "
        f"({results['total_seconds']:.0f} s)")
    if args.quick:
        return 0
    import regression  # benchmarks/ is on sys.path: this script's folder

    return regression.main([json_path])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
