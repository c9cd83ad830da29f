"""Drift at scale: build a current profile in process (streamed) and on Dask, then compare.

    python benchmarks/profile_scale.py                 # 100M rows x 25 columns (about 16 GB)
    python benchmarks/profile_scale.py --rows 10000000 --workers 2

Generates a Parquet data set of ``--rows`` rows and 25 columns (20 numeric, 5 categorical) on
disk, row group by row group (never whole in memory), in files of ``--file-rows`` rows. Then, in
one run, reports:

- the in-process streaming build (``deploy-gate profile build DIR --reference REF``, run as a
  child process so its peak memory is its own): rows/s, rows/s per core, peak RSS;
- the Dask build on a LocalCluster of ``--workers`` single-threaded worker processes (started
  before the clock starts; its start-up time is reported apart): rows/s, rows/s per core,
  peak RSS of each worker;
- whether both gave identical counts, and the time to load two saved profiles and compare them
  (libraries already imported).

Needs the ``dask`` and ``parquet`` extras. The data set is deleted afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

NUMERIC = 20
CATEGORICAL = 5


def _generate(folder: Path, rows: int, row_group: int, file_rows: int, seed: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    palette = np.array([f"level-{i}" for i in range(12)], dtype=object)
    written, index = 0, 0
    writer = None
    while written < rows:
        if writer is None or written % file_rows == 0:
            if writer is not None:
                writer.close()
            writer = pq.ParquetWriter(folder / f"part-{index:04d}.parquet", _schema())
            index += 1
        n = min(row_group, rows - written, file_rows - written % file_rows)
        columns: dict[str, object] = {}
        for i in range(NUMERIC):
            if i % 4 == 3:
                columns[f"n{i}"] = rng.poisson(3 + i, n).astype(np.int64)
            elif i % 4 == 2:
                columns[f"n{i}"] = rng.lognormal(1.0, 0.5, n)
            else:
                values = rng.normal(i, 1.0 + i / 10, n)
                values[rng.random(n) < 0.01] = np.nan
                columns[f"n{i}"] = values
        for i in range(CATEGORICAL):
            columns[f"c{i}"] = palette[rng.integers(0, 4 + 2 * i, n)]
        writer.write_table(pa.table(columns, schema=_schema()), row_group_size=row_group)
        written += n
    assert writer is not None
    writer.close()


def _schema() -> object:
    import pyarrow as pa

    fields = [pa.field(f"n{i}", pa.int64() if i % 4 == 3 else pa.float64()) for i in range(NUMERIC)]
    fields += [pa.field(f"c{i}", pa.string()) for i in range(CATEGORICAL)]
    return pa.schema(fields)


def _reference(folder: Path, target: Path) -> None:
    import pyarrow.parquet as pq

    from deploy_gate.drift import build_profile

    first = sorted(folder.glob("*.parquet"))[0]
    frame = pq.ParquetFile(first).read_row_group(0).to_pandas()
    build_profile(frame).save(target)


def _cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _stream(data: Path, ref: Path, out: Path, chunk_rows: int) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (MiB) of the streaming build in a child process."""
    argv = ["profile", "build", str(data), "--reference", str(ref), "-o", str(out)]
    argv += ["--chunk-rows", str(chunk_rows)]
    # The child reports its own peak: ru_maxrss of a child starts at its parent's peak.
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import profile_scale as b; "
        "from deploy_gate.cli import main; status = main(sys.argv[2:]); "
        "print(b._peak_rss_mib(), file=sys.stderr); raise SystemExit(status)"
    )
    cmd = [sys.executable, "-c", code, str(Path(__file__).parent), *argv]
    cpu = _cpu_seconds(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    cpu = _cpu_seconds(resource.RUSAGE_CHILDREN) - cpu
    return elapsed, cpu, float(done.stderr.decode().split()[-1])


def _warm() -> None:
    import scipy.stats  # noqa: F401

    import deploy_gate.profiles  # noqa: F401


def _peak_rss_mib() -> float:
    """This process's own peak RSS (VmHWM: ru_maxrss would start at the parent's peak)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _dask(data: Path, ref: Path, out: Path, workers: int, chunk_rows: int) -> dict[str, object]:
    import logging

    from distributed import Client, LocalCluster

    from deploy_gate import profiles

    started = time.perf_counter()
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    client = Client(cluster)
    client.wait_for_workers(workers)
    # Part of starting a cluster, not of profiling: the workers import the library once.
    client.run(_warm)
    startup = time.perf_counter() - started
    try:
        cpu_before = client.run(_cpu_seconds)
        client_cpu = _cpu_seconds()
        start = time.perf_counter()
        profile = profiles.build(
            [data],
            reference=profiles.load(ref),
            engine="dask",
            scheduler=cluster.scheduler_address,
            chunk_rows=chunk_rows,
        )
        elapsed = time.perf_counter() - start
        client_cpu = _cpu_seconds() - client_cpu
        cpu_after = client.run(_cpu_seconds)
        peaks = client.run(_peak_rss_mib)
    finally:
        client.close()
        cluster.close()
    profile.save(out)
    return {
        "seconds": elapsed,
        "startup": startup,
        "worker_cpu": sum(cpu_after[w] - cpu_before[w] for w in cpu_after),
        "client_cpu": client_cpu,
        "worker_peak_mib": sorted(peaks.values()),
    }


def _compare(ref: Path, current: Path) -> float:
    from deploy_gate import profiles

    _warm()  # a CI job pays the imports once per run, whatever it compares
    start = time.perf_counter()
    reference = profiles.load(ref)
    results = profiles.compare(reference, profiles.load(current))
    elapsed = time.perf_counter() - start
    assert len(results) == NUMERIC + CATEGORICAL
    return elapsed


def _counts(path: Path) -> list[object]:
    doc = json.loads(path.read_text())
    keys = ("count", "missing", "bin_counts", "below", "at_or_below", "categories")
    return [doc["rows"]] + [[f.get(k) for k in keys] for f in doc["features"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000_000)
    parser.add_argument("--row-group", type=int, default=1_000_000)
    parser.add_argument("--file-rows", type=int, default=10_000_000)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=None, help="where to write the data set")
    parser.add_argument("--keep", action="store_true", help="keep the data set")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    root = Path(args.dir or tempfile.mkdtemp(prefix="deploy-gate-scale-"))
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        if not any(data.glob("*.parquet")):
            _generate(data, args.rows, args.row_group, args.file_rows, seed=0)
        generated = time.perf_counter() - start
        size = sum(p.stat().st_size for p in data.glob("*.parquet"))
        ref = root / "reference.json"
        _reference(data, ref)

        stream_s, stream_cpu, stream_mib = _stream(data, ref, root / "stream.json", args.chunk_rows)
        dask = _dask(data, ref, root / "dask.json", args.workers, args.chunk_rows)
        compare_s = _compare(ref, root / "stream.json")
        identical = _counts(root / "stream.json") == _counts(root / "dask.json")

        rows = args.rows
        dask_s = float(dask["seconds"])  # type: ignore[arg-type]
        dask_cpu = float(dask["worker_cpu"])  # type: ignore[arg-type]
        load = os.getloadavg()[0]
        figures = {
            "rows": rows,
            "columns": NUMERIC + CATEGORICAL,
            "row_group": args.row_group,
            "chunk_rows": args.chunk_rows,
            "data_gib": size / 2**30,
            "generate_s": generated,
            "stream_s": stream_s,
            "stream_cpu_s": stream_cpu,
            "stream_rows_per_s_per_core": rows / stream_s,
            "stream_rows_per_cpu_s": rows / stream_cpu,
            "stream_peak_mib": stream_mib,
            "dask_workers": args.workers,
            "dask_startup_s": dask["startup"],
            "dask_s": dask_s,
            "dask_rows_per_s": rows / dask_s,
            "dask_rows_per_s_per_core": rows / dask_s / args.workers,
            "dask_worker_cpu_s": dask_cpu,
            "dask_client_cpu_s": dask["client_cpu"],
            "dask_rows_per_cpu_s": rows / dask_cpu,
            "per_cpu_ratio_stream_over_dask": (rows / stream_cpu) / (rows / dask_cpu),
            "load_average_1min": load,
            "dask_worker_peak_mib": dask["worker_peak_mib"],
            "per_core_ratio_stream_over_dask": (rows / stream_s) / (rows / dask_s / args.workers),
            "identical_counts": identical,
            "compare_two_profiles_s": compare_s,
            "profile_bytes": (root / "stream.json").stat().st_size,
            "cores_on_machine": os.cpu_count(),
        }
        print(
            f"data: {rows:,} rows x 25 columns, {size / 2**30:.2f} GiB Parquet, "
            f"row groups of {args.row_group:,} (generated in {generated:.0f} s)"
        )
        print(
            f"stream (1 process): {stream_s:7.1f} s  {rows / stream_s:12,.0f} rows/s/core  "
            f"peak {stream_mib:6.0f} MiB"
        )
        print(
            f"dask ({args.workers} workers):   {dask_s:7.1f} s  "
            f"{rows / dask_s / args.workers:12,.0f} rows/s/core  peak per worker "
            f"{', '.join(f'{m:.0f}' for m in dask['worker_peak_mib'])} MiB "  # type: ignore[attr-defined]
            f"(cluster start {float(dask['startup']):.1f} s, not timed)"
        )  # type: ignore[arg-type]
        print(
            f"CPU time: stream {stream_cpu:.1f} s ({rows / stream_cpu:,.0f} rows per CPU-s), "
            f"dask workers {dask_cpu:.1f} s ({rows / dask_cpu:,.0f} rows per CPU-s), "
            f"client {dask['client_cpu']:.1f} s"
        )
        print(
            f"per-core ratio stream/dask: wall {figures['per_core_ratio_stream_over_dask']:.2f}, "
            f"CPU {figures['per_cpu_ratio_stream_over_dask']:.2f}  identical counts: {identical}  "
            f"(load average {load:.1f} on {os.cpu_count()} cores)"
        )
        print(
            f"load two profiles and compare: {compare_s * 1000:.0f} ms "
            f"(profile {figures['profile_bytes'] / 1e6:.1f} MB)"
        )
        if args.json is not None:
            args.json.write_text(json.dumps(figures, indent=2))
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
