"""Raw S3 requests signed with AWS Signature V4 (stdlib only), for keys that well-behaved clients refuse to write
(obstore rejects control characters in a key; S3 stores them). Just enough for PUT and DELETE of one object."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import urllib.parse
from datetime import datetime, timezone

from s3server import ACCESS_KEY, SECRET_KEY


def _mac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def request(endpoint: str, method: str, bucket: str, key: str, body: bytes = b"", region: str = "us-east-1"
            ) -> tuple[int, bytes]:
    """One signed request; returns the status and the response body."""
    url = urllib.parse.urlsplit(endpoint)
    path = f"/{bucket}/" + urllib.parse.quote(key, safe="/~")
    now = datetime.now(timezone.utc)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload = hashlib.sha256(body).hexdigest()
    headers = {"host": url.netloc, "x-amz-content-sha256": payload, "x-amz-date": stamp}
    signed = ";".join(sorted(headers))
    canonical = "\n".join([method, path, "", *(f"{k}:{headers[k]}" for k in sorted(headers)), "", signed, payload])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key_ = _mac(_mac(_mac(_mac(f"AWS4{SECRET_KEY}".encode(), day), region), "s3"), "aws4_request")
    signature = hmac.new(key_, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{scope}, SignedHeaders={signed}, "
                                f"Signature={signature}")
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()
