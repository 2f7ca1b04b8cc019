"""DVC experiments: rows without folders, read from the project's git refs with the ``git`` CLI.

``dvc exp run`` commits each experiment to a ref ``refs/exps/<baseline sha[:2]>/<sha[2:]>/<name>`` and never checks
it out: its params and metrics exist only in that commit. They are read here with ``git`` itself (``for-each-ref``,
``cat-file --batch-check`` for the sizes, then ``cat-file --batch`` for the blobs under the size limit), not through
``dvc``: importing dvc costs seconds and pulls in a large tree of packages, while git is on every machine that has
experiments, and its plumbing output is a stable format. Every call is bounded by a timeout; a missing, failing or
hanging git is one message on the project, never a hang.

A project is read only when it holds its own ``.git`` folder (the DVC project is the git root, as ``dvc init``
makes it). Each experiment's params and metrics come from the files its own commit's ``dvc.yaml`` names, exactly as
the project's row reads its working tree (``dvc.named_files``).

The scanner asks ``DvcExpStore`` about the ``.git`` of every ``dvc`` row, as it asks the MLflow reader about an
``mlflow.db``: the experiments are a store of many rows, re-read only when its stamp changes. The stamp is what git
itself changes when an experiment is made or removed: the loose refs under ``refs/exps`` (folders and files) and
``packed-refs``. An unchanged stamp costs a few ``lstat`` calls and no git process. git is run only when experiment
refs exist, and never on a ``.git`` that is a file (a worktree or submodule pointer: no rows, as a project without
``.git``) or a link (a note), or whose ``HEAD``, ``config``, ``packed-refs`` or refs
are not regular files (a named pipe there would hold git until its timeout), nor when its ``config`` includes
other files or its ``objects/info/alternates`` or a pack is not a regular file. What git runs is fenced too (see
``_SAFE``): the repository under ROOT is untrusted input, and its config can name programs.
"""

from __future__ import annotations

import mmap
import os
import re
import stat as stat_mod
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone

from mlrepo.errors import in_words
from mlrepo.repo_index.readers.dvc import DEFAULT_PARAMS, DVC_YAML, named_files
from mlrepo.repo_index.readers.parsing import (
    MAX_META_BYTES,
    MetaError,
    flatten,
    kind_in_words,
    open_regular,
    parse_json,
    read_bytes,
    parse_yaml,
)
from mlrepo.repo_index.records import Metric, ModelRecord, to_number

FORMAT = "dvc-exp"
EXP_REFS = "refs/exps"
GIT_TIMEOUT = 10.0  # seconds for one git call: a hung git (a network file system, a lock) must not hang the index
MAX_EXPERIMENTS = 10_000  # rows per project: more is a note, not an index flooded by one repository
# The repository is untrusted input: its config may name programs (a partial clone's ``remote.*.uploadpack`` runs
# when an object is missing, ``core.fsmonitor``, ``core.sshCommand``, hooks). No transport at all, no lazy fetch, no
# hooks or fsmonitor, and no system or user config (whose settings are not the repository's to rely on).
_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C", "GIT_NO_LAZY_FETCH": "1",
        "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
_SAFE = ("-c", "protocol.allow=never", "-c", "core.fsmonitor=false", "-c", f"core.hooksPath={os.devnull}",
         "--no-pager", "--no-replace-objects")
_GIT_FILES = ("HEAD", "config", "packed-refs", "commondir")  # what git opens before it reads a ref


class GitError(MetaError):
    """git is missing, failed or did not answer in time (said in the user's words)."""


@dataclass(frozen=True, slots=True)
class ExpRef:
    name: str
    commit: str
    ref: str


def _git(project: str, args: list[str], git: str, timeout: float, stdin: bytes | None = None) -> bytes:
    """One git call on the project's own ``.git``: ``--git-dir`` and an environment without ``GIT_*`` variables,
    so neither a parent repository nor the caller's ``GIT_DIR``/``GIT_NAMESPACE`` changes what is read; and
    ``_SAFE``/``_ENV``, so nothing the repository's config names is run (``-c protocol.allow=never`` stops a lazy
    fetch where git predates ``GIT_NO_LAZY_FETCH``, 2.44)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")} | _ENV
    try:
        done = subprocess.run([git, *_SAFE, f"--git-dir={os.path.join(project, '.git')}", *args], input=stdin,
                              capture_output=True, timeout=timeout, env=env, check=False)
    except FileNotFoundError:
        raise GitError("git is not installed (or not on PATH): DVC experiments cannot be read") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git did not answer within {timeout:g} s: DVC experiments not read") from None
    except OSError as exc:
        raise GitError(f"git could not be run: {in_words(exc)}") from None
    if done.returncode != 0:
        why = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitError(f"git {args[0]} failed: {why[-1] if why else f'exit {done.returncode}'}")
    return done.stdout


def experiment_refs(project: str, git: str = "git", timeout: float = GIT_TIMEOUT) -> list[ExpRef]:
    """The project's experiments, by name. Refs outside ``<2 hex>/<38 hex>/<name>`` (dvc's ``exec/`` bookkeeping,
    its queue) are not experiments. Only the refs are listed here: a ref to a missing object is that experiment's
    problem, not the project's (``for-each-ref`` with a commit field would fail for all of them)."""
    out = _git(project, ["for-each-ref", "--format=%(objectname) %(refname)", EXP_REFS], git, timeout)
    refs = []
    for line in out.decode("utf-8", "replace").splitlines():
        commit, _, ref = line.partition(" ")
        parts = ref.split("/")
        if len(parts) == 5 and len(parts[2]) == 2 and len(parts[3]) == 38:
            refs.append(ExpRef(parts[4], commit, ref))
    return sorted(refs, key=lambda r: (r.name, r.ref))


def _objects(project: str, specs: list[str], git: str, timeout: float, kind: str,
             max_bytes: int = MAX_META_BYTES) -> dict[str, bytes | str]:
    """``spec`` (an object id, ``commit:path``) -> the object's bytes when it is a ``kind`` of at most
    ``max_bytes``, else why it is not read ("missing", "a tree", "larger than ...")."""
    if not specs:
        return {}
    check = _git(project, ["cat-file", "--batch-check"], git, timeout, "\n".join(specs).encode() + b"\n")
    lines = check.split(b"\n")  # not splitlines(): a missing spec is echoed, and may hold \f or \x1c
    if lines[-1:] == [b""]:
        lines.pop()
    if len(lines) != len(specs):  # answers pair with requests by position: any shift misattributes them all
        raise GitError(f"git cat-file gave {len(lines)} answers to {len(specs)} requests: DVC experiments not read")
    out: dict[str, bytes | str] = {}
    wanted = []
    for spec, line in zip(specs, lines, strict=True):
        fields = line.decode("utf-8", "replace").split()
        if len(fields) != 3 or not fields[2].isdigit():
            out[spec] = "missing"
        elif fields[1] != kind:
            out[spec] = f"a {fields[1]}, not a {kind}"
        elif int(fields[2]) > max_bytes:
            out[spec] = f"larger than {max_bytes // 2**20} MiB, not read"
        else:
            wanted.append((spec, fields[0]))
    if wanted:
        data = _git(project, ["cat-file", "--batch"], git, timeout,
                    "\n".join(oid for _, oid in wanted).encode() + b"\n")
        pos = 0
        for spec, _oid in wanted:  # "<oid> <type> <size>\n<bytes>\n", or "<oid> missing\n" if gc took it since
            end = data.find(b"\n", pos)
            header = data[pos:end].split() if end >= 0 else []
            if len(header) != 3 or not header[2].isdigit():
                out[spec] = "missing"
                pos = end + 1 if end >= 0 else len(data)
                continue
            size = int(header[2])
            out[spec] = data[end + 1:end + 1 + size]
            pos = end + 1 + size + 1
    return out


def _committed(commit: bytes) -> datetime | None:
    """The committer time of a raw commit object."""
    for line in commit.split(b"\n\n", 1)[0].split(b"\n"):
        if line.startswith(b"committer "):
            stamp = line.rsplit(b" ", 2)[-2]
            try:
                return datetime.fromtimestamp(int(stamp), timezone.utc) if stamp.isdigit() else None
            except (OverflowError, ValueError, OSError):  # a year past 9999: a hand-made commit, no time to show
                return None
    return None


def _parse(rel: str, data: bytes) -> object:
    return parse_json(rel, data) if rel.endswith(".json") else parse_yaml(rel, data)


def read_experiments(project: str, git: str = "git", timeout: float = GIT_TIMEOUT,
                     max_bytes: int = MAX_META_BYTES, limit: int = MAX_EXPERIMENTS) -> list[ModelRecord]:
    """One record per experiment of the DVC project at ``project`` (absolute); [] when it has no own ``.git`` or
    no experiments. When git cannot be asked, one record on the project's refs carries the reason."""
    if not os.path.isdir(os.path.join(project, ".git")) or os.path.islink(os.path.join(project, ".git")):
        return []
    try:
        listed = experiment_refs(project, git, timeout)
        refs = listed[:limit]
        commits = _objects(project, [r.commit for r in refs], git, timeout, "commit", max_bytes)
        specs = [f"{r.commit}:{rel}" for r in refs for rel in (DVC_YAML, DEFAULT_PARAMS)]
        first = _objects(project, specs, git, timeout, "blob", max_bytes)
        named = {r.commit: _usable(named_files(_spec_of(first.get(f"{r.commit}:{DVC_YAML}")))) for r in refs}
        more = sorted({f"{r.commit}:{rel}" for r in refs
                       for rel in (*named[r.commit].params, *named[r.commit].metrics)} - first.keys())
        blobs = {**first, **_objects(project, more, git, timeout, "blob", max_bytes)}
    except GitError as exc:
        return [note(project, str(exc))]
    records = [_guarded(project, r, commits.get(r.commit), named[r.commit], blobs) for r in refs]
    if len(listed) > limit:
        records[-1].add_error(f"only the first {limit} of {len(listed)} experiments (by name) are indexed")
    return records


def note(project: str, why: str) -> ModelRecord:
    """The one row that says why a project's experiments were not read; its path is the project's ``.git`` (the
    store), so the scanner asks again next time instead of trusting the failure."""
    rec = ModelRecord(path=os.path.join(project, ".git"), format=FORMAT,
                      repo=os.path.basename(os.path.dirname(project)) or None, line=os.path.basename(project),
                      name="experiments")
    rec.add_error(why)
    return rec


@dataclass(frozen=True, slots=True)
class Named:
    """The files an experiment's ``dvc.yaml`` names, and the names that cannot be asked of git."""

    params: list[str]
    metrics: list[str]
    refused: list[str]


def _usable(files: tuple[list[str], list[str]]) -> Named:
    """``cat-file --batch`` takes one name a line: a name with a line break would be two requests."""
    def bad(rel: str) -> bool:
        return "\n" in rel or "\r" in rel
    params, metrics = files
    return Named([r for r in params if not bad(r)], [r for r in metrics if not bad(r)],
                 [r for r in dict.fromkeys((*params, *metrics)) if bad(r)])


def _spec_of(blob: bytes | str | None) -> dict:
    if not isinstance(blob, bytes):
        return {}
    try:
        spec = parse_yaml(DVC_YAML, blob)
    except MetaError:
        return {}
    return spec if isinstance(spec, dict) else {}


def _row(project: str, ref: ExpRef, when: datetime | None) -> ModelRecord:
    return ModelRecord(path=os.path.join(project, ".git", ref.ref), format=FORMAT,
                       repo=os.path.basename(os.path.dirname(project)) or None, line=os.path.basename(project),
                       name=ref.name, created_at=when, updated_at=when, status="finished", source_id=ref.commit)


def _guarded(project: str, ref: ExpRef, commit: bytes | str | None, files: Named,
             blobs: dict[str, bytes | str]) -> ModelRecord:
    """``_record``, where a reader bug on one experiment's contents costs only that experiment's row."""
    try:
        return _record(project, ref, commit, files, blobs)
    except Exception as exc:  # noqa: BLE001 - the other experiments are still read
        rec = _row(project, ref, None)
        rec.add_error(f"experiment {ref.name}: {in_words(exc)}")
        return rec


def _record(project: str, ref: ExpRef, commit: bytes | str | None, files: Named,
            blobs: dict[str, bytes | str]) -> ModelRecord:
    rec = _row(project, ref, _committed(commit) if isinstance(commit, bytes) else None)
    if not isinstance(commit, bytes):
        rec.add_error(f"experiment {ref.name}: its commit {ref.commit[:12]} is {commit or 'missing'}")
        return rec
    for rel in files.refused:
        rec.add_error(f"{rel!r} in experiment {ref.name}: a file name with a line break, not read")
    params_files, metrics_files = files.params, files.metrics
    if f"{ref.commit}:{DEFAULT_PARAMS}" in blobs and DEFAULT_PARAMS not in params_files:
        params_files = [DEFAULT_PARAMS, *params_files]
    for rel in params_files:
        data = _load(rec, ref, rel, blobs)
        if isinstance(data, dict):
            for key, value in flatten(data).items():
                rec.params.setdefault(key, value)
    qualify = len(metrics_files) > 1
    for rel in metrics_files:
        data = _load(rec, ref, rel, blobs)
        if not isinstance(data, dict):
            continue
        for name, raw in flatten(data).items():
            value = to_number(raw)
            if name != "step" and value is not None:
                rec.metrics.append(Metric(name=name, value=value, dataset=rel if qualify else None))
    return rec


def _load(rec: ModelRecord, ref: ExpRef, rel: str, blobs: dict[str, bytes | str]) -> object:
    blob = blobs.get(f"{ref.commit}:{rel}")
    if blob == "missing" or blob is None:
        return None  # not produced by this experiment
    if isinstance(blob, str):
        rec.add_error(f"{rel} in experiment {ref.name}: {blob}")
        return None
    try:
        return _parse(rel, blob)
    except MetaError as exc:
        rec.add_error(f"{rel} in experiment {ref.name}: {exc}")
        return None


def _refs_walk(git_dir: str) -> tuple[list[int], bool, str | None]:
    """The stamp parts of ``refs/exps`` (each folder's and ref file's mode, inode, mtime, ctime and size, links not
    followed: a ref rewritten in place with its old mtime put back still changes its ctime), whether it holds a
    ref file, and the first entry that is neither a folder nor a regular file."""
    parts: list[int] = []
    loose, odd = False, None
    stack = [os.path.join(git_dir, EXP_REFS)]
    while stack:
        path = stack.pop()
        try:
            st = os.lstat(path)
        except OSError:
            parts.append(-1)
            continue
        parts.extend((st.st_mode, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size))
        if stat_mod.S_ISREG(st.st_mode):
            loose = True
        elif not stat_mod.S_ISDIR(st.st_mode):
            odd = odd or f"{os.path.relpath(path, git_dir)} is {kind_in_words(st.st_mode)}"
        else:
            try:
                with os.scandir(path) as it:
                    stack.extend(sorted((e.path for e in it), reverse=True))
            except OSError:
                parts.append(-2)
    return parts, loose, odd


def _packed_has_exps(git_dir: str) -> bool:
    """Whether ``packed-refs`` names a ref under ``refs/exps/``: a search of the mapped file (memchr speed, so a
    packed-refs of millions of refs costs a fraction of a second), never a read of it into memory."""
    try:
        fd = open_regular(os.path.join(git_dir, "packed-refs"))
    except (OSError, MetaError):
        return False
    try:
        if os.fstat(fd).st_size == 0:
            return False
        with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as data:
            return data.find(f" {EXP_REFS}/".encode()) >= 0
    except (OSError, ValueError):
        return False
    finally:
        os.close(fd)


_INCLUDE = re.compile(rb"\[\s*include", re.IGNORECASE)  # [include] or [includeIf "..."], anywhere on a line
MAX_CONFIG_BYTES = 2**20


def _refused(git_dir: str) -> str | None:
    """Why git must not be run on ``git_dir``, in words; None when nothing it opens can hold it. A config include
    may name a named pipe or a file outside the repository, and so may ``commondir`` (which moves the whole
    repository elsewhere, unchecked); git opens every alternates file and pack it finds;
    a named pipe there would hold git until its timeout on every run (a failure is asked again each time). An
    include is refused outright, wherever it points: git's own config rules decide where, and they are not
    repeated here (a false match, "[include" in a value, costs only this project's experiments)."""
    try:
        config = read_bytes(os.path.join(git_dir, "config"), MAX_CONFIG_BYTES)
    except MetaError as exc:
        if os.path.lexists(os.path.join(git_dir, "config")):
            return f".git/{exc}"
        config = b""
    if _INCLUDE.search(config):
        return ".git/config includes other files"
    if os.path.lexists(os.path.join(git_dir, "commondir")):  # git would read refs, objects, config from there
        return ".git/commondir points at another repository"
    alternates = os.path.join(git_dir, "objects", "info", "alternates")
    try:
        mode = os.lstat(alternates).st_mode
    except OSError:
        mode = stat_mod.S_IFREG
    if not stat_mod.S_ISREG(mode):
        return f".git/objects/info/alternates is {kind_in_words(mode)}, not a regular file"
    try:
        with os.scandir(os.path.join(git_dir, "objects", "pack")) as it:
            for entry in it:
                if not entry.is_file(follow_symlinks=False):
                    mode = entry.stat(follow_symlinks=False).st_mode
                    return f".git/objects/pack/{entry.name} is {kind_in_words(mode)}, not a regular file"
    except OSError:
        pass  # no pack folder: git finds no packs either
    return None


class DvcExpStore:
    """DVC experiments as a store (see the module's docstring): its file is a ``dvc`` row's ``.git``."""

    format = FORMAT
    store_files = (".git",)
    host = "dvc"  # asked only in the folder of a row of this format, never in every git repository under ROOT

    def stamp(self, path: str) -> int:
        """Changes when an experiment ref is added, moved or removed (loose or packed), or ``.git`` changes kind."""
        try:
            st = os.lstat(path)
        except OSError:
            return hash((-1,))
        parts = [st.st_mode, st.st_ino]
        if stat_mod.S_ISDIR(st.st_mode):
            parts.extend(_refs_walk(path)[0])
            try:
                packed = os.lstat(os.path.join(path, "packed-refs"))
                parts.extend((packed.st_mode, packed.st_ino, packed.st_mtime_ns, packed.st_ctime_ns, packed.st_size))
            except OSError:
                parts.append(-1)
        else:
            parts.extend((st.st_mtime_ns, st.st_size))
        return hash(tuple(parts))

    def read_store(self, path: str, root: str) -> list[ModelRecord]:
        """The experiments of the project holding ``path``; [] when it has none; else one row saying why not."""
        project = os.path.dirname(path)
        try:
            st = os.lstat(path)
        except OSError:
            return []
        if stat_mod.S_ISREG(st.st_mode):
            return []  # a worktree's or submodule's pointer: not its own repository, no experiments read here
        if not stat_mod.S_ISDIR(st.st_mode):
            return [note(project, f".git is {kind_in_words(st.st_mode)}, not the repository folder: DVC experiments "
                                  "not read")]
        for name in _GIT_FILES:
            try:
                mode = os.lstat(os.path.join(path, name)).st_mode
            except OSError:
                continue
            if not stat_mod.S_ISREG(mode):
                return [note(project, f".git/{name} is {kind_in_words(mode)}, not a regular file: git not run, "
                                      "DVC experiments not read")]
        _parts, loose, odd = _refs_walk(path)
        if odd is not None:
            return [note(project, f".git/{odd}, not a ref file: git not run, DVC experiments not read")]
        if not loose and not _packed_has_exps(path):
            return []
        why = _refused(path)
        if why is not None:
            return [note(project, f"{why}: git not run, DVC experiments not read")]
        try:
            return read_experiments(project)
        except Exception as exc:  # noqa: BLE001 - a reader bug must not sink the index: said on the project
            return [note(project, f"DVC experiments: {in_words(exc)}")]
