"""MLflow's run and experiment ``meta.yaml``: flat ``key: scalar`` lines, as ``yaml.safe_dump`` writes them.

A YAML load costs ~115 us per file (C loader), a tenth of a cold MLflow scan; this reads the subset MLflow writes
in ~10 us. Every line must be ``key: value`` with a value whose YAML meaning is certain: a single-quoted string,
``[]``/``{}``, or a plain scalar of safe characters. A plain scalar is typed by PyYAML's own implicit resolvers (the
table ``safe_load`` consults), so a word is a bool, null or string exactly when YAML says so; of the other types only
a decimal integer is built here. Anything else (a hand-edited file, a nested value, a date, a float, an octal, a
control character, a ``\\r`` or another YAML line break) is parsed by the YAML parser instead, so the result is
always what YAML gives. ``tests/test_mlflow_meta.py`` checks both against each other on real stores and on the
tricky cases.
"""

from __future__ import annotations

import functools
import re

import yaml
from mlrepo.repo_index.readers.parsing import parse_yaml, read_bytes

_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*): (.*)")
# plain scalars of one line: safe characters (no indicator, quote, '#', tab) and single spaces; one that starts with
# '-' or '+' and a space, ends in ':' or ' ', or holds ': ' is something else, and is refused before this is tried
_PLAIN = re.compile(r"[A-Za-z0-9_./~+-][A-Za-z0-9_./:@+~ -]*")
_DECIMAL = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
# what the reader refuses or reads as a line break besides '\n' (YAML 1.1: \r, \x85, \u2028, \u2029), tabs, and a
# byte-order mark: such a file goes to the YAML parser, which raises or reads it its own way
_UNSAFE = re.compile("[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")
_IMPLICIT = yaml.resolver.Resolver.yaml_implicit_resolvers  # first character -> [(tag, regexp)], as safe_load
_RESOLVERS = {first: (*_IMPLICIT.get(first, ()), *_IMPLICIT.get(None, ())) for first in _IMPLICIT if first}
_WILDCARD = tuple(_IMPLICIT.get(None, ()))
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_UNSURE = object()


def _plain(raw: str) -> object:
    """A plain scalar as PyYAML's resolver types it: the first implicit resolver for its first character that
    matches decides the tag, and no match means a string."""
    if _DECIMAL.fullmatch(raw):  # the common number (a time, a status): no resolver before int takes a decimal
        return int(raw)
    if (not _PLAIN.fullmatch(raw) or raw[-1] in ": " or ": " in raw or "  " in raw
            or (raw[0] in "+-" and raw[1:2] in ("", " "))):
        return _UNSURE
    for tag, regexp in _RESOLVERS.get(raw[0], _WILDCARD):
        if regexp.match(raw):
            if tag == _BOOL:
                return yaml.constructor.SafeConstructor.bool_values.get(raw.lower(), _UNSURE)
            return None if tag == _NULL else _UNSURE  # a float, timestamp, octal, hex ...: YAML builds those
    return raw


@functools.lru_cache(maxsize=256)  # the same dozen keys in every file
def _is_string_key(key: str) -> bool:
    return _plain(key) == key  # not a key YAML reads as a bool or null (``on``, ``null``)


def _scalar(raw: str) -> object:
    if raw == "[]":
        return []
    if raw == "{}":
        return {}
    if len(raw) >= 2 and raw[0] == "'" and raw[-1] == "'":
        inner = raw[1:-1]
        return inner.replace("''", "'") if "'" not in inner.replace("''", "") else _UNSURE
    return _plain(raw)


def parse_flat(text: str) -> dict[str, object] | None:
    """The mapping of a flat ``meta.yaml``, or None when any line is outside the subset read here."""
    if _UNSAFE.search(text):
        return None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    out: dict[str, object] = {}
    for line in lines:
        match = _LINE.fullmatch(line)
        if match is None:
            return None
        key, value = match[1], _scalar(match[2])
        if value is _UNSURE or key in out or not _is_string_key(key):
            return None
        out[key] = value
    return out or None  # an empty file is YAML's None, not a mapping


def load_meta(path: str) -> object:
    """A ``meta.yaml`` as YAML reads it; raises ``MetaError`` as ``load_file`` does."""
    data = read_bytes(path)
    try:
        flat = parse_flat(data.decode("utf-8")) if b"\x00" not in data else None
    except UnicodeDecodeError:
        flat = None
    return flat if flat is not None else parse_yaml(path, data)
