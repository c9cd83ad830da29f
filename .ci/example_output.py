"""Does a change alter what the example gate prints? Runs the example project's gate with the
plugin's source at a base revision and at the working tree, in this environment, each on a fresh
copy of one trained example, and compares the two outputs with times and ids masked.

    python .ci/example_output.py [--base REV] [-k EXPR]

A refactor that must not change behaviour shows "identical" (exit 0); otherwise the unified diff
is printed (exit 1). Latency items are left out by default (``-k "not latency"``): their figures
are times, different on every run. What is masked: the run's start time, version ids' time
stamps, the worker's scratch folder and the session's duration.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GATE = [
    "--deploy-gate", "models/candidate.joblib",
    "--deploy-gate-data", "data/holdout.parquet",
    "--deploy-gate-target", "churned",
    "tests/", "-n", "0", "-p", "no:cacheprovider",
]  # fmt: skip
MASKS = (
    (re.compile(r"run started \S+"), "run started <time>"),
    (re.compile(r"\bv_\d{8}T\d{6}Z_"), "v_<time>_"),
    (re.compile(r"/tmp/deploy-gate-worker-[^/\s]+"), "<worker>"),
    (re.compile(r" in \d+(\.\d+)?s( \([0-9:]+\))? (=+)$"), r" in <duration> \3"),
)


def normalise(text: str) -> list[str]:
    lines = []
    for line in text.splitlines():
        if line.startswith("plugins: "):  # listed in the order of sys.path: PYTHONPATH moves ours
            line = "plugins: " + ", ".join(sorted(line[len("plugins: ") :].split(", ")))
        for pattern, replacement in MASKS:
            line = pattern.sub(replacement, line)
        lines.append(line)
    return lines


def source_at(rev: str, into: Path) -> Path:
    """``src`` of the repository at ``rev``, extracted under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "src"],
        check=True,
        capture_output=True,
    ).stdout
    target = into / "source-at-base"
    target.mkdir()
    with tempfile.TemporaryFile() as handle:
        handle.write(archive)
        handle.seek(0)
        with tarfile.open(fileobj=handle) as tar:
            tar.extractall(target, filter="data")
    return target / "src"


def gate_output(example: Path, src: Path, selection: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(src)}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", *GATE, "-k", selection],
        cwd=example,
        env=env,
        capture_output=True,
        text=True,
    )
    return run.stdout + run.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", default="HEAD", help="the revision to compare with")
    parser.add_argument("-k", dest="selection", default="not latency")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        trained = tmp / "trained"
        shutil.copytree(ROOT / "example_project", trained, ignore=shutil.ignore_patterns(
            "models", "data", "*.xml", "*.html", "*.jsonl", ".deploy-gate*", "__pycache__"
        ))  # fmt: skip
        subprocess.run([sys.executable, "train.py"], cwd=trained, check=True, capture_output=True)
        outputs = {}
        example = tmp / "example_project"  # one path for both: it is printed (rootdir)
        for name, src in (("base", source_at(args.base, tmp)), ("working tree", ROOT / "src")):
            shutil.rmtree(example, ignore_errors=True)
            shutil.copytree(trained, example)
            outputs[name] = normalise(gate_output(example, src, args.selection))
    diff = list(
        difflib.unified_diff(
            outputs["base"], outputs["working tree"], args.base, "working tree", lineterm=""
        )
    )
    if diff:
        print("\n".join(diff))
        return 1
    print(f"identical to {args.base} (apart from times and ids), {len(outputs['base'])} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
