"""Ray Tune trials: ``<experiment>/<trainable>_<trial id>_<n>_<params>_<date>/`` with ``params.json``,
``result.json`` (one JSON object a line, one line per ``tune.report``), ``progress.csv`` and ``checkpoint_NNNNNN/``.

Params are ``params.json`` flattened. Metrics are the numeric user keys of the last result, with their history
over ``training_iteration``; the keys Ray adds to every result (``time_*``, ``timestamp``, ``pid``, ``hostname``,
``config``…) are bookkeeping and not indexed. The checkpoints are the trial's own files: part of its row, never
rows of their own. Ray also writes a tensorboardX events file into the trial: the TensorBoard companion reads it
into the same row (its ``ray/tune/*`` copies of the results are left out there).

Status: a trial with ``error.txt`` is ``failed``. Otherwise the experiment's newest ``experiment_state-*.json``
says (TERMINATED, ERROR, RUNNING, PENDING, PAUSED). Ray writes ``done: true`` into the last result only when a stop
rule or scheduler ends the trial, not when the function returns (ray 2.60), so without the experiment state a
trial is finished only with ``done: true``. A trial that is not finished is ``running`` while its results (or,
for a trial Ray's state calls RUNNING, that state, which the driver rewrites while it lives) were written in the
last ``RUNNING_WINDOW_S``, else ``crashed`` (a driver killed or a node lost).
The experiment state is plain JSON; its pickled parts (hex strings) are never decoded.
"""

from __future__ import annotations

import os
import threading
import time

import orjson
from mlrepo.repo_index.readers import Place
from mlrepo.repo_index.readers.binfile import read_log
from mlrepo.repo_index.readers.history import thin
from mlrepo.repo_index.readers.parsing import MetaError, flatten, load_file, take_params
from mlrepo.repo_index.records import Metric, ModelRecord

PARAMS, RESULT, ERROR = "params.json", "result.json", "error.txt"
MARKERS = (PARAMS, RESULT)
STATE_PREFIX = "experiment_state-"
RAY_TAGS = "ray/tune/"  # the prefix of Ray's tensorboardX copies of each result
#: keys Ray adds to every result (ray.tune.result's AUTO_RESULT_KEYS and DEBUG_METRICS, and its flags)
BOOKKEEPING = frozenset({
    "done", "training_iteration", "time_this_iter_s", "time_total_s", "time_since_restore", "timestamp",
    "timesteps_total", "timesteps_this_iter", "timesteps_since_restore", "episodes_total", "episodes_this_iter",
    "iterations_since_restore", "trial_id", "experiment_id", "experiment_tag", "date", "pid", "hostname",
    "node_ip", "config", "should_checkpoint", "checkpoint_dir_name", "warmup_time", "__duplicate__",
})
#: a trial that is not finished is taken as running while its results changed this recently (seconds)
RUNNING_WINDOW_S = 15 * 60
#: Ray's trial status -> the index's status (None: decided by how recently the trial wrote)
STATUS = {"TERMINATED": "active", "ERROR": "failed", "PENDING": "scheduled", "PAUSED": "scheduled",
          "RUNNING": None}


def is_trial(names: frozenset[str]) -> bool:
    return all(m in names for m in MARKERS)


class RayTuneReader:
    format = "ray-tune"

    def __init__(self) -> None:
        # experiment folder -> (state file and its stamp, {trial folder name: Ray's status})
        self._states: dict[str, tuple[tuple, dict[str, str]]] = {}
        self._lock = threading.Lock()

    def claim(self, place: Place) -> bool:
        return is_trial(place.names)

    def read(self, place: Place) -> ModelRecord:
        path = place.path
        rec = ModelRecord.in_folder(path, self.format)
        state_name = newest_state(place.parent_names)
        rec.meta_files = [*MARKERS, *([ERROR] if ERROR in place.names else []),
                          *([f"../{state_name}"] if state_name else []), ".."]
        try:
            take_params(rec, load_file(os.path.join(path, PARAMS)), PARAMS)
        except MetaError as exc:
            rec.add_error(str(exc))
        results: list[dict] = []
        try:
            data, cut = read_log(os.path.join(path, RESULT))
        except MetaError as exc:
            rec.add_error(str(exc))
        else:
            results, bad = parse_results(data)
            if cut:
                rec.add_error(f"{RESULT}: larger than can be read, only its start was read")
            if bad:
                rec.add_error(f"{RESULT}: {bad} line(s) are not JSON objects, skipped")
        if results:
            add_metrics(rec, results)
        ray_status = self._trial_status(os.path.dirname(path), state_name, os.path.basename(path))
        # the driver rewrites its state while it runs: a trial between two slow results is still running
        written = [os.path.join(path, RESULT)]
        if ray_status and state_name:
            written.append(os.path.join(path, "..", state_name))
        rec.status = self._status(place, results, ray_status, written)
        return rec

    @staticmethod
    def _status(place: Place, results: list[dict], ray_status: str | None, written: list[str]) -> str:
        if ERROR in place.names:
            return "failed"
        mapped = STATUS.get(ray_status) if ray_status else None
        if mapped:
            return mapped
        if ray_status is None and results and results[-1].get("done") is True:
            return "active"
        ages = []
        for file in written:
            try:
                ages.append(time.time() - os.stat(file).st_mtime)
            except OSError:
                continue
        return "running" if ages and min(ages) < RUNNING_WINDOW_S else "crashed"

    def _trial_status(self, experiment: str, state_name: str | None, trial: str) -> str | None:
        """Ray's status of ``trial`` in the experiment's newest state file, or None when it has none."""
        if state_name is None:
            return None
        state = os.path.join(experiment, state_name)
        try:
            st = os.stat(state)
        except OSError:
            return None
        key = (state_name, st.st_mtime_ns, st.st_size)
        with self._lock:
            known = self._states.get(experiment)
        if known is None or known[0] != key:
            try:
                statuses = trial_statuses(load_file(state))
            except MetaError:
                statuses = {}
            known = (key, statuses)
            with self._lock:
                self._states[experiment] = known
        return known[1].get(trial)


def newest_state(names: frozenset[str]) -> str | None:
    """The newest ``experiment_state-<date>.json`` (a resumed experiment writes a new one; dates sort as text)."""
    states = [n for n in names if n.startswith(STATE_PREFIX) and n.endswith(".json")]
    return max(states) if states else None


def trial_statuses(state: object) -> dict[str, str]:
    """Trial folder name -> Ray's status, from an experiment state (``trial_data``: pairs of JSON strings)."""
    found: dict[str, str] = {}
    trials = state.get("trial_data") if isinstance(state, dict) else None
    for entry in trials if isinstance(trials, list) else []:
        first = entry[0] if isinstance(entry, list) and entry else None
        try:
            info = orjson.loads(first) if isinstance(first, str) else None
        except orjson.JSONDecodeError:
            continue
        if isinstance(info, dict) and isinstance(info.get("relative_logdir"), str) and \
                isinstance(info.get("status"), str):
            found[os.path.basename(info["relative_logdir"].rstrip("/"))] = info["status"]
    return found


def parse_results(data: bytes) -> tuple[list[dict], int]:
    """The result objects of a ``result.json``, in order, and how many lines were not objects. A last line without
    its newline (a trial writing now) is read if whole, else left out quietly."""
    results: list[dict] = []
    bad = 0
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            if i < len(lines) - 1:
                bad += 1
            continue
        if isinstance(value, dict):
            results.append(value)
        else:
            bad += 1
    return results, bad


def _user_values(result: dict) -> dict[str, float]:
    """A result's numeric user keys, nested ones flattened with dots; bools and Ray's keys left out."""
    try:
        flat = flatten({k: v for k, v in result.items() if k not in BOOKKEEPING})
    except MetaError:
        return {}
    return {k: float(v) for k, v in flat.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def add_metrics(rec: ModelRecord, results: list[dict]) -> None:
    """Each user key of the last result, with its points over ``training_iteration`` from every result."""
    last = _user_values(results[-1])
    series: dict[str, list[tuple[int, float]]] = {name: [] for name in last}
    for n, result in enumerate(results, 1):
        step = result.get("training_iteration")
        step = step if isinstance(step, int) and not isinstance(step, bool) else n
        for name, value in _user_values(result).items():
            if name in series:
                series[name].append((step, value))
    for name, value in last.items():
        rec.metrics.append(Metric(name=name, value=value, history=thin(series[name]) or None))
