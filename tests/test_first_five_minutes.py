"""A user's first five minutes with the plugin installed, each command run as the user runs it.

Every command is ``python -m pytest ...`` in a subprocess, in a new directory, with the installed
plugin found through its entry point, as on a fresh machine: no pytester, no in-process state.
Each must end with the expected exit status and print no traceback and no INTERNALERROR. The nox
session ``first5`` runs this file on pytest 8.4 and on the newest pytest; the test suite runs it
too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

GATE_ARGS = ("--deploy-gate-data", "holdout.csv", "--deploy-gate-target", "label")
PLAIN_TEST = "def test_one_plus_one_is_two():\n    assert 1 + 1 == 2\n"
# A Python traceback, pytest's "ImportError while importing ... Traceback:", a plugin crash.
CRASH_MARKERS = ("Traceback (most recent call last)", "Traceback:", "INTERNALERROR")
# Single-row latency only where latency is not the point: each batch size adds a second.
QUICK = "--deploy-gate-latency-batch-sizes=1"
TIMEOUT = 120
RUN = {"passed", "failed", "skipped", "errors", "xfailed", "xpassed"}  # outcomes of items run


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A logistic regression on four numeric columns, a copy that answers NaN, and holdout rows."""
    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path_factory.mktemp("artifacts")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.standard_normal((120, 4)), columns=["a", "b", "c", "d"])
    frame["label"] = (frame.a + frame.b > 0).astype(int)
    model = LogisticRegression().fit(frame[["a", "b", "c", "d"]], frame["label"])
    joblib.dump(model, folder / "model.joblib")
    model.coef_ = np.full_like(model.coef_, np.nan)  # every probability becomes NaN
    joblib.dump(model, folder / "nan_model.joblib")
    frame.to_csv(folder / "holdout.csv", index=False)
    return folder


@pytest.fixture
def project(tmp_path: Path, artifacts: Path) -> Path:
    """A new directory holding the artifacts, the holdout rows and one plain test file."""
    for path in artifacts.iterdir():
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "test_plain.py").write_text(PLAIN_TEST)
    return tmp_path


def pytest_in(folder: Path, *args: str) -> tuple[int, str]:
    """Run ``python -m pytest ARGS`` in ``folder``; return the exit status and all it printed."""
    # The outer run's own settings (xdist worker ids, PYTEST_ADDOPTS, a GitHub step summary)
    # must not leak into the user's run.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "GITHUB_"))}
    env["PY_COLORS"] = "0"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    out = proc.stdout + proc.stderr
    for marker in CRASH_MARKERS:
        assert marker not in out, f"pytest {' '.join(args)} printed {marker!r}:\n{out}"
    return proc.returncode, out


def outcomes(out: str) -> dict[str, int]:
    """The counts of pytest's closing line, e.g. {"failed": 2, "passed": 26}."""
    last = [line for line in out.splitlines() if re.match(r"=+ .* in [\d.]+s", line)][-1]
    counts = {}
    for number, word in re.findall(r"(\d+) (\w+)", last):
        counts[{"error": "errors"}.get(word, word)] = int(number)
    return counts


def test_pytest_help_lists_the_gate_options_and_exits_zero(project: Path) -> None:
    status, out = pytest_in(project, "--help")
    assert status == 0, out
    assert "--deploy-gate" in out
    assert "--deploy-gate-rollout-stages" in out


def test_the_gate_without_an_artifact_runs_the_plain_tests_and_approves_nothing(
    project: Path,
) -> None:
    status, out = pytest_in(project, "--deploy-gate")
    assert outcomes(out) == {"passed": 1}, out
    assert "DEPLOYMENT BLOCKED (no check passed)" in out
    assert status == 1, out


def test_the_gate_approves_a_trained_model(project: Path) -> None:
    status, out = pytest_in(project, "--deploy-gate", "model.joblib", *GATE_ARGS)
    assert status == 0, out
    assert "APPROVED FOR DEPLOYMENT" in out
    counts = outcomes(out)
    assert counts["passed"] > 20, out
    assert "failed" not in counts, out
    assert (project / "deploy-gate.xml").exists()


def test_collect_only_lists_the_checks_and_runs_none(project: Path) -> None:
    status, out = pytest_in(project, "--deploy-gate", "model.joblib", *GATE_ARGS, "--collect-only")
    assert status == 0, out
    assert "smoke[load]" in out
    assert "output[no-nan]" in out
    assert "APPROVED" not in out
    assert "passed" not in outcomes(out), out


def test_with_the_plugin_disabled_plain_tests_still_run(project: Path) -> None:
    status, out = pytest_in(project, "-p", "no:deploy_gate")
    assert status == 0, out
    assert outcomes(out) == {"passed": 1}, out
    assert "deploy gate" not in out
    assert "deploy-gate" not in out


def test_last_failed_reruns_exactly_the_checks_that_failed(project: Path) -> None:
    status, out = pytest_in(project, "--deploy-gate", "nan_model.joblib", *GATE_ARGS, QUICK)
    assert status == 1, out
    first = outcomes(out)
    assert first.get("failed", 0) >= 1, out
    assert "DEPLOYMENT BLOCKED" in out

    status, out = pytest_in(project, "--deploy-gate", "nan_model.joblib", *GATE_ARGS, QUICK, "--lf")
    assert status == 1, out
    plural = "failure" if first["failed"] == 1 else "failures"
    assert f"rerun previous {first['failed']} {plural}" in out, out
    rerun = outcomes(out)
    ran = sum(n for word, n in rerun.items() if word in RUN)
    assert rerun.get("failed") == first["failed"], out
    assert ran == first["failed"], out


def test_two_xdist_workers_approve_the_same_model(project: Path) -> None:
    status, out = pytest_in(project, "--deploy-gate", "model.joblib", *GATE_ARGS, QUICK, "-n", "2")
    assert status == 0, out
    assert "created: 2/2 workers" in out
    assert "APPROVED FOR DEPLOYMENT" in out
    assert "failed" not in outcomes(out), out
