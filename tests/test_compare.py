"""Unit tests of the candidate-versus-baseline comparison: metrics, error rate, shift."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.svm import LinearSVC

from deploy_gate.compare import (
    DEFAULT_METRICS,
    ErrorRate,
    ModelOutputs,
    adapt_model,
    compare_error_rate,
    compare_metric,
    compare_models,
    error_rate,
    infer_task,
    output_shift,
    predict_outputs,
    prediction_shift,
)
from deploy_gate.errors import ConfigError, DataError, MetricUnavailableError

FIRST_LINE = re.compile(
    r"^accuracy 0\.\d{3} is \d+\.\d% of baseline 0\.\d{3}, below the 95% floor 0\.\d{3} \(n=\d+\)$"
)


def frame(x: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])


@pytest.fixture(scope="module")
def multiclass() -> tuple[pd.DataFrame, np.ndarray, Any, Any]:
    x, y = make_classification(1500, n_features=6, n_informative=4, n_classes=3, random_state=0)
    rows = frame(x)
    strong = LogisticRegression().fit(rows, y)
    weak = LogisticRegression().fit(rows[["x0"]].to_numpy(), y)

    class OnFirstColumn:
        classes_ = weak.classes_

        def predict(self, r: pd.DataFrame) -> np.ndarray:
            out: np.ndarray = weak.predict(r[["x0"]].to_numpy())
            return out

        def predict_proba(self, r: pd.DataFrame) -> np.ndarray:
            out: np.ndarray = weak.predict_proba(r[["x0"]].to_numpy())
            return out

    return rows, y, strong, OnFirstColumn()


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


def test_a_metric_below_95_percent_of_the_baseline_fails_with_the_figures() -> None:
    y = np.array([1] * 900 + [0] * 100)
    base = y.copy()
    base[:100] = 0  # 90% accurate
    cand = y.copy()
    cand[:180] = 0  # 82% accurate: 91.1% of the baseline

    result = compare_metric("accuracy", y, cand, base)

    assert not result.passed
    assert result.candidate == pytest.approx(0.82)
    assert result.baseline == pytest.approx(0.90)
    assert result.threshold == pytest.approx(0.855)
    assert result.ratio == pytest.approx(0.82 / 0.90)
    assert result.n == 1000
    first = result.message.splitlines()[0]
    assert FIRST_LINE.match(first), first
    assert first == "accuracy 0.820 is 91.1% of baseline 0.900, below the 95% floor 0.855 (n=1000)"


def test_a_higher_is_better_metric_at_96_percent_of_the_baseline_passes() -> None:
    y = np.ones(1000, dtype=int)
    base, cand = y.copy(), y.copy()
    base[:100], cand[:136] = 0, 0  # 0.900 and 0.864 = 96% of it
    result = compare_metric("accuracy", y, cand, base)
    assert result.passed
    assert "meets the 95% floor" in result.message


@pytest.mark.parametrize(("factor", "passed"), [(1.05, True), (1.06, False)])
def test_a_lower_is_better_metric_must_not_exceed_the_baseline_divided_by_095(
    factor: float, passed: bool
) -> None:
    y = np.zeros(400)
    base = np.full(400, 2.0)  # MAE 2
    cand = np.full(400, 2.0 * factor)

    result = compare_metric("mae", y, cand, base)

    assert result.passed is passed
    assert result.threshold == pytest.approx(2.0 / 0.95)
    assert result.higher_is_better is False
    verdict = "within" if passed else "above"
    assert result.message.startswith(
        f"mae {2 * factor:.3f} is {factor:.1%} of baseline 2.000, {verdict} the limit 2.105 "
        "(baseline / 0.95) (n=400)"
    )


def test_a_baseline_of_zero_is_judged_without_dividing_by_it() -> None:
    y = np.zeros(50)
    perfect = np.zeros(50)
    # Lower is better: a perfect baseline leaves only floating-point slack.
    assert compare_metric("mae", y, perfect + 1e-12, perfect).passed
    failed = compare_metric("mae", y, perfect + 0.01, perfect)
    assert not failed.passed
    assert failed.ratio is None
    assert failed.message.startswith("mae 0.010 is above the tolerance 1e-09 of a perfect baseline")
    # Higher is better: a baseline of 0 is met by any candidate >= 0.
    labels = np.ones(50, dtype=int)
    all_wrong = np.zeros(50, dtype=int)
    met = compare_metric("accuracy", labels, all_wrong, all_wrong)
    assert met.passed
    assert met.ratio is None
    assert met.message.startswith("accuracy 0.000 meets the floor 0 set by a baseline of 0")


def test_a_negative_r2_baseline_sets_a_floor_five_percent_of_its_magnitude_lower() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=2000)
    base = y + rng.normal(scale=1.2, size=2000)  # R2 about -0.44
    slightly_worse = y + rng.normal(scale=1.21, size=2000)
    much_worse = y + rng.normal(scale=1.6, size=2000)

    kept = compare_metric("r2", y, slightly_worse, base)
    dropped = compare_metric("r2", y, much_worse, base)

    assert kept.baseline < 0
    assert kept.threshold == pytest.approx(kept.baseline * 1.05)
    assert kept.ratio is None
    assert kept.passed is (kept.candidate >= kept.threshold)
    assert not dropped.passed
    assert "minus 5% of its magnitude" in dropped.message


def test_roc_auc_is_macro_one_vs_rest_and_log_loss_uses_the_probabilities(
    multiclass: tuple[pd.DataFrame, np.ndarray, Any, Any],
) -> None:
    rows, y, strong, weak = multiclass
    cand = predict_outputs(strong, rows)
    base = predict_outputs(weak, rows)

    auc = compare_metric("roc_auc", y, cand, base)
    loss = compare_metric("log_loss", y, cand, base)

    assert auc.candidate == pytest.approx(
        roc_auc_score(y, strong.predict_proba(rows), multi_class="ovr", average="macro")
    )
    assert loss.candidate == pytest.approx(log_loss(y, strong.predict_proba(rows)))
    assert auc.passed
    assert loss.passed
    worse = compare_metric("log_loss", y, base, cand)
    assert not worse.passed
    assert "above the limit" in worse.message.splitlines()[0]


def _true_class_probabilities(p_true: np.ndarray) -> tuple[np.ndarray, ModelOutputs]:
    """Labels of 0 and 1 in turn, and binary outputs giving the true class ``p_true``."""
    n = p_true.size
    y = np.arange(n) % 2
    p1 = np.where(y == 1, p_true, 1 - p_true)
    outputs = ModelOutputs(
        task="classification",
        labels=(p1 > 0.5).astype(int),
        valid=np.ones(n, dtype=bool),
        index=pd.RangeIndex(n),
        proba=np.column_stack([1 - p1, p1]),
        classes=np.array([0, 1]),
    )
    return y, outputs


@pytest.mark.parametrize(
    ("n", "zeros", "p_worse"),
    [(1600, 3, 0.675), (40_000, 26, 0.685)],
    ids=["bootstrap", "normal-approximation-past-10000-rows"],
)
def test_log_loss_past_the_limit_by_a_few_rows_alone_is_noise_not_a_regression(
    n: int, zeros: int, p_worse: float
) -> None:
    # Two retrains of a fully grown forest: equal everywhere but on the rows where each gives
    # the true class a probability of 0 (each costs about 36): the baseline on one, the
    # candidate on a few more. Above the 105.3% limit, decided by a handful of rows.
    p = np.full(n, 0.7)
    y, base = _true_class_probabilities(np.where(np.arange(n) == 5, 0.0, p))
    rare = np.isin(np.arange(n), np.linspace(5, n - 1, zeros).astype(int))
    _, cand = _true_class_probabilities(np.where(rare, 0.0, p))
    noisy = compare_metric("log_loss", y, cand, base)
    assert noisy.candidate > noisy.threshold  # past the limit on these rows ...
    assert noisy.passed  # ... but not confidently
    first = noisy.message.splitlines()[0]
    assert "is past the limit" in first, first
    assert "but not confidently" in first, first
    # The same excess spread over every row is a confident regression, and fails.
    _, worse = _true_class_probabilities(np.full(n, p_worse))
    _, steady = _true_class_probabilities(p)
    confident = compare_metric("log_loss", y, worse, steady)
    assert confident.candidate / confident.baseline < noisy.candidate / noisy.baseline
    assert not confident.passed
    assert "above the limit" in confident.message.splitlines()[0]
    assert "past the limit by" in confident.message


def test_balanced_accuracy_on_a_rare_class_fails_only_a_confident_regression() -> None:
    # 60 positives in 2000 rows: the candidate finds 34 of them, the baseline 40. Six rows
    # of one rare class put it under the 95% floor (0.783 against 0.792): the recall of a
    # class that rare moves that much between two retrains of the same model.
    y = np.zeros(2000, dtype=int)
    positives = np.linspace(0, 1999, 60).astype(int)
    y[positives] = 1

    def finding(found: int) -> np.ndarray:
        labels = np.zeros(2000, dtype=int)
        labels[positives[:found]] = 1
        return labels

    noisy = compare_metric("balanced_accuracy", y, finding(34), finding(40))
    assert noisy.candidate < noisy.threshold
    assert noisy.passed
    assert "but not confidently" in noisy.message.splitlines()[0]
    blind = compare_metric("balanced_accuracy", y, finding(0), finding(40))
    assert not blind.passed
    assert "below the 95% floor" in blind.message.splitlines()[0]


def _scored(y: np.ndarray, score: np.ndarray) -> ModelOutputs:
    p = 1 / (1 + np.exp(-score))
    return ModelOutputs(
        task="classification",
        labels=(p > 0.5).astype(int),
        valid=np.ones(y.size, dtype=bool),
        index=pd.RangeIndex(y.size),
        proba=np.column_stack([1 - p, p]),
        classes=np.array([0, 1]),
    )


def test_roc_auc_on_a_rare_class_fails_only_a_confident_regression() -> None:
    # 30 positives in 1000 rows: two equally good models (each a noisy view of one signal)
    # measure AUCs apart by more than 5% on these rows (a retrain on fresh data: 0.731 against
    # 0.794 blocked a healthy forest). DeLong's variance of the paired difference says noise.
    rng = np.random.default_rng(1)  # 86.9% of the baseline's AUC (seeds 0-11: 0.87-1.18)
    y = np.zeros(1000, dtype=int)
    y[rng.choice(1000, 30, replace=False)] = 1
    signal = 1.2 * y + rng.standard_normal(1000)
    cand = _scored(y, signal + 0.9 * rng.standard_normal(1000))
    base = _scored(y, signal + 0.9 * rng.standard_normal(1000))
    noisy = compare_metric("roc_auc", y, cand, base)
    assert noisy.candidate < noisy.threshold, noisy.message  # below the floor on these rows ...
    assert noisy.passed  # ... but not confidently
    assert "but not confidently" in noisy.message.splitlines()[0]
    # Half of the rows scored at random: a confident regression on 5000 rows, which fails.
    y = (rng.random(5000) < 0.3).astype(int)
    signal = 1.5 * y + rng.standard_normal(5000)
    blurred = np.where(rng.random(5000) < 0.5, rng.standard_normal(5000), signal)
    worse = compare_metric("roc_auc", y, _scored(y, blurred), _scored(y, signal))
    assert not worse.passed
    assert "below the 95% floor" in worse.message.splitlines()[0]
    assert "at 95% confidence past it by" in worse.message


def test_delongs_interval_agrees_with_a_paired_bootstrap_of_the_auc() -> None:
    from deploy_gate.compare import _auc_interval

    rng = np.random.default_rng(0)
    y = (rng.random(800) < 0.1).astype(int)
    signal = y + rng.standard_normal(800)
    cand, base = signal + rng.standard_normal(800), signal + 0.5 * rng.standard_normal(800)
    found = _auc_interval(y, _scored(y, cand), _scored(y, base), np.ones(800, bool), 0.95)
    assert found is not None
    low, point = found
    assert point == pytest.approx(0.95 * roc_auc_score(y, base) - roc_auc_score(y, cand))
    gaps = []
    for _ in range(1000):
        i = rng.integers(0, 800, 800)
        gaps.append(0.95 * roc_auc_score(y[i], base[i]) - roc_auc_score(y[i], cand[i]))
    assert low == pytest.approx(float(np.quantile(gaps, 0.05)), abs=0.01)


def test_a_metric_that_needs_probabilities_is_unavailable_without_them() -> None:
    x, y = make_classification(300, random_state=1)
    rows = frame(x)
    svc = LinearSVC().fit(rows, y)
    outputs = predict_outputs(svc, rows)
    with pytest.raises(MetricUnavailableError, match="log_loss needs class probabilities"):
        compare_metric("log_loss", y, outputs, outputs)

    result = compare_models(svc, svc, rows, y)
    assert [m.metric for m in result.metrics] == ["accuracy", "balanced_accuracy"]


def test_the_comparison_skips_metrics_with_a_reason_when_there_are_no_labels(
    multiclass: tuple[pd.DataFrame, np.ndarray, Any, Any],
) -> None:
    rows, _, strong, weak = multiclass
    result = compare_models(strong, weak, rows)
    assert result.metrics == ()
    assert [name for name, _ in result.skipped] == list(DEFAULT_METRICS["classification"])
    assert all("needs labels" in reason for _, reason in result.skipped)
    assert result.error_rate.passed
    assert result.shift is not None


def test_regression_models_get_the_regression_metrics() -> None:
    x, y = make_regression(500, n_features=4, noise=5.0, random_state=0)
    rows = frame(x)
    model = LinearRegression().fit(rows, y)
    assert infer_task(model) == "regression"

    result = compare_models(model, model, rows, y)

    assert [m.metric for m in result.metrics] == ["mae", "rmse", "r2"]
    assert all(m.passed and m.ratio == pytest.approx(1.0) for m in result.metrics)
    assert result.shift is not None
    assert result.shift.psi == pytest.approx(0.0)
    assert result.shift.label_flips is None


def test_the_task_is_read_from_the_model_and_else_from_the_labels() -> None:
    x, y = make_regression(200, n_features=3, random_state=0)
    rows = frame(x)

    class Serving:
        """A serving wrapper: batch_predict, and the estimator as ``.model``."""

        def __init__(self, model: Any) -> None:
            self.model = model

        def batch_predict(self, r: pd.DataFrame) -> np.ndarray:
            out: np.ndarray = self.model.predict(r)
            return out

    class Opaque:
        def batch_predict(self, r: pd.DataFrame) -> np.ndarray:
            return np.zeros(len(r))

    assert infer_task(Serving(LinearRegression().fit(rows, y))) == "regression"
    assert infer_task(Opaque(), y) == "regression"
    assert infer_task(Opaque(), np.array(["cat", "dog"])) == "classification"
    with pytest.raises(ConfigError, match="pass task='classification' or task='regression'"):
        infer_task(Opaque())


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: compare_metric("f1", [1], [1], [1]), ConfigError, "unknown metric 'f1'"),
        (lambda: compare_metric("accuracy", [1, 0], [1], [1]), DataError, "y_true has 2 labels"),
        (
            lambda: compare_metric("accuracy", [1, None], [1, 0], [1, 0]),
            DataError,
            "y_true has 1 missing label",
        ),
        (lambda: error_rate(LinearRegression(), [[1.0]]), DataError, "rows must be a pandas"),
        (lambda: adapt_model(object()), ConfigError, "neither batch_predict"),
    ],
)
def test_bad_input_gets_an_error_naming_the_parameter(
    call: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        call()


# --------------------------------------------------------------------------------------------
# Error rate
# --------------------------------------------------------------------------------------------


class Deployment:
    """A deployment-like model that raises on rows with ``bad`` set and returns NaN on ``nan``."""

    def __init__(self) -> None:
        self.calls = 0

    def batch_predict(self, rows: pd.DataFrame) -> np.ndarray:
        self.calls += 1
        if rows["bad"].any():
            raise RuntimeError("cannot score")
        out = rows["x"].to_numpy(dtype=float) * 2
        out[rows["nan"].to_numpy()] = np.nan
        return out

    def predict(self, rows: pd.DataFrame) -> np.ndarray:  # pragma: no cover - must not be used
        raise AssertionError("batch_predict must be preferred")


def test_error_rate_finds_the_rows_that_raise_or_return_nan_with_few_model_calls() -> None:
    n = 4000
    rows = pd.DataFrame(
        {"x": np.arange(n, dtype=float), "bad": False, "nan": False},
        index=[f"r{i}" for i in range(n)],
    )
    rows.loc[["r17", "r2500", "r3999"], "bad"] = True
    rows.loc["r40", "nan"] = True
    model = Deployment()

    rate = error_rate(model, rows, task="regression", batch_size=1024)

    assert rate.errors == 4
    assert rate.rate == pytest.approx(4 / n)
    assert rate.failing_rows == ("r17", "r40", "r2500", "r3999")
    assert any("RuntimeError: cannot score (first at row 'r17')" in e for e in rate.examples)
    assert "predict returned nan (first at row 'r40')" in rate.examples
    assert model.calls < 100  # bisection, not one call per row


def test_a_model_that_fails_on_every_row_costs_few_calls() -> None:
    class Broken:
        calls = 0

        def batch_predict(self, rows: pd.DataFrame) -> np.ndarray:
            self.calls += 1
            raise KeyError("unknown feature 'user'")

    model = Broken()
    rate = error_rate(model, pd.DataFrame({"x": np.arange(20_000.0)}), task="regression")

    assert rate.errors == 20_000
    assert rate.examples == ("KeyError: \"unknown feature 'user'\" (first at row 0)",)
    assert model.calls < 200


def test_wrong_lengths_and_bad_probabilities_count_as_errors() -> None:
    class Broken:
        classes = np.array(["no", "yes"])

        def batch_predict(self, rows: pd.DataFrame) -> np.ndarray:
            out = np.where(rows["x"].to_numpy() > 0, "yes", "no")
            return out[:-1] if len(rows) > 1 else out  # drops a row on batches

        def batch_predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
            p = np.full((len(rows), 2), 0.5)
            p[rows["x"].to_numpy() == 3] = [0.7, 0.7]
            return p

    rows = pd.DataFrame({"x": np.arange(-4, 6)})
    outputs = predict_outputs(Broken(), rows)

    assert outputs.task == "classification"
    assert outputs.errors == 1  # row-by-row answers are fine, except x == 3's probabilities
    assert outputs.error_rate().failing_rows == (7,)
    assert "predict_proba sums to 1.4" in outputs.examples[0]
    assert list(outputs.labels[outputs.valid]) == ["no"] * 5 + ["yes"] * 2 + ["yes"] * 2


@pytest.mark.parametrize(
    ("cand_errors", "base_errors", "passed"),
    [
        (0, 0, True),
        (1, 0, True),  # 0.1% against 0: the absolute floor, no failure by division
        (10, 0, False),  # 1% against 0
        (20, 10, True),  # 2.0x
        (25, 10, False),  # 2.5x
    ],
)
def test_the_error_rate_may_be_twice_the_baselines_with_an_absolute_floor(
    cand_errors: int, base_errors: int, passed: bool
) -> None:
    result = compare_error_rate(ErrorRate(cand_errors, 1000), ErrorRate(base_errors, 1000))
    assert result.passed is passed
    assert result.limit == pytest.approx(max(2 * base_errors / 1000, 0.001))
    verdict = "within" if passed else "exceeds"
    assert result.message.startswith(
        f"error rate {cand_errors / 10:.2f}% ({cand_errors} of 1000 rows) {verdict} the limit "
    )
    assert result.message.splitlines()[0].endswith("(n=1000)")


def test_an_error_rate_message_lists_the_candidates_failing_rows() -> None:
    failing = ErrorRate(12, 1000, failing_rows=tuple(range(12)), examples=("ValueError: x",))
    message = compare_error_rate(failing, ErrorRate(0, 1000)).message
    assert "candidate failing rows: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 (+2 more)" in message
    assert "ValueError: x" in message


# --------------------------------------------------------------------------------------------
# Prediction shift
# --------------------------------------------------------------------------------------------


def test_identical_predictions_do_not_shift() -> None:
    scores = np.random.default_rng(0).random(1000)
    labels = scores > 0.5
    shift = prediction_shift(scores, scores, labels, labels)
    assert shift.passed
    assert shift.psi == pytest.approx(0.0)
    assert shift.label_flips == 0.0
    assert shift.message.startswith(
        "prediction shift: PSI 0.000 within 0.2, labels changed on 0.0%"
    )


def test_shifted_scores_fail_on_psi() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(size=2000)
    shift = prediction_shift(base + 1.0, base)
    assert not shift.passed
    assert shift.psi > 0.2
    assert shift.message.startswith("prediction shift: PSI ")
    assert "exceeds 0.2" in shift.message
    assert shift.message.endswith("(n=2000)")


def test_flipped_labels_fail_on_the_flip_share_and_say_so_first() -> None:
    scores = np.linspace(0, 1, 1000)
    base_labels = scores > 0.5
    cand_labels = base_labels.copy()
    cand_labels[:150] = ~cand_labels[:150]  # 15% flipped, score distribution unchanged
    shift = prediction_shift(scores, scores, cand_labels, base_labels)
    assert not shift.passed
    assert shift.label_flips == pytest.approx(0.15)
    assert shift.message.startswith(
        "prediction shift: labels changed on 15.0% of rows (exceeds 10%)"
    )


def test_output_shift_uses_per_class_probabilities_and_names_the_worst_class(
    multiclass: tuple[pd.DataFrame, np.ndarray, Any, Any],
) -> None:
    rows, _, strong, weak = multiclass
    shift = output_shift(predict_outputs(strong, rows), predict_outputs(weak, rows))
    assert shift.worst_class in (0, 1, 2)
    assert f"(class {shift.worst_class})" in shift.message
    assert shift.label_flips is not None
    assert shift.label_flips > 0.1
    assert not shift.passed


def test_shift_without_probabilities_compares_the_label_distributions() -> None:
    labels = np.array(["a"] * 50 + ["b"] * 50)
    outputs = ModelOutputs(
        task="classification",
        labels=labels,
        valid=np.ones(100, dtype=bool),
        index=pd.RangeIndex(100),
    )
    moved = ModelOutputs(
        task="classification",
        labels=np.array(["a"] * 90 + ["b"] * 10),
        valid=np.ones(100, dtype=bool),
        index=pd.RangeIndex(100),
    )
    assert output_shift(outputs, outputs).psi == pytest.approx(0.0)
    assert output_shift(moved, outputs).psi > 0.2


# --------------------------------------------------------------------------------------------
# The comparison as the gate runs it: which evidence judges
# --------------------------------------------------------------------------------------------


def _models_on_two_scales() -> tuple[pd.DataFrame, np.ndarray, Any, Any]:
    """A well-fitted model and a timid one (the same labels, probabilities squeezed to 0.5)."""
    x, y = make_classification(3000, n_features=5, random_state=3)
    rows = frame(x)
    sure = LogisticRegression().fit(rows, y)

    class Timid:
        classes_ = sure.classes_

        def predict(self, r: pd.DataFrame) -> np.ndarray:
            out: np.ndarray = sure.predict(r)
            return out

        def predict_proba(self, r: pd.DataFrame) -> np.ndarray:
            p = 0.5 + (sure.predict_proba(r)[:, 1] - 0.5) * 0.2
            return np.column_stack([1 - p, p])

    return rows, y, sure, Timid()


def test_with_labels_the_metrics_judge_and_the_shift_is_shown_not_failed() -> None:
    rows, y, sure, timid = _models_on_two_scales()

    result = compare_models(sure, timid, rows, y)

    assert result.shift is not None
    assert not result.shift.within_limits
    assert result.shift.passed
    assert not result.shift.judged
    assert result.shift.message.startswith("prediction shift: PSI ")
    assert "exceeds 0.2" in result.shift.message
    assert "; not judged: 4 metrics judged quality on 3000 labelled rows" in result.shift.message
    assert all(m.passed for m in result.metrics)


def test_without_labels_the_shift_limits_decide() -> None:
    rows, _, sure, timid = _models_on_two_scales()

    result = compare_models(sure, timid, rows)

    assert result.shift is not None
    assert result.shift.judged
    assert not result.shift.passed
    assert result.shift.message.splitlines()[-1] == (
        "judged on its limits: there are no labels to judge quality by metrics"
    )


def test_rows_without_a_label_are_left_out_of_the_metrics_and_counted() -> None:
    rows, y, sure, _ = _models_on_two_scales()
    labels = y.astype(float)
    labels[::4] = np.nan

    result = compare_models(sure, sure, rows, labels)

    assert result.unlabelled == 750
    assert {m.metric for m in result.metrics} == set(DEFAULT_METRICS["classification"])
    assert all(m.n == 2250 for m in result.metrics)
    accuracy = next(m for m in result.metrics if m.metric == "accuracy")
    kept = ~np.isnan(labels)
    assert accuracy.candidate == pytest.approx(float(np.mean(sure.predict(rows)[kept] == y[kept])))
    assert "750 row(s) without a label left out (of 3000)" in accuracy.message
    # Label-free comparisons use every row.
    assert result.error_rate.candidate.n == 3000
    assert result.shift is not None
    assert result.shift.n == 3000


def test_with_no_label_on_any_row_the_metrics_are_skipped_saying_so() -> None:
    rows, y, sure, timid = _models_on_two_scales()

    result = compare_models(sure, timid, rows, np.full(len(y), np.nan))

    assert result.metrics == ()
    assert (
        dict(result.skipped)["accuracy"] == "accuracy needs labels: none of the 3000 rows has one"
    )
    assert result.shift is not None
    assert result.shift.judged
