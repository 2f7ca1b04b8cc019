"""The freedesktop.org trash (the Trash specification 1.0), with what crash safety needs on top.

send2trash's ``send2trash()`` decides the trash by the device of ``~`` and falls back to a copy-and-delete
(``shutil.move``) when the rename crosses file systems; a kill during that copy would leave the model half here,
half there, and it does not say where the item went; its other helpers are private API. So mlrepo follows the
specification itself: the trash is always on the model's own file system (the home trash under ``$XDG_DATA_HOME``
read when called, else the volume's ``$topdir/.Trash/$uid`` when ``.Trash`` is a sticky, non-symlink folder, else
``$topdir/.Trash-$uid``); the entry's name is chosen as send2trash would (``name 1.ext``...), journaled, its
``.trashinfo`` written exclusively, and the folder moved with one atomic rename. The entry is a normal trash entry,
restorable by any file manager or by ``mlrepo restore``.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, unquote

from mlrepo.errors import FailedError

INFO_SUFFIX = ".trashinfo"


class TrashError(FailedError):
    pass


@dataclass(frozen=True, slots=True)
class Target:
    trash_dir: str  # the trash folder (holds files/ and info/)
    topdir: str  # what the .trashinfo Path is relative to (or absolute when not under it)
    files_path: str  # where the model will be: <trash>/files/<name>
    info_path: str  # its entry: <trash>/info/<name>.trashinfo


def home_trash() -> tuple[str, str]:
    """(topdir, trash folder) of the user's home trash, from the environment as it is now."""
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return data_home, os.path.join(data_home, "Trash")


def mount_point(path: str) -> str:
    path = os.path.realpath(path)
    while not os.path.ismount(path):
        path = os.path.dirname(path)
    return path


def volume_trash(topdir: str) -> str:
    """The spec's trash of a volume: ``$topdir/.Trash/$uid`` when the admin made ``.Trash`` (a real folder with the
    sticky bit), else ``$topdir/.Trash-$uid``."""
    uid = str(os.getuid())
    shared = os.path.join(topdir, ".Trash")
    try:
        st = os.lstat(shared)
        if stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX:
            return os.path.join(shared, uid)
    except OSError:
        pass
    return os.path.join(topdir, f".Trash-{uid}")


def _dev(path: str) -> int:
    while not os.path.exists(path) and path != os.path.dirname(path):
        path = os.path.dirname(path)
    return os.stat(path).st_dev


def trash_for(path: str) -> tuple[str, str]:
    """(topdir, trash folder) for ``path``: on the same file system, so that moving there is one rename."""
    dev = os.lstat(path).st_dev
    topdir, trash = home_trash()
    if _dev(trash) == dev:
        return topdir, trash
    mount = mount_point(path)
    trash = volume_trash(mount)
    if _dev(trash) != dev:
        raise TrashError(f"no trash on the file system of {path}; use --archive or --delete")
    return mount, trash


def prepare(path: str) -> Target:
    """Where ``path`` will go in the trash, with the name send2trash would choose (folders created, mode 0700)."""
    topdir, trash = trash_for(path)
    files_dir, info_dir = os.path.join(trash, "files"), os.path.join(trash, "info")
    for folder in (files_dir, info_dir):
        try:
            os.makedirs(folder, 0o700, exist_ok=True)
        except OSError as exc:
            raise TrashError(f"no usable trash on the file system of {path}: {exc.strerror or exc}") from None
    if _dev(files_dir) != os.lstat(path).st_dev:
        raise TrashError(f"the trash {trash} is on another file system than {path}")
    name = os.path.basename(path.rstrip(os.sep))
    base, ext = os.path.splitext(name)
    counter, dest = 0, name
    while os.path.lexists(os.path.join(files_dir, dest)) or os.path.lexists(
            os.path.join(info_dir, dest + INFO_SUFFIX)):
        counter += 1
        dest = f"{base} {counter}{ext}"
    return Target(trash, topdir, os.path.join(files_dir, dest), os.path.join(info_dir, dest + INFO_SUFFIX))


def original_path(info_path: str, topdir: str | None = None) -> str | None:
    """The ``Path=`` of a .trashinfo file, as an absolute path."""
    try:
        with open(info_path, encoding="utf-8", errors="surrogateescape") as fh:
            for line in fh:
                if line.startswith("Path="):
                    value = os.fsdecode(unquote(line[5:].rstrip("\n"), errors="surrogateescape").encode(
                        "utf-8", "surrogateescape"))
                    if not os.path.isabs(value):
                        base = topdir or os.path.dirname(os.path.dirname(os.path.dirname(info_path)))
                        value = os.path.join(base, value)
                    return os.path.normpath(value)
    except OSError:
        return None
    return None


def trash_info(path: str, topdir: str) -> str:
    """A ``.trashinfo``: the original path (relative to the trash's top folder when under it, else absolute; never
    with ``..``), URL-encoded, and the local deletion time."""
    path = os.path.abspath(path)
    top = topdir.rstrip(os.sep) + os.sep
    shown = path[len(top):] if path.startswith(top) else path
    encoded = quote(os.fsencode(shown), safe="/")
    return f"[Trash Info]\nPath={encoded}\nDeletionDate={datetime.now().strftime('%Y-%m-%dT%H:%M:%S')}\n"


def move(path: str, target: Target, fault=None) -> Target:
    """Trash ``path``: write its .trashinfo (created exclusively at the journaled name), then one rename into
    ``files/``. ``fault`` is called between the two (crash tests)."""
    info = trash_info(path, target.topdir)
    fd = os.open(target.info_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(info)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        os.unlink(target.info_path)
        raise
    if fault:
        fault("trash:info-written")
    try:
        os.rename(path, target.files_path)
    except BaseException:
        os.unlink(target.info_path)
        raise
    return target
