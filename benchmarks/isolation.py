"""What the model worker costs, measured side by side with ``--deploy-gate-isolation none``.

Run by hand from the repository root, after ``python example_project/train.py`` (the README
says how): ``python benchmarks/isolation.py [--gates 5] [--calls 20000] [--aa 25]``.

Three figures, each from one run with both arms interleaved, so a machine whose speed drifts
affects both alike; medians and ratios are printed, with the goals:

1. the example project's whole gate, wall time with the worker (``sandbox``) over ``none``:
   at most 1.15x;
2. one single-row ``predict_single`` round trip: the call's wall time through the worker minus
   the method's own time measured in the worker, at most 50 us (also printed: the call through
   the worker minus the same call in process, where the model's own time differs as well: it
   runs on another CPU, with other things in the caches);
3. an A/A comparison: the same model's p50 and p99 measured by the gate's latency measurement
   inside the worker and in this process agree within 5% (median over repeats of the ratio;
   measurements of 1 s, alternating, both arms on one CPU: this VM's CPUs change speed from
   one minute to the next, and apart from each other).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"
GATE = [
    "models/candidate.joblib",
    "--deploy-gate-data",
    "data/holdout.parquet",
    "--deploy-gate-target",
    "churned",
    "tests/",
]


def gate_seconds(isolation: str) -> float:
    begin = time.perf_counter()
    command = [sys.executable, "-m", "pytest", "--deploy-gate", *GATE, "-q"]
    command += ["-p", "no:cacheprovider", f"--deploy-gate-isolation={isolation}"]
    run = subprocess.run(
        [*command, "--junitxml", os.devnull],
        cwd=EXAMPLE,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - begin
    if run.returncode != 0:
        sys.exit(f"the example gate failed with --deploy-gate-isolation={isolation}:\n{run.stdout}")
    return seconds


def whole_gate(repeats: int) -> float:
    print(f"1. example gate, {repeats} interleaved pairs (wall seconds)")
    times: dict[str, list[float]] = {"sandbox": [], "none": []}
    for i in range(repeats):
        order = ("sandbox", "none") if i % 2 == 0 else ("none", "sandbox")
        for isolation in order:
            times[isolation].append(gate_seconds(isolation))
    worker, inproc = (statistics.median(times[k]) for k in ("sandbox", "none"))
    ratios = [w / n for w, n in zip(times["sandbox"], times["none"], strict=True)]
    print(f"   worker (sandbox)   median {worker:7.2f} s   {times['sandbox']}")
    print(f"   in process (none)  median {inproc:7.2f} s   {times['none']}")
    ratio = statistics.median(ratios)
    print(f"   ratio (median of pairs) {ratio:.3f}x   goal <= 1.15x")
    return ratio


def _deployments(
    small: bool = False, cpus: tuple[int, ...] | None = None
) -> tuple[object, object, object, list[dict[str, object]]]:
    """The example's candidate pipeline, or (``small``) a logistic regression on four numeric
    columns, whose fast calls show the round trip's own cost; ``cpus`` places the worker."""
    import pandas as pd

    from deploy_gate.deployment import ModelDeployment
    from deploy_gate.worker import ModelWorker, WorkerConfig

    frame = pd.read_parquet(EXAMPLE / "data" / "holdout.parquet").drop(columns=["churned"])
    path = EXAMPLE / "models" / "candidate.joblib"
    if small:
        import joblib
        from sklearn.linear_model import LogisticRegression

        frame = frame.select_dtypes("number").iloc[:, :4].fillna(0)
        path = Path(tempfile.mkdtemp()) / "small.joblib"
        joblib.dump(
            LogisticRegression().fit(frame, frame.iloc[:, 0] > frame.iloc[:, 0].median()), path
        )
    rows = frame.iloc[:200].to_dict("records")
    local = ModelDeployment(path, on_invalid_output="record")
    local.load_model()
    worker = ModelWorker(WorkerConfig(cpus=cpus))  # None: placed by the OS, as the gate does
    remote = worker.construct(
        "deploy_gate.deployment:ModelDeployment", [str(path)], {"on_invalid_output": "record"}
    )
    remote.load_model()
    worker.set_threads(1)
    return worker, local, remote, rows


def round_trip(calls: int) -> float:
    from threadpoolctl import threadpool_limits

    worker, local, remote, rows = _deployments(small=True)
    print(f"2. predict_single round trip, {calls} calls of each, interleaved in blocks of 100")
    local_ns: list[int] = []
    remote_ns: list[int] = []
    trip_ns: list[int] = []
    with threadpool_limits(1):
        for _ in range(100):  # warm both
            local.predict_single(rows[0])  # type: ignore[attr-defined]
            remote.predict_single(rows[0])  # type: ignore[attr-defined]
        for block in range(calls // 100):
            arms = [(local, local_ns), (remote, remote_ns)]
            for deployment, out in arms if block % 2 == 0 else arms[::-1]:
                for i in range(100):
                    row = rows[i % len(rows)]
                    t0 = time.perf_counter_ns()
                    deployment.predict_single(row)  # type: ignore[attr-defined]
                    out.append(time.perf_counter_ns() - t0)
                    if deployment is remote:  # the call's wall time minus the model's own time
                        trip_ns.append(out[-1] - (worker.last_call_ns or 0))  # type: ignore[attr-defined]
    worker.close()  # type: ignore[attr-defined]
    in_us = statistics.median(local_ns) / 1e3
    out_us = statistics.median(remote_ns) / 1e3
    print(f"   in process  median {in_us:8.1f} us")
    print(f"   worker      median {out_us:8.1f} us")
    added = out_us - in_us
    trip = statistics.median(trip_ns) / 1e3
    print(f"   worker minus in process {added:.1f} us (the model's own time differs too)")
    print(
        f"   round trip (wall minus the method's time in the worker) {trip:.1f} us   goal <= 50 us"
    )
    return trip


def a_a(repeats: int) -> tuple[float, float]:
    from deploy_gate.checks.latency import _worker_timer
    from deploy_gate.latency import LatencyMeasurement, LatencySettings
    from deploy_gate.options import OPTIONS, Settings
    from deploy_gate.worker import on_cpus, one_cpu

    # Both arms on one CPU: this VM's two CPUs differ in speed by up to a quarter from one
    # minute to the next (a pure-Python loop pinned to each in turn), which an A/A across them
    # measures instead of the worker.
    cpu = one_cpu(0)
    worker, local, remote, rows = _deployments(cpus=cpu)
    settings = Settings.of({o.name: o.default for o in OPTIONS}, {})
    timer = _worker_timer(remote.predict_single, rows, settings)  # type: ignore[attr-defined]
    budgets = {"p50": None, "p99": None}
    latency = LatencySettings(threads=1, max_seconds=1.0)
    where = f"both on CPU {cpu[0]}" if cpu else "placed by the OS"
    print(f"3. A/A: p50 and p99 in the worker over in process, {repeats} interleaved repeats")
    print(f"   ({where})")
    ratios: dict[str, list[float]] = {"p50": [], "p99": []}
    for i in range(repeats):
        measured = {}
        for arm in ("worker", "local") if i % 2 == 0 else ("local", "worker"):
            with on_cpus(cpu):
                m = LatencyMeasurement(
                    local.predict_single,  # type: ignore[attr-defined]
                    rows,
                    budgets,
                    settings=latency,
                    timer=timer if arm == "worker" else None,
                )
                measured[arm] = {label: m.verdict(label).value for label in budgets}
        for label in budgets:
            ratios[label].append(measured["worker"][label] / measured["local"][label])
    worker.close()  # type: ignore[attr-defined]
    out = []
    for label, values in ratios.items():
        median = statistics.median(values)
        print(f"   {label}: worker / in process median {median:.3f}  ({len(values)} repeats)")
        out.append(median)
    print("   goal: within 5% (0.95 - 1.05)")
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gates", type=int, default=5, help="pairs of example gate runs")
    parser.add_argument("--calls", type=int, default=20000, help="round trips of each arm")
    parser.add_argument("--aa", type=int, default=25, help="A/A repeats (1 s per arm)")
    args = parser.parse_args()
    if not (EXAMPLE / "models" / "candidate.joblib").exists():
        sys.exit("train the example first: cd example_project && python train.py")
    round_trip(args.calls)
    a_a(args.aa)
    whole_gate(args.gates)


if __name__ == "__main__":
    main()
