"""Cascade (Oxid15/cascade) model folders, every layout it has written.

0.13+: ``meta.json``/``meta.yml``/``meta.yaml`` is a list of blocks whose first has ``type: model``; metrics are a
list of ``{name, value, dataset?, split?, direction?}``; workspace -> repo -> line -> ``00000``-style folders.
0.4-0.12: numbered folders inside a line, metrics a ``{name: value}`` dict, no workspace.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone

from mlrepo.repo_index.readers import Place
from mlrepo.repo_index.readers.parsing import MetaError, flatten, load_file, take_params
from mlrepo.repo_index.records import Metric, ModelRecord, to_number

META_NAMES = ("meta.json", "meta.yml", "meta.yaml")
_NUMBERED = re.compile(r"^\d+$")
_DIRECTIONS = {"down": "min", "min": "min", "minimize": "min", "lower": "min",
               "up": "max", "max": "max", "maximize": "max", "higher": "max"}


def meta_file(names: frozenset[str]) -> str | None:
    return next((n for n in META_NAMES if n in names), None)


def parse_time(value: object) -> datetime | None:
    """Cascade writes ISO timestamps, with or without offset; naive ones are local time."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()
    return parsed.astimezone(timezone.utc)


class CascadeReader:
    format = "cascade"

    def __init__(self) -> None:
        # claim() has to parse the meta to tell a model from a line (an auto-named line is ``00000`` too);
        # read() takes that parse from here instead of reading the file twice.
        self._parsed: dict[str, object] = {}

    def claim(self, place: Place) -> bool:
        meta = meta_file(place.names)
        if meta is None:
            return False
        numbered = bool(_NUMBERED.match(os.path.basename(place.path))) and meta_file(place.parent_names) is not None
        if numbered and not any(_NUMBERED.match(n) for n in place.names):
            # a numbered folder in a line, with no numbered folders of its own (an auto-named line has them):
            # a model, decided from names alone; read() parses it in a worker
            return True
        try:
            block = _first_block(load_file(os.path.join(place.path, meta)))
        except MetaError as exc:
            if numbered:  # a model folder whose save was interrupted: listed, with the reason
                self._parsed[place.path] = exc
            return numbered
        if isinstance(block, dict):
            kind = block.get("type")
            is_model = kind == "model" or (kind is None and numbered and ("metrics" in block or "params" in block))
        else:
            is_model = numbered
        if is_model:
            self._parsed[place.path] = block
        return is_model

    def read(self, place: Place) -> ModelRecord:
        path = place.path
        rec = ModelRecord.in_folder(path, self.format)
        meta = meta_file(place.names)
        if meta is None:
            rec.add_error("meta file missing")
            return rec
        rec.meta_files = [meta]
        block = self._parsed.pop(path, None)
        try:
            if block is None:
                block = _first_block(load_file(os.path.join(path, meta)))
            elif isinstance(block, MetaError):
                raise block
        except MetaError as exc:
            rec.add_error(str(exc))
            return rec
        if not isinstance(block, dict):
            rec.add_error(f"{meta}: expected a list of blocks or a mapping, got {type(block).__name__}")
            return rec
        _fill(rec, block, meta)
        return rec


def _first_block(data: object) -> object:
    if isinstance(data, list):
        return data[0] if data else None
    return data


def _fill(rec: ModelRecord, block: dict, meta: str) -> None:
    rec.created_at = parse_time(block.get("created_at"))
    rec.updated_at = parse_time(block.get("updated_at") or block.get("saved_at"))
    take_params(rec, block.get("params"), meta)

    metrics = block.get("metrics")
    if isinstance(metrics, dict):  # 0.4-0.12; a nested value (per-class scores) becomes dotted names
        for name, value in flatten(metrics).items():
            _add_metric(rec, meta, name, value)
    elif isinstance(metrics, list):  # 0.13+
        for item in metrics:
            if not isinstance(item, dict) or item.get("name") is None or str(item["name"]).strip() == "":
                rec.add_error(f"{meta}: a metric entry without a name (skipped): {str(item)[:40]}")
                continue
            direction = item.get("direction")
            _add_metric(
                rec, meta, str(item["name"]), item.get("value"),
                dataset=_opt_str(item.get("dataset")), split=_opt_str(item.get("split")),
                direction=_DIRECTIONS.get(str(direction).lower()) if direction else None,
            )
    elif metrics is not None:
        rec.add_error(f"{meta}: metrics is a {type(metrics).__name__}, expected a list or mapping")

    tags = block.get("tags")
    if isinstance(tags, (list, tuple, set)):
        rec.tags = sorted({str(t) for t in tags})
    elif isinstance(tags, str):
        rec.tags = [tags]


def _opt_str(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def _add_metric(rec: ModelRecord, meta: str, name: str, raw: object, dataset: str | None = None,
                split: str | None = None, direction: str | None = None) -> None:
    value = to_number(raw)
    if value is None and raw is not None:
        rec.add_error(f"{meta}: metric {name!r} is not a number: {str(raw)[:40]!r}")
    rec.metrics.append(Metric(name=name, value=value, dataset=dataset, split=split, direction=direction))
