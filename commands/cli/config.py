"""Settings from the environment and optional config files, for options the user did not type.

Precedence, highest first: the command line; an environment variable (``MLREPO_METRIC``...); the project's config
(the nearest ``mlrepo.toml``, or ``pyproject.toml`` with a ``[tool.mlrepo]`` table, searched from ROOT upward); the
user's config (``MLREPO_CONFIG``, else ``<user config dir>/mlrepo/config.toml``); the built-in default. The values
become click's ``default_map``, so a typed option always wins. Imports no polars.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Literal

from mlrepo.errors import UsageError

Kind = Literal["str", "int", "list"]


@dataclass(frozen=True, slots=True)
class Setting:
    key: str  # as written in a config file
    env: str
    kind: Kind
    targets: tuple[tuple[str, str], ...]  # (command, parameter) that take it as their default
    help: str


SETTINGS = (
    Setting("root", "MLREPO_ROOT", "str", (), "ROOT when none is given (relative to the config file's folder)"),
    Setting("metric", "MLREPO_METRIC", "list", (("best", "metrics"), ("prune", "metrics"), ("history", "metric")),
            "the metric best, prune --keep-top and history rank by"),
    Setting("columns", "MLREPO_COLUMNS", "list", (("ls", "columns"),), "the columns ls shows"),
    Setting("keep-top", "MLREPO_KEEP_TOP", "int", (("prune", "keep_top"),), "prune --keep-top"),
    Setting("keep-last", "MLREPO_KEEP_LAST", "int", (("prune", "keep_last"),), "prune --keep-last"),
    Setting("keep-tag", "MLREPO_KEEP_TAG", "list", (("prune", "keep_tags"),), "prune --keep-tag"),
    Setting("per", "MLREPO_PER", "str", (("prune", "per"),), "prune --per"),
    Setting("older-than", "MLREPO_OLDER_THAN", "str", (("prune", "older_than"),), "prune --older-than"),
    Setting("recent", "MLREPO_RECENT", "str", (("prune", "recent"),),
            "how recently changed a model must be to be always kept (the guard; prune --recent)"),
    Setting("color", "MLREPO_COLOR", "str", (), "--color auto|always|never"),
)
BY_KEY = {s.key: s for s in SETTINGS}
USER_CONFIG_ENV = "MLREPO_CONFIG"


@dataclass(frozen=True, slots=True)
class Value:
    setting: Setting
    value: object
    source: str  # "MLREPO_METRIC", "/path/mlrepo.toml", "default"


def _load_toml(path: str) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise UsageError(f"cannot read the config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"the config file {path} is not valid TOML: {exc}") from None


def user_config_path() -> str:
    explicit = os.environ.get(USER_CONFIG_ENV)
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    if sys.platform.startswith("linux"):  # the XDG rule platformdirs follows here, without its 12 ms import
        base = os.environ.get("XDG_CONFIG_HOME", "").strip() or os.path.expanduser("~/.config")
        return os.path.join(base, "mlrepo", "config.toml")
    import platformdirs

    return os.path.join(platformdirs.user_config_dir("mlrepo"), "config.toml")


def project_config(start: str) -> tuple[str, dict] | None:
    """The nearest ``mlrepo.toml`` (or ``pyproject.toml`` holding ``[tool.mlrepo]``) from ``start`` upward."""
    folder = os.path.abspath(start)
    while True:
        candidate = os.path.join(folder, "mlrepo.toml")
        if os.path.isfile(candidate):
            return candidate, _load_toml(candidate)
        candidate = os.path.join(folder, "pyproject.toml")
        if os.path.isfile(candidate):
            table = _load_toml(candidate).get("tool", {}).get("mlrepo")
            if isinstance(table, dict):
                return candidate, table
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def _coerce(setting: Setting, raw: object, source: str) -> object:
    if setting.kind == "list":
        if isinstance(raw, str):
            items = [v.strip() for v in raw.split(",") if v.strip()]
        elif isinstance(raw, list) and all(isinstance(v, str) for v in raw):
            items = list(raw)
        else:
            raise UsageError(f"{setting.key} in {source} must be a string or a list of strings")
        return items
    if setting.kind == "int":
        try:
            value = int(raw) if isinstance(raw, (int, str)) and not isinstance(raw, bool) else None
        except ValueError:
            value = None
        if value is None or value < 0:
            raise UsageError(f"{setting.key} in {source} must be a whole number >= 0, not {raw!r}")
        return value
    if not isinstance(raw, (str, int, float)) or isinstance(raw, bool):
        raise UsageError(f"{setting.key} in {source} must be a string, not {raw!r}")
    return str(raw)


def _from_table(table: dict, path: str) -> dict[str, Value]:
    found: dict[str, Value] = {}
    for key, raw in table.items():
        setting = BY_KEY.get(key.replace("_", "-"))
        if setting is None:
            raise UsageError(f"unknown setting {key!r} in {path}; settings are: {', '.join(BY_KEY)}")
        value = _coerce(setting, raw, path)
        if setting.key == "root":
            value = os.path.normpath(os.path.join(os.path.dirname(path), os.path.expanduser(str(value))))
        found[setting.key] = Value(setting, value, path)
    return found


def settings_in_force(start: str) -> tuple[dict[str, Value], list[str]]:
    """Every setting that is set, with where it came from, and the files looked at (found or not)."""
    values: dict[str, Value] = {}
    looked: list[str] = []
    user = user_config_path()
    looked.append(user)
    if os.path.isfile(user):
        values.update(_from_table(_load_toml(user), user))
    project = project_config(start)
    if project is not None:
        looked.append(project[0])
        values.update(_from_table(project[1], project[0]))
    for setting in SETTINGS:
        raw = os.environ.get(setting.env)
        if raw is not None and raw != "":
            values[setting.key] = Value(setting, _coerce(setting, raw, setting.env), setting.env)
    return values, looked


def default_map(values: dict[str, Value]) -> dict[str, dict[str, object]]:
    """click's ``default_map``: command -> parameter -> default."""
    out: dict[str, dict[str, object]] = {}
    for v in values.values():
        for command, param in v.setting.targets:
            value = v.value
            if param in ("metric",) and isinstance(value, list):
                value = value[0] if value else None
            elif isinstance(value, list):
                value = tuple(value)
            out.setdefault(command, {})[param] = value
    return out


def start_folder(args: list[str]) -> str:
    """Where the project config is searched from: ``--root DIR``, else the first argument that is a folder (the
    ROOT argument), else MLREPO_ROOT, else the current folder."""
    for i, arg in enumerate(args):
        if arg == "--root" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--root="):
            return arg.split("=", 1)[1]
    for arg in args:
        if not arg.startswith("-") and os.path.isdir(arg):
            return arg
    return os.environ.get("MLREPO_ROOT") or os.getcwd()
