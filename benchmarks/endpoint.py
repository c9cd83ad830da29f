"""The gate's endpoint latency next to locust's on the same server, in one run.

Run by hand (needs ``pip install -e ".[bench]"``, and the example project's models:
``cd example_project && python train.py``)::

    python benchmarks/endpoint.py [--levels "1 8 32"] [--reps 2] [--run-time 10]
        [--max-seconds 10] [--locust-user fast|http]

Starts the example project's service (``example_project/serving_app.py``) with uvicorn on a free
loopback port and measures its single-row ``POST /predict`` latency at each concurrency level in
two ways, interleaved (gate, locust, then locust, gate, ...) so a machine whose speed drifts
affects both alike:

- the gate's own measurement, the one behind ``latency[p50-c=N]``/``latency[p99-c=N]`` of
  ``--deploy-gate-endpoint`` (its p50/p99 are medians of per-round percentiles);
- locust in headless mode, N users without wait time sending the same request bodies, its
  percentiles read from its ``_stats.csv`` (pooled over the run, bucketed to whole ms below
  100 ms) and, unrounded, from the response times of its own ``request`` event.

It prints the client overhead per request as the gate states it, then one line per level: the
gate's p50/p99, locust's, their ratios, and whether they agree within 10%. Figures are the
median over ``--reps`` interleaved pairs. At the gate's default 10 s cap a slow server gets
rounds of fewer calls than 4x the concurrency (sized from a one-at-a-time warm-up), even fewer
than the concurrency itself, so those requests never all queue at once and the gate's figures
come out low; ``--max-seconds 60`` gives it rounds of ``max(100, 4 * N)`` calls.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from deploy_gate.checks.common import records
from deploy_gate.checks.latency import LATENCY_INPUTS
from deploy_gate.endpoint.settings import parse_endpoint
from deploy_gate.endpoint.target import EndpointTarget
from deploy_gate.gate import Gate
from deploy_gate.options import OPTIONS, Settings

GOAL = 0.10
EXAMPLE = Path(__file__).resolve().parent.parent / "example_project"

LOCUSTFILE = """\
import itertools
import json
from pathlib import Path

from locust import FastHttpUser, HttpUser, constant, events, task

BODIES = json.loads(Path({bodies!r}).read_text())
PATH = {path!r}
RAW = Path({raw!r})
_next = itertools.cycle(BODIES).__next__
_times = []


@events.spawning_complete.add_listener
def _spawned(**kwargs):
    _times.clear()  # --reset-stats drops the ramp-up from the CSV; drop it here too


@events.request.add_listener
def _record(response_time, exception, **kwargs):
    if exception is None:
        _times.append(response_time)


@events.quitting.add_listener
def _dump(**kwargs):
    RAW.write_text(json.dumps(_times))


class Client({base}):
    wait_time = constant(0)  # a closed loop, as the gate keeps N requests in flight

    @task
    def predict(self):
        self.client.post(PATH, data=_next(), headers={{"content-type": "application/json"}})
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(model: Path) -> Iterator[str]:
    """The example app under uvicorn on a free loopback port, ready: its base URL."""
    import httpx

    port = _free_port()
    # One thread for the model, as the gate measures in-process latency (threads=1): with an
    # OpenMP team spread over both cores of a 2-core machine, the server's speed depended on
    # how much CPU the client in front of it used, so the comparison measured the two clients'
    # CPU use rather than their timing (c=1 moved 12.9-17.6 ms between runs of one client).
    env = {**os.environ, "DEPLOY_GATE_MODEL": str(model), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "uvicorn", "serving_app:app", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    process = subprocess.Popen(command, cwd=EXAMPLE, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"uvicorn exited with {process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"{url}/health not ready within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def gate_target(
    url: str, levels: tuple[int, ...], max_seconds: float = 10.0
) -> tuple[Gate, EndpointTarget, Any]:
    """A gate run as ``--deploy-gate-endpoint churn=URL --deploy-gate-data holdout.parquet
    --deploy-gate-endpoint-concurrency LEVELS --deploy-gate-latency-max-seconds S`` would make it
    (other settings at their
    defaults), its endpoint and the rows it sends. Fresh each time: the gate caches its
    latency measurement per endpoint and level."""
    values: dict[str, Any] = {option.name: option.default for option in OPTIONS}
    spec = parse_endpoint(f"churn={url}")
    values.update(
        data=EXAMPLE / "data/holdout.parquet",
        endpoint=[spec],
        endpoint_concurrency=levels,
        latency_max_seconds=max_seconds,
    )
    gate = Gate(Settings.of(values, {}), [])
    target = EndpointTarget(gate, spec, "churn")
    if target.error is not None:
        raise SystemExit(f"{url} is not usable: {target.error}")
    data = target.data()
    if isinstance(data, str):
        raise SystemExit(data)
    return gate, target, data


def gate_run(
    url: str, levels: tuple[int, ...], concurrency: int, max_seconds: float
) -> dict[str, float]:
    """The gate's own measurement at ``concurrency``: what ``latency[pNN-c=N]`` reports."""
    # Private: the check's only entry point to its measurement (see the report of issue #16).
    from deploy_gate.checks.endpoint import concurrent_measurement

    gate, target, data = gate_target(url, levels, max_seconds)
    try:
        measurement = concurrent_measurement(gate, target, data, concurrency)
        figures = measurement.figures()
        every = np.concatenate(measurement.durations_ns()) / 1e6
    finally:
        target.close()
    pooled50, pooled99 = np.percentile(every, [50, 99])
    return {
        "p50": float(figures["p50_ms"]),
        "p99": float(figures["p99_ms"]),
        "pooled50": float(pooled50),
        "pooled99": float(pooled99),
        "calls": int(figures["calls"]),
        "rounds": int(figures["rounds"]),
        "per_round": int(figures["calls_per_round"]),
        "seconds": float(figures["seconds"]),
    }


def gate_overhead_ms(url: str, levels: tuple[int, ...]) -> float:
    """The client's own overhead per request as the check states it."""
    from deploy_gate.checks.endpoint import client_overhead_ms

    gate, target, data = gate_target(url, levels)
    try:
        return client_overhead_ms(gate, target, data)
    finally:
        target.close()


def write_locustfile(url: str, levels: tuple[int, ...], folder: Path, user: str) -> Path:
    """A locustfile sending the bodies the gate sends (its first rows, one per request)."""
    _, target, data = gate_target(url, levels)
    try:
        deployment = target.deployment
        requests = [
            deployment.request_for(deployment._frame([row]))
            for row in records(data.features.iloc[:LATENCY_INPUTS])
        ]
    finally:
        target.close()
    bodies = folder / "bodies.json"
    bodies.write_text(json.dumps([json.dumps(r.body, allow_nan=False) for r in requests]))
    path = urlsplit(requests[0].url).path
    source = LOCUSTFILE.format(
        bodies=str(bodies),
        path=path,
        raw=str(folder / "raw.json"),
        base="FastHttpUser" if user == "fast" else "HttpUser",
    )
    locustfile = folder / "locustfile.py"
    locustfile.write_text(source)
    return locustfile


def locust_run(
    url: str, locustfile: Path, concurrency: int, seconds: int, folder: Path
) -> dict[str, float]:
    """locust --headless with ``concurrency`` users for ``seconds`` after they are spawned."""
    prefix = folder / f"c{concurrency}"
    executable = shutil.which("locust", path=str(Path(sys.executable).parent)) or "locust"
    command = [executable, "-f", str(locustfile), "--headless", "-u", str(concurrency)]
    command += ["-r", str(concurrency), "--run-time", f"{seconds}s", "--host", url]
    command += ["--csv", str(prefix), "--reset-stats", "--only-summary", "--stop-timeout", "5"]
    command += ["--loglevel", "WARNING"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    stats = Path(f"{prefix}_stats.csv")
    if not stats.is_file():
        raise SystemExit(f"locust wrote no {stats.name}:\n{done.stdout}\n{done.stderr}")
    with stats.open(newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["Name"] == "Aggregated")
    raw = np.asarray(json.loads((folder / "raw.json").read_text()), dtype=np.float64)
    failures = int(row["Failure Count"])
    if failures:
        raise SystemExit(f"locust saw {failures} failed requests:\n{done.stderr[-2000:]}")
    warnings = [line for line in done.stderr.splitlines() if "CPU usage" in line]
    raw50, raw99 = np.percentile(raw, [50, 99]) if raw.size else (np.nan, np.nan)
    return {
        "p50": float(row["50%"]),
        "p99": float(row["99%"]),
        "raw50": float(raw50),
        "raw99": float(raw99),
        "calls": int(row["Request Count"]),
        "cpu_warnings": len(warnings),
    }


def _median(runs: list[dict[str, float]], key: str) -> float:
    return float(statistics.median(run[key] for run in runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--levels", default="1 8 32", help="concurrency levels")
    parser.add_argument("--reps", type=int, default=2, help="interleaved pairs per level")
    parser.add_argument("--run-time", type=int, default=10, help="seconds per locust run")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=10.0,
        help="the gate's --deploy-gate-latency-max-seconds (its default: 10)",
    )
    parser.add_argument("--locust-user", choices=("fast", "http"), default="fast")
    parser.add_argument("--model", type=Path, default=EXAMPLE / "models/candidate.joblib")
    args = parser.parse_args()
    levels = tuple(int(x) for x in args.levels.split())
    if not args.model.is_file():
        raise SystemExit(f"{args.model} is missing: cd example_project && python train.py")

    with serving(args.model) as url, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        locustfile = write_locustfile(url, levels, folder, args.locust_user)
        user = "FastHttpUser" if args.locust_user == "fast" else "HttpUser"
        print(f"example app (uvicorn, 1 worker) at {url}; single-row POST /predict")
        print(
            f"gate: its latency[pNN-c=N] measurement, latency-max-seconds {args.max_seconds:g}; "
            f"locust: {user}, -u N -r N, "
            f"{args.run_time}s after spawning; {args.reps} interleaved pair(s) per level, medians"
        )
        print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
        overhead = gate_overhead_ms(url, levels)
        print(
            f"client overhead per request, as the gate states it (p50 against a loopback "
            f"server that answers at once): {overhead:.3f} ms"
        )
        results: list[tuple[int, list[dict[str, float]], list[dict[str, float]]]] = []
        turn = 0
        for level in levels:
            gates: list[dict[str, float]] = []
            locusts: list[dict[str, float]] = []
            for _ in range(args.reps):
                for tool in ("gate", "locust") if turn % 2 == 0 else ("locust", "gate"):
                    if tool == "gate":
                        gates.append(gate_run(url, levels, level, args.max_seconds))
                    else:
                        locusts.append(locust_run(url, locustfile, level, args.run_time, folder))
                turn += 1
            for g, lo in zip(gates, locusts, strict=True):
                print(
                    f"  c={level}: gate p50/p99 {g['p50']:.1f}/{g['p99']:.1f} ms "
                    f"({g['rounds']} rounds x {g['per_round']} calls, {g['seconds']:.1f} s), "
                    f"locust {lo['p50']:.0f}/{lo['p99']:.0f} ms ({lo['calls']} requests)",
                    file=sys.stderr,
                )
            results.append((level, gates, locusts))

        head = (
            f"{'c':>3} {'gate p50':>9} {'p99':>8} {'locust p50':>11} {'p99':>8} "
            f"{'ratio p50':>10} {'p99':>6}  within 10%"
        )
        print("\nms; gate = median of per-round percentiles, locust = its _stats.csv")
        print(head)
        for level, gates, locusts in results:
            g50, g99 = _median(gates, "p50"), _median(gates, "p99")
            l50, l99 = _median(locusts, "p50"), _median(locusts, "p99")
            r50, r99 = g50 / l50, g99 / l99
            ok = abs(r50 - 1) <= GOAL and abs(r99 - 1) <= GOAL
            print(
                f"{level:>3} {g50:>9.2f} {g99:>8.2f} {l50:>11.0f} {l99:>8.0f} "
                f"{r50:>10.2f} {r99:>6.2f}  {'yes' if ok else 'NO'}"
            )
        print("\nms, unrounded; both pooled over every call of the run (the same estimator)")
        print(
            f"{'c':>3} {'gate p50':>9} {'p99':>8} {'locust p50':>11} {'p99':>8} "
            f"{'ratio p50':>10} {'p99':>6}  within 10%  locust CPU warnings"
        )
        for level, gates, locusts in results:
            g50, g99 = _median(gates, "pooled50"), _median(gates, "pooled99")
            l50, l99 = _median(locusts, "raw50"), _median(locusts, "raw99")
            r50, r99 = g50 / l50, g99 / l99
            ok = abs(r50 - 1) <= GOAL and abs(r99 - 1) <= GOAL
            warned = sum(int(run["cpu_warnings"]) for run in locusts)
            print(
                f"{level:>3} {g50:>9.2f} {g99:>8.2f} {l50:>11.2f} {l99:>8.2f} "
                f"{r50:>10.2f} {r99:>6.2f}  {'yes' if ok else 'NO':<10}  {warned}"
            )
        print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
