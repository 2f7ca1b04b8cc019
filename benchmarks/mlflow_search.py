"""MLflow's own way to list every run of a file store (run in an interpreter that has mlflow).

    MLFLOW_ALLOW_FILE_STORE=true python mlflow_search.py DIR

Prints one JSON line: the time of ``import mlflow`` and of ``mlflow.search_runs(search_all_experiments=True)``
measured around the call, and how many runs it returned.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


def main(root: str) -> None:
    start = time.perf_counter()
    import mlflow

    imported = time.perf_counter()
    mlflow.set_tracking_uri(f"file:{os.path.abspath(root)}/mlruns")
    runs = mlflow.search_runs(search_all_experiments=True)
    done = time.perf_counter()
    print(json.dumps({"import_s": imported - start, "search_s": done - imported, "runs": len(runs),
                      "columns": len(runs.columns), "mlflow": mlflow.__version__}))


if __name__ == "__main__":
    main(sys.argv[1])
