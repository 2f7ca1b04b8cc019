"""DVC projects: a folder with ``dvc.yaml`` is one row.

Params come from ``params.yaml`` and the params files ``dvc.yaml`` names (a stage's ``params`` entries
``{file: [keys]}``, the top-level ``params`` list that dvclive writes); metrics from the metrics files it names (a
stage's ``metrics`` outputs, the top-level ``metrics`` list, dvclive's ``metrics.json`` included). The logs under the
project that hold its named files (``dvclive/``, ``eval/live``) are part of it; its other sub-folders are searched
for models of their own (``ModelRecord.nested``). When the project names several metrics
files, each metric is qualified by its file (``metrics.acc.eval/metrics.json``). DVC experiments live in git refs: they
are rows of their own, read by ``dvc_exps.DvcExpStore``, which the scanner asks about this row's ``.git``.
"""

from __future__ import annotations

import os

from mlrepo.repo_index.readers import Place
from mlrepo.repo_index.readers.parsing import MetaError, flatten, load_file
from mlrepo.repo_index.records import Metric, ModelRecord, to_number

DVC_YAML = "dvc.yaml"
DEFAULT_PARAMS = "params.yaml"


def _paths(entries: object) -> list[str]:
    """File paths from a dvc.yaml list whose items are a path or ``{path: options}``."""
    out: list[str] = []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, str):
            out.append(entry)
        elif isinstance(entry, dict):
            out.extend(str(k) for k in entry)
    return out


def named_files(spec: dict) -> tuple[list[str], list[str]]:
    """(params files, metrics files) that ``dvc.yaml`` names, in order, without repeats."""
    params: list[str] = []
    metrics: list[str] = []
    stages = spec.get("stages")
    for stage in stages.values() if isinstance(stages, dict) else []:
        if not isinstance(stage, dict):
            continue
        for entry in stage.get("params") or []:
            if isinstance(entry, dict):  # {custom.yaml: [keys]}; a bare key is from params.yaml
                params.extend(str(k) for k in entry)
            elif isinstance(entry, str):
                params.append(DEFAULT_PARAMS)
        metrics.extend(_paths(stage.get("metrics")))
    params.extend(_paths(spec.get("params")))
    metrics.extend(_paths(spec.get("metrics")))
    return list(dict.fromkeys(params)), list(dict.fromkeys(metrics))


class DvcReader:
    format = "dvc"

    def claim(self, place: Place) -> bool:
        return DVC_YAML in place.names

    def read(self, place: Place) -> ModelRecord:
        path = place.path
        rec = ModelRecord.in_folder(path, self.format)
        spec: dict = {}
        try:
            data = load_file(os.path.join(path, DVC_YAML))
            if isinstance(data, dict):
                spec = data
            elif data is not None:
                rec.add_error(f"{DVC_YAML}: expected a mapping")
        except MetaError as exc:
            rec.add_error(str(exc))
        params_files, metrics_files = named_files(spec)
        if DEFAULT_PARAMS in place.names and DEFAULT_PARAMS not in params_files:
            params_files.insert(0, DEFAULT_PARAMS)
        rec.meta_files = [DVC_YAML, "dvc.lock", *params_files, *metrics_files]
        # a project folder often holds more than its logs (other tools' runs, a model store): the sub-folders that
        # hold none of its named files are searched as usual, so no model is hidden inside a project
        own = {os.path.normpath(f).split(os.sep)[0] for f in (*params_files, *metrics_files)} | {"dvclive"}
        rec.nested = sorted(n for n in place.names
                            if n not in own and not n.startswith(".") and os.path.isdir(os.path.join(path, n))
                            and not os.path.islink(os.path.join(path, n)))
        for rel in params_files:
            data = self._load(rec, path, rel)
            if isinstance(data, dict):
                for key, value in flatten(data).items():
                    rec.params.setdefault(key, value)
            elif data is not None:
                rec.add_error(f"{rel}: params are a {type(data).__name__}, expected a mapping")
        qualify = len(metrics_files) > 1
        for rel in metrics_files:
            data = self._load(rec, path, rel)
            if data is None:
                continue
            if not isinstance(data, dict):
                rec.add_error(f"{rel}: expected a mapping of metric names to values")
                continue
            for name, raw in flatten(data).items():
                if name == "step":  # dvclive's bookkeeping: the step of the latest values
                    continue
                value = to_number(raw)
                if value is not None:
                    rec.metrics.append(Metric(name=name, value=value, dataset=rel if qualify else None))
        return rec

    @staticmethod
    def _load(rec: ModelRecord, path: str, rel: str) -> object:
        full = os.path.normpath(os.path.join(path, rel))
        if not full.startswith(path + os.sep):  # a path in dvc.yaml that leads out of the project is not read
            rec.add_error(f"{DVC_YAML}: {rel!r} is outside the project")
            return None
        if not os.path.isfile(full):
            return None  # not produced yet (the stage has not run)
        try:
            return load_file(full)
        except MetaError as exc:
            rec.add_error(f"{rel}: {exc}")
            return None
