"""Hugging Face Trainer checkpoints: ``<output dir>/checkpoint-N/`` with ``trainer_state.json`` (and ``config.json``).

``trainer_state.json`` holds ``log_history`` (one entry per logging or evaluation call, chronological) and the
Trainer's choice of best checkpoint so far. A checkpoint's own state is as old as the checkpoint, so which
checkpoint is best is taken from the newest state of its output dir (the output dir's own ``trainer_state.json``,
written at the end, or the latest checkpoint's). ``training_args.bin`` is a pickle and is never loaded.
"""

from __future__ import annotations

import math
import os
import re
import threading

from mlrepo.repo_index.readers import Place
from mlrepo.repo_index.readers.history import keeping, thin
from mlrepo.repo_index.readers.parsing import MetaError, flatten, load_file
from mlrepo.repo_index.records import Metric, ModelRecord, to_number

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
STATE = "trainer_state.json"
CONFIG = "config.json"
#: trainer_state keys that describe the run and become params
STATE_PARAMS = ("global_step", "epoch", "train_batch_size", "num_train_epochs", "max_steps", "logging_steps",
                "eval_steps", "save_steps")
#: log_history keys that are bookkeeping, not metrics
NOT_METRICS = frozenset({"epoch", "step", "total_flos", "num_input_tokens_seen"})
NOT_METRIC_SUFFIXES = ("_runtime", "_per_second")
#: config.json keys too bulky or too internal to be params
SKIP_CONFIG = frozenset({"id2label", "label2id", "architectures", "task_specific_params"})


def _is_metric(key: str) -> bool:
    return key not in NOT_METRICS and not key.endswith(NOT_METRIC_SUFFIXES)


def checkpoint_number(name: str) -> int | None:
    match = _CHECKPOINT.match(name)
    return int(match.group(1)) if match else None


class HfTrainerReader:
    format = "hf-trainer"

    def __init__(self) -> None:
        # output dir -> (what the answer depends on, best checkpoint's name or None, whether a best is recorded)
        self._best: dict[str, tuple[tuple, str | None, bool]] = {}
        # output dir -> (its listing, its highest-numbered checkpoint): every checkpoint of a dir asks, so without
        # it an output dir of n checkpoints sorts its n names n times
        self._latest: dict[str, tuple[tuple[str, ...], str | None]] = {}
        self._lock = threading.Lock()

    def claim(self, place: Place) -> bool:
        if checkpoint_number(os.path.basename(place.path)) is None:
            return False
        # training_args.bin without a state: a checkpoint whose save was cut short, listed with the reason
        return STATE in place.names or "training_args.bin" in place.names

    def read(self, place: Place) -> ModelRecord:
        path = place.path
        rec = ModelRecord.in_folder(path, self.format)
        out_dir, name = os.path.dirname(path), os.path.basename(path)
        # the best checkpoint can change when a sibling appears or the run ends: ".." makes the output dir's
        # listing part of this model's stamp, "../trainer_state.json" the final state
        rec.meta_files = [n for n in (STATE, CONFIG) if n in place.names] + ["..", f"../{STATE}"]
        state: dict | None = None
        if STATE in place.names:
            try:
                data = load_file(os.path.join(path, STATE))
                if isinstance(data, dict):
                    state = data
                else:
                    rec.add_error(f"{STATE}: expected a mapping")
            except MetaError as exc:
                rec.add_error(str(exc))
        else:
            rec.add_error(f"{STATE} missing (checkpoint not fully written?)")

        if state is not None:
            self.fill_from_state(rec, state)
        if CONFIG in place.names:
            try:
                config = load_file(os.path.join(path, CONFIG))
                if isinstance(config, dict):
                    for key, value in flatten({k: v for k, v in config.items() if k not in SKIP_CONFIG}).items():
                        if value is not None and not isinstance(value, (list, dict)) and key not in rec.params:
                            rec.params[key] = value
                else:
                    rec.add_error(f"{CONFIG}: expected a mapping")
            except MetaError as exc:
                rec.add_error(str(exc))

        best, recorded = self._best_checkpoint(out_dir, state)
        if recorded:
            rec.is_best = best == name
            if rec.is_best:
                rec.tags.append("best")
        return rec

    @staticmethod
    def fill_from_state(rec: ModelRecord, state: dict) -> None:
        for key in STATE_PARAMS:
            value = state.get(key)
            if value is not None and not isinstance(value, (list, dict)):
                rec.params[key] = value
        trial = state.get("trial_params")
        if isinstance(trial, dict):
            for key, value in flatten(trial).items():
                rec.params.setdefault(key, value)
        history = state.get("log_history")
        if history is None:
            return
        if not isinstance(history, list):
            rec.add_error(f"{STATE}: log_history is a {type(history).__name__}, expected a list")
            return
        # every point of the run is in each checkpoint's state: a scan, which keeps no curves, takes the latest
        # value of each metric without collecting the points (the bulk of reading a checkpoint)
        keep = keeping()
        latest: dict[str, float] = {}
        series: dict[str, list[tuple[int | None, float]]] = {}
        metric_keys: dict[str, bool] = {}
        for entry in history:
            if not isinstance(entry, dict):
                continue
            step = entry.get("step") if keep else None
            if isinstance(step, bool) or not isinstance(step, (int, float)) or not math.isfinite(step):
                step = None
            elif isinstance(step, float):
                step = int(step)
            for key, raw in entry.items():
                is_metric = metric_keys.get(key)
                if is_metric is None:
                    is_metric = metric_keys[key] = _is_metric(key)
                if not is_metric:
                    continue
                value = to_number(raw)
                if value is None:
                    continue
                latest[key] = value
                if keep:
                    series.setdefault(key, []).append((step, value))
        for key, value in latest.items():
            steps = thin([(s, v) for s, v in series[key] if s is not None]) if keep else []
            rec.metrics.append(Metric(name=key, value=value, history=steps or None))

    def _best_checkpoint(self, out_dir: str, own: dict | None) -> tuple[str | None, bool]:
        """The name of the checkpoint the newest state of ``out_dir`` calls best, and whether one is recorded."""
        try:
            names = os.listdir(out_dir)
            dir_mtime = os.stat(out_dir).st_mtime_ns
        except OSError:
            return self._best_of([own])
        latest = self._latest_checkpoint(out_dir, names)
        files = [os.path.join(out_dir, STATE)] if STATE in names else []
        if latest is not None:
            files.append(os.path.join(out_dir, latest, STATE))
        key = (dir_mtime, *(_file_key(f) for f in files))
        with self._lock:
            known = self._best.get(out_dir)
        if known is not None and known[0] == key:
            return known[1], known[2]
        states: list[dict | None] = []
        for file in files:
            try:
                data = load_file(file)
            except MetaError:
                continue
            states.append(data if isinstance(data, dict) else None)
        if not any(s is not None for s in states):  # nothing newer readable: this checkpoint's own view
            return self._best_of([own])
        best, recorded = self._best_of(states)
        with self._lock:
            self._best[out_dir] = (key, best, recorded)
        return best, recorded

    def _latest_checkpoint(self, out_dir: str, names: list[str]) -> str | None:
        """The highest-numbered ``checkpoint-N`` in ``names`` (the last listed of equal numbers), worked out once
        per listing of ``out_dir``."""
        listing = tuple(names)
        with self._lock:
            known = self._latest.get(out_dir)
        if known is not None and known[0] == listing:
            return known[1]
        numbered = sorted((n for n in names if checkpoint_number(n) is not None), key=lambda n: checkpoint_number(n) or 0)
        latest = numbered[-1] if numbered else None
        with self._lock:
            self._latest[out_dir] = (listing, latest)
        return latest

    @staticmethod
    def _best_of(states: list[dict | None]) -> tuple[str | None, bool]:
        newest = max((s for s in states if s is not None), default=None, key=_global_step)
        if newest is None:
            return None, False
        best = newest.get("best_model_checkpoint")
        if not isinstance(best, str) or not best:
            return None, False
        return os.path.basename(best.rstrip("/\\")), True


def _file_key(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
        return st.st_mtime_ns, st.st_size
    except OSError:
        return -1, -1


def _global_step(state: dict) -> int:
    step = state.get("global_step")
    return step if isinstance(step, int) else -1
