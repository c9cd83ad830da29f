"""``latency[batch-vs-single]`` on a model whose single rows take milliseconds: time to verdict
and error rates with rounds of one batch (now) against rounds of four (before), side by side.

Run by hand from the repository root (about five minutes on a 2-core machine):

    python benchmarks/batch_vs_single.py --runs 10

The model is the example project's candidate (a ColumnTransformer with a one-hot encoder and an
imputer in front of gradient boosting, on a DataFrame), which answers one row in about 5 ms and
a batch of 32 in about 6 ms, so a batch with its rows one by one takes about 185 ms. Verdicts use
the gate's defaults (10 s cap, slack 1.5x) while ``benchmarks/_busy.py`` saturates the other
core. Arms alternate verdict by verdict:

- healthy: the pipeline's own batch path (goal: every verdict PASSED);
- faulty: a batch path that predicts its rows one by one, twice (about 2x its rows, above the
  1.5x slack; goal: every verdict FAILED).

Rounds of "before" hold at least 5 batches, cut to what six rounds fit in half the cap (4 here),
as ``MIN_BATCHES_PER_ROUND = 5`` did; "now" sizes them by time alone, down to one batch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from deploy_gate import latency
from deploy_gate.latency import BatchVersusSingle, LatencySettings, LatencyStatus

BATCH = 32


def example_pipeline() -> tuple[Any, pd.DataFrame]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "example_project"))
    import train  # the example project's own data and model
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline

    frame = train.customers(3000, seed=0)
    y = frame.pop(train.TARGET)
    model = Pipeline(
        [
            ("prep", train.preprocess(scale=False)),
            ("model", HistGradientBoostingClassifier(max_iter=100, random_state=0)),
        ]
    )
    return model.fit(frame, y), frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="verdicts per arm")
    args = parser.parse_args()
    model, frame = example_pipeline()
    predict = model.predict
    rows = [frame.iloc[[i]] for i in range(8 * BATCH)]
    frames = [frame.iloc[i : i + BATCH] for i in range(0, 8 * BATCH, BATCH)]

    def one_by_one_twice(batch: pd.DataFrame) -> None:
        for _ in range(2):
            for i in range(len(batch)):
                predict(batch.iloc[[i]])

    arms: dict[str, Callable[[pd.DataFrame], object]] = {
        "healthy": predict,
        "faulty": one_by_one_twice,
    }
    settings = LatencySettings()  # the gate's defaults: 10 s cap
    results: dict[tuple[str, str], list[tuple[LatencyStatus, float, float]]] = {}
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()}", flush=True)
    busy = subprocess.Popen([sys.executable, str(Path(__file__).with_name("_busy.py")), "3600"])
    try:
        time.sleep(0.5)
        for run in range(args.runs):
            for arm, batch_fn in arms.items():
                order = ("before", "now") if run % 2 == 0 else ("now", "before")
                for rule in order:
                    latency.MIN_BATCHES_PER_ROUND = 5 if rule == "before" else 1
                    check = BatchVersusSingle(
                        batch_fn, predict, frames, rows, batch_size=BATCH, settings=settings
                    )
                    verdict = check.verdict()
                    results.setdefault((arm, rule), []).append(
                        (verdict.status, check.seconds, verdict.value)
                    )
                    print(arm, rule, verdict.status.value, f"{check.seconds:.2f} s", flush=True)
    finally:
        busy.terminate()
        busy.wait()
    print(
        f"{'arm':<8} {'rounds of':<10} {'passed':>6} {'failed':>6} {'undecided':>9} "
        f"{'median s':>9} {'median ratio':>12}"
    )
    for (arm, rule), got in sorted(results.items()):
        statuses = [s for s, _, _ in got]
        print(
            f"{arm:<8} {'1 batch' if rule == 'now' else '4 batches':<10} "
            f"{statuses.count(LatencyStatus.PASSED):>6} {statuses.count(LatencyStatus.FAILED):>6} "
            f"{statuses.count(LatencyStatus.INCONCLUSIVE):>9} "
            f"{statistics.median(s for _, s, _ in got):>9.2f} "
            f"{statistics.median(v for _, _, v in got):>12.3f}"
        )
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
