"""Polling for the worker's answer on a busy machine: does it take a CPU that is wanted?

Run by hand: ``python benchmarks/isolation_contention.py [--calls 1500] [--rounds 2]``. With 0, 1
and 2 CPU hogs (processes spinning in Python) beside the gate and its model worker, it times
calls through a worker whose two sides poll for each other's next message before they sleep
(``WorkerConfig.spin_seconds``, what the gate does) and through one whose sides sleep at once,
alternating in each round:

- a method that computes for 1 ms (a small model's single-row call), wall time per call;
- ``dict.get``, a call that does nothing, wall time per call.

Medians in us. Polling should win on a quiet machine and cost nothing when the CPUs are
wanted: the readers notice that other processes take their CPU and sleep instead.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from deploy_gate.worker import ModelWorker, WorkerConfig

HERE = str(Path(__file__).parent)


def medians(polling: bool, calls: int) -> tuple[float, float]:
    config = WorkerConfig(sys_path=(HERE,))
    if not polling:
        config = WorkerConfig(sys_path=(HERE,), spin_seconds=0.0, worker_spin_seconds=0.0)
    with ModelWorker(config) as worker:
        busy = worker.construct("isolation_roundtrip:Busy")
        table = worker.construct("builtins:dict", [{"a": 1}])
        for _ in range(100):
            busy.compute(1000)
        model: list[float] = []
        trivial: list[float] = []
        for _ in range(calls):
            start = time.perf_counter_ns()
            busy.compute(1000)
            model.append((time.perf_counter_ns() - start) / 1e3)
        for _ in range(calls):
            start = time.perf_counter_ns()
            table.get("a")
            trivial.append((time.perf_counter_ns() - start) / 1e3)
    return statistics.median(model), statistics.median(trivial)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1500, help="calls of each kind per arm")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print("medians per call in us: polling (what the gate does) | sleeping at once")
    print(f"{'hogs':>4} {'round':>5}  {'1 ms call':>18}  {'dict.get':>14}")
    for hogs in (0, 1, 2):
        spinners = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(hogs)
        ]
        time.sleep(0.3)
        try:
            for round_ in range(args.rounds):
                polled = medians(True, args.calls)
                slept = medians(False, args.calls)
                print(
                    f"{hogs:>4} {round_:>5}  {polled[0]:8.0f} | {slept[0]:7.0f}  "
                    f"{polled[1]:6.0f} | {slept[1]:5.0f}"
                )
        finally:
            for spinner in spinners:
                spinner.kill()
                spinner.wait()


if __name__ == "__main__":
    main()
