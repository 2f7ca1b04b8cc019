"""Where a remote root is: an object-store URL (``s3://bucket/prefix``, ``gs://``, ``az://``) parsed once.

Imports nothing heavy: the CLI asks ``is_url`` of every ROOT before deciding how to open it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mlrepo.errors import UsageError

Scheme = Literal["s3", "gs", "az"]
#: URL schemes and the store each is read through (``s3a`` as Hadoop writes it, ``abfs``/``abfss`` as Azure does)
SCHEMES: dict[str, Scheme] = {"s3": "s3", "s3a": "s3", "gs": "gs", "az": "az", "abfs": "az", "abfss": "az"}


def is_url(text: str) -> bool:
    """Is ``text`` an object-store URL (as opposed to a local path)?"""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.lower() in SCHEMES


@dataclass(frozen=True, slots=True)
class Location:
    """A remote root: its store kind, bucket (or Azure container) and key prefix (no leading or trailing slash)."""

    scheme: Scheme
    bucket: str
    prefix: str

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")

    def key(self, rel: str) -> str:
        """The object key of ``rel`` (a path relative to the root)."""
        return f"{self.prefix}/{rel}" if self.prefix and rel else (rel or self.prefix)

    def url_of_key(self, key: str) -> str:
        return f"{self.scheme}://{self.bucket}/{key}"

    def url_of(self, rel: str) -> str:
        return f"{self.url}/{rel}" if rel else self.url


def parse_url(url: str) -> Location:
    """``s3://bucket/some/prefix/`` -> Location("s3", "bucket", "some/prefix"). A URL with no bucket, or with an
    empty, ``.`` or ``..`` segment in its prefix, is a usage error: the prefix must name one place."""
    scheme, sep, rest = url.partition("://")
    kind = SCHEMES.get(scheme.lower()) if sep else None
    if kind is None:
        raise UsageError(f"{url}: not an object-store URL (give s3://, gs:// or az://BUCKET/PREFIX)")
    bucket, _, prefix = rest.partition("/")
    if kind == "az" and "@" in bucket:  # abfs://container@account.dfs.core.windows.net/path
        bucket = bucket.split("@", 1)[0]
    if not bucket:
        raise UsageError(f"{url}: no bucket (give {scheme}://BUCKET/PREFIX)")
    prefix = prefix.strip("/")
    parts = prefix.split("/") if prefix else []
    if any(p in ("", ".", "..") for p in parts) or any(ord(c) < 32 or c == "\x7f" for c in prefix):
        raise UsageError(f"{url}: the prefix must be plain path segments (no //, . or .., no control characters)")
    return Location(kind, bucket, prefix)
