"""PyTorch Lightning logger folders: ``<log root>/<logger name>/version_N/`` with ``hparams.yaml``, ``metrics.csv``.

``metrics.csv`` (CSVLogger) is wide: one column per logged name plus ``epoch`` and ``step``, a row per logging
call with empty cells for the names not logged then. It may be read while training appends to it, so a cut or
ragged row is skipped and reported, never fatal. ``hparams.yaml`` may carry Python tags (``!!python/object``)
written by ``save_hyperparameters``; those are read as plain data instead of failing the whole file.
"""

from __future__ import annotations

import csv
import io
import os
import re

import yaml
from mlrepo.repo_index.readers import Place
from mlrepo.repo_index.readers.ckpt_state import version_checkpoints
from mlrepo.repo_index.readers.history import thin
from mlrepo.repo_index.readers.parsing import (
    MetaError,
    load_file,
    load_text,
    parse_yaml,
    read_bytes,
    take_params,
)
from mlrepo.repo_index.records import Metric, ModelRecord

_VERSION = re.compile(r"^version_\d+$")
MARKERS = ("hparams.yaml", "metrics.csv")
INDEX_COLUMNS = ("epoch", "step")


class _PlainLoader(yaml.SafeLoader):
    """A safe loader that reads unknown tags (``!!python/object:...``) as the plain data under them."""


def _untagged(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> object:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_PlainLoader.add_constructor(None, lambda loader, node: _untagged(loader, "", node))  # any unknown tag


def load_hparams(path: str) -> object:
    try:
        return load_file(path)
    except MetaError as exc:
        try:  # unreadable, not text or too costly: raises its own MetaError
            return parse_yaml(path, read_bytes(path), _PlainLoader)
        except MetaError as plain_exc:
            raise (plain_exc if "invalid YAML" not in str(plain_exc) else exc) from None


def parse_metrics_csv(text: str) -> tuple[dict[str, list[tuple[int | None, float]]], list[str]]:
    """Per column (``epoch``/``step`` aside), its (step, value) points in file order; and what was skipped."""
    problems: list[str] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        return {}, ["metrics.csv: no header"] if text.strip() else []
    series: dict[str, list[tuple[int | None, float]]] = {}
    step_at = header.index("step") if "step" in header else None
    columns = [(i, name) for i, name in enumerate(header) if name not in INDEX_COLUMNS and name]
    bad_rows: list[int] = []
    bad_values: dict[str, int] = {}
    line = 1
    while True:
        line += 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error:  # a NUL byte or a broken quote, as a cut write can leave
            bad_rows.append(line)
            continue
        if not row:
            continue
        if len(row) != len(header):
            bad_rows.append(line)
            continue
        step: int | None = None
        if step_at is not None and row[step_at].strip():
            try:
                step = int(float(row[step_at]))
            except (ValueError, OverflowError):
                bad_rows.append(line)
                continue
        for i, name in columns:
            cell = row[i].strip()
            if not cell:
                continue
            try:
                value = float(cell)
            except ValueError:
                bad_values[name] = bad_values.get(name, 0) + 1
                continue
            series.setdefault(name, []).append((step, value))
    if bad_rows:
        shown = ", ".join(map(str, bad_rows[:3])) + (", ..." if len(bad_rows) > 3 else "")
        problems.append(f"metrics.csv: {len(bad_rows)} malformed row(s) skipped (line {shown})")
    for name, count in bad_values.items():
        problems.append(f"metrics.csv: {count} value(s) of {name!r} are not numbers")
    return series, problems


class LightningReader:
    format = "lightning"

    def claim(self, place: Place) -> bool:
        return bool(_VERSION.match(os.path.basename(place.path))) and any(m in place.names for m in MARKERS)

    def read(self, place: Place) -> ModelRecord:
        path = place.path
        rec = ModelRecord.in_folder(path, self.format)
        rec.meta_files = [m for m in MARKERS if m in place.names]
        if "hparams.yaml" in place.names:
            try:
                take_params(rec, load_hparams(os.path.join(path, "hparams.yaml")), "hparams.yaml")
            except MetaError as exc:
                rec.add_error(str(exc))
        if "metrics.csv" in place.names:
            try:
                series, problems = parse_metrics_csv(load_text(os.path.join(path, "metrics.csv")))
            except MetaError as exc:
                rec.add_error(str(exc))
            else:
                for problem in problems:
                    rec.add_error(problem)
                for name, points in series.items():
                    history = thin([(s, v) for s, v in points if s is not None])
                    rec.metrics.append(Metric(name=name, value=points[-1][1], history=history or None))
        ckpts = version_checkpoints(path)
        rec.tags.extend(ckpts.tags)
        rec.meta_files.extend(ckpts.meta_files)
        if ckpts.problem:
            rec.add_error(ckpts.problem)
        return rec

