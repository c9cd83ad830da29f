"""Latency harness overhead, false failures under load, and detection of a slower candidate.

Run by hand from the repository root (a few minutes on a 2-core machine):

    python benchmarks/latency.py

In one run it reports:

(a) harness overhead per timed call: wall time per call of a whole ``LatencyMeasurement``
    of a no-op (thread limits, preemption counts, percentiles and judging included; the
    deliberate warm-up cut to one call) minus that of a bare ``perf_counter_ns`` loop around the
    same no-op, median of 7 repetitions of 20,000 calls (goal <= 0.5 us);
(b) false failures over ``--runs`` gate verdicts of LogisticRegression and
    HistGradientBoostingClassifier with the single-row p99 budget at 2x their idle p99
    (measured first, before any load), while ``benchmarks/_busy.py`` saturates the other core
    (goal 0/50 each; an INCONCLUSIVE verdict counts as a failure, as it does in the gate);
(c) detection of a candidate 2x slower than its baseline (predict run twice) through the
    interleaved comparison under the same load (goal 50/50 each);
(d) false failures of the comparison when the candidate is the baseline itself (goal 0/50; an
    undecided comparison is a warning in the gate, not a failure, and is counted apart);
(e) false failures of ``latency[batch-vs-single-batch=32]`` on the healthy models (goal 0/50;
    undecided counted apart, a warning in the gate);
(f) detection of a batch path that predicts its 32 rows one by one, twice (about 2x its rows
    one by one, above the 1.5x slack; goal 50/50).

A reduced run for a loaded machine: ``python benchmarks/latency.py --runs 20``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from deploy_gate.latency import (
    BatchVersusSingle,
    LatencyComparison,
    LatencyMeasurement,
    LatencySettings,
    LatencyStatus,
)


def noop(x: object) -> None:
    return None


def bare_loop(inputs: Sequence[object], calls: int) -> tuple[float, float]:
    """Wall ns per call and median recorded ns of the simplest perf_counter_ns timing loop."""
    pc = time.perf_counter_ns
    k = len(inputs)
    begin = pc()
    seq = [inputs[i % k] for i in range(calls)]
    out: list[int] = []
    append = out.append
    for x in seq:
        t0 = pc()
        noop(x)
        append(pc() - t0)
    wall = pc() - begin
    return wall / calls, float(np.median(out))


def harness(inputs: Sequence[object], calls: int) -> tuple[float, float]:
    """Wall ns per call and median recorded ns of a full LatencyMeasurement of the no-op."""
    rounds = 20
    # One warm-up call: the warm-up is deliberate untimed work, not overhead per timed call.
    settings = LatencySettings(
        calls_per_round=calls // rounds,
        min_rounds=rounds,
        max_rounds=rounds,
        warmup_calls=1,
        warmup_seconds=1e-9,
    )
    begin = time.perf_counter_ns()
    measurement = LatencyMeasurement(
        noop, inputs, {"p50": None, "p95": None, "p99": 1.0}, settings=settings
    )
    measurement.verdicts()
    wall = time.perf_counter_ns() - begin
    recorded = np.concatenate(measurement.durations_ns())
    return wall / (rounds * (calls // rounds)), float(np.median(recorded))


def overhead(reps: int = 7, calls: int = 20_000) -> dict[str, float]:
    inputs = list(range(100))
    harness(inputs, calls)  # imports (scipy, threadpoolctl) outside the figures
    bare_wall, bare_med, h_wall, h_med = [], [], [], []
    for _ in range(reps):
        w, m = bare_loop(inputs, calls)
        bare_wall.append(w)
        bare_med.append(m)
        w, m = harness(inputs, calls)
        h_wall.append(w)
        h_med.append(m)
    diffs = [h - b for h, b in zip(h_wall, bare_wall, strict=True)]
    return {
        "bare_us": statistics.median(bare_wall) / 1e3,
        "harness_us": statistics.median(h_wall) / 1e3,
        "overhead_us": statistics.median(diffs) / 1e3,
        "bias_us": (statistics.median(h_med) - statistics.median(bare_med)) / 1e3,
    }


BATCH = 32


def batches_of(rows: list[np.ndarray]) -> list[np.ndarray]:
    """The single rows grouped into batches of ``BATCH`` rows, in order."""
    return [np.vstack(rows[i : i + BATCH]) for i in range(0, len(rows) - BATCH + 1, BATCH)]


def models() -> dict[str, tuple[Callable[[np.ndarray], object], list[np.ndarray]]]:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    X, y = make_classification(n_samples=2000, n_features=20, random_state=0)
    rows = [X[i : i + 1] for i in range(200)]
    lr = LogisticRegression(max_iter=1000).fit(X, y)
    hgb = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(X, y)
    return {
        "LogisticRegression": (lr.predict, rows[: len(batches_of(rows)) * BATCH]),
        "HistGradientBoosting": (hgb.predict, rows[: len(batches_of(rows)) * BATCH]),
    }


def idle_p99(predict: Callable[[np.ndarray], object], rows: list[np.ndarray]) -> float:
    """Median over three measurements of the median-of-rounds single-row p99, in ms."""
    values = []
    for _ in range(3):
        settings = LatencySettings(min_rounds=20, max_rounds=20)
        m = LatencyMeasurement(predict, rows, {"p99": None}, settings=settings)
        values.append(m.verdict("p99").value)
    return statistics.median(values)


class CpuShare:
    """Cores used by other processes (not this one, not the busy loop) while a scenario runs.

    The machine is shared: other jobs running at the same time inflate tail latency in a way
    no verdict rule can undo, so the report says how much of that there was.
    """

    def __init__(self, busy_pid: int | None) -> None:
        self.busy_pid = busy_pid
        self.start = self._snapshot()

    def _snapshot(self) -> tuple[float, float, float, float, float]:
        hz = os.sysconf("SC_CLK_TCK")
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
        busy_all = (sum(ticks[:8]) - ticks[3] - ticks[4]) / hz  # all but idle and iowait
        steal = ticks[7] / hz if len(ticks) > 7 else 0.0
        own = os.times()
        busy_loop = 0.0
        if self.busy_pid is not None:
            with contextlib.suppress(OSError), open(f"/proc/{self.busy_pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
                busy_loop = (int(fields[11]) + int(fields[12])) / hz
        return time.monotonic(), busy_all, own.user + own.system, busy_loop, steal

    def cores(self) -> tuple[float, float]:
        """(cores used by other processes, cores stolen by the host) since creation."""
        end = self._snapshot()
        wall = end[0] - self.start[0]
        others = (end[1] - self.start[1]) - (end[2] - self.start[2]) - (end[3] - self.start[3])
        others -= end[4] - self.start[4]
        return max(others, 0.0) / wall, (end[4] - self.start[4]) / wall


def load(share: CpuShare) -> str:
    others, steal = share.cores()
    return f"other processes used {others:.2f} cores, host steal {steal:.0%}"


def count(statuses: list[LatencyStatus]) -> str:
    failed = statuses.count(LatencyStatus.FAILED)
    inconclusive = statuses.count(LatencyStatus.INCONCLUSIVE)
    return f"{failed + inconclusive}/{len(statuses)} ({failed} failed, {inconclusive} inconcl.)"


def count_relative(statuses: list[LatencyStatus]) -> str:
    """A relative check fails only when FAILED; undecided is a warning in the gate."""
    failed = statuses.count(LatencyStatus.FAILED)
    undecided = statuses.count(LatencyStatus.INCONCLUSIVE)
    return f"{failed}/{len(statuses)} ({undecided} undecided: warnings)"


def detected(statuses: list[LatencyStatus]) -> str:
    hits = statuses.count(LatencyStatus.FAILED)
    passed = statuses.count(LatencyStatus.PASSED)
    inconclusive = statuses.count(LatencyStatus.INCONCLUSIVE)
    return f"{hits}/{len(statuses)} ({passed} passed, {inconclusive} undecided)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="verdicts per model and scenario")
    parser.add_argument("--max-seconds", type=float, default=2.0, help="time cap per verdict")
    args = parser.parse_args()
    settings = LatencySettings(max_seconds=args.max_seconds)
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()}", flush=True)

    over = overhead()
    print(f"(a) overhead: {over}", flush=True)

    fitted = models()
    budgets = {}
    idle_notes = []
    for name, (predict, rows) in fitted.items():
        share = CpuShare(None)
        budgets[name] = 2 * idle_p99(predict, rows)
        idle_notes.append(
            f"idle p99 {name} {budgets[name] / 2:.3f} ms -> budget {budgets[name]:.3f} ms "
            f"({load(share)})"
        )
        print(idle_notes[-1], flush=True)

    busy = subprocess.Popen([sys.executable, str(Path(__file__).with_name("_busy.py")), "1200"])
    results: dict[str, dict[str, str]] = {}
    try:
        time.sleep(0.5)  # let the busy loop reach full speed
        for name, (predict, rows) in fitted.items():
            out = results.setdefault(name, {})
            statuses, seconds, values = [], [], []
            share = CpuShare(busy.pid)
            for _ in range(args.runs):
                m = LatencyMeasurement(predict, rows, {"p99": budgets[name]}, settings=settings)
                v = m.verdict("p99")
                statuses.append(v.status)
                seconds.append(m.seconds)
                values.append(v.value / (budgets[name] / 2))
            out["false"] = count(statuses)
            out["false_detail"] = (
                f"median {statistics.median(seconds):.2f} s/verdict, loaded p99 = "
                f"{statistics.median(values):.2f}x idle (max {max(values):.2f}x); {load(share)}"
            )
            print(name, out, flush=True)

            def twice(x: np.ndarray, predict: Callable[[np.ndarray], object] = predict) -> None:
                predict(x)
                predict(x)

            for key, candidate in (("detect", twice), ("same", predict)):
                statuses, ratios = [], []
                share = CpuShare(busy.pid)
                for _ in range(args.runs):
                    c = LatencyComparison(candidate, predict, rows, settings=settings)
                    v = c.verdict()
                    statuses.append(v.status)
                    ratios.append(v.value)
                out[key] = detected(statuses) if key == "detect" else count_relative(statuses)
                out[key + "_detail"] = (
                    f"median ratio {statistics.median(ratios):.2f} "
                    f"(range {min(ratios):.2f}-{max(ratios):.2f}); {load(share)}"
                )
                print(name, key, out[key], out[key + "_detail"], flush=True)

            def one_by_one_twice(
                frame: np.ndarray, predict: Callable[[np.ndarray], object] = predict
            ) -> None:
                for _ in range(2):
                    for i in range(frame.shape[0]):
                        predict(frame[i : i + 1])

            frames = batches_of(rows)
            for key, batch_fn in (("batch_same", predict), ("batch_detect", one_by_one_twice)):
                statuses, ratios = [], []
                share = CpuShare(busy.pid)
                for _ in range(args.runs):
                    b = BatchVersusSingle(
                        batch_fn, predict, frames, rows, batch_size=BATCH, settings=settings
                    )
                    v = b.verdict()
                    statuses.append(v.status)
                    ratios.append(v.value)
                if key == "batch_detect":
                    out[key] = detected(statuses)
                else:
                    out[key] = count_relative(statuses)
                out[key + "_detail"] = (
                    f"median ratio {statistics.median(ratios):.2f} "
                    f"(range {min(ratios):.2f}-{max(ratios):.2f}); {load(share)}"
                )
                print(name, key, out[key], out[key + "_detail"], flush=True)
    finally:
        busy.terminate()
        busy.wait()

    print()
    for note in idle_notes:
        print(note)
    print(f"{'measure':<58} {'result':<32} goal")
    print(
        f"{'(a) harness overhead per timed call':<58} {over['overhead_us']:.3f} us"
        f"{'':<23} <= 0.5 us"
    )
    print(
        f"    bare loop {over['bare_us']:.3f} us/call, harness {over['harness_us']:.3f} us/call,"
        f" recorded-median bias {over['bias_us']:+.3f} us"
    )
    for name, out in results.items():
        print(
            f"{'(b) false failures, ' + name + ', budget 2x idle p99':<58} "
            f"{out['false']:<32} 0/{args.runs}"
        )
        print(f"    {out['false_detail']}")
    for name, out in results.items():
        print(
            f"{'(c) 2x slower candidate detected, ' + name:<58} {out['detect']:<32} "
            f"{args.runs}/{args.runs}"
        )
        print(f"    {out['detect_detail']}")
    for name, out in results.items():
        print(
            f"{'(d) false failures, candidate == baseline, ' + name:<58} {out['same']:<32} "
            f"0/{args.runs}"
        )
        print(f"    {out['same_detail']}")
    for name, out in results.items():
        print(
            f"{'(e) false failures, batch of 32 vs its rows, ' + name:<58} "
            f"{out['batch_same']:<32} 0/{args.runs}"
        )
        print(f"    {out['batch_same_detail']}")
    for name, out in results.items():
        print(
            f"{'(f) batch path 2x its rows one by one detected, ' + name:<58} "
            f"{out['batch_detect']:<32} {args.runs}/{args.runs}"
        )
        print(f"    {out['batch_detect_detail']}")
    print(
        f"verdict time cap {args.max_seconds} s, threads={settings.threads_label}; "
        f"load average at end: {os.getloadavg()}"
    )


if __name__ == "__main__":
    main()
