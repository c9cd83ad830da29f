"""Time concurrent writers recording into one ledger: N processes x M entries each.

    python benchmarks/ledger_record.py                      # 8 writers x 500 records
    python benchmarks/ledger_record.py --method append      # the same with Ledger.append
    python benchmarks/ledger_record.py --fresh              # a new Ledger object per record
    python benchmarks/ledger_record.py --module old_ledger  # another implementation (importable)

``Ledger.record`` checks the version id against every line before it appends. Reading and
parsing the whole file on every call made N writers x M records quadratic; the ledger now reads
only what was appended since its last look. Run by hand, never by the test suite.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import multiprocessing
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

T0 = datetime(2025, 3, 4, 5, 6, 7, tzinfo=timezone.utc)


def _writer(
    module_name: str,
    path: str,
    worker: int,
    count: int,
    method: str,
    fresh: bool,
    start: Any,
) -> None:
    module = importlib.import_module(module_name)
    ledger = module.Ledger(path)
    start.wait()
    for i in range(count):
        digest = hashlib.sha256(f"{worker}-{i}".encode()).hexdigest()
        when = T0 + timedelta(seconds=i)
        entry = module.LedgerEntry(
            version=module.version_id(digest, when),
            sha256=digest,
            size=1000 + i,
            path=f"models/worker-{worker}/{i}.joblib",
            recorded_at=when.isoformat(),
            libraries={"numpy": "2.2.0", "scikit-learn": "1.6.0", "pandas": "2.2.3"},
            counts={c: {"passed": 7, "failed": 0, "skipped": 0} for c in ("smoke", "output")},
        )
        target = module.Ledger(path) if fresh else ledger
        getattr(target, method)(entry)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--method", choices=("record", "append"), default="record")
    parser.add_argument("--fresh", action="store_true", help="a new Ledger per record")
    parser.add_argument("--module", default="deploy_gate.ledger")
    args = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "deployments.jsonl")
        start = context.Event()
        processes = [
            context.Process(
                target=_writer,
                args=(args.module, path, w, args.records, args.method, args.fresh, start),
            )
            for w in range(args.writers)
        ]
        for process in processes:
            process.start()
        time.sleep(2.0)  # let every writer import and wait at the start line
        began = time.perf_counter()
        start.set()
        for process in processes:
            process.join()
        elapsed = time.perf_counter() - began
        lines = Path(path).read_bytes().count(b"\n")
    failed = [p.exitcode for p in processes if p.exitcode != 0]
    print(
        f"{args.module} {args.method}{' (fresh Ledger per call)' if args.fresh else ''}: "
        f"{args.writers} writers x {args.records} = {lines} lines in {elapsed:.2f} s"
        + (f"; writers failed: {failed}" if failed else "")
    )


if __name__ == "__main__":
    main()
