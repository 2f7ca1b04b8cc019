"""Reading small metadata files safely: every failure becomes a short message, never an exception.

Every file on disk is untrusted input: only regular files are read (a FIFO or device named ``meta.json`` is opened
without blocking and refused), a file is bounded in size, and a YAML document in what its aliases expand to and in
how deep it nests (a "billion laughs" file is refused in milliseconds instead of eating the memory).
"""

from __future__ import annotations

import json
import os
import stat

import orjson
import yaml
from mlrepo.errors import ReadError
from mlrepo.repo_index.records import ModelRecord

try:  # the C loader is ~10x faster; pure-Python PyYAML builds lack it
    _YamlLoader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _YamlLoader = yaml.SafeLoader

MAX_META_BYTES = 64 * 1024 * 1024
MAX_YAML_NODES = 1_000_000  # nodes of a YAML document once its aliases are expanded
MAX_DEPTH = 100  # nesting of mappings and lists in one metadata file


class MetaError(ReadError):
    """A metadata file exists but cannot be used; the message says why, for the `error` column."""


_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


def _open_checked(path: str) -> tuple[int, os.stat_result]:
    """A descriptor on ``path`` and its stat, if it is a regular file; never blocks (O_NONBLOCK: a FIFO's open would
    wait for a writer) and never follows the check with a second lookup (fstat on the very descriptor that is read)."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise MetaError(f"{os.path.basename(path)}: {kind_in_words(st.st_mode)}, not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def open_regular(path: str) -> int:
    """A blocking descriptor on ``path`` if it is a regular file (see ``_open_checked``)."""
    fd, _st = _open_checked(path)
    try:
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def kind_in_words(mode: int) -> str:
    """What a file of this mode is, for a message: "a named pipe", "a symbolic link" ..."""
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a special file"


def read_bytes(path: str, limit: int = MAX_META_BYTES) -> bytes:
    """The whole regular file, through plain descriptors, refused past ``limit`` bytes: open, fstat, read, close
    (a cold MLflow scan reads ~11 such files per run)."""
    try:
        fd, st = _open_checked(path)
        try:
            size = st.st_size  # reading MAX + 1 would allocate MAX bytes for every file
            if size > limit:
                raise MetaError(f"{os.path.basename(path)}: {size} bytes, too large for metadata")
            try:
                data = os.read(fd, size + 1)
            except BlockingIOError:  # O_NONBLOCK is moot for a regular file, but a network filesystem may honour it
                os.set_blocking(fd, True)
                data = os.read(fd, size + 1)
            if len(data) > size:  # grew since the fstat: read the rest as it comes
                os.set_blocking(fd, True)
                chunks = [data]
                while chunk := os.read(fd, 1 << 20):
                    chunks.append(chunk)
                    if sum(map(len, chunks)) > limit:
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
        value = json.loads(text)
    except RecursionError:
        raise MetaError(f"{os.path.basename(path)}: nested too deeply (more than {MAX_DEPTH} levels)") from None
    except json.JSONDecodeError as exc:
        what = "truncated" if exc.pos >= len(text.rstrip()) else "invalid JSON"
        raise MetaError(f"{os.path.basename(path)}: {what} at line {exc.lineno} column {exc.colno}") from None
    except ValueError:  # Python's limit on an int's digits (thousands of them)
        raise MetaError(f"{os.path.basename(path)}: a number with too many digits") from None
    return value


def parse_yaml(path: str, data: bytes, loader: type = _YamlLoader) -> object:
    """A YAML document through a safe ``loader``, refused when its aliases expand past ``MAX_YAML_NODES`` nodes, it
    nests deeper than ``MAX_DEPTH`` or an alias refers to itself: composed first (aliases are shared nodes then,
    cheap to count), constructed only once known to be bounded."""
    text, name = _decode(path, data), os.path.basename(path)
    parser = loader(text)
    try:
        node = parser.get_single_node()
        if node is None:
            return None
        # no '*', no alias: the document is no larger than its text, and nesting past the stack is a RecursionError
        problem = _yaml_cost_problem(node) if "*" in text else None
        if problem:
            raise MetaError(f"{name}: {problem}")
        return parser.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise MetaError(f"{name}: invalid YAML{where}") from None
    except RecursionError:
        raise MetaError(f"{name}: nested too deeply (more than {MAX_DEPTH} levels)") from None
    except ValueError:  # PyYAML's int constructor on a malformed number ("0b_")
        raise MetaError(f"{name}: invalid YAML (a number that cannot be read)") from None
    finally:
        parser.dispose()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _yaml_cost_problem(top: yaml.Node) -> str | None:
    """Why the composed document is too costly to construct (None when it is not): its size with every alias
    expanded and its depth, computed once per distinct node (iteratively: no recursion on hostile input)."""
    cost: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded nodes, depth)
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(top, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            kids = [cost[id(k)] for k in _children(node)]
            size, depth = 1 + sum(k[0] for k in kids), 1 + max((k[1] for k in kids), default=0)
            if size > MAX_YAML_NODES:
                return f"its aliases expand to more than {MAX_YAML_NODES:,} values (an alias bomb?); not read"
            if depth > MAX_DEPTH:
                return f"nested too deeply (more than {MAX_DEPTH} levels)"
            cost[key] = (size, depth)
            open_nodes.discard(key)
            continue
        if key in cost:
            continue
        if key in open_nodes:
            return "an alias refers to itself; not read"
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((kid, False) for kid in _children(node))
    return None


def load_file(path: str) -> object:
    """Parse a .json/.yaml/.yml file by its extension."""
    data = read_bytes(path)
    if path.endswith(".json"):
        return parse_json(path, data)
    return parse_yaml(path, data)


def load_text(path: str) -> str:
    return _decode(path, read_bytes(path))


def flatten(value: object, prefix: str = "", out: dict[str, object] | None = None,
            depth: int = 0) -> dict[str, object]:
    """Nested dicts to dotted keys: {"optimizer": {"name": "sgd"}} -> {"optimizer.name": "sgd"}."""
    out = {} if out is None else out
    if isinstance(value, dict):
        if depth > MAX_DEPTH:
            raise MetaError(f"a mapping nested too deeply (more than {MAX_DEPTH} levels)")
        for key, sub in value.items():
            flatten(sub, f"{prefix}.{key}" if prefix else str(key), out, depth + 1)
    elif prefix:
        out[prefix] = value
    return out


def take_params(rec: ModelRecord, value: object, source: str) -> None:
    """Params from a parsed mapping, flattened; anything else is reported on the model, not guessed at."""
    if isinstance(value, dict):
        rec.params = flatten(value)
    elif value is not None:
        rec.add_error(f"{source}: params is a {type(value).__name__}, expected a mapping")
