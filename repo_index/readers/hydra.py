"""Hydra jobs: ``multirun/<date>/<time>/<n>/`` and ``outputs/<date>/<time>/``, each with ``.hydra/config.yaml``,
``.hydra/overrides.yaml`` and ``.hydra/hydra.yaml``.

Params come from ``config.yaml``, flattened; the overrides (what the sweep varied) are tags ``override:<k>=<v>``.
Hydra stores no metrics: whatever else the job folder holds (a ``metrics.json``, a Lightning ``version_N``, event
files…) is read by its own reader and joined into the job's one row. Such logs in sub-folders (up to
``DEPTH`` levels) are part of the job and not rows of their own. Grouped as the sweep's date / time / job number.
"""

from __future__ import annotations

import os

from mlrepo.repo_index.readers import Place, Reader, claim
from mlrepo.repo_index.readers.parsing import MetaError, flatten, load_file
from mlrepo.repo_index.records import ModelRecord, merge_records

HYDRA_DIR = ".hydra"
CONFIG, OVERRIDES = f"{HYDRA_DIR}/config.yaml", f"{HYDRA_DIR}/overrides.yaml"
DEPTH = 3  # how deep a job's own logs are looked for (lightning_logs/version_0/ is 2)
OVERRIDE_TAG = "override:"


class HydraReader:
    format = "hydra"

    def __init__(self, others: list[Reader] | None = None) -> None:
        self._others = others  # the readers for the job's own logs (default: every other reader)

    def claim(self, place: Place) -> bool:
        return HYDRA_DIR in place.names and os.path.isfile(os.path.join(place.path, CONFIG))

    def read(self, place: Place) -> ModelRecord:
        path = place.path
        rec = ModelRecord.in_folder(path, self.format)
        rec.meta_files = [CONFIG, OVERRIDES]
        try:
            config = load_file(os.path.join(path, CONFIG))
            if isinstance(config, dict):
                rec.params = {k: v for k, v in flatten(config).items() if not isinstance(v, dict)}
            elif config is not None:
                rec.add_error(f"{CONFIG}: expected a mapping")
        except MetaError as exc:
            rec.add_error(str(exc))
        if os.path.isfile(os.path.join(path, OVERRIDES)):
            try:
                overrides = load_file(os.path.join(path, OVERRIDES))
                if isinstance(overrides, list):
                    rec.tags = [f"{OVERRIDE_TAG}{o}" for o in overrides if isinstance(o, str)]
                elif overrides is not None:
                    rec.add_error(f"{OVERRIDES}: expected a list")
            except MetaError as exc:
                rec.add_error(str(exc))
        return merge_records([rec, *self._job_logs(place)])

    def _job_logs(self, place: Place) -> list[ModelRecord]:
        """The records of the logs inside the job folder, each read by its own reader, their files made relative
        to the job for the cache's stamp."""
        from mlrepo.repo_index.readers import default_readers

        others = self._others if self._others is not None else [
            r for r in default_readers() if r.format != self.format]
        # a metrics.json or event files in the job folder itself come through the scanner's merge (companions)
        found: list[ModelRecord] = []
        stack = [(place.path, place.names, 0)]
        while stack:
            folder, names, depth = stack.pop()
            if depth >= DEPTH:
                continue
            for name in sorted(names):
                if name.startswith(".") or (depth == 0 and name == HYDRA_DIR):
                    continue
                sub = os.path.join(folder, name)
                if os.path.islink(sub) or not os.path.isdir(sub):
                    continue
                try:
                    sub_names = frozenset(os.listdir(sub))
                except OSError:
                    continue
                sub_place = Place(sub, os.path.relpath(sub, place.path), sub_names, frozenset(names))
                reader = claim(others, sub_place)
                if reader is None:
                    stack.append((sub, sub_names, depth + 1))
                    continue
                record = reader.read(sub_place)
                prefix = os.path.relpath(sub, place.path)
                record.meta_files = [os.path.normpath(f"{prefix}/{f}") for f in record.meta_files]
                record.meta_files.append(prefix)
                found.append(record)
        return found
