"""The baseline checks judge what they can see: with labels the metrics judge quality and the
prediction shift is shown, without labels the shift's limits decide, and rows without a label
are left out of what needs one (and counted)."""

from __future__ import annotations

import faulty_models as fm
import numpy as np
import pytest
from conftest import GateRun, failed, junit_outcomes, messages
from junit_properties import properties

BASELINE = "--deploy-gate-baseline=baseline.joblib"
SHIFT = "baseline[prediction-shift]"


def _pair(gate: GateRun, candidate: object, baseline: object) -> None:
    gate.artifact(candidate, "candidate.joblib")
    gate.artifact(baseline, "baseline.joblib")


@pytest.mark.parametrize(
    ("baseline", "figure"),
    [(fm.TimidClassifier(), "psi"), (fm.WorseClassifier(), "label_flips")],
    ids=["scores-on-another-scale", "labels-changed-on-15-percent"],
)
def test_with_labels_a_shift_beyond_its_limits_is_shown_not_failed(
    gate: GateRun, baseline: object, figure: str
) -> None:
    _pair(gate, fm.ThresholdClassifier(), baseline)
    gate.data(fm.make_frame(4000))
    gate.run("candidate.joblib", BASELINE, "-m", "baseline")
    root = gate.junit()
    assert set(junit_outcomes(root).values()) == {"passed"}, messages(root)
    shift = properties(root, SHIFT, artifact="candidate.joblib")
    limit = 0.2 if figure == "psi" else 0.1
    assert float(shift[figure]) > limit
    assert shift["judged_by"] == "metrics"
    assert shift["shift"].startswith("prediction shift: ")
    assert "exceeds" in shift["shift"]
    assert "not judged: 4 metrics judged quality on 4000 labelled rows" in shift["shift"]


def test_without_labels_the_shift_is_the_evidence_and_its_limits_apply(gate: GateRun) -> None:
    _pair(gate, fm.ThresholdClassifier(), fm.TimidClassifier())
    gate.data(fm.make_frame(4000).drop(columns=["label", "y"]), name="rows.csv")
    gate.run("candidate.joblib", BASELINE, "--deploy-gate-data=rows.csv", "-m", "baseline")
    root = gate.junit()
    assert failed(root) == {SHIFT}
    text = messages(root)[SHIFT]
    assert "exceeds 0.2" in text.splitlines()[0]
    assert "no labels" in text
    assert properties(root, SHIFT, artifact="candidate.joblib")["judged_by"] == "limits"


def _with_holes(n: int = 4000, every: int = 10) -> object:
    frame = fm.make_frame(n)
    frame["label"] = frame["label"].astype(float)
    frame.loc[::every, "label"] = np.nan
    return frame


def test_rows_without_a_label_are_left_out_of_the_label_checks_and_counted(
    gate: GateRun,
) -> None:
    _pair(gate, fm.ThresholdClassifier(), fm.ThresholdClassifier())
    gate.data(_with_holes())
    result = gate.run("candidate.joblib", BASELINE, "-m", "baseline or rollout")
    root = gate.junit()
    outcomes = junit_outcomes(root)
    assert set(outcomes.values()) == {"passed"}, messages(root)
    assert "Traceback" not in result.stdout.str()
    accuracy = properties(root, "baseline[accuracy]", artifact="candidate.joblib")
    assert accuracy["n"] == "3600"
    assert accuracy["unlabelled_rows"] == "400"
    # Label-free checks use every row.
    errors = properties(root, "baseline[error-rate]", artifact="candidate.joblib")
    assert "unlabelled_rows" not in errors
    stage = properties(root, "rollout[100%]", artifact="candidate.joblib")
    assert stage["unlabelled_rows"] == "400"


def test_a_failing_metric_says_how_many_rows_had_no_label(gate: GateRun) -> None:
    _pair(gate, fm.WorseClassifier(), fm.ThresholdClassifier())
    gate.data(_with_holes())
    gate.run("candidate.joblib", BASELINE, "-m", "baseline")
    root = gate.junit()
    assert "baseline[accuracy]" in failed(root)
    text = messages(root)["baseline[accuracy]"]
    assert "(n=3600)" in text.splitlines()[0]
    assert "400 row(s) without a label left out" in text


def test_a_regressor_on_integer_targets_is_compared_as_a_regressor(gate: GateRun) -> None:
    # Counts are whole numbers; told apart from labels only by the artifact's task, which the
    # comparison must use (through the model worker the task cannot be inferred again).
    _pair(gate, fm.LinearRegressor(), fm.OffsetRegressor())
    frame = fm.make_frame(4000)
    frame["count"] = np.round(frame["y"] * 2 + 10).astype(int)
    gate.data(frame.drop(columns=["label", "y"]))
    gate.run("candidate.joblib", BASELINE, "-m", "baseline", target="count")
    root = gate.junit()
    outcomes = junit_outcomes(root)
    assert outcomes["baseline[mae]"] == "passed", messages(root)
    assert outcomes[SHIFT] == "passed", messages(root)
    assert "label_flips" not in properties(root, SHIFT, artifact="candidate.joblib")
