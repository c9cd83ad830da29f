"""What the model worker adds to one single-row call: ``predict_single`` in-process vs through it.

Run by hand: ``python benchmarks/isolation_roundtrip.py [--calls 3000] [--rounds 10]
[--isolation sandbox|process]``. A small scikit-learn pipeline is saved with joblib and served
by ``ModelDeployment`` twice: in this process and in a model worker. Rounds of single calls
alternate between the two, so a machine whose speed drifts affects both alike; the script prints
the median per-call time of each and their difference, the model's own speed timed in a tight
loop in each process, then the same round trip for a trivial method (``dict.get``), which is the
protocol's own cost (the goal is at most 50 us), and a raw ping-pong of 200 bytes between two
processes over pipes, the floor set by the OS.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from deploy_gate.deployment import ModelDeployment
from deploy_gate.latency import time_calls
from deploy_gate.worker import ModelWorker, WorkerConfig

GOAL_US = 50.0


def per_call_us(fn: Callable[[Any], object], arg: Any, calls: int) -> list[float]:
    clock = time.perf_counter_ns
    out = []
    for _ in range(calls):
        start = clock()
        fn(arg)
        out.append((clock() - start) / 1e3)
    return out


def round_trips_us(
    worker: ModelWorker, fn: Callable[[Any], object], arg: Any, calls: int
) -> list[float]:
    """Per call: its wall time here minus the method's own time measured in the worker."""
    clock = time.perf_counter_ns
    out = []
    for _ in range(calls):
        start = clock()
        fn(arg)
        wall = clock() - start
        out.append((wall - (worker.last_call_ns or 0)) / 1e3)
    return out


def side_by_side(
    local: Callable[[Any], object], remote: Callable[[Any], object], arg: Any, args: Any
) -> tuple[float, float]:
    for fn in (local, remote):  # warm-up
        per_call_us(fn, arg, 200)
    here: list[float] = []
    there: list[float] = []
    for _ in range(args.rounds):
        here += per_call_us(local, arg, args.calls)
        there += per_call_us(remote, arg, args.calls)
    return statistics.median(here), statistics.median(there)


def pipe_floor(calls: int, size: int) -> float:
    """Median round trip of ``size`` bytes to a forked echo process and back, in us."""
    from_parent, to_child = os.pipe()
    from_child, to_parent = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the echo process
        os.close(to_child)
        os.close(from_child)
        while data := os.read(from_parent, 65536):
            os.write(to_parent, data)
        os._exit(0)
    os.close(from_parent)
    os.close(to_parent)
    payload = b"x" * size
    times = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        os.write(to_child, payload)
        os.read(from_child, 65536)
        times.append((time.perf_counter_ns() - start) / 1e3)
    os.close(to_child)
    os.close(from_child)
    os.waitpid(pid, 0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000, help="calls per round and side")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--isolation", default="sandbox", choices=("sandbox", "process"))
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.standard_normal((500, 4)), columns=["a", "b", "c", "d"])
    model = make_pipeline(StandardScaler(), LogisticRegression())
    model.fit(frame, (frame.a + frame.b > 0).astype(int))
    row = {name: float(value) for name, value in frame.iloc[0].items()}

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.joblib"
        joblib.dump(model, path)
        local = ModelDeployment(path)
        local.load_model()
        config = WorkerConfig(isolation=args.isolation)
        with ModelWorker(config) as worker:
            info = worker.start()
            remote = worker.construct("deploy_gate.deployment:ModelDeployment", [str(path)])
            remote.load_model()
            assert remote.predict_single(row) == local.predict_single(row)
            here, there = side_by_side(local.predict_single, remote.predict_single, row, args)
            trips = round_trips_us(worker, remote.predict_single, row, args.calls * args.rounds)
            own = []
            for _ in range(args.calls):
                remote.predict_single(row)
                own.append((worker.last_call_ns or 0) / 1e3)
            table = {"a": 1}
            proxy = worker.construct("builtins:dict", [table])
            bare_here, bare_there = side_by_side(table.get, proxy.get, "a", args)
            # The model's own speed in both processes, each timed in a tight loop where it runs.
            worker.put_inputs("row", [row])
            inside = statistics.median(
                worker.time_calls(remote, "predict_single", "row", args.calls).durations_ns / 1e3
            )
            beside = statistics.median(time_calls(local.predict_single, [row], args.calls) / 1e3)

    print(
        f"python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.2f}, "
        f"{os.cpu_count()} CPUs, isolation {args.isolation}"
    )
    print(f"protections: {', '.join(info.protections)}")
    print(f"{args.rounds} rounds x {args.calls} calls per side, medians per call:")
    print(f"  predict_single in-process    {here:8.1f} us")
    print(f"  predict_single in the worker {there:8.1f} us")
    print(f"  added by the worker          {there - here:8.1f} us, of which")
    trip = statistics.median(trips)
    verdict = "within" if trip <= GOAL_US else "above"
    print(
        f"    the round trip             {trip:8.1f} us (wall time minus the method's own time "
        f"in the worker; {verdict} the {GOAL_US:g} us goal)"
    )
    print(
        f"    the model itself, slower   {statistics.median(own) - here:8.1f} us (its own time "
        "in the worker, between calls, vs in-process)"
    )
    print(f"  predict_single in a tight loop: {beside:.1f} us in-process, {inside:.1f} us in the")
    print("  worker (what the gate's latency checks measure; the rest of the difference above is")
    print("  the wake-up of a process that slept between calls: caches, an idle CPU)")
    print(f"  dict.get in-process          {bare_here:8.1f} us")
    print(f"  dict.get in the worker       {bare_there:8.1f} us")
    added = bare_there - bare_here
    verdict = "within" if added <= GOAL_US else "above"
    print(f"  round trip of one call       {added:8.1f} us ({verdict} the {GOAL_US:g} us goal)")
    print(
        f"  raw pipe ping-pong           {pipe_floor(args.calls * 2, 200):8.1f} us (the OS floor)"
    )


if __name__ == "__main__":
    main()
