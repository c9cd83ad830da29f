"""How the gate scales to many artifacts: 16 copies of the example model on 2 xdist workers.

Run by hand from the repository root: ``python benchmarks/many_artifacts.py [--copies 16]
[--workers 2] [--selection]``.

The example project is copied to a temporary folder and trained there (``python train.py``);
its candidate model is copied ``--copies`` times. Then, in one run, side by side:

1. the gate on one copy, as CI runs it (``-n 0``);
2. the gate on every copy with ``-n WORKERS``.

The goal (issue 17): the second at most 6x the first, for 16 copies on 2 workers. The latency
checks of every artifact run on one worker, one after the other, by design (timings taken
while another check runs beside them would be disturbed), so the figures are split from the
JUnit report into the time of the latency items and the rest: when the serialised latency
time alone exceeds 6x one run, the goal is out of reach for the scheduler, and it says so.

``--selection`` adds ``-k "not drift"`` to the many-artifact run: a selection under xdist is
where the controller once loaded every artifact again to learn its catalogue.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"
GOAL = 6.0


def gate(project: Path, artifacts: list[str], extra: list[str], xml: Path) -> float:
    command = [sys.executable, "-m", "pytest", "--deploy-gate", *artifacts]
    command += ["--deploy-gate-data", "data/holdout.parquet", "--deploy-gate-target", "churned"]
    command += ["-q", "-p", "no:cacheprovider", f"--junitxml={xml}", *extra]
    begin = time.perf_counter()
    run = subprocess.run(command, cwd=project, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - begin
    if run.returncode not in (0, 1):
        sys.exit(f"the gate did not run ({run.returncode}):\n{run.stdout}\n{run.stderr}")
    print(f"   {' '.join(command[3:5])} ... {' '.join(extra)}: {seconds:.1f} s")
    print(f"   {run.stdout.strip().splitlines()[-1]}")
    return seconds


def split(xml: Path) -> tuple[float, float, int]:
    """Seconds of the latency items and of the other items, and how many items ran."""
    latency = rest = 0.0
    cases = ET.parse(xml).getroot().iter("testcase")
    n = 0
    for case in cases:
        n += 1
        seconds = float(case.get("time", 0.0))
        if case.get("name", "").startswith("latency["):
            latency += seconds
        else:
            rest += seconds
    return latency, rest, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--selection", action="store_true", help='add -k "not drift"')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dg-many-") as tmp:
        project = Path(tmp) / "example_project"
        shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("*.xml", "__pycache__"))
        subprocess.run([sys.executable, "train.py"], cwd=project, check=True, capture_output=True)
        names = []
        for i in range(args.copies):
            name = f"models/copy{i:02d}.joblib"
            shutil.copy(project / "models" / "candidate.joblib", project / name)
            names.append(name)
        one_xml, many_xml = Path(tmp) / "one.xml", Path(tmp) / "many.xml"
        print("1. one artifact, -n 0")
        one = gate(project, names[:1], ["-n", "0"], one_xml)
        many_extra = ["-n", str(args.workers)] + (["-k", "not drift"] if args.selection else [])
        print(f"2. {args.copies} artifacts, -n {args.workers}")
        many = gate(project, names, many_extra, many_xml)
        lat1, rest1, n1 = split(one_xml)
        latn, restn, nn = split(many_xml)
        print()
        print(f"{'':26}{'wall':>9}{'latency items':>15}{'other items':>13}{'items':>7}")
        print(f"{'one artifact, -n 0':<26}{one:>8.1f}s{lat1:>14.1f}s{rest1:>12.1f}s{n1:>7}")
        label = f"{args.copies} artifacts, -n {args.workers}"
        print(f"{label:<26}{many:>8.1f}s{latn:>14.1f}s{restn:>12.1f}s{nn:>7}")
        ratio = many / one
        verdict = "met" if ratio <= GOAL else "MISSED"
        print(f"ratio {ratio:.2f}x (goal <= {GOAL:g}x): {verdict}")
        # The latency items of all artifacts run one after the other on one worker: no
        # scheduler finishes before they do.
        print(
            f"serialised latency alone: {latn:.1f} s = {latn / one:.2f}x one run; the other "
            f"items, {restn:.1f} s of work on {args.workers} workers, "
            f"= {restn / args.workers / one:.2f}x one run if perfectly shared"
        )


if __name__ == "__main__":
    main()
