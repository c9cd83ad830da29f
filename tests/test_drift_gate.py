"""Drift through the gate: one item per feature and for the predictions, profiles, skips."""

from __future__ import annotations

import json

import faulty_models as fm
import numpy as np
import pandas as pd
from conftest import GateRun, failed, junit_outcomes, messages


def _mixed(
    n: int, seed: int, *, shift_b: float = 0.0, shift_c: float = 0.0, colour: str | None = None
) -> pd.DataFrame:
    frame = fm.make_frame(n, seed=seed)
    frame["b"] = frame["b"] + shift_b
    frame["c"] = frame["c"] + shift_c
    rng = np.random.default_rng(seed)
    frame["colour"] = rng.choice(["red", "green", "blue"], n)
    if colour is not None:
        frame.loc[: n // 3, "colour"] = colour
    return frame


def test_a_planted_shift_fails_exactly_that_feature(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.data(_mixed(3000, seed=1))
    # The model does not use c, so its predictions do not move with it.
    gate.data(_mixed(3000, seed=2, shift_c=1.0).drop(columns=["label", "y"]), name="current.csv")
    result = gate.run("model.joblib", "--deploy-gate-current=current.csv", "-k", "drift")
    root = gate.junit()
    outcomes = junit_outcomes(root)
    assert set(outcomes) == {"drift[a]", "drift[b]", "drift[c]", "drift[d]", "drift[prediction]"}
    assert failed(root) == {"drift[c]"}
    assert "drift in 'c': PSI" in messages(root)["drift[c]"]
    result.stdout.fnmatch_lines(["*drift    feature*", "*c *DRIFT", "*d *ok"])


def test_a_shift_in_a_feature_the_model_uses_moves_the_predictions_too(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.data(_mixed(3000, seed=1))
    gate.data(_mixed(3000, seed=2, shift_b=1.0).drop(columns=["label", "y"]), name="current.csv")
    gate.run("model.joblib", "--deploy-gate-current=current.csv", "-k", "drift")
    assert failed(gate.junit()) == {"drift[b]", "drift[prediction]"}


def test_identical_distributions_pass_every_feature(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.data(_mixed(3000, seed=1))
    gate.data(_mixed(3000, seed=2).drop(columns=["label", "y"]), name="current.parquet")
    gate.run("model.joblib", "--deploy-gate-current=current.parquet", "-k", "drift")
    outcomes = junit_outcomes(gate.junit())
    assert set(outcomes.values()) == {"passed"}


def test_a_saved_profile_replaces_the_reference_data(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.data(_mixed(3000, seed=1), name="train.csv")
    gate.run(
        "model.joblib",
        "--deploy-gate-data=train.csv",
        "--deploy-gate-save-profile=profile.json",
        "-k",
        "save-profile",
    )
    saved = json.loads((gate.path / "profile.json").read_text())
    assert saved
    gate.data(_mixed(3000, seed=2, shift_b=1.0).drop(columns=["label", "y"]), name="current.csv")
    gate.run(
        "model.joblib",
        "--deploy-gate-profile=profile.json",
        "--deploy-gate-current=current.csv",
        "-k",
        "drift",
        data=False,
    )
    assert failed(gate.junit()) == {"drift[b]", "drift[prediction]"}


def test_without_reference_rows_drift_skips_with_the_reason(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.data(_mixed(500, seed=2).drop(columns=["label", "y"]), name="current.csv")
    result = gate.run(
        "model.joblib", "--deploy-gate-current=current.csv", "-k", "drift", "-rs", data=False
    )
    assert set(junit_outcomes(gate.junit()).values()) == {"skipped"}
    result.stdout.fnmatch_lines(["*drift needs reference rows: pass --deploy-gate-data*"])


def test_a_date_feature_skips_its_own_drift_item_and_the_others_are_judged(
    gate: GateRun,
) -> None:
    # One datetime feature made every drift item fail ("drift could not be computed").
    model = fm.ThresholdClassifier()  # reads a-d by name; "when" is taken and not used
    model.feature_names_in_ = np.array([*fm.FEATURES, "when"], dtype=object)
    model.n_features_in_ = 5
    gate.artifact(model)

    def dated(frame: pd.DataFrame, start: str) -> pd.DataFrame:
        return frame.assign(when=pd.date_range(start, periods=len(frame), freq="h"))

    gate.data(dated(_mixed(3000, seed=1), "2026-01-01"), name="holdout.parquet")
    current = dated(_mixed(3000, seed=2, shift_c=1.0), "2026-11-01")
    gate.data(current.drop(columns=["label", "y"]), name="current.parquet")
    gate.run(
        "model.joblib",
        "--deploy-gate-data=holdout.parquet",
        "--deploy-gate-current=current.parquet",
        "-k",
        "drift",
        "-rs",
    )
    root = gate.junit()
    outcomes = junit_outcomes(root)
    assert outcomes.pop("drift[when]") == "skipped"
    assert messages(root)["drift[when]"].startswith(
        "no drift figure for 'when': it holds dates/times, which drift by nature"
    )
    assert outcomes == {
        "drift[a]": "passed",
        "drift[b]": "passed",
        "drift[c]": "failed",
        "drift[d]": "passed",
        "drift[prediction]": "passed",
    }, messages(root)


def test_a_profile_of_data_with_a_date_feature_leaves_the_date_out(gate: GateRun) -> None:
    model = fm.ThresholdClassifier()
    model.feature_names_in_ = np.array([*fm.FEATURES, "when"], dtype=object)
    model.n_features_in_ = 5
    gate.artifact(model)
    frame = _mixed(500, seed=1).assign(when=pd.date_range("2026-01-01", periods=500, freq="h"))
    gate.data(frame, name="holdout.parquet")
    result = gate.run(
        "model.joblib",
        "--deploy-gate-data=holdout.parquet",
        "--deploy-gate-save-profile=profile.json",
        "-k",
        "save-profile",
    )
    assert junit_outcomes(gate.junit()) == {"drift[save-profile]": "passed"}, messages(gate.junit())
    saved = (gate.path / "profile.json").read_text()
    assert '"a"' in saved
    assert '"when"' not in saved
    assert result.ret == 0
    # Judged against that profile, the date feature skips and the others run.
    current = _mixed(500, seed=2).drop(columns=["label", "y"])
    gate.data(
        current.assign(when=pd.date_range("2026-11-01", periods=500, freq="h")),
        name="current.parquet",
    )
    gate.run(
        "model.joblib",
        "--deploy-gate-profile=profile.json",
        "--deploy-gate-current=current.parquet",
        "-k",
        "drift",
        data=False,
    )
    outcomes = junit_outcomes(gate.junit())
    assert outcomes.pop("drift[when]") == "skipped"
    assert set(outcomes.values()) == {"passed"}, messages(gate.junit())


def test_a_model_that_cannot_score_the_rows_fails_only_the_prediction_drift(
    gate: GateRun,
) -> None:
    # Input drift does not depend on the model: its fault shows once, where it belongs.
    gate.artifact(fm.WrongLengthProbabilities())
    gate.data(_mixed(3000, seed=1))
    gate.data(_mixed(3000, seed=2, shift_c=1.0).drop(columns=["label", "y"]), name="current.csv")
    gate.run("model.joblib", "--deploy-gate-current=current.csv", "-k", "drift")
    root = gate.junit()
    assert failed(root) == {"drift[c]", "drift[prediction]"}
    assert junit_outcomes(root)["drift[a]"] == "passed"
    assert messages(root)["drift[prediction]"].startswith(
        "drift could not be computed: predicting on reference data gave 2999 scores for 3000 rows"
    )
