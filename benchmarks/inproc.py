"""Timings measured inside a fresh interpreter (so startup and imports are separated from the work).

    python inproc.py import-cli            -> {"import_s": ...}   time of ``import mlrepo.commands.cli`` alone
    python inproc.py open ROOT cold|warm   -> {"import_s", "open_s", "models", "read", "reused", "cache_written"}

``cold`` is ``open_index(ROOT, rebuild=True)`` (what ``mlrepo index --rebuild`` does, cache written);
``warm`` is ``open_index(ROOT)`` with the cache present. One JSON line on stdout.
"""

from __future__ import annotations

import json
import sys
import time

T0 = time.perf_counter()


def main(argv: list[str]) -> None:
    if argv[0] == "import-cli":
        start = time.perf_counter()
        import mlrepo.commands.cli  # noqa: F401

        print(json.dumps({"import_s": time.perf_counter() - start}))
        return
    if argv[0] == "open":
        root, mode = argv[1], argv[2]
        start = time.perf_counter()
        from mlrepo.repo_index import open_index

        imported = time.perf_counter()
        idx = open_index(root, rebuild=(mode == "cold"))
        done = time.perf_counter()
        print(json.dumps({"import_s": imported - start, "open_s": done - imported, "models": len(idx),
                          "by_format": idx.counts_by_format(), "read": idx.stats.read, "reused": idx.stats.reused,
                          "cache_written": idx.stats.cache_written}))
        return
    raise SystemExit(f"unknown mode {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
