"""The keys of a remote root, and the one door through which the removal operations reach the bucket.

A remote root is a bucket and a root prefix (``s3://bucket/prefix``); a model is a prefix below it. There is no
folder, no rename and no symlink: what keeps mlrepo inside the root is a check of every key it acts on. Every
request of ``remote_moves`` goes through ``Bucket``, which takes *root-relative* keys, refuses any that is not a
plain relative key (``..``, ``.``, empty segments, a leading ``/``, control bytes), and only then joins the root
prefix. A key mlrepo reads back (a listing, the journal, the ledger) is checked the same way, so a planted record
can never name a key outside the root, nor one in a sibling prefix that merely starts with the same letters
(``root-old/`` next to ``root/``): prefixes are compared segment by segment.

``Bucket`` also counts the requests it makes (``RequestCost``), so that what a removal cost can be compared with
what its plan said it would cost.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import orjson
from mlrepo.errors import FailedError

STATE = ".mlrepo"  # mlrepo's own keys under the root: journal/, ledger/, trash/, archive/, rejected/, lock.json
PAGE = 1000  # keys per LIST page and per DeleteObjects request (S3's limits)
MULTIPART = 64 * 1024 * 1024  # uploads above this size are multipart (obstore's chunks), below it one PUT
CHUNK = 5 * 1024 * 1024  # the multipart part size
MAX_RECORD_BYTES = 16 * 1024 * 1024  # a journal or ledger record larger than this is refused unread
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,199}")


class RemoteError(FailedError):
    """A request failed or the bucket is not as mlrepo left it."""


class OddKey(ValueError):
    """A key mlrepo will not act on: outside the root, or not a plain relative key."""


class RemoteRootLike(Protocol):
    """What the removal needs of a remote root (``repo_index.remote.open_remote(url)`` returns one)."""

    @property
    def store(self) -> Any: ...  # an obstore store (S3Store, GCSStore, AzureStore, MemoryStore...)

    @property
    def prefix(self) -> str: ...  # the root prefix, no leading or trailing "/" ("" for the bucket's top)

    @property
    def url(self) -> str: ...  # s3://bucket/prefix


def plain_key(text: object, field: str = "key") -> str:
    """``text`` when it is a plain relative key (segments that are not empty, ``.`` or ``..``; no control bytes);
    OddKey otherwise."""
    if not isinstance(text, str) or not text:
        raise OddKey(f"{field} is not a key")
    if any(ord(c) < 32 or c in "\x7f\\" for c in text):
        raise OddKey(f"{field} {text!r} holds control characters or a backslash")
    parts = text.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise OddKey(f"{field} {text!r} is not a plain key (it holds '..', '.' or an empty segment)")
    return text


def model_key(text: object, field: str = "model") -> str:
    """A model's root-relative prefix: a plain key that is not in mlrepo's own state."""
    rel = plain_key(text, field)
    if rel.split("/", 1)[0] == STATE:
        raise OddKey(f"{field} {rel!r} lies in mlrepo's state ({STATE}/)")
    return rel


def name(text: object, field: str) -> str:
    """One segment mlrepo made (a trash id, a journal or ledger file name): letters, digits, ``._-``."""
    if not isinstance(text, str) or not _NAME.fullmatch(text):
        raise OddKey(f"{field} {text!r} is not a name mlrepo writes")
    return text


def under(key: str, prefix: str) -> bool:
    """``key`` lies strictly below ``prefix``, segment-wise."""
    return key.startswith(prefix + "/") if prefix else bool(key)


def state_key(*parts: str) -> str:
    return "/".join((STATE, *parts))


@dataclass(frozen=True, slots=True)
class Obj:
    """One object of a model: its key relative to the model's prefix, its size and ETag (as listed)."""

    rel: str
    size: int
    etag: str | None

    def to_json(self) -> dict:
        return {"rel": self.rel, "size": self.size, "etag": self.etag}

    @classmethod
    def from_json(cls, value: object) -> "Obj":
        if not isinstance(value, dict) or not isinstance(value.get("size"), int) or value["size"] < 0 \
                or not isinstance(value.get("etag"), (str, type(None))):
            raise OddKey("an object of the record is not {rel, size, etag}")
        return cls(plain_key(value.get("rel"), "object"), value["size"], value["etag"])


@dataclass(slots=True)
class RequestCost:
    """Requests to the object store, by kind (a multipart upload counts its parts + 2 as PUT)."""

    list: int = 0
    head: int = 0
    get: int = 0
    put: int = 0
    copy: int = 0
    delete: int = 0

    def add(self, other: "RequestCost") -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))

    def text(self) -> str:
        return ", ".join(f"{getattr(self, f.name)} {f.name.upper()}" for f in fields(self) if getattr(self, f.name))


def pages(n: int) -> int:
    return max(1, -(-n // PAGE))


def put_requests(size: int) -> int:
    return 1 if size <= MULTIPART else -(-size // CHUNK) + 2


def single_part(etag: str | None) -> bool:
    """An ETag that is the MD5 of the content (a plain PUT); multipart ETags end in ``-<parts>``."""
    return bool(etag) and "-" not in str(etag).strip('"')


class Bucket:
    """A remote root's objects by root-relative key; every request is checked and counted."""

    def __init__(self, root: RemoteRootLike) -> None:
        import obstore  # the `s3` extra; imported here so that local use never needs it

        self.obs = obstore
        self.store = root.store
        self.prefix = root.prefix.strip("/")
        self.url = root.url.rstrip("/")
        self.cost = RequestCost()

    def full(self, rel: str) -> str:
        plain_key(rel)
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def rel(self, key: str) -> str:
        """A listed key as root-relative; OddKey when it is outside the root or not plain."""
        if not under(key, self.prefix):
            raise OddKey(f"listed key {key!r} is outside the root prefix {self.prefix!r}")
        return plain_key(key[len(self.prefix) + 1:] if self.prefix else key, "listed key")

    def url_of(self, rel: str) -> str:
        return f"{self.url}/{rel}"

    def listing(self, rel_prefix: str) -> list[Obj]:
        """Every object below ``rel_prefix/`` (keys relative to it), sorted; OddKey on a key mlrepo will not touch."""
        base = self.full(rel_prefix)
        out: list[Obj] = []
        stream = self.obs.list(self.store, base + "/", chunk_size=PAGE)
        self.cost.list += 1
        for n, batch in enumerate(stream):
            if n:
                self.cost.list += 1
            for meta in batch:
                key = str(meta["path"])
                if not under(key, base):  # "a/b" listed for "a/b/": the prefix itself, or a sibling
                    raise OddKey(f"listed key {key!r} is not below {base}/")
                self.rel(key)
                out.append(Obj(plain_key(key[len(base) + 1:], "listed key"), int(meta["size"]), meta.get("e_tag")))
        return sorted(out, key=lambda o: o.rel)

    def head(self, rel: str) -> dict | None:
        self.cost.head += 1
        try:
            return dict(self.obs.head(self.store, self.full(rel)))
        except FileNotFoundError:
            return None

    def copy(self, src: str, dst: str) -> None:
        self.cost.copy += 1
        self.obs.copy(self.store, self.full(src), self.full(dst))

    def get_bytes(self, rel: str, limit: int = MAX_RECORD_BYTES) -> bytes | None:
        """A small object's content (a record); None when it is missing; OddKey when larger than ``limit``."""
        self.cost.get += 1
        try:
            result = self.obs.get(self.store, self.full(rel))
        except FileNotFoundError:
            return None
        if int(result.meta["size"]) > limit:
            raise OddKey(f"{rel} is larger than {limit} bytes")
        return bytes(result.bytes())

    def chunks(self, rel: str) -> Iterator[bytes]:
        self.cost.get += 1
        for chunk in self.obs.get(self.store, self.full(rel)).stream(min_chunk_size=1 << 20):
            yield bytes(chunk)

    def sha256(self, rel: str) -> str:
        h = hashlib.sha256()
        for chunk in self.chunks(rel):
            h.update(chunk)
        return h.hexdigest()

    def download(self, rel: str, dest: Path) -> str:
        """Stream an object to a new local file (fsynced); returns its sha256."""
        h = hashlib.sha256()
        with open(dest, "xb") as out:
            for chunk in self.chunks(rel):
                h.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        return h.hexdigest()

    def put_json(self, rel: str, obj: object, create: bool = False) -> dict:
        """Write a record (one PUT; atomic: readers see the old or the new whole). ``create``: only when no
        object is at ``rel`` (a conditional PUT, ``If-None-Match: *``); FileExistsError otherwise."""
        self.cost.put += 1
        data = orjson.dumps(obj, option=orjson.OPT_INDENT_2)
        try:
            return dict(self.obs.put(self.store, self.full(rel), data, mode="create" if create else "overwrite"))
        except self.obs.exceptions.AlreadyExistsError:
            raise FileExistsError(rel) from None

    def put_file(self, rel: str, path: Path, size: int) -> dict:
        self.cost.put += put_requests(size)
        return dict(self.obs.put(self.store, self.full(rel), path, use_multipart=size > MULTIPART,
                                 chunk_size=CHUNK))

    def delete(self, rels: Sequence[str]) -> None:
        """Delete keys, a DeleteObjects request per 1000 (a missing key is no error on S3)."""
        keys = [self.full(r) for r in rels]
        for start in range(0, len(keys), PAGE):
            self.cost.delete += 1
            self.obs.delete(self.store, keys[start:start + PAGE])
