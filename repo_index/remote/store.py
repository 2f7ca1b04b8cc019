"""The seam to object storage: ``open_remote(url)`` builds an obstore store from the standard environment
(``AWS_*`` with ``AWS_ENDPOINT_URL``, ``GOOGLE_APPLICATION_CREDENTIALS``, ``AZURE_*``) and counts the requests
mlrepo makes through it, so that ``index`` can say what a run cost.

obstore (Rust's ``object_store``) is the engine: it paginates, retries and signs. It is an optional extra
(``mlrepo[s3]``, ``[gcs]``, ``[azure]``); without it the message names the extra. Its errors become one line.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from mlrepo.errors import FailedError
from mlrepo.repo_index.remote.location import Location, parse_url

#: keys per LIST response: S3's ListObjectsV2 (and GCS, Azure) return at most 1,000 entries a page
PAGE = 1000
#: an unreachable endpoint fails in seconds, not after object_store's default 3 minutes of retries
RETRY = {"max_retries": 3, "retry_timeout": timedelta(seconds=20)}
TIMEOUTS = {"connect_timeout": timedelta(seconds=5), "timeout": timedelta(seconds=120)}


def obstore_module() -> Any:
    """obstore, or a one-line FailedError naming the extra to install."""
    try:
        import obstore
    except ImportError:
        raise FailedError("remote roots need the obstore package: pip install 'mlrepo[s3]' "
                          "(or mlrepo[gcs], mlrepo[azure])") from None
    return obstore


@dataclass
class Requests:
    """Requests made through one RemoteRoot. LIST is counted in pages of ``PAGE`` entries (what the services
    return per request); GET is one per object read. Thread-safe: listings and reads run in pools."""

    lists: int = 0
    gets: int = 0
    bytes_read: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def listed(self, entries: int) -> None:
        with self._lock:
            self.lists += max(1, math.ceil(entries / PAGE))

    def got(self, size: int) -> None:
        with self._lock:
            self.gets += 1
            self.bytes_read += size


@dataclass
class RemoteRoot:
    """An opened remote root: ``store`` is the obstore store of the bucket, ``prefix`` the root's key prefix
    (no leading or trailing slash; "" for a whole bucket), ``url`` its normalised URL, ``requests`` the counters
    that every listing and read through this object adds to."""

    location: Location
    store: Any
    requests: Requests = field(default_factory=Requests)

    @property
    def url(self) -> str:
        return self.location.url

    @property
    def prefix(self) -> str:
        return self.location.prefix

    def list_dir(self, prefix: str) -> tuple[list[str], list[dict]]:
        """One level under ``prefix`` (a key prefix, "" for the bucket): its sub-prefixes and its objects."""
        obs = obstore_module()
        try:
            got = obs.list_with_delimiter(self.store, prefix or None)
        except Exception as exc:
            raise remote_error(self.location, exc) from None
        self.requests.listed(len(got["common_prefixes"]) + len(got["objects"]))
        return list(got["common_prefixes"]), list(got["objects"])

    def list_all(self, prefix: str) -> list[dict]:
        """Every object under ``prefix`` (all levels), page after page."""
        obs = obstore_module()
        try:
            objects = [meta for chunk in obs.list(self.store, prefix or None, chunk_size=PAGE) for meta in chunk]
        except Exception as exc:
            raise remote_error(self.location, exc) from None
        self.requests.listed(len(objects))
        return objects

    def list_from(self, prefix: str) -> tuple[list[dict], RemoteError | None]:
        """Every object under ``prefix`` as far as the listing got: the objects listed and the error that
        stopped it (None when it ran to the end; ``bad_key`` on it names a key the client refused)."""
        obs = obstore_module()
        objects: list[dict] = []
        failed = None
        try:
            for chunk in obs.list(self.store, prefix or None, chunk_size=PAGE):
                objects.extend(chunk)
        except Exception as exc:
            failed = remote_error(self.location, exc)
        self.requests.listed(len(objects) + (failed is not None))
        return objects, failed

    def get(self, key: str) -> bytes:
        obs = obstore_module()
        try:
            data = bytes(obs.get(self.store, key).bytes())
        except Exception as exc:
            raise remote_error(self.location, exc, key) from None
        self.requests.got(len(data))
        return data


class RemoteError(FailedError):
    """A request to the object store failed; the message is one line that says where and why."""

    invalid_path: bool = False
    bad_key: str | None = None  # the key the client refused, when it says which
    gone: bool = False  # the object (or bucket) does not exist


def remote_error(location: Location, exc: BaseException, key: str | None = None) -> RemoteError:
    """obstore's multi-line errors (with Rust debug output) as one line in the user's words."""
    name = type(exc).__name__
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), name)
    where = f"{location.scheme}://{location.bucket}/{key}" if key else location.url
    low = str(exc).lower()
    if name == "InvalidPathError":
        why = "a key there is not a valid object path (object_store refuses control characters, empty, '.' and "\
              "'..' segments)"
    elif name in ("PermissionDeniedError", "UnauthenticatedError") or any(
            word in low for word in ("accessdenied", "access denied", "403 forbidden", "signaturedoesnotmatch",
                                     "invalidaccesskeyid", "401 unauthorized")):
        why = "access denied: check the credentials (" + _credential_vars(location) + ")"
    elif isinstance(exc, FileNotFoundError) or "nosuchbucket" in low or "404 not found" in low:
        why = "not found (no such bucket or key)"
    elif "connect" in low or "dns" in low or "timed out" in low or "error sending request" in low:
        why = "the object store cannot be reached (" + _endpoint_hint(location) + ")"
    else:
        why = text[:300]
    error = RemoteError(f"{where}: {why}")
    error.invalid_path = name == "InvalidPathError"
    error.gone = isinstance(exc, FileNotFoundError)
    if error.invalid_path:  # object_store: Error parsing Path "<key>": Encountered illegal character sequence …
        full = str(exc)
        start, end = full.find(_BAD_KEY[0]), full.find(_BAD_KEY[1])
        if 0 <= start < end:
            error.bad_key = full[start + len(_BAD_KEY[0]):end]
    return error


_BAD_KEY = ('Error parsing Path "', '": ')


def _credential_vars(location: Location) -> str:
    return {"s3": "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE",
            "gs": "GOOGLE_APPLICATION_CREDENTIALS", "az": "AZURE_STORAGE_ACCOUNT_NAME, AZURE_STORAGE_ACCOUNT_KEY"
            }[location.scheme]


def _endpoint_hint(location: Location, env: Mapping[str, str] = os.environ) -> str:
    if location.scheme == "s3":
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
        return f"endpoint {endpoint} from AWS_ENDPOINT_URL" if endpoint else "AWS's own endpoint; is the network up?"
    return "is the network up?"


def _client_options(location: Location, env: Mapping[str, str]) -> dict[str, Any]:
    options: dict[str, Any] = dict(TIMEOUTS)
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or ""
    if location.scheme == "s3":  # given options replace object_store's own reading of AWS_ALLOW_HTTP: read here
        allow = env.get("AWS_ALLOW_HTTP")
        if allow is not None:
            options["allow_http"] = allow.strip().lower() in ("1", "true", "yes", "on")
        elif endpoint.startswith("http://"):  # a local MinIO or SeaweedFS the user named; refused by default else
            options["allow_http"] = True
    return options


def build_store(location: Location, env: Mapping[str, str] = os.environ) -> Any:
    """The obstore store of ``location``'s bucket; each store class reads its cloud's standard variables."""
    obstore_module()
    from obstore.store import AzureStore, GCSStore, S3Store

    client: Any = _client_options(location, env)
    retry: Any = RETRY
    try:
        if location.scheme == "s3":
            config: Any = {}
            endpoint = env.get("AWS_ENDPOINT_URL_S3")
            if endpoint:  # the S3-specific variable boto3 honours; object_store reads AWS_ENDPOINT_URL itself
                config["endpoint"] = endpoint
            if not (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")):
                config["region"] = "us-east-1"
            return S3Store(location.bucket, config=config or None, client_options=client, retry_config=retry)
        if location.scheme == "gs":
            return GCSStore(location.bucket, client_options=client, retry_config=retry)
        return AzureStore(location.bucket, client_options=client, retry_config=retry)
    except Exception as exc:  # a bad setting in the environment: say which store and why, in one line
        text = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise FailedError(f"{location.url}: cannot set up the {location.scheme} client ({text[:300]}); "
                          f"check {_credential_vars(location)}") from None


def open_remote(url: str) -> RemoteRoot:
    """The remote root at ``url`` (``s3://bucket/prefix``, ``gs://``, ``az://``), its store built from the
    environment. Makes no request: the first listing is where credentials and endpoints are proven."""
    location = parse_url(url)
    return RemoteRoot(location, build_store(location))
