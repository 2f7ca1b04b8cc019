"""TensorBoard event folders: a run is a folder holding ``events.out.tfevents.*`` files.

A file is a stream of records ``u64 length | u32 crc | Event | u32 crc``; an Event carries a step and a Summary
whose values are scalars (old-style ``simple_value``, or new-style ``tensor`` with the ``scalars`` plugin), or
images, histograms, audio, text. Only scalars are decoded: every other payload is a slice skipped by its length
(decoding them is what makes TensorBoard itself slow on large logs). A metric is the value at the highest step of
its tag (a tag logged again at a lower step does not replace it); params come from the ``hparams`` plugin.

Event files in the run's sub-folders belong to the run: ``add_hparams`` writes one into a sub-folder named by the
time, ``add_scalars("loss", {"train": …})`` one per series into ``loss_train/`` (read as ``loss/train``).
This reader is a *companion*: in a folder another reader claims (a Lightning ``version_N``, a Ray trial), its
metrics join that reader's row. Nothing here imports tensorflow, tensorboard or protobuf.
"""

from __future__ import annotations

import os
import struct

from mlrepo.repo_index.readers import Place
from mlrepo.repo_index.readers.binfile import read_log
from mlrepo.repo_index.readers.history import thin
from mlrepo.repo_index.readers.parsing import MetaError
from mlrepo.repo_index.readers.protowire import (
    I32,
    I64,
    LEN,
    WireError,
    as_double,
    as_float,
    as_signed,
    fields,
    packed_floats,
    text,
)
from mlrepo.repo_index.readers.ray_tune import RAY_TAGS
from mlrepo.repo_index.readers.ray_tune import is_trial as is_ray_trial
from mlrepo.repo_index.records import Metric, ModelRecord

PREFIX = "events.out.tfevents."
HPARAMS_TAG = "_hparams_/"
_HEADER = struct.Struct("<QI")
# TensorProto dtypes read as scalars: DT_FLOAT, DT_DOUBLE, DT_INT32, DT_INT64
DT_FLOAT, DT_DOUBLE, DT_INT32, DT_INT64 = 1, 2, 3, 9

Points = dict[str, list[tuple[int, float]]]


def is_event_file(name: str) -> bool:
    return name.startswith(PREFIX)


class TensorBoardReader:
    format = "tensorboard"
    companion = True

    def claim(self, place: Place) -> bool:
        return any(is_event_file(n) for n in place.names)

    def read(self, place: Place) -> ModelRecord:
        path = place.path
        rec = ModelRecord.in_folder(path, self.format)
        files = event_files(path, place.names)
        rec.meta_files = [rel for rel, _sub in files]
        points: Points = {}
        for rel, sub in files:
            try:
                data, cut = read_log(os.path.join(path, rel))
            except MetaError as exc:
                rec.add_error(str(exc))
                continue
            if cut:
                rec.add_error(f"{rel}: larger than can be read, only its start was read")
            file_points: Points = {}
            problem = read_events(data, file_points, rec.params)
            if problem:
                rec.add_error(f"{rel}: {problem}")
            for tag, series in file_points.items():
                points.setdefault(series_name(sub, tag), []).extend(series)
        if "hparams.yaml" in place.names:  # Lightning's logger: its "epoch" scalar is bookkeeping, as in metrics.csv
            points.pop("epoch", None)
        if is_ray_trial(place.names):  # Ray's logger copies each result to ray/tune/<key>: result.json is read
            points = {k: v for k, v in points.items() if not k.startswith(RAY_TAGS)}
        for name, series in points.items():
            series.sort(key=lambda p: p[0])  # stable: of equal steps, the one written last stays last
            rec.metrics.append(Metric(name=name, value=series[-1][1], history=thin(series)))
        return rec


def event_files(path: str, names: frozenset[str]) -> list[tuple[str, str]]:
    """(relative path, sub-folder or "") of the run's event files: its own, then its sub-folders' (one level)."""
    files = [(n, "") for n in sorted(names) if is_event_file(n)]
    for sub in sorted(names):
        if is_event_file(sub):
            continue
        try:
            with os.scandir(os.path.join(path, sub)) as it:
                inner = sorted(e.name for e in it if is_event_file(e.name) and e.is_file(follow_symlinks=False))
        except OSError:  # not a folder, or unreadable
            continue
        files.extend((f"{sub}/{n}", sub) for n in inner)
    return files


def series_name(sub: str, tag: str) -> str:
    """``add_scalars("loss", {"train": …})`` writes tag ``loss`` into ``loss_train/``: that series is
    ``loss/train``. Tags in the run folder or an ``add_hparams`` time-named folder keep their name."""
    if not sub or _is_number(sub):
        return tag
    stem = tag.replace("/", "_") + "_"
    return f"{tag}/{sub[len(stem):]}" if sub.startswith(stem) and len(sub) > len(stem) else f"{sub}/{tag}"


def _is_number(name: str) -> bool:
    try:
        float(name)
    except ValueError:
        return False
    return True


def read_events(data: bytes, points: Points, params: dict[str, object]) -> str | None:
    """Add each scalar of the event stream ``data`` to ``points`` and each hparam to ``params``. Returns what was
    wrong (a cut tail is expected of a run being written and is not reported), else None."""
    view = memoryview(data)
    pos, end = 0, len(view)
    while pos + _HEADER.size <= end:
        length, _crc = _HEADER.unpack_from(view, pos)
        start = pos + _HEADER.size
        if start + length + 4 > end:
            return None  # the record being written: read what is complete
        try:
            _event(view[start:start + length], points, params)
        except (WireError, struct.error, UnicodeDecodeError) as exc:
            return f"record at byte {pos} is not an event ({exc})"
        pos = start + length + 4
    return None


def _event(event: memoryview, points: Points, params: dict[str, object]) -> None:
    step = 0
    summary = None
    for number, wire, value in fields(event):
        if number == 2 and not isinstance(value, memoryview):
            step = as_signed(value)
        elif number == 5 and isinstance(value, memoryview):
            summary = value
    if summary is None:
        return
    for number, wire, value in fields(summary):
        if number == 1 and isinstance(value, memoryview):
            _value(value, step, points, params)


def _value(raw: memoryview, step: int, points: Points, params: dict[str, object]) -> None:
    tag = ""
    simple: float | None = None
    tensor = metadata = None
    for number, wire, value in fields(raw):
        if number == 1:
            tag = text(value)
        elif number == 2 and wire == I32 and isinstance(value, int):
            simple = as_float(value)
        elif number == 8 and isinstance(value, memoryview):
            tensor = value
        elif number == 9 and isinstance(value, memoryview):
            metadata = value
        # images (4), histograms (5), audio (6): slices, never decoded
    plugin, content = _plugin(metadata) if metadata is not None else ("", None)
    if plugin == "hparams":
        if content is not None and tag.startswith(HPARAMS_TAG):
            _hparams(content, params)
        return
    if simple is not None:
        points.setdefault(tag, []).append((step, simple))
    elif tensor is not None and plugin in ("scalars", ""):
        scalar = _scalar_tensor(tensor)
        if scalar is not None:
            points.setdefault(tag, []).append((step, scalar))


def _plugin(metadata: memoryview) -> tuple[str, memoryview | None]:
    for number, _wire, value in fields(metadata):
        if number == 1 and isinstance(value, memoryview):  # PluginData
            name, content = "", None
            for n, _w, v in fields(value):
                if n == 1:
                    name = text(v)
                elif n == 2 and isinstance(v, memoryview):
                    content = v
            return name, content
    return "", None


def _scalar_tensor(tensor: memoryview) -> float | None:
    """A rank-0 numeric TensorProto's value; None for anything else (a string, an image as a tensor)."""
    dtype = 0
    content = None
    floats: list[float] = []
    ints: list[int] = []
    for number, wire, value in fields(tensor):
        if number == 1 and isinstance(value, int):
            dtype = value
        elif number == 2 and isinstance(value, memoryview):
            if any(n == 2 for n, _w, _v in fields(value)):  # a dim: not a scalar
                return None
        elif number == 4 and isinstance(value, memoryview):
            content = value
        elif number == 5:  # float_val
            floats.extend(packed_floats(value, 4) if isinstance(value, memoryview) else [as_float(value)])
        elif number == 6:  # double_val
            floats.extend(packed_floats(value, 8) if isinstance(value, memoryview) else [as_double(value)])
        elif number in (7, 10) and wire != LEN and isinstance(value, int):
            ints.append(as_signed(value))
    if dtype not in (DT_FLOAT, DT_DOUBLE, DT_INT32, DT_INT64):
        return None
    if content is not None and len(content):
        fmt = {DT_FLOAT: "<f", DT_DOUBLE: "<d", DT_INT32: "<i", DT_INT64: "<q"}[dtype]
        if len(content) != struct.calcsize(fmt):
            return None
        return float(struct.unpack(fmt, content)[0])
    if floats:
        return float(floats[0])
    if ints:
        return float(ints[0])
    return 0.0  # a scalar whose value is the default (0) is written with no value field


def _hparams(content: memoryview, params: dict[str, object]) -> None:
    """HParamsPluginData: session_start_info (3) holds the hparams map (1) of google.protobuf.Value."""
    for number, _wire, value in fields(content):
        if number != 3 or not isinstance(value, memoryview):
            continue
        for n, _w, entry in fields(value):
            if n != 1 or not isinstance(entry, memoryview):
                continue
            key, item = "", None
            for en, _ew, ev in fields(entry):
                if en == 1:
                    key = text(ev)
                elif en == 2 and isinstance(ev, memoryview):
                    item = _proto_value(ev)
            if key:
                params[key] = item


def _proto_value(raw: memoryview) -> object:
    """google.protobuf.Value: a number, string or bool (a struct or list is kept as None)."""
    for number, wire, value in fields(raw):
        if number == 2 and wire == I64 and isinstance(value, int):
            number_value = as_double(value)
            return int(number_value) if number_value.is_integer() and abs(number_value) < 2**53 else number_value
        if number == 3:
            return text(value)
        if number == 4 and isinstance(value, int):
            return bool(value)
    return None
