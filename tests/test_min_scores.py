"""``--deploy-gate-min-scores``: scores the model must reach on the labelled data, each its own
item ``output[score-<metric>]``, failing (never skipping) whenever it cannot be judged."""

from __future__ import annotations

import faulty_models as fm
import pytest
from conftest import GateRun, failed, junit_outcomes, messages
from junit_properties import properties

from deploy_gate.errors import ConfigError
from deploy_gate.parsers import parse_scores


def _noisy_labels(gate: GateRun) -> None:
    """The healthy threshold classifier's data with every fifth label flipped: accuracy 0.8."""
    frame = fm.make_frame()
    flipped = frame.index % 5 == 1
    frame.loc[flipped, "label"] = 1 - frame.loc[flipped, "label"]
    gate.data(frame)


def test_a_score_reached_passes_and_one_missed_blocks_naming_score_and_floor(
    gate: GateRun,
) -> None:
    gate.artifact(fm.ThresholdClassifier())
    _noisy_labels(gate)
    result = gate.run(
        "model.joblib", "-k", "score", "--deploy-gate-min-scores=accuracy=0.75,roc_auc=0.9"
    )
    root = gate.junit()
    assert junit_outcomes(root) == {
        "output[score-accuracy]": "passed",
        "output[score-roc_auc]": "failed",
    }
    text = messages(root)["output[score-roc_auc]"]
    assert text.startswith("roc_auc 0.")
    assert "on 200 labelled rows, below the floor 0.9 (deploy_gate_min_scores)" in text
    figures = properties(root, "output[score-accuracy]")
    assert figures["metric"] == "accuracy"
    assert float(figures["score"]) == pytest.approx(0.8)
    assert float(figures["floor"]) == 0.75
    assert figures["labelled_rows"] == "200"
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["DEPLOYMENT BLOCKED (1 failed)"])


def test_a_lower_is_better_score_is_a_ceiling(gate: GateRun) -> None:
    gate.artifact(fm.LinearRegressor())
    frame = fm.make_frame()
    frame["y"] = frame["y"] + 0.5  # every prediction 0.5 too low: mae 0.5
    gate.data(frame)
    gate.run("model.joblib", "-k", "score", "--deploy-gate-min-scores=mae=0.6", target="y")
    assert junit_outcomes(gate.junit()) == {"output[score-mae]": "passed"}
    assert float(properties(gate.junit(), "output[score-mae]")["ceiling"]) == 0.6
    result = gate.run("model.joblib", "-k", "score", "--deploy-gate-min-scores=mae=0.4", target="y")
    text = messages(gate.junit())["output[score-mae]"]
    assert text.startswith("mae 0.5 on 200 labelled rows, above the ceiling 0.4")
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_score_that_cannot_be_judged_fails_saying_why(gate: GateRun) -> None:
    # A floor the run cannot check must not let the model through.
    gate.artifact(fm.ThresholdClassifier())
    gate.data()
    result = gate.run(
        "model.joblib",
        "-k",
        "score",
        "--deploy-gate-data=holdout.csv",  # no --deploy-gate-target
        "--deploy-gate-min-scores=accuracy=0.5",
        data=False,
    )
    text = messages(gate.junit())["output[score-accuracy]"]
    assert "is judged on labelled rows: pass --deploy-gate-data with --deploy-gate-target" in text
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    gate.run("model.joblib", "-k", "score", "--deploy-gate-min-scores=rmse=1,log_loss=0.7")
    root = gate.junit()
    assert failed(root) == {"output[score-rmse]"}
    assert messages(root)["output[score-rmse]"].startswith(
        "rmse is a regression score and model.joblib is a classifier"
    )
    gate.artifact(fm.WrongLength())  # one output short in every batch
    gate.run("model.joblib", "-k", "score", "--deploy-gate-min-scores=accuracy=0.5")
    assert messages(gate.junit())["output[score-accuracy]"].startswith(
        "not one output per row (see output[shape])"
    )
    gate.artifact(fm.LabelsOnlyClassifier())
    gate.run("model.joblib", "-k", "score", "--deploy-gate-min-scores=roc_auc=0.5,accuracy=0.9")
    root = gate.junit()
    assert failed(root) == {"output[score-roc_auc]"}
    assert "needs the model's probabilities, and it serves none" in messages(root).get(
        "output[score-roc_auc]", ""
    )


def test_a_misspelt_metric_is_a_usage_error_naming_the_option(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    result = gate.run("model.joblib", "--deploy-gate-min-scores=auc=0.7")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--deploy-gate-min-scores*unknown metric 'auc': expected one of accuracy*"]
    )
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("roc_auc=0.75", (("roc_auc", 0.75),)),
        ("accuracy=0.8, log_loss=0.5 r2=-1", (("accuracy", 0.8), ("log_loss", 0.5), ("r2", -1.0))),
    ],
)
def test_scores_parse_as_metric_and_value(text: str, expected: tuple[tuple[str, float]]) -> None:
    assert parse_scores(text) == expected


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("roc_auc", "expected METRIC=VALUE"),
        ("roc_auc=high", "expected a number for roc_auc"),
        ("roc_auc=nan", "expected a number for roc_auc"),
        ("accuracy=0.8,accuracy=0.9", "accuracy is given twice"),
        ("f1=0.5", "unknown metric 'f1'"),
        (" , ", "expected at least one"),
    ],
)
def test_bad_scores_are_refused_naming_what_is_wrong(text: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        parse_scores(text)
