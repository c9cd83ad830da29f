"""Runs that did not run every applicable built-in check, and runs that give no verdict at all.

DESIGN 8b: an approval is earned only by a run that ran every applicable built-in check; a partial
run may pass but is never recorded as the deployed version. Collecting is not a verdict.
"""

from __future__ import annotations

import json
from pathlib import Path

import faulty_models as fm
import pytest
from conftest import GateRun, junit_outcomes

from deploy_gate.ledger import Ledger
from deploy_gate.report import GateReport

PROJECT_SKIPS_LATENCY = """
import pytest

def pytest_collection_modifyitems(items):
    for item in items:
        if item.get_closest_marker("latency"):
            item.add_marker(pytest.mark.skip(reason="latency is measured on the staging box"))
"""


def _ledger_lines(gate: GateRun) -> list[dict[str, object]]:
    path = gate.path / "deployments.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_deselecting_run_may_pass_but_is_not_recorded_and_says_what_it_did_not_run(
    gate: GateRun, workers: list[str]
) -> None:
    # Its output checks would fail: -k smoke must not earn it a place in the ledger.
    gate.artifact(fm.NaNRegressor())
    gate.pytester.makeini("[pytest]\n")  # no ledger next to an outer config
    result = gate.run("model.joblib", "-k", "smoke", "--deploy-gate-record", *workers, target="y")
    ran = junit_outcomes(gate.junit())
    assert ran
    assert all(name.startswith("smoke[") for name in ran)
    result.stdout.fnmatch_lines(
        [
            "  not run  output (* deselected), latency (* deselected), errors (* deselected), "
            "version (* deselected)",
            "ledger: NOT RECORDED in *deployments.jsonl: partial run*--deploy-gate-record-partial*",
            "APPROVED FOR DEPLOYMENT, but NOT RECORDED: partial run "
            "(model.joblib: output, latency, errors, version not run)",
        ]
    )
    assert result.ret == 1
    assert _ledger_lines(gate) == []


def test_a_run_of_explicit_node_ids_is_partial(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.pytester.makeini("[pytest]\n")  # no ledger next to an outer config
    result = gate.run("model.joblib::smoke[load]", "--deploy-gate-record")
    result.stdout.fnmatch_lines(
        ["  not run  smoke (7 deselected), output (*", "APPROVED FOR DEPLOYMENT, but NOT RECORDED*"]
    )
    assert result.ret == 1
    assert _ledger_lines(gate) == []


def test_checks_the_project_skips_make_the_run_partial_naming_the_reason(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.pytester.makeini("[pytest]\n")  # no ledger next to an outer config
    gate.pytester.makeconftest(PROJECT_SKIPS_LATENCY)
    result = gate.run("model.joblib", "--deploy-gate-record")
    result.stdout.fnmatch_lines(
        [
            "  not run  latency (* skipped: latency is measured on the staging box)",
            "APPROVED FOR DEPLOYMENT, but NOT RECORDED: partial run "
            "(model.joblib: latency not run)",
        ]
    )
    assert result.ret == 1


def test_record_partial_writes_a_line_marked_partial_that_is_never_current(
    gate: GateRun,
) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.pytester.makeini("[pytest]\n")  # no ledger next to an outer config
    result = gate.run("model.joblib", "-m", "smoke or version", "--deploy-gate-record-partial")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "ledger: recorded v_* (model.joblib) in *deployments.jsonl as PARTIAL*",
            "APPROVED FOR DEPLOYMENT",
        ]
    )
    (line,) = _ledger_lines(gate)
    partial = line["partial"]
    assert isinstance(partial, dict)
    assert set(partial) == {"output", "latency", "errors"}
    assert partial["latency"] == {"deselected": 5, "skipped": 0}
    ledger = Ledger(gate.path / "deployments.jsonl")
    assert ledger.current() is None
    assert ledger.verify(gate.path / "model.joblib") is None


def test_checks_skipped_for_a_stated_reason_of_the_gate_do_not_make_a_run_partial(
    gate: GateRun,
) -> None:
    # No target: the regression range has nothing to be derived from and skips, saying so.
    gate.artifact(fm.LinearRegressor())
    gate.pytester.makeini("[pytest]\n")  # no ledger next to an outer config
    gate.data()
    result = gate.run("model.joblib", "--deploy-gate-record", "--deploy-gate-data=holdout.csv")
    assert junit_outcomes(gate.junit())["output[regression-range]"] == "skipped"
    assert "not run" not in result.stdout.str()
    assert result.ret == 0, result.stdout.str()
    assert len(_ledger_lines(gate)) == 1
    result.stdout.fnmatch_lines(["ledger: recorded v_*", "APPROVED FOR DEPLOYMENT"])


def test_collect_only_gives_no_verdict_and_keeps_pytests_exit_status(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.pytester.makeini("[pytest]\n")  # no ledger next to an outer config
    result = gate.run("model.joblib", "--collect-only", "-q", "--deploy-gate-record")
    out = result.stdout.str()
    assert "DEPLOYMENT BLOCKED" not in out
    assert "APPROVED" not in out
    listed = sum(1 for line in result.stdout.lines if line.startswith("model.joblib::"))
    assert listed > 20  # every check of a classifier with probabilities is listed
    result.stdout.fnmatch_lines(
        [f"deploy gate: collected {listed} checks; no verdict (--collect-only)"]
    )
    assert result.ret == 0
    assert not (gate.path / "deployments.jsonl").exists()


def test_setup_plan_runs_no_check_and_gives_no_verdict(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.pytester.makeini("[pytest]\n")  # no ledger next to an outer config
    result = gate.run("model.joblib", "-k", "load or no-nan", "--setup-plan")
    out = result.stdout.str()
    assert "APPROVED" not in out
    assert "DEPLOYMENT BLOCKED" not in out
    result.stdout.fnmatch_lines(["deploy gate: collected 3 checks; no verdict (--setup-plan)"])
    assert result.ret == 0


def _report(name: str, outcome: str = "passed", where: str | None = None) -> pytest.TestReport:
    import deploy_gate.checks.output as gate_module

    nodeid = f"model.joblib::{name}"
    longrepr: object = None
    if outcome == "skipped":
        path = gate_module.__file__ if where is None else where
        longrepr = (path, 10, "Skipped: why")
    return pytest.TestReport(
        nodeid,
        ("model.joblib", 0, name),
        {name.split("[")[0]: 1, "deploy_gate": 1},
        outcome,  # type: ignore[arg-type]
        longrepr,  # type: ignore[arg-type]
        "call",
    )


def test_the_report_counts_deselected_checks_and_skips_that_did_not_come_from_the_gate(
    tmp_path: Path,
) -> None:
    report = GateReport()
    report.add(_report("smoke[load]"))
    report.add(_report("output[no-nan]", "skipped"))  # the gate's own reason: applies not
    report.add(_report("output[no-inf]", "skipped", where=str(tmp_path / "conftest.py")))
    report.expect(
        {
            "model.joblib": [
                "smoke[load]",
                "output[no-nan]",
                "output[no-inf]",
                "latency[p99-batch=1]",
            ]
        }
    )
    assert [str(n) for n in report.not_run("model.joblib")] == [
        "output (1 skipped: why)",
        "latency (1 deselected)",
    ]
    assert report.partial_summary() == "model.joblib: output, latency not run"
    assert report.verdict() == (True, "APPROVED FOR DEPLOYMENT")
    assert any(a.startswith("::warning file=model.joblib") for a in report.annotations())

    report.not_recorded = "partial run (model.joblib: output, latency not run)"
    assert report.verdict() == (
        False,
        "APPROVED FOR DEPLOYMENT, but NOT RECORDED: partial run (model.joblib: output, latency "
        "not run)",
    )


def test_a_full_run_is_not_partial(tmp_path: Path) -> None:
    report = GateReport()
    report.add(_report("smoke[load]"))
    report.expect({"model.joblib": ["smoke[load]"]})
    assert report.partial() == {}
    assert report.annotations() == []
