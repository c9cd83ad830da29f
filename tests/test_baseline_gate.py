"""Candidate versus production through the gate: baseline items, the rollout line, skips."""

from __future__ import annotations

import faulty_models as fm
import pytest
from conftest import GateRun, failed, junit_outcomes, messages


def _frame(n: int = 4000) -> object:
    return fm.make_frame(n)


def test_without_a_baseline_no_baseline_or_rollout_items_are_collected(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    result = gate.run("model.joblib", "--collect-only", "-q")
    assert "baseline[" not in result.stdout.str()
    assert "rollout[" not in result.stdout.str()


def test_an_equal_candidate_passes_every_comparison_and_stage(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier(), "candidate.joblib")
    gate.artifact(fm.ThresholdClassifier(), "baseline.joblib")
    gate.data(_frame())
    result = gate.run(
        "candidate.joblib", "--deploy-gate-baseline=baseline.joblib", "-m", "baseline or rollout"
    )
    outcomes = junit_outcomes(gate.junit())
    assert set(outcomes) == {
        "baseline[accuracy]",
        "baseline[balanced_accuracy]",
        "baseline[roc_auc]",
        "baseline[log_loss]",
        "baseline[error-rate]",
        "baseline[prediction-shift]",
        "rollout[5%]",
        "rollout[25%]",
        "rollout[50%]",
        "rollout[100%]",
    }
    assert set(outcomes.values()) == {"passed"}, messages(gate.junit())
    result.stdout.fnmatch_lines(
        [
            "  baseline v_*",
            "*accuracy*1.0000*1.0000*100.0%*",
            "  rollout  5% ok > 25% ok > 50% ok > 100% ok",
            "APPROVED FOR DEPLOYMENT",
        ]
    )


def test_a_worse_candidate_fails_its_metrics_and_is_rolled_back(gate: GateRun) -> None:
    gate.artifact(fm.WorseClassifier(), "candidate.joblib")
    gate.artifact(fm.ThresholdClassifier(), "baseline.joblib")
    gate.data(_frame())
    result = gate.run(
        "candidate.joblib",
        "--deploy-gate-baseline=baseline.joblib",
        "-m",
        "baseline or rollout",
    )
    root = gate.junit()
    bad = failed(root)
    assert "baseline[accuracy]" in bad
    assert "below the 95% floor" in messages(root)["baseline[accuracy]"]
    # Which rows the early stages get depends on the data as each pandas parses the CSV: the
    # rollback comes at the first stage whose slice convicts the candidate, 5% or 25%.
    stages = [s for s in ("5%", "25%") if f"rollout[{s}]" in bad]
    assert len(stages) == 1, bad
    stage = stages[0]
    assert "rolled back" in messages(root)[f"rollout[{stage}]"].lower()
    outcomes = junit_outcomes(root)
    assert outcomes["rollout[100%]"] == "skipped"
    assert f"rolled back at {stage}" in messages(root)["rollout[100%]"]
    result.stdout.fnmatch_lines([f"  rollout  *{stage} ROLLED BACK > * not reached*"])


def test_without_labels_metrics_and_stages_skip_but_the_shift_runs(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier(), "candidate.joblib")
    gate.artifact(fm.ThresholdClassifier(), "baseline.joblib")
    gate.data(_frame().drop(columns=["label", "y"]), name="rows.csv")
    gate.run(
        "candidate.joblib",
        "--deploy-gate-baseline=baseline.joblib",
        "--deploy-gate-data=rows.csv",
        "-m",
        "baseline or rollout",
    )
    outcomes = junit_outcomes(gate.junit())
    assert outcomes["baseline[prediction-shift]"] == "passed"
    assert outcomes["baseline[error-rate]"] == "passed"
    assert outcomes["baseline[accuracy]"] == "skipped"
    assert outcomes["rollout[5%]"] == "skipped"
    text = messages(gate.junit())
    assert "label" in text["baseline[accuracy]"].lower()
    assert "--deploy-gate-target" in text["rollout[5%]"]


def test_a_baseline_that_does_not_load_errors_naming_it(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier(), "candidate.joblib")
    (gate.path / "baseline.joblib").write_bytes(b"junk")
    result = gate.run(
        "candidate.joblib", "--deploy-gate-baseline=baseline.joblib", "-k", "baseline"
    )
    result.stdout.fnmatch_lines(["*baseline *baseline.joblib did not load*"])
    assert result.ret == 1


@pytest.mark.parametrize("value", ["5,1", "0", "abc"])
def test_bad_rollout_stages_are_rejected(gate: GateRun, value: str) -> None:
    gate.artifact(fm.ThresholdClassifier())
    result = gate.run("model.joblib", f"--deploy-gate-rollout-stages={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
