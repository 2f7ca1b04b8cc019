"""Paths relative to the watched root ("" is the root itself, "/" separates), and the two disk looks every part
of the live index makes: is it a real folder, and what does it hold."""

from __future__ import annotations

import os


def join(prefix: str, rel: str) -> str:
    if not prefix:
        return rel
    return f"{prefix}/{rel}" if rel else prefix


def parent(rel: str) -> str:
    return rel.rpartition("/")[0]


def under(rel: str, prefix: str) -> bool:
    """Is ``rel`` strictly inside ``prefix``?"""
    return rel != prefix and (not prefix or rel.startswith(prefix + "/"))


def listdir(path: str) -> frozenset[str] | None:
    try:
        with os.scandir(path) as it:
            return frozenset(e.name for e in it)
    except OSError:
        return None


def is_dir(path: str) -> bool:
    """A folder, not a symlink to one (symlinks are never followed)."""
    try:
        return os.path.isdir(path) and not os.path.islink(path)
    except OSError:
        return False
