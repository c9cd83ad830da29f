"""Cost of the guarded load against plain ``joblib.load`` for a 200-tree RandomForest.

Run by hand: ``python benchmarks/load.py [--reps 15] [--trees 200]``. Both loads run
interleaved in the same process, so a machine whose speed drifts affects both alike; the
script prints the median of each and their ratio, per file format. The goal is a ratio within
1.5x.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import joblib
import numpy as np
from sklearn.ensemble import RandomForestClassifier

from deploy_gate.safeload import load_model_file

GOAL = 1.5


def _timed(load: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    load()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--trees", type=int, default=200)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    X = rng.normal(size=(5000, 20))
    y = (X[:, 0] + X[:, 1] * X[:, 2] + rng.normal(scale=0.5, size=len(X)) > 0).astype(int)
    model = RandomForestClassifier(n_estimators=args.trees, random_state=0, n_jobs=-1).fit(X, y)

    with tempfile.TemporaryDirectory() as directory:
        print(f"RandomForestClassifier(n_estimators={args.trees}), {args.reps} interleaved reps")
        print(f"{'format':<12} {'size':>9} {'joblib.load':>12} {'guarded':>12} {'ratio':>7}")
        worst = 0.0
        for label, compress in (("joblib", 0), ("joblib+zlib", 3)):
            path = Path(directory) / f"forest-{label}.joblib"
            joblib.dump(model, path, compress=compress)
            # warm-up: imports, page cache
            joblib.load(path)
            load_model_file(path)
            plain: list[float] = []
            guarded: list[float] = []
            for rep in range(args.reps):
                # alternate the order so neither load always runs first
                pair = [
                    (plain, lambda p=path: joblib.load(p)),
                    (guarded, lambda p=path: load_model_file(p)),
                ]
                for times, load in pair if rep % 2 == 0 else pair[::-1]:
                    times.append(_timed(load))
            plain_median = statistics.median(plain)
            guarded_median = statistics.median(guarded)
            ratio = guarded_median / plain_median
            worst = max(worst, ratio)
            size = path.stat().st_size / 1e6
            print(
                f"{label:<12} {size:>7.1f}MB {plain_median * 1e3:>10.1f}ms "
                f"{guarded_median * 1e3:>10.1f}ms {ratio:>6.2f}x"
            )
        verdict = "within" if worst <= GOAL else "OVER"
        print(f"worst ratio {worst:.2f}x: {verdict} the {GOAL}x goal")


if __name__ == "__main__":
    main()
