"""Write an MLflow file store with N runs, using MLflow's own client (run in an interpreter that has mlflow).

    MLFLOW_ALLOW_FILE_STORE=true python make_mlflow_store.py DIR N

Runs are spread over 4 experiments; each logs 4 params, 3 metrics over 5 steps and 2 tags in one ``log_batch``.
If the process dies half way, DIR is left incomplete; ``datasets.mlflow_store`` writes no stamp then and retries.
"""

from __future__ import annotations

import os
import random
import sys
import time

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

EXPERIMENTS = ["churn-xgb", "churn-logreg", "fraud-gbm", "fraud-mlp"]
STEPS = 5


def main(root: str, n_runs: int) -> None:
    os.makedirs(root, exist_ok=True)
    client = MlflowClient(tracking_uri=f"file:{os.path.abspath(root)}/mlruns")
    rng = random.Random(11)
    exp_ids = [client.create_experiment(name) for name in EXPERIMENTS]
    base_ms = int(time.time() * 1000) - n_runs * 60_000
    for i in range(n_runs):
        exp = exp_ids[i % len(exp_ids)]
        start_ms = base_ms + i * 60_000
        run = client.create_run(exp, start_time=start_ms, run_name=f"run-{i:05d}",
                                tags={"team": rng.choice(["growth", "risk", "core"])})
        depth, lr = rng.choice((3, 5, 7, 9)), rng.choice((0.3, 0.1, 0.03, 0.01))
        params = [Param("max_depth", str(depth)), Param("learning_rate", str(lr)),
                  Param("n_estimators", str(100 * rng.randint(1, 10))), Param("seed", str(i))]
        metrics = []
        for step in range(STEPS):
            ts = start_ms + step * 1000
            metrics.append(Metric("val_auc", 0.7 + 0.05 * step / STEPS + rng.gauss(0, 0.01), ts, step))
            metrics.append(Metric("val_loss", 0.6 - 0.08 * step + rng.gauss(0, 0.01), ts, step))
            metrics.append(Metric("train_loss", 0.5 - 0.07 * step + rng.gauss(0, 0.01), ts, step))
        client.log_batch(run.info.run_id, metrics=metrics, params=params,
                         tags=[RunTag("stage", rng.choice(["dev", "candidate"]))])
        client.set_terminated(run.info.run_id, status="FINISHED", end_time=start_ms + STEPS * 1000)
        if (i + 1) % 500 == 0:
            print(f"    {i + 1}/{n_runs} runs", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
