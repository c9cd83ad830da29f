"""output[not-constant]: one and the same output for every row is a model that ignores its
input; healthy models, however weak, vary somewhere."""

from __future__ import annotations

import faulty_models as fm
import numpy as np
import pandas as pd
import pytest
from conftest import GateRun, junit_outcomes, messages
from sklearn.linear_model import Lasso, LogisticRegression

from deploy_gate.validation import constant_output, distinct_rows, near_constant_output


def test_identical_predictions_are_named_and_varying_ones_pass() -> None:
    assert constant_output(np.full(50, 3.0)) == "3.0"
    assert constant_output(np.r_[np.full(49, 3.0), 3.0000001]) is None


def test_identical_probability_rows_are_named() -> None:
    proba = np.tile([0.7, 0.3], (40, 1))
    assert constant_output(proba) == "[0.7, 0.3]"
    proba[5] = [0.69, 0.31]
    assert constant_output(proba) is None


def test_missing_outputs_are_left_to_the_nan_check() -> None:
    values = np.full(30, 2.0)
    values[::3] = np.nan
    assert constant_output(values) == "2.0"
    with pytest.raises(ValueError, match="fewer than two rows have a finite output"):
        constant_output(np.r_[np.full(29, np.nan), 1.0])


def test_labels_that_are_not_numbers_compare_as_they_are() -> None:
    assert constant_output(np.array(["yes"] * 30, dtype=object)) == "'yes'"
    assert constant_output(np.array(["yes"] * 29 + ["no"], dtype=object)) is None


def test_distinct_rows_counts_missing_values_as_equal_and_reads_lists() -> None:
    frame = pd.DataFrame({"a": [1.0, 1.0, np.nan, np.nan], "b": ["x", "x", None, None]})
    assert distinct_rows(frame) == 2
    assert distinct_rows(pd.DataFrame({"tags": [[1, 2], [1, 2], [3]]})) == 2


def test_a_weak_but_real_model_passes_and_one_that_learned_nothing_fails() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 3))
    y = 0.05 * x[:, 0] + rng.standard_normal(300)
    weak = LogisticRegression().fit(x, y > 0)
    assert constant_output(weak.predict_proba(x)) is None
    # So strongly regularised that every coefficient is zero: the intercept for every row.
    nothing = Lasso(alpha=10.0).fit(x, y)
    assert constant_output(nothing.predict(x)) is not None


def test_too_few_distinct_rows_skip_with_the_reason(gate: GateRun) -> None:
    gate.artifact(fm.LinearRegressor())
    frame = pd.concat([fm.make_frame(5)] * 20, ignore_index=True)
    gate.data(frame)
    gate.run("model.joblib", "-k", "not-constant", target="y")
    assert junit_outcomes(gate.junit()) == {"output[not-constant]": "skipped"}
    assert messages(gate.junit())["output[not-constant]"].startswith(
        "5 distinct data rows, fewer than the 20 this needs"
    )


def test_a_classifier_without_probabilities_is_not_judged(gate: GateRun) -> None:
    # Its labels may rightly be one class for every row (rare positives): no item at all.
    from sklearn.svm import LinearSVC

    frame = fm.make_frame()
    model = LinearSVC().fit(frame[list(fm.FEATURES)], frame["label"])
    import joblib

    joblib.dump(model, gate.path / "model.joblib")
    gate.data(frame)
    gate.run("model.joblib", "-k", "output")
    assert "output[not-constant]" not in junit_outcomes(gate.junit())


def test_a_model_regularised_into_its_intercept_fails_though_its_outputs_wobble() -> None:
    # A regularisation grid in the wrong units: outputs differ only in their 7th digit.
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(1)
    x = rng.standard_normal((400, 4))
    y = 80 + 40 * x[:, 0] + rng.standard_normal(400)
    ridge = Ridge(alpha=1e12).fit(x, y).predict(x)
    assert constant_output(ridge) is None
    assert "of the labels' standard deviation" in str(near_constant_output(ridge, y, False))
    proba = LogisticRegression(C=1e-10).fit(x, y > 90).predict_proba(x)
    assert constant_output(proba) is None
    assert "in every probability column" in str(near_constant_output(proba, None, True))


def test_weak_models_rare_events_and_large_offsets_are_not_near_constant() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((400, 3))
    y = 0.05 * x[:, 0] + rng.standard_normal(400)
    weak = LogisticRegression().fit(x, y > 0).predict_proba(x)
    assert near_constant_output(weak, None, True) is None
    # A rare event: P(1) around 1e-7 varies by half of itself (its complement by 1e-7 of 1).
    rare = 1e-7 * (1 + 0.5 * rng.random(400))
    assert near_constant_output(np.c_[1 - rare, rare], None, True) is None
    # A timestamp predicted within its hour: a spread of 6e-7 of the value, not of the labels.
    stamps = 1.7e9 + 1000 * x[:, 0]
    assert near_constant_output(stamps, stamps + rng.standard_normal(400), False) is None
    assert near_constant_output(stamps, None, False) is None
    # Without labels a regressor is not judged near-constant at all, only exactly constant.
    assert near_constant_output(84 + 1e-9 * x[:, 0], None, False) is None


def test_a_near_constant_regressor_is_blocked_by_the_gate(gate: GateRun) -> None:
    from sklearn.linear_model import Ridge

    frame = fm.make_frame()
    features = frame[list(fm.FEATURES)]
    gate.artifact(Ridge(alpha=1e12).fit(features, frame["y"]))
    gate.data(frame)
    gate.run("model.joblib", "-k", "not-constant", target="y")
    assert junit_outcomes(gate.junit()) == {"output[not-constant]": "failed"}
    assert messages(gate.junit())["output[not-constant]"].startswith(
        "the model gives effectively the same prediction for all 200 rows (200 distinct rows"
    )
