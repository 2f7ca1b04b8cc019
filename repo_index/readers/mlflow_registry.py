"""MLflow's model registry: which runs a registered model version (and its aliases) comes from.

A run behind a registered version is precious to its owner (it is what gets deployed), so ``prune`` and
``archive`` never remove it. Read when a plan is made, never cached: registering a version changes no file of the
run. File stores keep the registry under ``<mlruns>/models/<name>/version-<n>/meta.yaml`` (aliases in
``<mlruns>/models/<name>/meta.yaml``); SQLite stores in the ``model_versions`` and ``registered_model_aliases``
tables. A registry that cannot be read yields nothing here; the plan then says so rather than guess.
"""

from __future__ import annotations

import os
import sqlite3

from mlrepo.repo_index.readers.parsing import MetaError, load_file

MODELS = "models"


def uri_path(path: str) -> str:
    """A path for SQLite's ``file:`` URI: the characters its parser treats specially are escaped."""
    return path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")


class RegistryError(Exception):
    """The registry exists but cannot be read."""


def _describe(name: str, version: str, aliases: dict[tuple[str, str], list[str]]) -> str:
    named = aliases.get((name, version), [])
    return f"{name} v{version}" + (f" (alias {', '.join(sorted(named))})" if named else "")


def file_store_registered(mlruns: str) -> dict[str, list[str]]:
    """run id -> the versions registered from it (``churner v1 (alias champion)``) in a file store."""
    base = os.path.join(mlruns, MODELS)
    out: dict[str, list[str]] = {}
    try:
        names = sorted(os.listdir(base))
    except FileNotFoundError:
        return out
    except OSError as exc:
        raise RegistryError(f"{base}: {exc.strerror}") from None
    for name in names:
        folder = os.path.join(base, name)
        if not os.path.isdir(folder):
            continue
        aliases: dict[tuple[str, str], list[str]] = {}
        try:
            meta = load_file(os.path.join(folder, "meta.yaml"))
            for alias, version in (meta.get("aliases") or {}).items() if isinstance(meta, dict) else ():
                aliases.setdefault((name, str(version)), []).append(str(alias))
        except MetaError:
            pass  # no aliases readable: the versions still protect their runs
        for entry in sorted(os.listdir(folder)):
            if not entry.startswith("version-"):
                continue
            try:
                version = load_file(os.path.join(folder, entry, "meta.yaml"))
            except MetaError as exc:
                raise RegistryError(f"{name}/{entry}: {exc}") from None
            if isinstance(version, dict) and version.get("run_id"):
                label = _describe(name, str(version.get("version", entry[8:])), aliases)
                out.setdefault(str(version["run_id"]), []).append(label)
    return out


def sqlite_registered(db: str) -> dict[str, list[str]]:
    """run id -> the versions registered from it, in an ``mlflow.db``."""
    out: dict[str, list[str]] = {}
    try:
        con = sqlite3.connect(f"file:{uri_path(os.path.abspath(db))}?mode=ro", uri=True, timeout=1.5)
    except sqlite3.Error as exc:
        raise RegistryError(f"{os.path.basename(db)}: {exc}") from None
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "model_versions" not in tables:
            return out
        aliases: dict[tuple[str, str], list[str]] = {}
        if "registered_model_aliases" in tables:
            for name, alias, version in con.execute("SELECT name, alias, version FROM registered_model_aliases"):
                aliases.setdefault((str(name), str(version)), []).append(str(alias))
        for name, version, run_id in con.execute("SELECT name, version, run_id FROM model_versions"):
            if run_id:
                out.setdefault(str(run_id), []).append(_describe(str(name), str(version), aliases))
    except sqlite3.Error as exc:
        raise RegistryError(f"{os.path.basename(db)}: {exc}") from None
    finally:
        con.close()
    return out
