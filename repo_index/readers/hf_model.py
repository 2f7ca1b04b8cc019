"""The Hugging Face Trainer's final model: the output dir itself, after ``trainer.save_model()``.

The output dir holds ``config.json`` and the weights (``model.safetensors``, ``pytorch_model.bin``, or shards with an
``*.index.json``) beside its ``checkpoint-N/`` folders. The model is the files directly in the output dir; every
sub-folder (checkpoints, ``runs/`` TensorBoard logs) is searched as models of its own and is not part of this one
(``ModelRecord.nested``), so removing the final model must leave them in place.

Metrics come from ``all_results.json``/``eval_results.json`` (``trainer.save_metrics``) where present, else from the
last values in ``trainer_state.json`` (``trainer.save_state``), whose ``log_history`` also gives the curves.
"""

from __future__ import annotations

import os

from mlrepo.repo_index.readers import Place
from mlrepo.repo_index.readers.hf_trainer import (
    CONFIG,
    SKIP_CONFIG,
    STATE,
    HfTrainerReader,
    checkpoint_number,
)
from mlrepo.repo_index.readers.parsing import MetaError, flatten, load_file
from mlrepo.repo_index.records import Metric, ModelRecord, to_number

WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json",
           "tf_model.h5", "flax_model.msgpack")
#: what ``trainer.save_metrics`` writes, most complete first; the first one present that names a metric wins it
RESULTS = ("all_results.json", "eval_results.json", "train_results.json", "test_results.json")
FINAL_TAG = "final"


class HfModelReader:
    format = "hf-trainer"

    def claim(self, place: Place) -> bool:
        if checkpoint_number(os.path.basename(place.path)) is not None:
            return False  # a checkpoint is the checkpoint reader's
        return CONFIG in place.names and any(w in place.names for w in WEIGHTS)

    def read(self, place: Place) -> ModelRecord:
        path = place.path
        parent, _, name = path.rpartition(os.sep)
        rec = ModelRecord(path=path, format=self.format, repo=parent.rpartition(os.sep)[2] or None, line=name,
                          name=name, tags=[FINAL_TAG])
        rec.nested = sorted(n for n in place.names if os.path.isdir(os.path.join(path, n)))
        rec.meta_files = [n for n in (STATE, CONFIG, *RESULTS) if n in place.names]
        if STATE in place.names:
            state = _mapping(rec, os.path.join(path, STATE))
            if state is not None:
                HfTrainerReader.fill_from_state(rec, state)
        results: dict[str, float] = {}
        for file in RESULTS:
            if file not in place.names:
                continue
            data = _mapping(rec, os.path.join(path, file))
            for key, raw in (data or {}).items():
                value = to_number(raw)
                if value is not None and key not in results and _is_result_metric(key):
                    results[key] = value
        by_name = {m.name: m for m in rec.metrics}
        for key, value in results.items():
            if key in by_name:
                by_name[key].value = value
            else:
                rec.metrics.append(Metric(name=key, value=value))
        config = _mapping(rec, os.path.join(path, CONFIG))
        if config is not None:
            for key, setting in flatten({k: v for k, v in config.items() if k not in SKIP_CONFIG}).items():
                if setting is not None and not isinstance(setting, (list, dict)) and key not in rec.params:
                    rec.params[key] = setting
        return rec


def _is_result_metric(key: str) -> bool:
    return key not in ("epoch", "total_flos") and not key.endswith(("_runtime", "_per_second", "_samples"))


def _mapping(rec: ModelRecord, file: str) -> dict | None:
    try:
        data = load_file(file)
    except MetaError as exc:
        rec.add_error(str(exc))
        return None
    if not isinstance(data, dict):
        rec.add_error(f"{os.path.basename(file)}: expected a mapping")
        return None
    return data
