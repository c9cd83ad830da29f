"""Drift speed and memory: deploy_gate.drift against Evidently's DataDriftPreset, in one run.

Run by hand, never by the test suite. Evidently lives only in its own virtual environment (it
is no dependency of the project, and 0.7 still needs pandas 2):

    python -m venv /tmp/evidently-venv
    /tmp/evidently-venv/bin/pip install evidently "pandas<3" pyarrow scipy
    python benchmarks/drift.py --evidently-python /tmp/evidently-venv/bin/python

Synthetic reference/current data: 20 numeric columns (normal, lognormal, uniform, Poisson) and
5 categorical ones (5 to 45 categories), at 100k and 1M rows. Planted drift: ``num_00`` (mean
+0.5 sd), ``num_05`` (lognormal sigma 1 -> 2) and ``cat_0`` (shares tilted 1:3); ``num_10`` gets
a negligible +0.02 sd shift that neither tool should flag. Every measurement runs in a fresh
subprocess; time covers the drift computation only (data loaded and libraries imported
before the clock starts), peak memory is the child's ``ru_maxrss`` from ``wait4`` (whole
process: interpreter, imports and data). The driver itself stays small (data is generated in
a worker too) because Linux carries the parent's RSS high-water mark into a forked child's
``ru_maxrss``. Medians over repeats.

Also measured: drift against a saved profile (CI needs the current data and a small JSON file,
not the training set) and streaming drift over a 10M-row Parquet file in 100k-row chunks.
Pass ``--skip-evidently`` to report ours alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

NUMERIC = [f"num_{i:02d}" for i in range(20)]
CATEGORICAL = [f"cat_{j}" for j in range(5)]
PLANTED = {"num_00", "num_05", "cat_0"}
NEGLIGIBLE = "num_10"
SIZES = (100_000, 1_000_000)
STREAM_ROWS = 10_000_000


# --- data ------------------------------------------------------------------------------------


def make_frame(n: int, seed: int, shifted: bool) -> Any:
    """One synthetic frame; ``shifted`` plants the drift described in the module docstring."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {}
    for i, name in enumerate(NUMERIC):
        kind = i % 4
        if kind == 0:
            x = rng.normal(0.0, 1.0, n)
        elif kind == 1:
            x = rng.lognormal(0.0, 2.0 if shifted and name == "num_05" else 1.0, n)
        elif kind == 2:
            x = rng.uniform(0.0, 10.0, n)
        else:
            x = rng.poisson(5.0, n).astype(np.float64)
        if shifted and name == "num_00":
            x += 0.5
        if shifted and name == NEGLIGIBLE:
            x += 0.02
        cols[name] = x
    for j, name in enumerate(CATEGORICAL):
        k = 5 + 10 * j
        p = np.full(k, 1.0 / k)
        if shifted and name == "cat_0":
            p = np.linspace(1.0, 3.0, k)
            p /= p.sum()
        labels = np.array([f"c{c:02d}" for c in range(k)], dtype=object)
        cols[name] = labels[rng.choice(k, size=n, p=p)]
    return pd.DataFrame(cols)


def write_data(workdir: Path, sizes: tuple[int, ...], stream_rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    workdir.mkdir(parents=True, exist_ok=True)
    for n in sizes:
        for side, seed, shifted in (("ref", 1, False), ("cur", 2, True)):
            path = workdir / f"{side}_{n}.parquet"
            if not path.exists():
                make_frame(n, seed + n, shifted).to_parquet(path, index=False)
    path = workdir / f"stream_{stream_rows}.parquet"
    if stream_rows and not path.exists():
        step = 1_000_000
        writer = None
        for start in range(0, stream_rows, step):
            table = pa.Table.from_pandas(
                make_frame(min(step, stream_rows - start), 100 + start // step, True),
                preserve_index=False,
            )
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=step)
        assert writer is not None
        writer.close()


# --- workers (each runs in its own subprocess) -------------------------------------------------


def _warm_imports() -> None:
    """Import what drift imports lazily, so the clock (like Evidently's) excludes imports."""
    import scipy.stats  # noqa: F401


def worker_write_data(workdir: Path, n: int) -> dict[str, Any]:
    write_data(workdir, SIZES, n)
    return {"seconds": 0.0}


def _flagged(results: Any) -> list[str]:
    return sorted(r.feature for r in results if not r.passed)


def worker_ours(workdir: Path, n: int) -> dict[str, Any]:
    import pandas as pd

    from deploy_gate.drift import detect_drift

    _warm_imports()
    ref = pd.read_parquet(workdir / f"ref_{n}.parquet")
    cur = pd.read_parquet(workdir / f"cur_{n}.parquet")
    t0 = time.perf_counter()
    results = detect_drift(ref, cur)
    return {"seconds": time.perf_counter() - t0, "flagged": _flagged(results)}


def worker_build_profile(workdir: Path, n: int) -> dict[str, Any]:
    from deploy_gate.drift import build_profile, iter_chunks

    t0 = time.perf_counter()
    profile = build_profile(iter_chunks(workdir / f"ref_{n}.parquet", chunk_rows=100_000))
    seconds = time.perf_counter() - t0
    path = workdir / f"profile_{n}.json"
    profile.save(path)
    errors = [getattr(f, "ks_error", 0.0) for f in profile.features]
    return {"seconds": seconds, "bytes": path.stat().st_size, "max_ks_error": max(errors)}


def worker_profile(workdir: Path, n: int) -> dict[str, Any]:
    import pandas as pd

    from deploy_gate.drift import Profile, drift_against_profile

    _warm_imports()
    cur = pd.read_parquet(workdir / f"cur_{n}.parquet")
    t0 = time.perf_counter()
    profile = Profile.load(workdir / f"profile_{n}.json")
    t1 = time.perf_counter()
    results = drift_against_profile(profile, cur)
    t2 = time.perf_counter()
    return {"seconds": t2 - t1, "load_seconds": t1 - t0, "flagged": _flagged(results)}


def worker_ours_with_load(workdir: Path, n: int) -> dict[str, Any]:
    """CI time with the raw reference: reading the training data is part of the cost."""
    import pandas as pd

    from deploy_gate.drift import detect_drift

    _warm_imports()
    cur = pd.read_parquet(workdir / f"cur_{n}.parquet")
    t0 = time.perf_counter()
    ref = pd.read_parquet(workdir / f"ref_{n}.parquet")
    t1 = time.perf_counter()
    detect_drift(ref, cur)
    return {"seconds": time.perf_counter() - t1, "load_seconds": t1 - t0}


def worker_stream(workdir: Path, n: int) -> dict[str, Any]:
    from deploy_gate.drift import Profile, drift_against_profile, iter_chunks

    _warm_imports()
    profile = Profile.load(workdir / f"profile_{max(SIZES)}.json")
    t0 = time.perf_counter()
    chunks = iter_chunks(workdir / f"stream_{n}.parquet", chunk_rows=100_000)
    results = drift_against_profile(profile, chunks)
    return {"seconds": time.perf_counter() - t0, "flagged": _flagged(results)}


def worker_evidently(workdir: Path, n: int) -> dict[str, Any]:
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref = pd.read_parquet(workdir / f"ref_{n}.parquet")
    cur = pd.read_parquet(workdir / f"cur_{n}.parquet")
    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    t0 = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
        current_data=Dataset.from_pandas(cur, data_definition=definition),
    )
    seconds = time.perf_counter() - t0
    flagged = []
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift"):
            value, threshold = float(metric["value"]), float(config["threshold"])
            # p-value methods drift below the threshold, distances at or above it.
            is_p = "p_value" in str(config.get("method", ""))
            if (value < threshold) if is_p else (value >= threshold):
                flagged.append(config["column"])
    return {"seconds": seconds, "flagged": sorted(flagged)}


WORKERS = {
    "write_data": worker_write_data,
    "ours": worker_ours,
    "ours_with_load": worker_ours_with_load,
    "build_profile": worker_build_profile,
    "profile": worker_profile,
    "stream": worker_stream,
    "evidently": worker_evidently,
}


# --- driver ------------------------------------------------------------------------------------


def run_worker(python: str, name: str, workdir: Path, n: int) -> dict[str, Any]:
    """Run one worker in a fresh process; add its peak RSS (MiB) from ``wait4``."""
    env = dict(os.environ, DO_NOT_TRACK="1", PYTHONHASHSEED="0")
    cmd = [python, os.path.abspath(__file__), "--worker", name, "--workdir", str(workdir)]
    cmd += ["--rows", str(n)]
    with tempfile.TemporaryFile() as err:
        # stderr goes to a file so a chatty worker cannot block on a full pipe.
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env)
        assert proc.stdout is not None
        out = proc.stdout.read()
        # wait4 (not Popen.wait) to get this child's own rusage, hence its own peak RSS.
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace")[-3000:]
            raise RuntimeError(f"worker {name} (n={n}) failed:\n{tail}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    result["peak_mib"] = usage.ru_maxrss / 1024  # Linux reports KiB
    return result


def measure(python: str, name: str, workdir: Path, n: int, repeats: int) -> dict[str, Any]:
    runs = [run_worker(python, name, workdir, n) for _ in range(repeats)]
    summary: dict[str, Any] = dict(runs[-1])
    for key in ("seconds", "load_seconds", "peak_mib"):
        if key in runs[0]:
            summary[key] = statistics.median(r[key] for r in runs)
    summary["repeats"] = repeats
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/deploy-gate-drift-bench"))
    parser.add_argument("--evidently-python", default="/tmp/evidently-venv/bin/python")
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--evidently-repeats", type=int, default=1)
    parser.add_argument("--stream-rows", type=int, default=STREAM_ROWS)
    parser.add_argument("--worker", choices=sorted(WORKERS))
    parser.add_argument("--rows", type=int)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(WORKERS[args.worker](args.workdir, args.rows)))
        return

    evidently = None
    if not args.skip_evidently:
        if Path(args.evidently_python).exists():
            evidently = args.evidently_python
        else:
            print(f"Evidently interpreter {args.evidently_python} not found: reporting ours alone")

    print(f"writing data to {args.workdir} (reused when present) ...", flush=True)
    run_worker(sys.executable, "write_data", args.workdir, args.stream_rows)
    me = sys.executable
    print(f"planted: {sorted(PLANTED)}; negligible shift (must pass): {NEGLIGIBLE}")
    print(f"medians over {args.repeats} runs (Evidently: {args.evidently_repeats})\n")
    header = f"{'rows':>9} {'what':<34} {'seconds':>9} {'peak MiB':>9}  flagged"
    print(header)
    print("-" * len(header))

    def row(n: int, what: str, r: dict[str, Any]) -> None:
        flagged = r.get("flagged")
        ok = "" if flagged is None else ("OK " if set(flagged) == PLANTED else "WRONG ")
        shown = "" if flagged is None else ok + ",".join(flagged)
        print(f"{n:>9} {what:<34} {r['seconds']:>9.2f} {r['peak_mib']:>9.0f}  {shown}", flush=True)

    for n in SIZES:
        ours = measure(me, "ours", args.workdir, n, args.repeats)
        row(n, "ours: detect_drift(ref, cur)", ours)
        built = measure(me, "build_profile", args.workdir, n, 1)
        row(n, "ours: build_profile (streamed, once)", built)
        print(
            f"{'':>9} {'  profile JSON':<34} {built['bytes'] / 1024:>8.0f}K"
            f"  max KS error bound {built['max_ks_error']:.4f}"
        )
        prof = measure(me, "profile", args.workdir, n, args.repeats)
        row(n, "ours: drift_against_profile", prof)
        with_load = measure(me, "ours_with_load", args.workdir, n, args.repeats)
        ci_raw = with_load["seconds"] + with_load["load_seconds"]
        ci_prof = prof["seconds"] + prof["load_seconds"]
        print(
            f"{'':>9} profile vs raw reference: {ours['seconds'] / prof['seconds']:.1f}x "
            f"compute; {ci_raw / ci_prof:.1f}x CI time incl. reading the reference "
            f"({ci_raw:.2f}s vs {ci_prof:.2f}s)"
        )
        if evidently:
            ev = measure(evidently, "evidently", args.workdir, n, args.evidently_repeats)
            row(n, "Evidently DataDriftPreset", ev)
            print(
                f"{'':>9} ours vs Evidently: {ev['seconds'] / ours['seconds']:.1f}x faster, "
                f"{ours['peak_mib'] / ev['peak_mib']:.2f}x the peak memory; with a profile "
                f"{ev['seconds'] / prof['seconds']:.1f}x faster, "
                f"{prof['peak_mib'] / ev['peak_mib']:.2f}x the peak memory"
            )
        print()
    if args.stream_rows:
        stream = measure(me, "stream", args.workdir, args.stream_rows, 1)
        row(args.stream_rows, "ours: streamed Parquet vs profile", stream)
        verdict = "under" if stream["peak_mib"] < 1024 else "OVER"
        print(f"{'':>9} peak {stream['peak_mib']:.0f} MiB: {verdict} the 1 GiB goal")


if __name__ == "__main__":
    main()
