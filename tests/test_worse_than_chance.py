"""``output[not-worse-than-chance]``'s rule: outputs that do significantly worse than guessing
against the labels fail; weak, constant, imbalanced or tuned healthy models pass."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from conftest import GateRun, junit_outcomes, messages
from junit_properties import properties
from sklearn.linear_model import LinearRegression, LogisticRegression

from deploy_gate.validation import worse_than_chance

RNG = np.random.default_rng(7)


def _weak_binary(n: int = 3000, signal: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    x = RNG.standard_normal((n, 3))
    y = (signal * x[:, 0] + RNG.standard_normal(n) > 0).astype(int)
    return x, y


@pytest.mark.parametrize("n", [30, 3000, 200_000])
def test_random_labels_are_not_worse_than_chance(n: int) -> None:
    y = RNG.integers(0, 2, n)
    guesses = RNG.integers(0, 2, n)
    proba = RNG.uniform(size=n)
    assert (
        worse_than_chance("classifier", guesses, y, np.column_stack([1 - proba, proba]), [0, 1])
        is None
    )


def test_a_constant_prediction_is_not_worse_than_chance() -> None:
    y = RNG.integers(0, 3, 1000)
    assert worse_than_chance("classifier", np.zeros(1000, dtype=int), y) is None
    assert worse_than_chance("regressor", np.full(1000, 2.5), RNG.standard_normal(1000)) is None


def test_a_weak_honest_classifier_passes() -> None:
    x, y = _weak_binary()
    model = LogisticRegression().fit(x[:1500], y[:1500])
    proba = model.predict_proba(x[1500:])
    assert worse_than_chance("classifier", model.predict(x[1500:]), y[1500:], proba, [0, 1]) is None


def test_a_balanced_model_on_rare_positives_passes_though_its_accuracy_is_below_the_majority() -> (
    None
):
    n = 20_000
    x = RNG.standard_normal((n, 2))
    y = (x[:, 0] + 0.8 * RNG.standard_normal(n) > 2.0).astype(int)  # about 4% positives
    model = LogisticRegression(class_weight="balanced").fit(x[: n // 2], y[: n // 2])
    labels = model.predict(x[n // 2 :])
    assert (labels == y[n // 2 :]).mean() < 1 - y[n // 2 :].mean()  # below always-negative
    proba = model.predict_proba(x[n // 2 :])
    assert worse_than_chance("classifier", labels, y[n // 2 :], proba, [0, 1]) is None


def test_inverted_labels_fail_naming_the_balanced_accuracy() -> None:
    x, y = _weak_binary(signal=2.0)
    model = LogisticRegression().fit(x, y)
    found = worse_than_chance("classifier", 1 - model.predict(x), y)
    assert found is not None
    assert found.startswith("outputs are significantly worse than chance against the labels: ")
    assert "balanced accuracy 0.1" in found  # the model is right on about 85% of rows


def test_inverted_probabilities_fail_on_the_auc_alone() -> None:
    x, y = _weak_binary(signal=2.0)
    model = LogisticRegression().fit(x, y)
    found = worse_than_chance(
        "classifier", model.predict(x), y, model.predict_proba(x)[:, ::-1], [0, 1]
    )
    assert found is not None
    assert "ROC AUC 0.0" in found
    assert "balanced accuracy" not in found


def test_permuted_string_classes_fail() -> None:
    n = 900
    y = np.array(["red", "green", "blue"] * (n // 3), dtype=object)
    shifted = {"red": "green", "green": "blue", "blue": "red"}
    found = worse_than_chance("classifier", np.array([shifted[v] for v in y], dtype=object), y)
    assert found is not None
    assert "balanced accuracy 0.000" in found


def test_labels_none_of_which_are_values_of_the_target_fail_naming_both() -> None:
    # The wrong target column, or a model whose labels are encoded another way: no metric
    # against these labels means anything, so the check fails rather than skip.
    y = np.array(["yes", "no"] * 50, dtype=object)
    found = worse_than_chance("classifier", np.array([1, 0] * 50), y)
    assert found is not None
    assert found.startswith("none of the 100 predicted labels is a value of the target column")
    assert "the model predicts [1, 0], the target holds ['yes', 'no']" in found


def test_a_continuous_target_is_not_a_classifiers_labels_and_is_not_judged() -> None:
    # Two artifacts gated on one data file: the regressor's target beside a classifier.
    y = np.random.default_rng(0).normal(10.0, 3.0, 100)
    with pytest.raises(ValueError, match="the target holds 100 different values"):
        worse_than_chance("classifier", np.array([1, 0] * 50), y)


def test_labels_mostly_but_not_all_outside_the_target_cannot_be_judged() -> None:
    # A holdout without most of the classes the model predicts: a partial overlap is skipped.
    y = np.array(["a", "b"] * 50, dtype=object)
    predictions = np.array(["a"] * 20 + ["c"] * 80, dtype=object)
    with pytest.raises(ValueError, match="not values of the target column"):
        worse_than_chance("classifier", predictions, y)


def test_integer_labels_match_float_and_boolean_targets() -> None:
    y = np.array([1.0, 0.0] * 50)
    assert worse_than_chance("classifier", np.array([1, 0] * 50), y) is None
    assert worse_than_chance("classifier", np.array([0, 1] * 50), y.astype(bool)) is not None


def test_too_few_rows_cannot_be_judged() -> None:
    with pytest.raises(ValueError, match="fewer than the 20"):
        worse_than_chance("classifier", np.array([1, 0] * 5), np.array([0, 1] * 5))


def test_a_negated_regressor_fails_and_a_noisy_or_biased_one_passes() -> None:
    x = RNG.standard_normal((2000, 2))
    y = x @ [1.0, 0.5] + RNG.standard_normal(2000)
    model = LinearRegression().fit(x, y)
    assert worse_than_chance("regressor", model.predict(x) + 2.0, y) is None  # biased, honest
    # (biased so far that the typical output lies outside every label: another scale, below)
    assert worse_than_chance("regressor", RNG.standard_normal(2000), y) is None  # useless
    found = worse_than_chance("regressor", -model.predict(x), y)
    assert found is not None
    assert "Spearman correlation -0.7" in found


def test_a_regressor_fitted_on_a_target_column_is_judged_on_its_one_output_column() -> None:
    # LinearRegression fitted on y as a column answers shape (n, 1): one output per row all
    # the same, which used to skip the check ("only one output per row is compared").
    x = RNG.standard_normal((2000, 2))
    y = x @ [1.0, 0.5] + RNG.standard_normal(2000)
    model = LinearRegression().fit(x, y.reshape(-1, 1))
    assert model.predict(x).shape == (2000, 1)
    assert worse_than_chance("regressor", model.predict(x), y) is None
    found = worse_than_chance("regressor", -model.predict(x), y)
    assert found is not None
    assert "Spearman correlation -0.7" in found


def test_a_target_column_of_other_labels_blocks_the_gate_naming_both(gate: GateRun) -> None:
    # The model was trained on 0/1; the holdout spells the same column "no"/"yes". Before,
    # every label check skipped and the run was approved on metrics nothing had computed.
    from faulty_models import ThresholdClassifier, make_frame

    gate.artifact(ThresholdClassifier())
    frame = make_frame()
    frame["label"] = frame["label"].map({0: "no", 1: "yes"})
    gate.data(frame)
    result = gate.run("model.joblib", "-k", "output")
    outcomes = junit_outcomes(gate.junit())
    assert {k for k, v in outcomes.items() if v == "failed"} == {"output[not-worse-than-chance]"}
    message = messages(gate.junit())["output[not-worse-than-chance]"]
    assert "none of the 200 predicted labels is a value of the target column" in message
    assert "the model predicts [1, 0], the target holds ['yes', 'no']" in message
    assert result.ret == 1


def test_the_same_labels_stored_as_floats_with_a_missing_one_pass(gate: GateRun) -> None:
    from faulty_models import ThresholdClassifier, make_frame

    gate.artifact(ThresholdClassifier())
    frame = make_frame()
    frame["label"] = frame["label"].astype(float)
    frame.loc[3, "label"] = float("nan")
    gate.data(frame)
    result = gate.run("model.joblib", "-k", "not-worse-than-chance")
    assert junit_outcomes(gate.junit()) == {"output[not-worse-than-chance]": "passed"}
    assert result.ret == 0


def test_labels_the_model_has_no_class_for_fail_when_they_are_not_rare() -> None:
    # Trained without class "c": it can never be right on a third of the rows, and balanced
    # accuracy at its own rates did not see it.
    y = np.array(["a", "b", "c"] * 100, dtype=object)
    predictions = np.where(y == "c", "a", y)
    found = worse_than_chance("classifier", predictions, y, None, ["a", "b"])
    assert found == (
        "100 of the 300 labelled rows (33%) have a label the model can never predict: ['c'] "
        "not among its classes ['a', 'b']; trained without them?"
    )
    # A rare class missing from training (1%) is left to the metrics.
    rare = np.array(["a", "b"] * 150 + ["c"] * 3, dtype=object)
    assert (
        worse_than_chance("classifier", np.where(rare == "c", "a", rare), rare, None, ["a", "b"])
        is None
    )


def test_a_class_given_probability_zero_on_every_row_fails_when_it_is_not_rare() -> None:
    # The third class's probability zeroed on the way out, labels following the probabilities:
    # labels match probabilities, and balanced accuracy at the model's own rates was not
    # significantly below chance on so few classes.
    y = np.array(["low", "mid", "high"] * 200, dtype=object)
    proba = RNG.dirichlet([3, 3, 3], size=600)
    proba[np.arange(600), np.tile([0, 1, 2], 200)] += 1.0
    proba[:, 2] = 0.0
    proba /= proba.sum(axis=1, keepdims=True)
    classes = ["low", "mid", "high"]
    predictions = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    found = worse_than_chance("classifier", predictions, y, proba, classes)
    assert found == (
        "200 of the 600 labelled rows (33%) have the label 'high', and the model gives it "
        "probability 0 on every row: it can never be right on them (a probability column "
        "zeroed or dropped?)"
    )
    # A class at 1% of the labels that never gets a probability is left to the metrics.
    rare = np.where(np.arange(600) < 594, np.where(y == "high", "mid", y), "high")
    assert worse_than_chance("classifier", predictions, rare, proba, classes) is None


def test_a_feature_in_other_units_that_saturates_probabilities_fails() -> None:
    # Income x1000 before a logistic regression: nearly every row answered at 0 or 1, right
    # on fewer than half, while the balanced accuracy is at chance.
    y = (RNG.random(2500) < 0.4).astype(int)
    positive = RNG.random(2500) < 0.9  # saturated towards 1 on 90% of rows, whatever the label
    p1 = np.where(positive, 1 - 1e-9, 1e-9)
    proba = np.column_stack([1 - p1, p1])
    found = worse_than_chance("classifier", positive.astype(int), y, proba, [0, 1])
    assert found is not None
    assert "of the 2500 rows it answers with probability 0.99 or more (4" in found
    assert found.endswith(
        "confidently wrong more often than a coin; labels inverted or "
        "permuted, outputs detached from their rows, or inputs on another "
        "scale than in training?"
    )


@pytest.mark.parametrize("seed", range(6))
def test_unpruned_trees_nearest_neighbours_and_naive_bayes_are_not_confidently_wrong(
    seed: int,
) -> None:
    # Sure of every answer (probabilities of 0 and 1, or naive Bayes' extremes) on labels
    # they barely predict, or on pure noise: right on about half their sure answers or more.
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3000, 5))
    noise = (rng.random(3000) < 0.3).astype(int)
    weak = (0.3 * x[:, 0] + rng.standard_normal(3000) > 0.8).astype(int)
    for y in (noise, weak):
        for model in (
            DecisionTreeClassifier(random_state=seed),
            KNeighborsClassifier(1),
            GaussianNB(),
        ):
            model.fit(x[:2000], y[:2000])
            proba = model.predict_proba(x[2000:])
            found = worse_than_chance(
                "classifier", model.predict(x[2000:]), y[2000:], proba, list(model.classes_)
            )
            assert found is None, (type(model).__name__, found)


def _prices(n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Features and a positive, skewed target (prices around 100,000, spread about half)."""
    x = RNG.standard_normal((n, 3))
    y = np.exp(11.5 + 0.4 * x[:, 0] + 0.2 * x[:, 1] + 0.25 * RNG.standard_normal(n))
    return x, y


def test_a_model_of_the_log_target_served_without_the_inverse_fails() -> None:
    x, y = _prices()
    model = LinearRegression().fit(x[:1000], np.log(y[:1000]))
    reason = worse_than_chance("regressor", model.predict(x[1000:]), y[1000:])
    assert reason is not None
    assert reason.startswith("predictions are off the labels' scale: the median prediction, 11.")


def test_outputs_in_other_units_fail() -> None:
    x, y = _prices()
    model = LinearRegression().fit(x[:1000], y[:1000])
    cents = 100 * model.predict(x[1000:])
    reason = worse_than_chance("regressor", cents, y[1000:])
    assert reason is not None
    assert "off the labels' scale" in reason


@pytest.mark.parametrize("quantile", [0.05, 0.5, 0.95, 0.99])
def test_healthy_regressors_on_their_own_scale_pass(quantile: float) -> None:
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.ensemble import GradientBoostingRegressor

    x, y = _prices()
    fits = [
        TransformedTargetRegressor(LinearRegression(), func=np.log, inverse_func=np.exp),
        GradientBoostingRegressor(loss="quantile", alpha=quantile, n_estimators=30),
        LinearRegression(),
    ]
    for model in fits:
        model.fit(x[:1000], y[:1000])
        assert worse_than_chance("regressor", model.predict(x[1000:]), y[1000:]) is None, model
    # A model that learned nothing, fitted to a high quantile: its one output is among the labels.
    assert worse_than_chance("regressor", np.full(1000, np.quantile(y, quantile)), y[1000:]) is None


def test_counts_that_are_mostly_zero_with_expected_values_as_outputs_pass() -> None:
    from sklearn.linear_model import PoissonRegressor

    x = RNG.standard_normal((4000, 2))
    y = RNG.poisson(np.exp(-3 + 0.5 * x[:, 0]))  # about 95% zeros
    model = PoissonRegressor().fit(x[:2000], y[:2000])
    assert np.median(y[2000:]) == 0
    assert worse_than_chance("regressor", model.predict(x[2000:]), y[2000:]) is None


def test_the_scale_is_not_judged_on_fewer_than_a_hundred_rows() -> None:
    x, y = _prices(198)
    model = LinearRegression().fit(x[:99], np.log(y[:99]))
    assert worse_than_chance("regressor", model.predict(x[99:]), y[99:]) is None


def _skewed(n: int = 2000, sigma: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Features and a log-normal target whose log lies among its values (0.1 to 2,000)."""
    x = RNG.standard_normal((n, 4))
    signal = x[:, 0] - 0.8 * x[:, 1] + 0.5 * x[:, 2] + 0.3 * RNG.standard_normal(n)
    return x, np.exp(sigma * signal / signal.std() + 3)


def test_a_log_target_model_whose_outputs_lie_among_skewed_labels_fails() -> None:
    # log(y) is 0 to 7.6 for labels of 0.1 to 2,000 with a median of 20: its typical output is
    # among the labels, and its error only a little above a constant's. exp() brings it back.
    from sklearn.linear_model import Ridge

    x, y = _skewed()
    served = Ridge().fit(x[:1000], np.log(y[:1000])).predict(x[1000:])
    assert np.min(y[1000:]) < np.median(served) < np.max(y[1000:])
    reason = worse_than_chance("regressor", served, y[1000:])
    assert reason is not None
    assert reason.startswith("predictions are off the labels' scale: exp of them is within ")
    log10 = Ridge().fit(x[:1000], np.log10(y[:1000])).predict(x[1000:])
    assert "10 to the power of them" in (worse_than_chance("regressor", log10, y[1000:]) or "")


@pytest.mark.parametrize("seed", [0, 1, 2, 55])
def test_healthy_regressors_that_no_inverse_brings_closer_pass(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Weak, over-regularised, overfit and quantile models on skewed, small and tiny labels:
    # none is on another scale, though some err more than a constant. On some draws a 5%
    # quantile model of labels from 0 to 3 errs low by so much that expm1 halves its error
    # (0.371 against 0.744): an inverse must cut the error to a third to count.
    monkeypatch.setattr(sys.modules[__name__], "RNG", np.random.default_rng(seed))
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import Ridge
    from sklearn.tree import DecisionTreeRegressor

    x, skewed = _skewed(sigma=2.5)
    signal = x[:, 0] - 0.8 * x[:, 1] + 0.5 * x[:, 2]
    noise = RNG.standard_normal(2000)
    targets = {
        "skewed": skewed,
        "0 to 3": np.clip(1.5 + 0.5 * signal + 0.3 * noise, 0, 3),
        "rates": 0.02 + 0.005 * signal + 0.002 * noise,
        "small log-normal": np.exp(0.3 * signal + 0.2 * noise),
    }
    models = [
        Ridge(),
        Ridge(alpha=1e5),
        DecisionTreeRegressor(random_state=0),
        GradientBoostingRegressor(loss="quantile", alpha=0.05, n_estimators=30, random_state=0),
        GradientBoostingRegressor(loss="quantile", alpha=0.95, n_estimators=30, random_state=0),
    ]
    for name, y in targets.items():
        for model in models:
            served = model.fit(x[:1000], y[:1000]).predict(x[1000:])
            assert worse_than_chance("regressor", served, y[1000:]) is None, (name, model)


def test_a_model_of_the_standardised_target_served_without_the_inverse_fails() -> None:
    # A lifetime value around 1,000 whose refunds reach below 0: z-scores around 0 lie among
    # the labels, and no usual inverse brings them back; a straight line does.
    from sklearn.linear_model import Ridge

    x = RNG.standard_normal((2000, 3))
    signal = x[:, 0] - 0.5 * x[:, 1] + 0.3 * RNG.standard_normal(2000)
    y = 1000 + 300 * signal / signal.std()
    y[::50] = -300.0  # refunds
    mean, std = y[:1000].mean(), y[:1000].std()
    served = Ridge().fit(x[:1000], (y[:1000] - mean) / std).predict(x[1000:])
    assert np.min(y[1000:]) < np.median(served) < np.max(y[1000:])
    reason = worse_than_chance("regressor", served, y[1000:])
    assert reason is not None
    assert reason.startswith("predictions are off the labels' scale: ")
    assert "x each is within" in reason
    assert "standardised target" in reason
    # Served with the inverse, and shrunk towards the mean (over-regularised): both pass.
    restored = mean + std * served
    assert worse_than_chance("regressor", restored, y[1000:]) is None
    shrunk = mean + 0.3 * (restored - mean)
    assert worse_than_chance("regressor", shrunk, y[1000:]) is None


def test_repeated_rows_count_once(gate: GateRun) -> None:
    # 30 rows on which a healthy model is unlucky (18 of its labels disagree): not significant
    # on 30 rows, "significant" on the same 30 rows repeated ten times (a request log with
    # retries, an oversampled holdout), which blocked it. Each distinct row counts once.
    import faulty_models as fm

    frame = fm.make_frame(30, seed=3)
    predicted = ((frame.a + frame.b) > 0).astype(int)
    frame["label"] = predicted
    frame.loc[:17, "label"] = 1 - predicted[:18]
    model = fm.ThresholdClassifier()
    proba = model.predict_proba(frame[list(fm.FEATURES)])
    assert worse_than_chance("classifier", predicted, frame["label"], proba, [0, 1]) is None
    tenfold = pd.concat([frame] * 10, ignore_index=True)
    assert worse_than_chance(
        "classifier", np.tile(predicted, 10), tenfold["label"], np.tile(proba, (10, 1)), [0, 1]
    )
    gate.artifact(model)
    gate.data(tenfold)

    gate.run("model.joblib", "-k", "not-worse-than-chance")

    root = gate.junit()
    assert junit_outcomes(root) == {"output[not-worse-than-chance]": "passed"}
    props = properties(root, "output[not-worse-than-chance]")
    assert props["labelled_rows"] == "300"
    assert props["distinct_labelled_rows"] == "30"


def test_a_high_quantile_models_bias_is_not_taken_for_another_scale() -> None:
    # Fitted to the 99th percentile of skewed prices, it errs about three times as much as the
    # labels' median, and a line of slope near 1 (a shift) halves that: a bias, not a scale.
    from sklearn.ensemble import GradientBoostingRegressor

    rng = np.random.default_rng(7)
    for _ in range(10):
        x = rng.standard_normal((2000, 3))
        y = np.exp(11.5 + 0.4 * x[:, 0] + 0.2 * x[:, 1] + 0.25 * rng.standard_normal(2000))
        model = GradientBoostingRegressor(loss="quantile", alpha=0.99, n_estimators=30)
        served = model.fit(x[:1000], y[:1000]).predict(x[1000:])
        assert worse_than_chance("regressor", served, y[1000:]) is None
