"""Latency items through the gate: budgets per percentile and batch size, the summary table."""

from __future__ import annotations

import faulty_models as fm
from conftest import GateRun, failed, junit_outcomes, messages


def test_items_per_percentile_and_batch_size(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    result = gate.run(
        "model.joblib", "--deploy-gate-latency-batch-sizes=1 8", "--collect-only", "-q"
    )
    result.stdout.fnmatch_lines(
        [
            "model.joblib::latency[[]p50-batch=1]",
            "model.joblib::latency[[]p95-batch=1]",
            "model.joblib::latency[[]p99-batch=1]",
            "model.joblib::latency[[]p50-batch=8]",
            "model.joblib::latency[[]p95-batch=8]",
            "model.joblib::latency[[]p99-batch=8]",
        ],
        consecutive=False,
    )


def test_a_model_sleeping_150ms_fails_the_single_row_p99_budget(gate: GateRun) -> None:
    gate.artifact(fm.SlowSingleRow())
    result = gate.run(
        "model.joblib", "-k", "latency and p99", "--deploy-gate-latency-max-seconds=3"
    )
    root = gate.junit()
    assert failed(root) == {"latency[p99-batch=1]"}
    text = messages(root)["latency[p99-batch=1]"]
    assert text.startswith("p99 latency 1")
    assert "exceeds budget 50.0 ms (batch=1," in text
    assert "threads=1" in text
    result.stdout.fnmatch_lines(["*p99 batch=1 budget 50 ms: FAILED*"])


def test_a_model_slow_only_on_batches_fails_only_the_batch_items(gate: GateRun) -> None:
    gate.artifact(fm.SlowOnBatches())
    gate.run(
        "model.joblib",
        "-k",
        "latency",
        "--deploy-gate-latency-batch-sizes=1 16",
        "--deploy-gate-latency-budget=p99@16=10ms",
        "--deploy-gate-latency-budget=p95@16=10ms",
        "--deploy-gate-latency-max-seconds=3",
    )
    root = gate.junit()
    assert failed(root) == {"latency[p95-batch=16]", "latency[p99-batch=16]"}
    outcomes = junit_outcomes(root)
    assert outcomes["latency[p99-batch=1]"] == "passed"
    assert outcomes["latency[p50-batch=16]"] == "passed"  # measured, no budget: never fails


def test_figures_reach_the_junit_report_and_the_summary(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    result = gate.run("model.joblib", "-k", "latency")
    props = {p.get("name"): p.get("value") for p in gate.junit().iter("property")}
    for figure in ("p50_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms", "calls", "rounds", "threads"):
        assert props.get(f"model.joblib::latency[p99-batch=1]::{figure}") is not None, figure
    result.stdout.fnmatch_lines(["  latency  batch*p50*p95*p99*max*(ms, threads=1)", "*    1 *"])


def test_an_undecided_verdict_can_be_turned_into_a_warning(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.pytester.makeconftest(
        """
        import pytest
        from deploy_gate.latency import LatencyStatus, LatencyVerdict

        @pytest.fixture(autouse=True)
        def undecided(monkeypatch):
            from deploy_gate.latency import LatencyMeasurement

            def verdict(self, label):
                return LatencyVerdict(
                    LatencyStatus.INCONCLUSIVE, f"{label} inconclusive (injected)", label, 1,
                    1.0, 50.0, (0.5, 60.0), 6, 100, {"p99_ms": 1.0, "status": "inconclusive"},
                )

            monkeypatch.setattr(LatencyMeasurement, "verdict", verdict)
        """
    )
    gate.run("model.joblib", "-k", "latency and p99")
    assert failed(gate.junit()) == {"latency[p99-batch=1]"}
    # In a subprocess: this suite turns warnings into errors, a project's run shows them.
    result = gate.pytester.runpytest_subprocess(
        "--deploy-gate",
        "model.joblib",
        "--deploy-gate-data=holdout.csv",
        "--deploy-gate-trust=faulty_models",
        "--deploy-gate-latency-batch-sizes=1",
        "-k",
        "latency and p99",
        "--deploy-gate-latency-inconclusive=warn",
    )
    assert failed(gate.junit()) == set()
    result.stdout.fnmatch_lines(["*LatencyInconclusiveWarning: p99 inconclusive (injected)*"])


def test_latency_rounds_are_written_for_pytest_benchmark_compare(gate: GateRun) -> None:
    import json
    import subprocess
    import sys

    gate.artifact(fm.ThresholdClassifier())
    gate.run("model.joblib", "-k", "latency", "--deploy-gate-latency-json=bench/run.json")
    document = json.loads((gate.path / "bench" / "run.json").read_text())
    names = {b["fullname"] for b in document["benchmarks"]}
    assert "model.joblib::latency[p99-batch=1]" in names
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_benchmark",
            "compare",
            str(gate.path / "bench" / "run.json"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "latency[p99-batch=1]" in shown.stdout


def test_under_xdist_latency_items_share_one_worker(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    result = gate.run("model.joblib", "-n", "2", "-k", "latency", "-v")
    result.stdout.fnmatch_lines(["deploy-gate: latency items share one xdist worker*"])
    workers = {
        line.split("]")[0].lstrip("[")
        for line in result.stdout.lines
        if "latency[[]" not in line and "::latency[" in line and line.startswith("[gw")
    }
    assert len(workers) == 1, workers
