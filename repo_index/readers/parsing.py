"""Reading small metadata files safely: every failure becomes a short message, never an exception."""

from __future__ import annotations

import json
import os

import orjson
import yaml
from mlrepo.errors import ReadError
from mlrepo.repo_index.records import ModelRecord

try:  # the C loader is ~10x faster; pure-Python PyYAML builds lack it
    _YamlLoader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _YamlLoader = yaml.SafeLoader

MAX_META_BYTES = 64 * 1024 * 1024


class MetaError(ReadError):
    """A metadata file exists but cannot be used; the message says why, for the `error` column."""


def read_bytes(path: str) -> bytes:
    """The whole file, through plain descriptors: no buffered file object for a file read once in one go."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size  # reading MAX + 1 would allocate MAX bytes for every file
            if size > MAX_META_BYTES:
                raise MetaError(f"{os.path.basename(path)}: {size} bytes, too large for metadata")
            data = os.read(fd, size + 1)
            if len(data) > size:  # grew since the fstat (or a special file): read the rest as it comes
                chunks = [data]
                while chunk := os.read(fd, 1 << 20):
                    chunks.append(chunk)
                    if sum(map(len, chunks)) > MAX_META_BYTES:
                        raise MetaError(f"{os.path.basename(path)}: too large for metadata")
                data = b"".join(chunks)
            return data
        finally:
            os.close(fd)
    except OSError as exc:
        raise MetaError(f"{os.path.basename(path)}: cannot read ({exc.strerror or exc})") from None


def _decode(path: str, data: bytes) -> str:
    if b"\x00" in data:
        raise MetaError(f"{os.path.basename(path)}: binary data, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MetaError(f"{os.path.basename(path)}: not UTF-8 text (byte {exc.start})") from None


def parse_json(path: str, data: bytes) -> object:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    text = _decode(path, data)
    try:  # the standard parser also takes NaN/Infinity, which Python's json.dump writes
        return json.loads(text)
    except json.JSONDecodeError as exc:
        what = "truncated" if exc.pos >= len(text.rstrip()) else "invalid JSON"
        raise MetaError(f"{os.path.basename(path)}: {what} at line {exc.lineno} column {exc.colno}") from None


def parse_yaml(path: str, data: bytes) -> object:
    text = _decode(path, data)
    try:
        return yaml.load(text, Loader=_YamlLoader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise MetaError(f"{os.path.basename(path)}: invalid YAML{where}") from None


def load_file(path: str) -> object:
    """Parse a .json/.yaml/.yml file by its extension."""
    data = read_bytes(path)
    if path.endswith(".json"):
        return parse_json(path, data)
    return parse_yaml(path, data)


def load_text(path: str) -> str:
    return _decode(path, read_bytes(path))


def flatten(value: object, prefix: str = "", out: dict[str, object] | None = None) -> dict[str, object]:
    """Nested dicts to dotted keys: {"optimizer": {"name": "sgd"}} -> {"optimizer.name": "sgd"}."""
    out = {} if out is None else out
    if isinstance(value, dict):
        for key, sub in value.items():
            flatten(sub, f"{prefix}.{key}" if prefix else str(key), out)
    elif prefix:
        out[prefix] = value
    return out


def take_params(rec: ModelRecord, value: object, source: str) -> None:
    """Params from a parsed mapping, flattened; anything else is reported on the model, not guessed at."""
    if isinstance(value, dict):
        rec.params = flatten(value)
    elif value is not None:
        rec.add_error(f"{source}: params is a {type(value).__name__}, expected a mapping")
