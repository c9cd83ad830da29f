"""The gate's own bookkeeping, as a share of a gate run outside the latency measurements.

Run by hand from the repository root: ``python benchmarks/bookkeeping.py [--pairs 3]``.

No profiler: the same gate run is timed twice, side by side in interleaved pairs, once on the
example project's models and once on stand-ins that answer in constant time (a stub that
returns zeros and probabilities [1, 0] without looking at the rows). What the stub run still
takes is what the gate spends around the models: pytest, the model worker, reading data,
validating outputs, reporting. Its share of the real run is the figure (issue 17: under 30%).

Both runs leave out the latency measurements (``-k "not latency"``), whose loops call the
model on purpose, and the project's own serving wrapper and tests (``--noconftest``, only the
artifact named), so that only the gate's code runs between the model calls. The baseline is
the example's logistic regression in the real run and a second stub in the stub run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"
GOAL = 0.30

STUB = '''
"""A model that answers in constant time: the gate's bookkeeping is all that is left."""

import joblib
import numpy as np


class ConstantChurn:
    def __init__(self, like):
        self.feature_names_in_ = like.feature_names_in_
        self.n_features_in_ = like.n_features_in_
        self.classes_ = like.classes_

    def predict(self, X):
        return np.zeros(len(X), dtype=self.classes_.dtype)

    def predict_proba(self, X):
        out = np.zeros((len(X), len(self.classes_)))
        out[:, 0] = 1.0
        return out


if __name__ == "__main__":
    from stub_model import ConstantChurn as Stub  # pickled by its module's name, not __main__

    for name in ("candidate", "baseline"):
        real = joblib.load(f"models/{name}.joblib")
        joblib.dump(Stub(real), f"models/stub_{name}.joblib")
'''


def gate_seconds(project: Path, models: tuple[str, str], env: dict[str, str]) -> float:
    candidate, baseline = models
    command = [sys.executable, "-m", "pytest", "--deploy-gate", candidate]
    command += ["--deploy-gate-data", "data/holdout.parquet", "--deploy-gate-target", "churned"]
    command += [f"--deploy-gate-baseline={baseline}", "--deploy-gate-trust=stub_model"]
    command += ["-k", "not latency", "--noconftest", "-q", "-p", "no:cacheprovider", "-n", "0"]
    command += ["--junitxml", os.devnull]
    begin = time.perf_counter()
    run = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - begin
    if run.returncode not in (0, 1):
        sys.exit(f"the gate did not run ({run.returncode}):\n{run.stdout}\n{run.stderr}")
    print(f"   {candidate}: {seconds:6.1f} s   {run.stdout.strip().splitlines()[-1]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3, help="interleaved pairs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dg-bookkeeping-") as tmp:
        project = Path(tmp) / "example_project"
        shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("*.xml", "__pycache__"))
        subprocess.run([sys.executable, "train.py"], cwd=project, check=True, capture_output=True)
        (project / "stub_model.py").write_text(STUB)
        subprocess.run([sys.executable, "stub_model.py"], cwd=project, check=True)
        # The model worker imports stub_model from the project folder.
        env = {**os.environ, "PYTHONPATH": str(project)}
        arms = {
            "real": ("models/candidate.joblib", "models/baseline.joblib"),
            "stub": ("models/stub_candidate.joblib", "models/stub_baseline.joblib"),
        }
        times: dict[str, list[float]] = {"real": [], "stub": []}
        print(f'gate without latency items (-k "not latency"), {args.pairs} interleaved pairs')
        for i in range(args.pairs):
            for arm in ("real", "stub") if i % 2 == 0 else ("stub", "real"):
                times[arm].append(gate_seconds(project, arms[arm], env))
        real, stub = (statistics.median(times[k]) for k in ("real", "stub"))
        shares = [s / r for s, r in zip(times["stub"], times["real"], strict=True)]
        share = statistics.median(shares)
        print(f"real models        median {real:6.1f} s")
        print(f"constant-time stub median {stub:6.1f} s")
        verdict = "met" if share <= GOAL else "MISSED"
        print(
            f"bookkeeping share (stub / real, median of pairs) {share:.0%} "
            f"(pairs: {', '.join(f'{s:.0%}' for s in shares)}); goal < {GOAL:.0%}: {verdict}"
        )


if __name__ == "__main__":
    main()
