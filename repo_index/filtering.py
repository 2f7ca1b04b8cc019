"""The ``--where`` language: SQL-like boolean expressions, handed to polars' SQL engine.

The only rewriting done here is what SQL cannot read as is: dotted column names are quoted, short names are
resolved (``f1`` -> ``metrics.f1``), ``==`` becomes ``=``, ``tags contains 'x'`` becomes ``array_contains``, a
double-quoted word that names no column is the string users meant (``params.model = "rf"``), ``'x' in tags`` is
``tags contains 'x'``, and a string
compared with a time column is read as a timestamp (``created_at > '2026-01-01'``). Everything else (and/or/not,
comparisons, in, like, is null, parentheses) is polars' own SQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

import polars as pl
from mlrepo.repo_index.columns import UnknownColumn, UsageError, resolve_column
from mlrepo.repo_index.rows import MetricInfo

_TOKEN = re.compile(
    r"""(?P<str>'(?:[^']|'')*')|(?P<qid>"[^"]*")|(?P<num>\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+)"""
    r"""|(?P<id>[A-Za-z_][\w.\-/]*[\w])|(?P<id1>[A-Za-z_])|(?P<op>==|!=|<>|<=|>=|[=<>(),+*/%-])|(?P<ws>\s+)"""
)
KEYWORDS = {
    "and", "or", "not", "in", "is", "null", "like", "ilike", "between", "true", "false", "contains",
}
_COMPARE = {"=", "==", "!=", "<>", "<", ">", "<=", ">="}
FUNCTIONS = {"array_contains", "lower", "upper", "abs", "coalesce", "length", "cast", "try_cast", "as",
             "double", "int", "varchar", "date", "timestamp", "now"}


def _tokens(text: str) -> list[tuple[str, str]]:
    pos, out = 0, []
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise UsageError(f"bad --where: unexpected {text[pos:pos + 12]!r} at character {pos + 1}")
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append(("id" if kind == "id1" else kind, m.group()))
        pos = m.end()
    return out


def _string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _utc_timestamp(literal: str) -> str:
    """A quoted date or time as a naive UTC SQL timestamp: '2026-11-01', '2026-11-01 12:00', ISO with an offset
    or Z (converted to UTC)."""
    text = literal[1:-1].replace("''", "'").strip()
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise UsageError(f"bad --where: {literal} is not a date or time (e.g. '2026-11-01' or "
                         "'2026-11-01T12:00:00+01:00')") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return f"'{moment.isoformat()}'::timestamp"  # with the T: older polars reads no other form


def to_sql(text: str, columns: Sequence[str], metrics: dict[str, MetricInfo] | None = None,
           list_columns: Sequence[str] = ("tags",), time_columns: Sequence[str] = ("created_at", "updated_at")
           ) -> str:
    """Rewrite a ``--where`` expression into polars SQL over ``columns``."""
    if not text.strip():
        raise UsageError("bad --where: the expression is empty")
    tokens = _tokens(text)
    out: list[str] = []
    timed = between = False  # in a comparison with a time column; inside its BETWEEN ... AND ...
    statused = False  # in a comparison with the status column
    i = 0
    while i < len(tokens):
        kind, value = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ("", "")
        if kind == "qid":
            try:
                resolve_column(value[1:-1], columns, metrics)
            except UnknownColumn:
                kind, value = "str", _string(value[1:-1])
        after = tokens[i + 2] if i + 2 < len(tokens) else ("", "")
        if kind == "str" and nxt[0] == "id" and nxt[1].lower() == "in" and after[0] in ("id", "qid"):
            col = resolve_column(after[1].strip('"'), columns, metrics)
            if col in list_columns:  # 'prod' in tags: the list holds the string
                out.append(f'array_contains("{col}", {value})')
                i += 3
                continue
        if kind == "str" and timed:
            out.append(_utc_timestamp(value))
        elif kind == "str" and statused:  # MLflow's FINISHED is mlrepo's active; the others are lowercase
            status = value[1:-1].lower()
            out.append(_string("active" if status == "finished" else status))
        elif kind in ("id", "qid"):
            name = value[1:-1] if kind == "qid" else value
            lower = name.lower()
            if kind == "id" and lower in KEYWORDS:
                out.append(lower.upper())
                if lower == "between":
                    between = True
                elif lower == "or" or (lower == "and" and not between):
                    timed = statused = False
                between = between and lower != "and"
            elif kind == "id" and lower in FUNCTIONS and (nxt[1] == "(" or lower in {"as", "double", "int"}):
                out.append(value)
            else:
                col = resolve_column(name, columns, metrics)
                timed = col in time_columns
                statused = col == "status"
                if nxt[0] == "id" and nxt[1].lower() == "contains":
                    if i + 2 >= len(tokens):
                        raise UsageError(f"bad --where: nothing after 'contains' in {text!r}")
                    needle_kind, needle = tokens[i + 2]
                    if needle_kind == "qid":  # tags contains "best": the string meant
                        needle = _string(needle[1:-1])
                    if col in list_columns:
                        out.append(f'array_contains("{col}", {needle})')
                    else:
                        inner = needle[1:-1] if needle.startswith("'") else needle
                        out.append(f"\"{col}\" LIKE '%{inner}%'")
                    i += 3
                    continue
                if col in list_columns and (nxt[1] in _COMPARE or (out and out[-1] in _COMPARE)):
                    raise UsageError(f"bad --where {text!r}: {_LIST_HINT.format(col=col)}")
                # time columns compare as naive UTC: polars 2.0 (the newest for Python 3.10) has no timestamptz
                out.append(f'CAST("{col}" AS TIMESTAMP)' if timed else f'"{col}"')
        elif kind == "op" and value == "==":
            out.append("=")
        else:
            timed = timed and value not in ("(", ")", ",")
            statused = statused and value != ")"
            out.append(value)
        i += 1
    return " ".join(out)


def with_run_id(frame: pl.DataFrame) -> pl.DataFrame:
    """``run_id`` as MLflow users filter by it: an MLflow run's folder is named by its id (both store kinds)."""
    if "run_id" in frame.columns or "path" not in frame.columns:
        return frame
    return frame.with_columns(pl.when(pl.col("format") == "mlflow")
                              .then(pl.col("path").str.split("/").list.last()).alias("run_id"))


def where(frame: pl.DataFrame, text: str | None, metrics: dict[str, MetricInfo] | None = None) -> pl.DataFrame:
    """Rows of ``frame`` that match ``text`` (all rows when it is None)."""
    if text is None:
        return frame
    virtual = re.search(r"\brun_id\b", text) is not None and "run_id" not in frame.columns
    searched = with_run_id(frame) if virtual else frame
    expr = compile_where(searched, text, metrics)
    try:
        found = searched.filter(expr)
    except pl.exceptions.PolarsError as exc:
        raise UsageError(f"bad --where {text!r}: {_short(exc)}") from None
    return found.drop("run_id") if virtual else found


def compile_where(frame: pl.DataFrame, text: str, metrics: dict[str, MetricInfo] | None = None) -> pl.Expr:
    sql = to_sql(text, frame.columns, metrics, [c for c, t in frame.schema.items() if isinstance(t, pl.List)],
                 [c for c, t in frame.schema.items() if isinstance(t, pl.Datetime)])
    try:
        expr = pl.sql_expr(sql)
        frame.head(0).filter(expr)  # type errors and unknown functions surface here, not mid-command
    except pl.exceptions.PolarsError as exc:
        raise UsageError(f"bad --where {text!r}: {_short(exc)}") from None
    return expr


_KINDS = {"str": "text", "String": "text", "f64": "numbers", "Float64": "numbers", "i64": "whole numbers",
          "Int64": "whole numbers", "list[str]": "a list of strings", "bool": "true/false"}
_LIST_HINT = "{col} is a list; to test for one of its values write {col} contains 'x'"
#: polars' messages, said in the terms of the --where language (regex on polars' first line -> message)
_SAID: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(r"cannot cast List type|comparison between series '([^']+)' of dtype: List"),
     lambda m: _LIST_HINT.format(col=m.group(1) or "tags")),
    (re.compile(r"cannot compare string with numeric type"),
     lambda m: "compares a text value with a number (quote the number, or compare a numeric column)"),
    (re.compile(r"arithmetic on dtypes (\w+) and|arithmetic on string and numeric"),  # polars 2.x | 1.x
     lambda m: "arithmetic on a text value"),
    (re.compile(r"expected `(\w+)`, got `([^`]+)` for series with name `([^`]+)`"),
     lambda m: f"{m.group(3)} holds {_KINDS.get(m.group(2), m.group(2))}, but the function wants "
               f"{_KINDS.get(m.group(1), m.group(1))}"),
    (re.compile(r"appropriate format to parse dates"),
     lambda m: "a date that cannot be read (write it as '2026-11-01' or '2026-11-01 12:00')"),
    (re.compile(r"'is_in' cannot check for"), lambda m: "the values in 'in (...)' are not all of the column's kind"),
]


def _short(exc: Exception) -> str:
    """Polars' first line in the language's terms when it is a known one, else without the list of every column
    polars appends."""
    first = (str(exc).strip().splitlines() or [""])[0]
    for pattern, say in _SAID:
        m = pattern.search(first)
        if m:
            return say(m)
    return first.split("; valid columns")[0][:300]
