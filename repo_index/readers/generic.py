"""Plain folders with ``metrics.json``/``metrics.yaml`` and optional params (DVC projects, hand-rolled scripts)."""

from __future__ import annotations

import os

from mlrepo.repo_index.readers import Place
from mlrepo.repo_index.readers.parsing import MetaError, flatten, load_file, take_params
from mlrepo.repo_index.records import Metric, ModelRecord, to_number

METRIC_FILES = ("metrics.json", "metrics.yaml", "metrics.yml")
PARAM_FILES = ("params.json", "params.yaml", "params.yml", "config.yaml", "config.yml", "config.json")


class GenericReader:
    format = "generic"
    companion = True  # a metrics.json inside another tool's run folder (a Hydra job) joins that run's row

    def claim(self, place: Place) -> bool:
        return any(n in place.names for n in METRIC_FILES)

    def read(self, place: Place) -> ModelRecord:
        path = place.path
        rec = ModelRecord.in_folder(path, self.format)
        metrics_name = next(n for n in METRIC_FILES if n in place.names)
        params_name = next((n for n in PARAM_FILES if n in place.names), None)
        rec.meta_files = [metrics_name] + ([params_name] if params_name else [])
        try:
            data = load_file(os.path.join(path, metrics_name))
            if isinstance(data, dict):
                for name, raw in flatten(data).items():
                    value = to_number(raw)
                    if value is None:
                        rec.add_error(f"{metrics_name}: metric {name!r} is not a number: {str(raw)[:40]!r}")
                    rec.metrics.append(Metric(name=name, value=value))
            else:
                rec.add_error(f"{metrics_name}: expected a mapping of metric names to values")
        except MetaError as exc:
            rec.add_error(str(exc))
        if params_name:
            try:
                take_params(rec, load_file(os.path.join(path, params_name)), params_name)
            except MetaError as exc:
                rec.add_error(str(exc))
        return rec
