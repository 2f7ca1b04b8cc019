"""Helpers for the tests: where the fixtures are, running the installed ``mlrepo`` as a user does, what a tree looks
like (every file's hash, mode, mtime), ageing a copied fixture, a clean trash per test, and reading an archive
independently of mlrepo's own reader. Fixtures that use them live in ``conftest.py``."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import zstandard

FIXTURES = Path(__file__).parent / "fixtures"
CASCADE_018 = FIXTURES / "cascade" / "cascade-0.18"
CASCADE_012 = FIXTURES / "cascade" / "cascade-0.12"
CASCADE_07 = FIXTURES / "cascade" / "cascade-0.7"

OLD = 1_700_000_000  # 2023-11-14: older than any "changed in the last minutes" window


def _hash(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def snapshot(folder: str | os.PathLike, dir_mtimes: bool = True, skip: tuple[str, ...] = ()) -> dict[str, tuple]:
    """rel path -> (type, mode, mtime_ns, size, sha256 or link target) for the folder itself and all inside it.
    ``dir_mtimes=False`` leaves folders' mtimes out (a parent's mtime changes when a child moves in or out)."""
    folder = os.fspath(folder)
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        rel_dir = os.path.relpath(dirpath, folder)
        if rel_dir != "." and rel_dir.split(os.sep)[0] in skip:
            dirnames[:] = []
            continue
        dirnames[:] = [d for d in dirnames if not (rel_dir == "." and d in skip)]
        for name in ["", *dirnames, *filenames]:
            path = os.path.join(dirpath, name) if name else dirpath
            if name == "" and rel_dir != ".":
                continue  # each folder is listed by its parent
            rel = os.path.normpath(os.path.join(rel_dir, name)) if name else ""
            st = os.lstat(path)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", mode, st.st_mtime_ns, 0, os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("d", mode, st.st_mtime_ns if dir_mtimes else 0, 0, "")
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("f", mode, st.st_mtime_ns, st.st_size, _hash(path))
            else:
                out[rel] = ("?", mode, st.st_mtime_ns, 0, "")
    return out


def age(folder: str | os.PathLike, when: int = OLD) -> None:
    """Set every mtime (files, folders, links) under ``folder`` to ``when``: copied fixtures look freshly written."""
    folder = os.fspath(folder)
    for dirpath, dirnames, filenames in os.walk(folder, topdown=False):
        for name in [*filenames, *dirnames]:
            os.utime(os.path.join(dirpath, name), (when, when), follow_symlinks=False)
    os.utime(folder, (when, when))


def archive_snapshot(path: str | os.PathLike) -> dict[str, tuple]:
    """What ``snapshot`` would say of the folder in a .tar.zst, read with the standard library and zstandard only."""
    out: dict[str, tuple] = {}
    with open(path, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as stream, \
            tarfile.open(fileobj=stream, mode="r|") as tar:
        top = None
        for m in tar:
            name = m.name.rstrip("/")
            top = top or name
            rel = "" if name == top else os.path.relpath(name, top)
            text = m.pax_headers.get("mtime")
            if text:
                whole, _, frac = text.partition(".")
                mtime = int(whole) * 1_000_000_000 + int((frac + "0" * 9)[:9])
            else:
                mtime = int(m.mtime) * 1_000_000_000
            if m.isdir():
                out[rel] = ("d", m.mode, mtime, 0, "")
            elif m.issym():
                out[rel] = ("l", m.mode, mtime, 0, m.linkname)
            elif m.islnk():
                out[rel] = out[os.path.relpath(m.linkname, top)]
            else:
                h = hashlib.sha256(tar.extractfile(m).read()).hexdigest()
                out[rel] = ("f", m.mode, mtime, m.size, h)
    return out


def trash_env(base: Path) -> dict[str, str]:
    """An environment whose home and XDG data folder (so the freedesktop trash) are under ``base``."""
    home, data = base / "home", base / "xdg"
    home.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(data)}


@dataclass
class Result:
    code: int
    out: str
    err: str


def mlrepo(*args: object, env: dict[str, str] | None = None, stdin: str | None = "", timeout: float = 120,
           cwd: str | os.PathLike | None = None) -> Result:
    """``python -m mlrepo ARGS`` (the installed entry point) in a real subprocess: exit codes and streams as a user
    sees them; stdin is a pipe, so never a terminal."""
    proc = subprocess.run([sys.executable, "-m", "mlrepo", *map(str, args)], capture_output=True, text=True,
                          input=stdin, env=env, timeout=timeout, cwd=cwd)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def du_bytes(*paths: str | os.PathLike) -> int:
    """What GNU ``du -scB1`` says the folders take together: allocated blocks, each inode once."""
    out = subprocess.run(["du", "-scB1", *map(os.fspath, paths)], check=True, capture_output=True, text=True).stdout
    return int(out.splitlines()[-1].split()[0])
