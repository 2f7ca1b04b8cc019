"""Where mlrepo may act: inside the root, never through a symlink, never in its own or the trash's folders."""

from __future__ import annotations

import os

from mlrepo.repo_index import files
from mlrepo.repo_index.remote.location import is_url
from mlrepo.repo_index.state import (
    STATE_DIR,
    StateError,
    checked_dir,
    is_mlflow_file_store,
)


def real(path: str) -> str:
    return os.path.realpath(path)


def is_within(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or inside it, both resolved (symlinks followed, as the kernel would)."""
    return files.is_within(real(path), real(folder))


def model_path_problem(path: str, root: str) -> str | None:
    """Why mlrepo must not move or remove the folder at ``path`` (None when it may)."""
    if not path:
        return "no folder"
    if is_url(root):
        return _key_problem(path, root)
    if os.path.islink(path):
        target = os.readlink(path)
        where = "outside the root" if not is_within(path, root) else "inside the root"
        return f"folder is a symlink (to {target}, {where}); links are not followed"
    if not is_within(path, root):
        return "outside the root"
    if real(path) == real(root):
        return "is the root itself"
    if any(part == ".Trash" or part.startswith(".Trash-") or part == ".mlrepo"
           for part in os.path.relpath(real(path), real(root)).split(os.sep)):
        return "inside a trash or mlrepo folder"
    if not os.path.lexists(path):
        return "no folder at its path"
    if not os.path.isdir(path):
        return "not a folder"
    return None


def _key_problem(url: str, root: str) -> str | None:
    """The same rules for a model of a remote root (a prefix below the root's URL); whether objects are there is
    what the remote plan's own listing finds out."""
    base = root.rstrip("/") + "/"
    if not url.startswith(base):
        return "outside the root"
    parts = url[len(base):].rstrip("/").split("/")
    if parts == [""]:
        return "is the root itself"
    if any(part in ("", ".", "..") for part in parts):
        return "not a plain key below the root"
    if STATE_DIR in parts:
        return "inside a trash or mlrepo folder"
    return None


def scratch_dir(root: str, near: str, kind: str) -> str:
    """A folder for tombstones or staging on the same file system as ``near`` (so a rename there is atomic):
    ``<state>/<kind>`` when that is on the same device, else ``<top>/.mlrepo/<kind>`` where ``<top>`` is
    the highest folder of the root on ``near``'s device (the scanner never looks inside ``.mlrepo``)."""
    while not os.path.isdir(near) and near != os.path.dirname(near):
        near = os.path.dirname(near)
    dev = os.stat(near).st_dev
    base = checked_dir(root)
    if os.stat(base).st_dev == dev:
        return checked_dir(root, kind)
    top = near
    while True:
        up = os.path.dirname(top)
        if up == top or not is_within(up, root) or os.stat(up).st_dev != dev:
            break
        top = up
    if os.path.realpath(top) == os.path.realpath(root) and is_mlflow_file_store(root):
        raise StateError(f"no place for a temporary folder on the file system of {near} outside the MLflow "
                         "store (its parent is on another disk); nothing was moved")
    folder = top
    for part in (STATE_DIR, kind):  # real folders only, never through a planted symlink
        folder = os.path.join(folder, part)
        try:
            os.mkdir(folder)
        except FileExistsError:
            pass
        if os.path.islink(folder) or not os.path.isdir(folder):
            raise StateError(f"{folder} is not a real folder; nothing was moved")
    return folder
