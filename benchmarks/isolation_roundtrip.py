"""What the model worker adds to one single-row call: ``predict_single`` in-process vs through it.

Run by hand: ``python benchmarks/isolation_roundtrip.py [--calls 1000] [--rounds 8]
[--isolation sandbox|process]``. A small scikit-learn pipeline is saved with joblib and served
by ``ModelDeployment`` three times: in this process, in a model worker the OS places freely
(what the gate does), and in a worker on one CPU with this process waiting on that CPU during
the calls (``WorkerConfig(cpus=...)`` and ``ModelWorker.colocated()``). Rounds of single
calls alternate between the three, so a machine whose speed drifts affects all alike. Printed
per placement, medians per call: the wall time, what the worker adds over in-process, the
round trip (wall time minus the method's own time in the worker: the goal is at most 50 us),
and the round trip of a trivial method (``dict.get``).

Placements: the OS's choice with the two sides polling for each other's next message a moment
before they sleep (``WorkerConfig.spin_seconds``, what the gate does), the same with both
sleeping at once, and one CPU shared by both. For the first, also the round trip of two
methods that take as long as the model: one computing in registers, one sweeping 32 MB of
memory, so that what a call leaves in the caches shows apart from the protocol.

Two floors set by the OS, in the same placements: a raw ping-pong of 100 bytes through a pipe,
and the same to a process that runs the same model for each message, with the least protocol
possible (its round trip is what any pipe-based worker pays on this machine).
"""

from __future__ import annotations

import argparse
import contextlib
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
from deploy_gate.worker import ModelWorker, WorkerConfig, on_cpus, one_cpu

GOAL_US = 50.0


class Busy:  # pragma: no cover - constructed in the worker
    """Methods that take ``us`` microseconds: in registers only, or sweeping 32 MB of memory."""

    def __init__(self) -> None:
        self.block = np.ones(4_000_000)

    def compute(self, us: float) -> int:
        end = time.perf_counter() + us / 1e6
        while time.perf_counter() < end:
            pass
        return 1

    def sweep(self, us: float) -> int:
        end = time.perf_counter() + us / 1e6
        while time.perf_counter() < end:
            self.block.sum()
        return 1


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
) -> list[tuple[float, float]]:
    """Per call: its wall time here and the method's own time measured in the worker."""
    clock = time.perf_counter_ns
    out = []
    for _ in range(calls):
        start = clock()
        fn(arg)
        wall = clock() - start
        out.append((wall / 1e3, (worker.last_call_ns or 0) / 1e3))
    return out


def _floor_child(path: str, row_json: str) -> None:  # pragma: no cover - the echo process
    import json

    deployment = ModelDeployment(path or "-")
    if path:
        deployment.load_model()
    row = json.loads(row_json)
    while os.read(0, 65536):
        start = time.perf_counter_ns()
        if path:
            deployment.predict_single(row)
        os.write(1, (time.perf_counter_ns() - start).to_bytes(8, "little"))
    os._exit(0)


def floors(path: str, row: dict[str, float], calls: int, rounds: int) -> dict[str, float]:
    """Round trips (wall minus the child's own time) of the least protocol possible, in us:
    ``pipe`` to a process that answers at once, ``model`` to one that first runs the model; the
    keys ending in ``wall`` are whole calls."""
    import json
    import subprocess

    out: dict[str, list[float]] = {}
    here = os.sched_getaffinity(0)
    cpu = one_cpu(0)
    for kind, model in (("pipe", ""), ("model", path)):
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); from isolation_roundtrip import "
            "_floor_child; _floor_child(sys.argv[2], sys.argv[3])"
        )
        folder = str(Path(__file__).parent)
        child = subprocess.Popen(
            [sys.executable, "-c", code, folder, model, json.dumps(row)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert child.stdin is not None
        assert child.stdout is not None
        wfd, rfd = child.stdin.fileno(), child.stdout.fileno()
        for _ in range(rounds):
            for placement, cpus in (("free", tuple(here)), ("one CPU", cpu or tuple(here))):
                os.sched_setaffinity(child.pid, cpus)
                with on_cpus(cpus):
                    times = out.setdefault(f"{kind} {placement}", [])
                    walls = out.setdefault(f"{kind} {placement} wall", [])
                    for _ in range(calls):
                        start = time.perf_counter_ns()
                        os.write(wfd, b"x" * 100)
                        own = int.from_bytes(os.read(rfd, 8), "little")
                        wall = time.perf_counter_ns() - start
                        times.append((wall - own) / 1e3)
                        walls.append(wall / 1e3)
        child.stdin.close()
        child.wait()
    return {key: statistics.median(values) for key, values in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1000, help="calls per round and side")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--isolation", default="sandbox", choices=("sandbox", "process"))
    args = parser.parse_args()
    if one_cpu(0) is None:
        sys.exit("this benchmark compares placements: it needs sched_setaffinity and 2+ CPUs")

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.standard_normal((500, 4)), columns=["a", "b", "c", "d"])
    model = make_pipeline(StandardScaler(), LogisticRegression())
    model.fit(frame, (frame.a + frame.b > 0).astype(int))
    row = {str(name): float(value) for name, value in frame.iloc[0].items()}

    # name: (CPUs of the worker, seconds each side polls before it sleeps: the gate, the worker)
    placements = {
        "free": (None, None),
        "free, sleeping": (None, (0.0, 0.0)),
        "one CPU": (one_cpu(0), None),
    }
    wall: dict[str, list[float]] = {"in-process": []}
    trips: dict[str, list[float]] = {}
    bare: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder, contextlib.ExitStack() as stack:
        path = Path(folder) / "model.joblib"
        joblib.dump(model, path)
        local = ModelDeployment(path)
        local.load_model()
        served = {}
        for name, (cpus, spins) in placements.items():
            polls = (
                {}
                if spins is None
                else dict(zip(("spin_seconds", "worker_spin_seconds"), spins, strict=True))
            )
            worker = stack.enter_context(
                ModelWorker(WorkerConfig(isolation=args.isolation, cpus=cpus, **polls))
            )
            info = worker.start()
            remote = worker.construct("deploy_gate.deployment:ModelDeployment", [str(path)])
            remote.load_model()
            assert remote.predict_single(row) == local.predict_single(row)
            table = worker.construct("builtins:dict", [{"a": 1}])
            served[name] = (worker, remote, table)
        per_call_us(local.predict_single, row, 200)  # warm-up
        for _ in range(args.rounds):
            wall["in-process"] += per_call_us(local.predict_single, row, args.calls)
            for name, (worker, remote, table) in served.items():
                with worker.colocated():
                    per_call_us(remote.predict_single, row, 50)  # settle on the CPU
                    times = round_trips_us(worker, remote.predict_single, row, args.calls)
                    wall.setdefault(name, []).extend(t for t, _ in times)
                    trips.setdefault(name, []).extend(t - own for t, own in times)
                    bare.setdefault(name, []).extend(
                        t - own for t, own in round_trips_us(worker, table.get, "a", args.calls)
                    )
        floor = floors(str(path), row, args.calls, max(2, args.rounds // 2))
        worker = stack.enter_context(
            ModelWorker(
                WorkerConfig(isolation=args.isolation, sys_path=(str(Path(__file__).parent),))
            )
        )
        busy = worker.construct("isolation_roundtrip:Busy")
        model_us = statistics.median(wall["in-process"])
        kinds: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for kind in ("compute", "sweep"):
                times = round_trips_us(worker, getattr(busy, kind), model_us, args.calls // 4)
                kinds.setdefault(kind, []).extend(t - own for t, own in times)

    print(
        f"python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.2f}, "
        f"{os.cpu_count()} CPUs, isolation {args.isolation}"
    )
    print(f"protections: {', '.join(info.protections)}")
    print(f"{args.rounds} rounds x {args.calls} calls per arm, medians per call in us:")
    here = statistics.median(wall["in-process"])
    print(f"  predict_single in-process: {here:.1f}")
    print(f"  {'worker placed':16} {'wall':>8} {'added':>8} {'round trip':>11} {'dict.get':>9}")
    for name in placements:
        w, t, b = (statistics.median(x[name]) for x in (wall, trips, bare))
        verdict = "within" if t <= GOAL_US else "above"
        print(f"  {name:16} {w:8.1f} {w - here:8.1f} {t:11.1f} {b:9.1f}   ({verdict} {GOAL_US:g})")
    print("  round trip = the call's wall time minus the method's own time in the worker")
    print(
        f"  a method as long as the model, free and polling: round trip "
        f"{statistics.median(kinds['compute']):.1f} computing in registers, "
        f"{statistics.median(kinds['sweep']):.1f} sweeping 32 MB"
    )
    print("floors, the least protocol possible over the same pipes (wall minus the child's time):")
    for name in ("free", "one CPU"):
        print(
            f"  {name:14} raw ping-pong {floor['pipe ' + name]:6.1f}   "
            f"to a process running the model {floor['model ' + name]:6.1f}, "
            f"which adds {floor['model ' + name + ' wall'] - here:6.1f} to the call in-process"
        )


if __name__ == "__main__":
    main()
