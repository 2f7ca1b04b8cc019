"""MLflow's run and experiment ``meta.yaml``: flat ``key: scalar`` lines, as ``yaml.safe_dump`` writes them.

A YAML load costs ~115 us per file (C loader), a tenth of a cold MLflow scan; this reads the subset MLflow writes
in ~10 us. Every line must be ``key: value`` with a value whose YAML meaning is certain (a quoted string, a decimal
integer, ``[]``/``{}``, a bool or null word, a plain word or a run id); anything else (a hand-edited file,
a nested value, a date, a float) is parsed by the YAML parser instead, so the result is always what YAML gives.
``tests/test_mlflow_meta.py`` checks both against each other on real stores and on the tricky cases.
"""

from __future__ import annotations

import re

from mlrepo.repo_index.readers.parsing import parse_yaml, read_bytes

_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*): (.*)")
_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_./:@+-]*")
# a run id (hex): YAML 1.1 makes a digit-led token with a letter a number only as 0x.. or 0b..; dates, floats and
# sexagesimals need '-', ':' or '.'
_ID = re.compile(r"(?![0-9]*$)(?!0[bBxX])[0-9][0-9A-Za-z]*")
# YAML 1.1 plain words that PyYAML resolves to something other than a string
_SPECIAL: dict[str, object] = {
    **dict.fromkeys("yes Yes YES true True TRUE on On ON".split(), True),
    **dict.fromkeys("no No NO false False FALSE off Off OFF".split(), False),
    **dict.fromkeys("null Null NULL ~".split(), None),
}
_UNSURE = object()


def _scalar(raw: str) -> object:
    if raw == "''":
        return ""
    if raw == "[]":
        return []
    if raw == "{}":
        return {}
    if len(raw) >= 2 and raw[0] == "'" and raw[-1] == "'":
        inner = raw[1:-1]
        return inner.replace("''", "'") if "'" not in inner.replace("''", "") else _UNSURE
    if _INT.fullmatch(raw):
        return int(raw)
    if raw in _SPECIAL:
        return _SPECIAL[raw]
    if (_WORD.fullmatch(raw) and not raw.endswith(":")) or _ID.fullmatch(raw):
        return raw
    return _UNSURE


def parse_flat(text: str) -> dict[str, object] | None:
    """The mapping of a flat ``meta.yaml``, or None when any line is outside the subset read here."""
    out: dict[str, object] = {}
    for line in text.splitlines():
        match = _LINE.fullmatch(line)
        if match is None:
            return None
        value = _scalar(match[2])
        if value is _UNSURE or match[1] in out:
            return None
        out[match[1]] = value
    return out


def load_meta(path: str) -> object:
    """A ``meta.yaml`` as YAML reads it; raises ``MetaError`` as ``load_file`` does."""
    data = read_bytes(path)
    try:
        flat = parse_flat(data.decode("utf-8")) if b"\x00" not in data else None
    except UnicodeDecodeError:
        flat = None
    return flat if flat else parse_yaml(path, data)
