"""Which folder is ROOT, the same way for every command, checked before anything is read.

ROOT is the command's ROOT argument (or ``--root``), else ``MLREPO_ROOT``, else ``root`` in a config file, else the
current folder. A missing or empty ROOT is a usage error at once. A folder that is clearly no model store is not
indexed whole without ``--yes``; the rule is cheap and needs no walk: the file system's root, the home folder or a
folder above it, and the top-level system folders (``/tmp``, ``/usr``, ``/var``...). Indexing one of them reads
every file below it, which takes minutes and finds nothing a user meant.

Imports no polars: shell completion and ``--help`` run through here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from mlrepo.errors import UsageError
from mlrepo.repo_index.files import (
    is_within,  # not the operations' one: it would load polars for a TAB
)
from mlrepo.repo_index.remote.location import is_url, parse_url

ENV = "MLREPO_ROOT"
SYSTEM_FOLDERS = frozenset({
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/media", "/mnt", "/opt", "/proc", "/run",
    "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var", "/var/tmp", "/Applications", "/Library", "/System",
    "/Users", "/Volumes", "/private", "/private/tmp", "/private/var",
})


@dataclass(frozen=True, slots=True)
class Root:
    path: str  # absolute, user's ~ expanded
    source: str  # where it came from, for messages and `mlrepo config`


def resolve_root(given: str | None, source: str = "the ROOT argument", config_root: Root | None = None) -> Root:
    """ROOT from the argument, else MLREPO_ROOT, else the config file's ``root``, else the current folder."""
    if given is None:
        env = os.environ.get(ENV)
        if env is not None:
            given, source = env, ENV
        elif config_root is not None:
            return _checked(config_root.path, config_root.source)
        else:
            return Root(os.getcwd(), "the current folder")
    return _checked(given, source)


def _checked(given: str, source: str) -> Root:
    if not given.strip():
        raise UsageError(f"ROOT is empty ({source}): give a folder, or leave ROOT out for the current folder")
    if is_url(given):  # a remote root (s3://, gs://, az://): checked when it is listed
        return Root(parse_url(given).url, source)
    path = os.path.abspath(os.path.expanduser(given))
    if not os.path.exists(path):
        raise UsageError(f"{given}: no such folder ({source})")
    if not os.path.isdir(path):
        raise UsageError(f"{given}: not a folder ({source})")
    return Root(path, source)


def not_a_store(path: str) -> str | None:
    """Why ``path`` is clearly no model store (see the module's rule), or None."""
    real = os.path.realpath(path)
    home = os.path.realpath(os.path.expanduser("~"))
    if real == os.path.realpath(os.sep):
        return "the file system's root"
    if real == home:
        return "your home folder"
    if is_within(home, real):  # real is not home itself (above)
        return "a folder above your home folder"
    if real in SYSTEM_FOLDERS or path in SYSTEM_FOLDERS:
        return "a system folder"
    return None


def check_whole(root: Root, yes: bool) -> None:
    """Refuse to index a folder that is clearly no model store, unless ``--yes``."""
    why = not_a_store(root.path)
    if why and not yes:
        raise UsageError(f"{root.path} ({root.source}) is {why}, not a model store: indexing it would read every "
                         f"file below it; give the folder that holds the models, or add --yes")


def looks_like_path(ref: str) -> bool:
    """A model reference written as a path (absolute, ``~``, ``./``, ``../``) rather than an id or a label."""
    return ref.startswith(("/", "~", "./", "../")) or ref in (".", "..")


def check_refs_inside(root: Root, refs: Sequence[str]) -> None:
    """A model named by a path outside ROOT is a usage error before anything is indexed."""
    if is_url(root.path):  # models of a remote root are named by id, label or URL, never by a local path
        return
    for ref in refs:
        if not looks_like_path(ref):
            continue
        path = os.path.abspath(os.path.expanduser(ref))  # need not exist: a trashed model's folder is gone
        if not is_within(path, root.path):
            raise UsageError(f"{ref} is not under ROOT {root.path} ({root.source}); give the root that holds it "
                             f"(--root DIR, or MLREPO_ROOT)")


def split_root(args: Sequence[str], selecting: bool) -> tuple[str | None, list[str]]:
    """``[ROOT] MODEL…`` (archive, restore): the first argument is ROOT when it is a folder and the other arguments
    (if any) are not paths outside it, or when it is the only argument beside a selector (``--all``,
    ``--where``); otherwise every argument names a model and ROOT comes from elsewhere."""
    if not args:
        return None, []
    first, rest = args[0], list(args[1:])
    if is_url(first):  # a remote ROOT: the command says whether it works on one
        return first, rest
    if selecting and not rest and (looks_like_path(first) or os.path.isdir(first)):
        return first, []  # `restore /typo --all`: a ROOT that is checked, never a model that is searched for
    if os.path.isdir(first) and (selecting or rest):
        if all(not os.path.exists(a) or is_within(os.path.realpath(a), os.path.realpath(first)) for a in rest):
            return first, rest
    return None, list(args)
