"""DVC experiments: rows without folders, read from the project's git refs with the ``git`` CLI.

``dvc exp run`` commits each experiment to a ref ``refs/exps/<baseline sha[:2]>/<sha[2:]>/<name>`` and never checks
it out: its params and metrics exist only in that commit. They are read here with ``git`` itself (``for-each-ref``,
``cat-file --batch-check`` for the sizes, then ``cat-file --batch`` for the blobs under the size limit), not through
``dvc``: importing dvc costs seconds and pulls in a large tree of packages, while git is on every machine that has
experiments, and its plumbing output is a stable format. Every call is bounded by a timeout; a missing, failing or
hanging git is one message on the project, never a hang.

A project is read only when it holds its own ``.git`` (the DVC project is the git root, as ``dvc init`` makes it).
Each experiment's params and metrics come from the files its own commit's ``dvc.yaml`` names, exactly as the
project's row reads its working tree (``dvc.named_files``).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone

from mlrepo.errors import in_words
from mlrepo.repo_index.readers.dvc import DEFAULT_PARAMS, DVC_YAML, named_files
from mlrepo.repo_index.readers.parsing import MAX_META_BYTES, MetaError, flatten, parse_json, parse_yaml
from mlrepo.repo_index.records import Metric, ModelRecord, to_number

FORMAT = "dvc-exp"
EXP_REFS = "refs/exps"
GIT_TIMEOUT = 10.0  # seconds for one git call: a hung git (a network file system, a lock) must not hang the index
_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}


class GitError(MetaError):
    """git is missing, failed or did not answer in time (said in the user's words)."""


@dataclass(frozen=True, slots=True)
class ExpRef:
    name: str
    commit: str
    ref: str


def _git(project: str, args: list[str], git: str, timeout: float, stdin: bytes | None = None) -> bytes:
    try:
        done = subprocess.run([git, "-C", project, *args], input=stdin, capture_output=True, timeout=timeout,
                              env={**os.environ, **_ENV}, check=False)
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
    out: dict[str, bytes | str] = {}
    wanted = []
    for spec, line in zip(specs, check.decode("utf-8", "replace").splitlines(), strict=False):
        fields = line.split()
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
            return datetime.fromtimestamp(int(stamp), timezone.utc) if stamp.isdigit() else None
    return None


def _parse(rel: str, data: bytes) -> object:
    return parse_json(rel, data) if rel.endswith(".json") else parse_yaml(rel, data)


def read_experiments(project: str, git: str = "git", timeout: float = GIT_TIMEOUT,
                     max_bytes: int = MAX_META_BYTES) -> list[ModelRecord]:
    """One record per experiment of the DVC project at ``project`` (absolute); [] when it has no own ``.git`` or
    no experiments. When git cannot be asked, one record on the project's refs carries the reason."""
    if not os.path.lexists(os.path.join(project, ".git")):
        return []
    try:
        refs = experiment_refs(project, git, timeout)
        commits = _objects(project, [r.commit for r in refs], git, timeout, "commit", max_bytes)
        specs = [f"{r.commit}:{rel}" for r in refs for rel in (DVC_YAML, DEFAULT_PARAMS)]
        first = _objects(project, specs, git, timeout, "blob", max_bytes)
        named = {r.commit: named_files(_spec_of(first.get(f"{r.commit}:{DVC_YAML}"))) for r in refs}
        more = sorted({f"{r.commit}:{rel}" for r in refs for rel in (*named[r.commit][0], *named[r.commit][1])}
                      - first.keys())
        blobs = {**first, **_objects(project, more, git, timeout, "blob", max_bytes)}
    except GitError as exc:
        rec = ModelRecord(path=os.path.join(project, ".git", EXP_REFS), format=FORMAT,
                          line=os.path.basename(project), name="experiments")
        rec.add_error(str(exc))
        return [rec]
    return [_record(project, r, commits.get(r.commit), named[r.commit], blobs) for r in refs]


def _spec_of(blob: bytes | str | None) -> dict:
    if not isinstance(blob, bytes):
        return {}
    try:
        spec = parse_yaml(DVC_YAML, blob)
    except MetaError:
        return {}
    return spec if isinstance(spec, dict) else {}


def _record(project: str, ref: ExpRef, commit: bytes | str | None, files: tuple[list[str], list[str]],
            blobs: dict[str, bytes | str]) -> ModelRecord:
    when = _committed(commit) if isinstance(commit, bytes) else None
    rec = ModelRecord(path=os.path.join(project, ".git", ref.ref), format=FORMAT,
                      repo=os.path.basename(os.path.dirname(project)) or None, line=os.path.basename(project),
                      name=ref.name, created_at=when, updated_at=when, status="finished", source_id=ref.commit)
    if not isinstance(commit, bytes):
        rec.add_error(f"experiment {ref.name}: its commit {ref.commit[:12]} is {commit or 'missing'}")
        return rec
    params_files, metrics_files = files
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
