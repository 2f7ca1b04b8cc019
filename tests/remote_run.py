"""A remote removal or restore as a process of its own, for the kill tests (``test_remote_removal``):
``python tests/remote_run.py '<json>'`` with ``{"env": {AWS_*}, "bucket", "prefix", "op", "models"}``, op one of
trash | archive | delete | restore | recover. Prints the outcomes' actions as one JSON line."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Root:
    """A remote root as ``repo_index.remote.open_remote`` hands it to the operations: store, prefix, URL."""

    store: Any
    prefix: str
    url: str


def open_root(env: dict[str, str], bucket: str, prefix: str) -> Root:
    from obstore.store import S3Store

    store = S3Store(bucket, endpoint=env["AWS_ENDPOINT_URL"], access_key_id=env["AWS_ACCESS_KEY_ID"],
                    secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region=env["AWS_REGION"],
                    client_options={"allow_http": True})
    return Root(store, prefix, f"s3://{bucket}/{prefix}")


def main(spec: dict) -> list[str]:
    from mlrepo.commands.operations.remote_execute import (
        execute_remote,
        plan_remote_restore,
        recover_remote,
        restore_remote,
    )
    from mlrepo.commands.operations.remote_plan import plan_remote_removal

    root = open_root(spec["env"], spec["bucket"], spec["prefix"])
    op = spec["op"]
    if op == "recover":
        return recover_remote(root)
    if op == "restore":
        items, refused = plan_remote_restore(root, everything=True)
        report = restore_remote(root, items)
    else:
        report = execute_remote(root, plan_remote_removal(root, spec["models"], op))
    return [*report.recovered, *(f"{o.action} {o.message}" for o in report.outcomes)]


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
