"""Candidate versus baseline on the same rows: metrics, error rate and prediction shift.

The gate's ``baseline[...]`` items and the rollout router both judge a candidate model against the
model in production. This module holds the pieces that need no pytest: a small adapter so that
deployment-like objects (``batch_predict``) and bare scikit-learn estimators (``predict``) are
called the same way, a robust evaluation that finds the rows on which a model raises or returns
an invalid output, the metric catalogue (computed with ``sklearn.metrics``), and the comparisons
with their pass/fail rule and one-line messages.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from deploy_gate.capabilities import Task as Task  # re-exported: compare.Task is public
from deploy_gate.capabilities import (
    check_task,
    comparison_task,
    has_probabilities,
    model_classes,
    model_task,
    safe_getattr,
    serves_batches,
)
from deploy_gate.errors import ConfigError, DataError, MetricUnavailableError, describe_exc
from deploy_gate.stats import binned_shares, psi, quantile_edges

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from numpy.typing import ArrayLike

#: Relative floor of the metric checks: the candidate keeps at least 95% of the baseline's figure.
DEFAULT_MIN_RELATIVE = 0.95
#: The candidate's error rate may be at most this multiple of the baseline's ...
DEFAULT_MAX_ERROR_RATIO = 2.0
#: ... or this absolute share, whichever is larger, so that 0 vs 1 in 1000 is no failure by
#: division.
DEFAULT_ERROR_FLOOR = 0.001
#: PSI above 0.2 is the usual "significant shift" mark (0.1-0.2 moderate, below 0.1 stable).
DEFAULT_MAX_PSI = 0.2
#: One row in ten answered differently is a behaviour change a reviewer should sign off:
#: two retrains of a 90%-accurate model typically disagree on a few percent of rows.
DEFAULT_MAX_LABEL_FLIPS = 0.1
#: Rows per call to the model (a failing batch is then bisected). Large, because the fixed cost
#: of a call (input validation, column lookup) dominates for small tabular models.
DEFAULT_BATCH_SIZE = 8192
#: Absolute slack on metric comparisons, so floating-point noise never fails a check.
DEFAULT_ATOL = 1e-9
#: A metric fails only when the candidate is past its limit with this confidence (a paired
#: bootstrap over the rows; DeLong's variance for a binary ROC AUC): see ``compare_metric``.
METRIC_CONFIDENCE = 0.95
#: Resamples of that bootstrap: enough for a stable 5% tail, cheap on vectorised row terms.
_BOOTSTRAP_RESAMPLES = 2000
#: Rows up to which the means are bootstrapped (past it, a normal approximation), and the
#: resampled row terms held at once (4M: 32 MB an array).
_BOOTSTRAP_MAX_ROWS = 10_000
_BOOTSTRAP_CELLS = 4_000_000

# Probabilities may come from float32 runtimes (ONNX): allow that much rounding.
_PROBA_TOL = 1e-4
# How many failing rows and example reasons are kept for messages.
_MAX_ROWS_KEPT = 1000
_MAX_EXAMPLES = 5
# Once this many rows were judged and most of them failed, failing batches are counted as
# failed whole instead of being bisected.
_MIN_JUDGED = 32


# --------------------------------------------------------------------------------------------
# Adapter
# --------------------------------------------------------------------------------------------


class ModelAdapter:
    """One calling convention for deployment-like objects and bare scikit-learn estimators.

    A deployment-like object offers ``batch_predict(rows)`` and, for classifiers,
    ``batch_predict_proba(rows)`` and ``classes``; a bare estimator offers ``predict``,
    ``predict_proba`` and ``classes_``; which of these it has is decided by
    :mod:`deploy_gate.capabilities`. The comparison and the rollout router only call this.
    """

    def __init__(self, model: object) -> None:
        self.model = model
        batch = serves_batches(model)
        predict = getattr(model, "batch_predict" if batch else "predict", None)
        if not callable(predict):
            raise ConfigError(
                f"{type(model).__name__} cannot be compared: it has neither "
                "batch_predict(rows) nor predict(rows)"
            )
        self._predict: Callable[[Any], Any] = predict
        self._proba: Callable[[Any], Any] | None = (
            safe_getattr(model, "batch_predict_proba" if batch else "predict_proba")
            if has_probabilities(model)
            else None
        )
        classes = model_classes(model)
        self.classes: np.ndarray | None = None
        if classes is not None:
            import numpy as np

            self.classes = np.asarray(classes)

    @property
    def name(self) -> str:
        """Class name of the wrapped model, for messages."""
        return type(self.model).__name__

    @property
    def has_proba(self) -> bool:
        """Whether the model offers class probabilities."""
        return self._proba is not None

    def predict(self, rows: pd.DataFrame) -> Any:
        """Labels (classifiers) or values (regressors), one per row."""
        return self._predict(rows)

    def predict_proba(self, rows: pd.DataFrame) -> Any:
        """Class probabilities, one row per input row, columns in ``classes`` order."""
        if self._proba is None:
            raise ConfigError(f"{self.name} has no probabilities (no predict_proba)")
        return self._proba(rows)


def adapt_model(model: object) -> ModelAdapter:
    """Wrap ``model`` in a :class:`ModelAdapter` (an adapter is returned as it is)."""
    return model if isinstance(model, ModelAdapter) else ModelAdapter(model)


def infer_task(model: object, y_true: ArrayLike | None = None) -> Task:
    """Whether ``model`` is a classifier or a regressor, from the model first, then the labels.

    What the model says is read by :func:`deploy_gate.capabilities.model_task`: a scikit-learn
    classifier or regressor (also when wrapped as ``.model``/``.estimator``) says so, and a model
    with classes or probabilities is a classifier. Otherwise float labels mean regression and
    integer, boolean or string labels mean classification. Pass ``task=`` explicitly where this
    guess is wrong (an integer-valued regression target).
    """
    adapter = adapt_model(model)
    task = comparison_task(model_task(adapter.model))
    if task is not None:
        return task
    if y_true is not None:
        import numpy as np

        y = np.asarray(y_true)
        return "regression" if y.dtype.kind in "fc" else "classification"
    raise ConfigError(
        f"cannot tell whether {adapter.name} is a classifier or a regressor: "
        "pass task='classification' or task='regression'"
    )


# --------------------------------------------------------------------------------------------
# Robust evaluation: outputs and error rate
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorRate:
    """Share of rows on which a model raised or returned an invalid output."""

    errors: int
    n: int
    #: Index labels of the failing rows (the first 1000).
    failing_rows: tuple[Hashable, ...] = ()
    #: A few distinct reasons, each with the first row showing it, for messages.
    examples: tuple[str, ...] = ()

    @property
    def rate(self) -> float:
        """``errors / n`` (0.0 on no rows)."""
        return self.errors / self.n if self.n else 0.0


@dataclass(frozen=True, eq=False)
class ModelOutputs:
    """What a model returned on each row, with a mask of the rows where the output is valid.

    ``labels`` holds labels (classification) or values (regression); entries where ``valid`` is
    False are placeholders. ``proba`` has one column per entry of ``classes`` and NaN rows where
    the output is invalid.
    """

    task: Task
    labels: np.ndarray
    valid: np.ndarray
    index: pd.Index
    proba: np.ndarray | None = None
    classes: np.ndarray | None = None
    #: A few distinct failure reasons, each with the first row showing it.
    examples: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        """Number of rows evaluated."""
        return int(self.valid.shape[0])

    @property
    def errors(self) -> int:
        """Number of rows without a valid output."""
        return self.n - int(self.valid.sum())

    def subset(self, rows: np.ndarray) -> ModelOutputs:
        """These outputs on the rows where the boolean mask ``rows`` holds."""
        return replace(
            self,
            labels=self.labels[rows],
            valid=self.valid[rows],
            index=self.index[rows],
            proba=None if self.proba is None else self.proba[rows],
        )

    def error_rate(self) -> ErrorRate:
        """The error rate of these outputs."""
        import numpy as np

        failing = np.flatnonzero(~self.valid)[:_MAX_ROWS_KEPT]
        return ErrorRate(
            errors=self.errors,
            n=self.n,
            failing_rows=tuple(self.index[failing]),
            examples=self.examples,
        )


class _BadOutput(Exception):
    """A model call returned something that is not one output per row."""


def predict_outputs(
    model: object,
    rows: pd.DataFrame,
    *,
    task: Task | None = None,
    proba: bool | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ModelOutputs:
    """Run ``model`` on ``rows`` in batches and record, per row, a valid output or a failure.

    A batch that raises or returns the wrong number of outputs is split in halves until the
    failing rows are isolated, so one bad row costs a few extra calls, not a call per row (once
    most rows judged so far failed, failing batches count as failed whole). An
    output is invalid when it is NaN/Inf (regression), missing or not among the model's classes
    (classification), or when its probabilities are not finite, outside [0, 1] or do not sum to
    1. ``proba=None`` asks for probabilities when the model has them.
    """
    _check_frame(rows, "rows")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    adapter = adapt_model(model)
    task = check_task(task) or infer_task(adapter)
    want_proba = task == "classification" and (adapter.has_proba if proba is None else proba)
    if want_proba and not adapter.has_proba:
        raise ConfigError(f"{adapter.name} has no probabilities (no predict_proba)")
    n = len(rows)
    collector = _Collector(n, adapter.classes)
    for start in range(0, n, batch_size):
        _evaluate_span(
            adapter, rows, start, min(n, start + batch_size), task, want_proba, collector
        )
    labels = collector.labels()
    return ModelOutputs(
        task=task,
        labels=labels,
        valid=collector.valid,
        index=rows.index,
        proba=collector.proba if want_proba else None,
        classes=adapter.classes,
        examples=tuple(
            f"{reason} (first at row {_plain(rows.index[pos])!r})"
            for reason, pos in collector.examples.items()
        ),
    )


def error_rate(
    model: object,
    rows: pd.DataFrame,
    *,
    task: Task | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ErrorRate:
    """Share of ``rows`` on which ``model`` raises or returns an invalid output.

    See :func:`predict_outputs` for what counts as invalid; when you also need the outputs, call
    that and use ``outputs.error_rate()`` instead of predicting twice.
    """
    return predict_outputs(model, rows, task=task, batch_size=batch_size).error_rate()


class _Collector:
    """Accumulates per-row outputs of a robust evaluation."""

    def __init__(self, n: int, classes: np.ndarray | None) -> None:
        import numpy as np

        self.n = n
        self.classes = classes
        self.valid = np.zeros(n, dtype=bool)
        self.proba: np.ndarray | None = None
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []
        self.examples: dict[str, int] = {}
        # Rows judged so far, and how many of them failed (see _evaluate_span).
        self.judged = 0
        self.failed = 0

    @property
    def failing_everywhere(self) -> bool:
        return self.judged >= _MIN_JUDGED and self.failed * 2 > self.judged

    def fail(self, positions: np.ndarray, reason: str) -> None:
        # One example per distinct reason (the first row showing it), a few reasons at most.
        if reason not in self.examples and len(self.examples) < _MAX_EXAMPLES and positions.size:
            self.examples[reason] = int(positions[0])

    def store(
        self, start: int, labels: np.ndarray, proba: np.ndarray | None, ok: np.ndarray
    ) -> None:
        import numpy as np

        positions = np.arange(start, start + labels.shape[0])
        self.valid[positions[ok]] = True
        self.parts.append((positions[ok], labels[ok]))
        if proba is not None:
            if self.proba is None:
                self.proba = np.full((self.n, proba.shape[1]), np.nan)
            if self.proba.shape[1] == proba.shape[1]:
                self.proba[positions[ok]] = proba[ok]
            else:  # a different number of columns than earlier batches: inconsistent output
                self.valid[positions] = False
                self.fail(
                    positions,
                    f"predict_proba returned {proba.shape[1]} columns, "
                    f"earlier batches {self.proba.shape[1]}",
                )

    def labels(self) -> np.ndarray:
        import numpy as np

        values = [v for _, v in self.parts if v.size]
        if not values:
            return np.full(self.n, np.nan)
        # One concatenate finds the dtype that holds every batch (e.g. '<U3' and '<U5').
        merged = np.concatenate(values)
        out = np.empty(self.n, dtype=merged.dtype)
        if out.dtype.kind == "f":
            out[:] = np.nan
        out[np.concatenate([p for p, v in self.parts if v.size])] = merged
        return out


def _evaluate_span(
    adapter: ModelAdapter,
    rows: pd.DataFrame,
    lo: int,
    hi: int,
    task: Task,
    want_proba: bool,
    out: _Collector,
) -> None:
    import numpy as np

    try:
        labels, proba = _call(adapter, rows.iloc[lo:hi], task, want_proba)
    except Exception as exc:
        if hi - lo == 1 or out.failing_everywhere:
            # Past the first rows, a model failing on most of them (broken, or a schema
            # mismatch) gets whole batches counted as failed instead of two calls per row.
            out.judged += hi - lo
            out.failed += hi - lo
            out.fail(np.arange(lo, hi), _describe(exc))
        else:
            mid = (lo + hi) // 2
            _evaluate_span(adapter, rows, lo, mid, task, want_proba, out)
            _evaluate_span(adapter, rows, mid, hi, task, want_proba, out)
        return
    ok, reasons = _row_validity(labels, proba, task, out.classes)
    out.judged += hi - lo
    out.failed += int((~ok).sum())
    for i in np.flatnonzero(~ok):
        out.fail(np.array([lo + i]), reasons[i])
    out.store(lo, labels, proba, ok)


def _call(
    adapter: ModelAdapter, chunk: pd.DataFrame, task: Task, want_proba: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    import numpy as np

    m = len(chunk)
    labels = np.asarray(adapter.predict(chunk))
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or labels.shape[0] != m:
        raise _BadOutput(f"predict returned shape {labels.shape} for {m} row(s)")
    if task == "regression" and labels.dtype.kind not in "biuf":
        try:
            labels = labels.astype(float)
        except (TypeError, ValueError):
            raise _BadOutput(f"predict returned non-numeric values ({labels.dtype})") from None
    proba: np.ndarray | None = None
    if want_proba:
        proba = np.asarray(adapter.predict_proba(chunk), dtype=float)
        expected_cols = None if adapter.classes is None else adapter.classes.shape[0]
        if (
            proba.ndim != 2
            or proba.shape[0] != m
            or (expected_cols is not None and proba.shape[1] != expected_cols)
        ):
            raise _BadOutput(
                f"predict_proba returned shape {proba.shape} for {m} row(s)"
                + ("" if expected_cols is None else f" and {expected_cols} classes")
            )
    return labels, proba


def _row_validity(
    labels: np.ndarray, proba: np.ndarray | None, task: Task, classes: np.ndarray | None
) -> tuple[np.ndarray, list[str]]:
    import numpy as np
    import pandas as pd

    m = labels.shape[0]
    ok = np.ones(m, dtype=bool)
    reasons = [""] * m
    if task == "regression":
        values = labels.astype(float)
        bad = ~np.isfinite(values)
        for i in np.flatnonzero(bad):
            reasons[i] = f"predict returned {float(values[i])!r}"
        ok &= ~bad
    else:
        missing = np.asarray(pd.isna(labels), dtype=bool)
        unknown = ~missing & (~np.isin(labels, classes) if classes is not None else False)
        for i in np.flatnonzero(missing):
            reasons[i] = f"predict returned missing label {_plain(labels[i])!r}"
        for i in np.flatnonzero(unknown):
            reasons[i] = (
                f"predict returned label {_plain(labels[i])!r}, not among the model's classes"
            )
        ok &= ~missing & ~unknown
    if proba is not None:
        finite: np.ndarray = np.isfinite(proba).all(axis=1)
        with np.errstate(invalid="ignore"):
            in_range = np.all((proba >= -_PROBA_TOL) & (proba <= 1 + _PROBA_TOL), axis=1)
            sums: np.ndarray = np.abs(proba.sum(axis=1) - 1) <= _PROBA_TOL
        good = finite & in_range & sums
        for i in np.flatnonzero(~good & ok):
            if not finite[i]:
                reasons[i] = "predict_proba returned NaN/Inf"
            elif not in_range[i]:
                reasons[i] = "predict_proba returned values outside [0, 1]"
            else:
                reasons[i] = f"predict_proba sums to {proba[i].sum():.6g}, not 1"
        ok &= good
    return ok, reasons


def _plain(value: Any) -> Any:
    import numpy as np

    return value.item() if isinstance(value, np.generic) else value


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, _BadOutput) else describe_exc(exc, limit=200)


# --------------------------------------------------------------------------------------------
# Metric catalogue
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSpec:
    """A metric of the catalogue: its task, direction and whether it needs probabilities."""

    name: str
    task: Task
    higher_is_better: bool
    needs_proba: bool
    description: str
    compute: Callable[[np.ndarray, ModelOutputs, np.ndarray], float]


def _accuracy(y: np.ndarray, out: ModelOutputs, mask: np.ndarray) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(y[mask], out.labels[mask]))


def _balanced_accuracy(y: np.ndarray, out: ModelOutputs, mask: np.ndarray) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y[mask], out.labels[mask]))


def _proba_and_classes(out: ModelOutputs, metric: str) -> tuple[np.ndarray, np.ndarray]:
    if out.proba is None or out.classes is None:
        raise MetricUnavailableError(
            f"{metric} needs class probabilities and classes, which the model does not offer"
        )
    return out.proba, out.classes


def _roc_auc(y: np.ndarray, out: ModelOutputs, mask: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    proba, classes = _proba_and_classes(out, "roc_auc")
    if classes.shape[0] == 2:
        return float(roc_auc_score(y[mask] == classes[1], proba[mask, 1]))
    return float(
        roc_auc_score(y[mask], proba[mask], multi_class="ovr", average="macro", labels=classes)
    )


def _log_loss(y: np.ndarray, out: ModelOutputs, mask: np.ndarray) -> float:
    from sklearn.metrics import log_loss

    proba, classes = _proba_and_classes(out, "log_loss")
    return float(log_loss(y[mask], proba[mask], labels=classes))


def _mae(y: np.ndarray, out: ModelOutputs, mask: np.ndarray) -> float:
    from sklearn.metrics import mean_absolute_error

    return float(mean_absolute_error(y[mask].astype(float), out.labels[mask].astype(float)))


def _rmse(y: np.ndarray, out: ModelOutputs, mask: np.ndarray) -> float:
    from sklearn.metrics import root_mean_squared_error

    return float(root_mean_squared_error(y[mask].astype(float), out.labels[mask].astype(float)))


def _r2(y: np.ndarray, out: ModelOutputs, mask: np.ndarray) -> float:
    from sklearn.metrics import r2_score

    return float(r2_score(y[mask].astype(float), out.labels[mask].astype(float)))


#: Every metric the baseline checks know, by name.
METRICS: Mapping[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("accuracy", "classification", True, False, "accuracy", _accuracy),
        MetricSpec(
            "balanced_accuracy",
            "classification",
            True,
            False,
            "balanced accuracy",
            _balanced_accuracy,
        ),
        MetricSpec(
            "roc_auc", "classification", True, True, "ROC AUC (macro one-vs-rest)", _roc_auc
        ),
        MetricSpec("log_loss", "classification", False, True, "log loss", _log_loss),
        MetricSpec("mae", "regression", False, False, "mean absolute error", _mae),
        MetricSpec("rmse", "regression", False, False, "root mean squared error", _rmse),
        MetricSpec("r2", "regression", True, False, "R2", _r2),
    )
}

#: Metrics checked when none are configured.
DEFAULT_METRICS: Mapping[Task, tuple[str, ...]] = {
    "classification": ("accuracy", "balanced_accuracy", "roc_auc", "log_loss"),
    "regression": ("mae", "rmse", "r2"),
}


def default_metrics(task: Task, *, has_proba: bool = True) -> tuple[str, ...]:
    """The default metric names for ``task``; probability metrics only if the models have them."""
    return tuple(n for n in DEFAULT_METRICS[task] if has_proba or not METRICS[n].needs_proba)


def metric_spec(name: str) -> MetricSpec:
    """The catalogue entry of ``name``; a :class:`ConfigError` listing the known names otherwise."""
    try:
        return METRICS[name]
    except KeyError:
        raise ConfigError(
            f"unknown metric {name!r}: expected one of {', '.join(METRICS)}"
        ) from None


def compute_metric(name: str, y_true: ArrayLike, outputs: ModelOutputs | ArrayLike) -> float:
    """The metric ``name`` of one model's outputs on the rows where they are valid."""
    spec = metric_spec(name)
    out = _as_outputs(outputs, spec.task, "outputs")
    y = _as_labels(y_true, out.n, "y_true")
    return _compute(spec, y, out, out.valid)


def _compute(spec: MetricSpec, y: np.ndarray, out: ModelOutputs, mask: np.ndarray) -> float:
    if spec.needs_proba:
        _proba_and_classes(out, spec.name)
    if not mask.any():
        raise MetricUnavailableError(f"{spec.name}: no row has a valid output")
    # Undefined-metric and "y_pred has classes not in y_true" warnings are about the data; the
    # value (or the error below) says all there is to say.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = spec.compute(y, out, mask)
    except MetricUnavailableError:
        raise
    except ValueError as exc:
        raise MetricUnavailableError(f"{spec.name} cannot be computed here: {exc}") from None
    if not math.isfinite(value):
        raise MetricUnavailableError(
            f"{spec.name} is undefined on these {int(mask.sum())} rows (e.g. constant labels)"
        )
    return value


# --------------------------------------------------------------------------------------------
# Comparisons
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricComparison:
    """One metric of the candidate judged against the baseline's, with its pass/fail message."""

    metric: str
    candidate: float
    baseline: float
    #: ``candidate / baseline`` when the baseline is positive, else None (see compare_metric).
    ratio: float | None
    threshold: float
    n: int
    passed: bool
    higher_is_better: bool
    min_relative: float
    message: str


def compare_metric(
    name: str,
    y_true: ArrayLike,
    candidate: ModelOutputs | ArrayLike,
    baseline: ModelOutputs | ArrayLike,
    *,
    min_relative: float = DEFAULT_MIN_RELATIVE,
    atol: float = DEFAULT_ATOL,
) -> MetricComparison:
    """Judge metric ``name`` of the candidate against the baseline's on the same rows.

    The threshold is relative to the baseline ``b`` and sign-safe, so no division by ``b`` ever
    happens: for higher-is-better metrics the candidate must reach
    ``b - (1 - min_relative) * |b|`` (``0.95 * b`` for a positive baseline; a baseline of 0 is
    met by any candidate >= 0; a negative R2 of -0.4 by any candidate >= -0.42), for
    lower-is-better metrics it must not exceed ``b + (1 / min_relative - 1) * |b|``
    (``b / 0.95``; a perfect baseline of 0 leaves only ``atol`` of floating-point slack). Rows
    where either model has no valid output are left out (the error-rate check counts them).
    ``candidate``/``baseline`` are :class:`ModelOutputs`, or plain label/value arrays for the
    metrics that need no probabilities. A metric past the limit fails only when it is past it
    confidently (``METRIC_CONFIDENCE``, a paired bootstrap over the rows; for the means, a
    normal approximation past 10,000 rows; for a binary ROC AUC, DeLong's variance; a
    multi-class ROC AUC keeps the plain rule).
    """
    spec = metric_spec(name)
    if not min_relative > 0:
        raise ConfigError(f"min_relative must be positive, got {min_relative}")
    cand = _as_outputs(candidate, spec.task, "candidate")
    base = _as_outputs(baseline, spec.task, "baseline")
    if cand.n != base.n:
        raise DataError(
            f"candidate has {cand.n} outputs and baseline {base.n}: compare them on the same rows"
        )
    y = _as_labels(y_true, cand.n, "y_true")
    mask = cand.valid & base.valid
    c = _compute(spec, y, cand, mask)
    b = _compute(spec, y, base, mask)
    n = int(mask.sum())
    m = min_relative
    floor_text = f"{m * 100:g}%"
    threshold = float(_limit(b, spec.higher_is_better, m))
    passed = c >= threshold - atol if spec.higher_is_better else c <= threshold + atol
    # Past the limit on these rows, but maybe by the luck of a few of them: the metric gets a
    # paired bootstrap over the rows (DeLong for ROC AUC), and fails only when the candidate is
    # past the limit with 95% confidence. Log loss is where this matters: a fully grown random
    # forest gives the true class a probability of 0 on a handful of rows, each costing about 36,
    # so two retrains differing only in their seed were 0.738 and 0.780 on the same 1600 rows
    # (105.7%, above the 0.776 limit) with equal accuracy and ROC AUC.
    noise = None if passed else _noise_interval(spec, y, cand, base, mask, m)
    passed = passed or (noise is not None and noise[0] <= 0)
    ratio = c / b if b > 0 else None
    name_c, name_b, name_t = format_metric(c), format_metric(b), format_metric(threshold)
    if ratio is not None and spec.higher_is_better:
        verdict = "meets" if passed else "below"
        first = (
            f"{name} {name_c} is {ratio:.1%} of baseline {name_b}, "
            f"{verdict} the {floor_text} floor {name_t}"
        )
    elif ratio is not None:
        verdict = "within" if passed else "above"
        first = (
            f"{name} {name_c} is {ratio:.1%} of baseline {name_b}, {verdict} the limit {name_t} "
            f"(baseline / {m:g})"
        )
    elif b == 0 and spec.higher_is_better:
        verdict = "meets" if passed else "below"
        first = f"{name} {name_c} {verdict} the floor 0 set by a baseline of 0"
    elif b == 0:
        verdict = "within" if passed else "above"
        first = f"{name} {name_c} is {verdict} the tolerance {atol:g} of a perfect baseline of 0"
    else:
        allowed = f"{(1 - m) * 100:g}%" if spec.higher_is_better else f"{(1 / m - 1) * 100:.3g}%"
        verdict = (
            ("meets" if passed else "below")
            if spec.higher_is_better
            else ("within" if passed else "above")
        )
        kind = "floor" if spec.higher_is_better else "limit"
        first = (
            f"{name} {name_c} {verdict} the {kind} {name_t} (baseline {name_b} "
            f"{'minus' if spec.higher_is_better else 'plus'} {allowed} of its magnitude)"
        )
    lines = [f"{first} (n={n})"]
    if noise is not None:
        low, by = format_metric(abs(noise[0])), format_metric(noise[1])
        bound = f"{'inside' if noise[0] <= 0 else 'past'} it by {low}"
        if passed:
            lines[0] = (
                f"{name} {name_c} is past the limit {name_t} by {by} on these rows, but not "
                f"confidently: at {METRIC_CONFIDENCE:.0%} confidence (paired over the rows) it "
                f"may be {bound}, within the noise of a few rows (n={n})"
            )
        else:
            lines.append(f"past the limit by {by}, at {METRIC_CONFIDENCE:.0%} confidence {bound}")
    direction = "higher" if spec.higher_is_better else "lower"
    figures = f"candidate {format_metric(c)}, baseline {format_metric(b)}"
    lines.append(f"{figures}; {direction} is better")
    if n < cand.n:
        lines.append(
            f"computed on {n} of {cand.n} rows: {cand.n - n} row(s) where a model had no valid "
            "output are left out (see the error-rate check)"
        )
    return MetricComparison(
        metric=name,
        candidate=c,
        baseline=b,
        ratio=ratio,
        threshold=threshold,
        n=n,
        passed=bool(passed),
        higher_is_better=spec.higher_is_better,
        min_relative=m,
        message="\n".join(lines),
    )


def _limit(baseline: Any, higher_is_better: bool, min_relative: float) -> Any:
    """The limit a candidate's metric must meet, relative to the baseline's and sign-safe
    (floats or arrays of them): see ``compare_metric``."""
    import numpy as np

    m = min_relative
    if higher_is_better:
        return baseline - (1 - m) * np.abs(baseline)
    return baseline + (1 / m - 1) * np.abs(baseline)


def _mean(terms: np.ndarray, axis: int = -1) -> np.ndarray:
    import numpy as np

    return np.asarray(terms.mean(axis=axis))


def _root_mean(terms: np.ndarray, axis: int = -1) -> np.ndarray:
    import numpy as np

    return np.asarray(np.sqrt(terms.mean(axis=axis)))


def _balanced(correct: np.ndarray, *members: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean recall over the classes present in the labels (as ``balanced_accuracy_score``);
    a class a resample happens to leave out is left out of that resample's mean."""
    import numpy as np

    with np.errstate(invalid="ignore", divide="ignore"):
        recalls = np.stack([(correct * k).sum(axis=axis) / k.sum(axis=axis) for k in members])
        return np.asarray(np.nanmean(recalls, axis=0))


def _r2_of(squared: np.ndarray, labels: np.ndarray, axis: int = -1) -> np.ndarray:
    import numpy as np

    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(1 - squared.mean(axis=axis) / labels.var(axis=axis))


#: Most classes for which balanced accuracy is resampled (one row array per class).
_MAX_RESAMPLED_CLASSES = 20


def _row_terms(
    spec: MetricSpec, y: np.ndarray, outputs: Sequence[ModelOutputs], mask: np.ndarray
) -> (
    tuple[Sequence[tuple[np.ndarray, ...]], tuple[np.ndarray, ...], Callable[..., np.ndarray]]
    | None
):
    """The metric on the masked rows as a function of row arrays that a resample of the rows
    keeps aligned: each model's own arrays, the arrays of the labels alone (the same for every
    model), and the function of both that gives the metric. None for ROC AUC (a rank
    statistic: resampling it would cost a sort per resample)."""
    import numpy as np

    labels = y[mask]
    got = [out.labels[mask] for out in outputs]
    if spec.name == "accuracy":
        return [((labels == g).astype(float),) for g in got], (), _mean
    if spec.name == "balanced_accuracy":
        # Object labels (strings, mixed) are told apart by their text, as np.unique needs.
        named = labels.astype(str) if labels.dtype == object else labels
        classes = np.unique(named)
        if classes.size > _MAX_RESAMPLED_CLASSES:
            return None
        members = tuple((named == k).astype(float) for k in classes)
        return [((labels == g).astype(float),) for g in got], members, _balanced
    if spec.name in ("mae", "rmse", "r2"):
        errors = [labels.astype(float) - g.astype(float) for g in got]
        if spec.name == "mae":
            return [(np.abs(e),) for e in errors], (), _mean
        squared = [(e * e,) for e in errors]
        if spec.name == "rmse":
            return squared, (), _root_mean
        return squared, (labels.astype(float),), _r2_of
    if spec.name == "log_loss":
        losses = [_row_log_loss(labels, out, mask) for out in outputs]
        if any(loss is None for loss in losses):
            return None
        return [(loss,) for loss in losses if loss is not None], (), _mean
    return None


def _row_log_loss(labels: np.ndarray, out: ModelOutputs, mask: np.ndarray) -> np.ndarray | None:
    """Each row's log loss, clipped and normalised as ``sklearn.metrics.log_loss`` does; None
    without probabilities or for a label outside ``classes`` (sklearn's figure says why)."""
    import numpy as np

    if out.proba is None or out.classes is None:
        return None
    column = {label: i for i, label in enumerate(out.classes.tolist())}
    try:
        idx = np.fromiter((column[v] for v in labels.tolist()), dtype=np.intp)
    except KeyError:
        return None
    proba = np.asarray(out.proba[mask], dtype=float)
    proba = proba / proba.sum(axis=1, keepdims=True)
    eps = np.finfo(float).eps  # sklearn's clipping of log_loss
    return np.asarray(-np.log(np.clip(proba[np.arange(idx.size), idx], eps, 1 - eps)))


def _noise_interval(
    spec: MetricSpec,
    y: np.ndarray,
    cand: ModelOutputs,
    base: ModelOutputs,
    mask: np.ndarray,
    min_relative: float,
) -> tuple[float, float] | None:
    """How far past its limit the candidate is, as a one-sided interval (low, point) from a
    paired bootstrap over the rows (``scipy.stats.bootstrap``: both models' terms of a row and
    its label stay together; for a binary ROC AUC, ``_auc_interval``), or None for a
    multi-class ROC AUC or too few rows."""
    import inspect

    import numpy as np
    from scipy import stats

    n = int(mask.sum())
    if spec.name == "roc_auc":
        return _auc_interval(y, cand, base, mask, min_relative)
    terms = _row_terms(spec, y, (cand, base), mask)
    if terms is None or n < 20:
        return None
    (c_own, b_own), shared, value = terms
    higher, m = spec.higher_is_better, min_relative
    k = len(c_own)

    def past(*arrays: np.ndarray, axis: int = -1) -> np.ndarray:
        rest = arrays[2 * k :]
        c = value(*arrays[:k], *rest, axis=axis)
        limit = _limit(value(*arrays[k : 2 * k], *rest, axis=axis), higher, m)
        return np.asarray(limit - c if higher else c - limit)

    data = (*c_own, *b_own, *shared)
    point = float(past(*data))
    if n > _BOOTSTRAP_MAX_ROWS and value in (_mean, _root_mean):
        # Resampling a million rows 2000 times would take minutes and gigabytes; with this
        # many rows the normal approximation of the statistic (its influence function: the
        # terms themselves for a mean, their linearisation for a root mean) is as good.
        c_terms, b_terms = c_own[0], b_own[0]
        if value is _root_mean:
            c_mean, b_mean = max(float(c_terms.mean()), 1e-300), max(float(b_terms.mean()), 1e-300)
            c_inf, b_inf = c_terms / (2 * math.sqrt(c_mean)), b_terms / (2 * math.sqrt(b_mean))
        else:
            c_inf, b_inf = c_terms, b_terms
        scale = m if higher else 1 / m
        influence = scale * b_inf - c_inf if higher else c_inf - scale * b_inf
        spread = float(influence.std(ddof=1)) / math.sqrt(n)
        return point - float(stats.norm.ppf(METRIC_CONFIDENCE)) * spread, point
    # Past that many rows, balanced accuracy and R2 resample fewer times (200 at the least).
    resamples = max(200, min(_BOOTSTRAP_RESAMPLES, 20 * _BOOTSTRAP_CELLS // (n * len(data))))
    # scipy 1.15 named its seed ``rng``; the lowest supported scipy knows ``random_state``.
    params = inspect.signature(stats.bootstrap).parameters
    seed = {"rng" if "rng" in params else "random_state": np.random.default_rng(0)}
    result = stats.bootstrap(
        data,
        past,
        paired=True,
        vectorized=True,
        n_resamples=resamples,
        batch=max(1, _BOOTSTRAP_CELLS // (n * len(data))),  # resamples at a time: bounded memory
        confidence_level=METRIC_CONFIDENCE,
        alternative="greater",
        method="percentile",
        **seed,
    )
    low = float(result.confidence_interval.low)
    return (low if math.isfinite(low) else -math.inf), point


def _auc_interval(
    y: np.ndarray, cand: ModelOutputs, base: ModelOutputs, mask: np.ndarray, min_relative: float
) -> tuple[float, float] | None:
    """How far the candidate's binary ROC AUC is below its floor (``min_relative`` times the
    baseline's), as a one-sided interval (low, point) from DeLong's variance of two correlated
    AUCs on the same rows; None for more than two classes or fewer than two rows of a class.

    Written by hand: neither scipy nor scikit-learn offers DeLong's method, and a bootstrap
    would sort every resample. Each positive row's share of negatives it outscores (ties
    half) and each negative's share of positives that outscore it are the AUC's influence
    terms (Sun and Xu's midrank form); their paired variances give the difference's.
    """
    import numpy as np
    from scipy import stats

    if cand.proba is None or base.proba is None or cand.classes is None or base.classes is None:
        return None
    if len(cand.classes) != 2 or len(base.classes) != 2 or cand.classes[1] != base.classes[1]:
        return None
    positive = np.asarray(y[mask] == cand.classes[1], dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos < 2 or n_neg < 2:
        return None
    per_positive, per_negative = [], []
    for proba in (cand.proba, base.proba):
        score = np.asarray(proba[mask, 1], dtype=np.float64)
        ranks = stats.rankdata(score)
        per_positive.append((ranks[positive] - stats.rankdata(score[positive])) / n_neg)
        per_negative.append(1 - (ranks[~positive] - stats.rankdata(score[~positive])) / n_pos)
    # The floor of a baseline AUC b >= 0 is min_relative * b (``_limit``): the difference is
    # linear in the two AUCs, and so are its influence terms.
    m = min_relative
    point = float(_limit(per_positive[1].mean(), True, m) - per_positive[0].mean())
    over_positives = m * per_positive[1] - per_positive[0]
    over_negatives = m * per_negative[1] - per_negative[0]
    variance = over_positives.var(ddof=1) / n_pos + over_negatives.var(ddof=1) / n_neg
    spread = math.sqrt(max(float(variance), 0.0))
    return point - float(stats.norm.ppf(METRIC_CONFIDENCE)) * spread, point


@dataclass(frozen=True)
class ErrorRateComparison:
    """The candidate's error rate judged against the baseline's."""

    candidate: ErrorRate
    baseline: ErrorRate
    limit: float
    max_ratio: float
    abs_floor: float
    passed: bool
    message: str


def compare_error_rate(
    candidate: ErrorRate,
    baseline: ErrorRate,
    *,
    max_ratio: float = DEFAULT_MAX_ERROR_RATIO,
    abs_floor: float = DEFAULT_ERROR_FLOOR,
) -> ErrorRateComparison:
    """Pass when the candidate's error rate is at most ``max(max_ratio * baseline, abs_floor)``.

    The absolute floor keeps a baseline of 0 from turning one failing row into a failure by
    division: 0 vs 0.001 passes at the default floor, 0 vs 0.01 does not.
    """
    if max_ratio < 1:
        raise ConfigError(f"max_ratio must be at least 1, got {max_ratio}")
    if not 0 <= abs_floor < 1:
        raise ConfigError(f"abs_floor must be in [0, 1), got {abs_floor}")
    limit = max(max_ratio * baseline.rate, abs_floor)
    passed = candidate.rate <= limit + DEFAULT_ATOL
    verdict = "within" if passed else "exceeds"
    lines = [
        f"error rate {candidate.rate:.2%} ({candidate.errors} of {candidate.n} rows) {verdict} "
        f"the limit {limit:.2%} ({max_ratio:g}x baseline {baseline.rate:.2%}, floor "
        f"{abs_floor:.2%}) (n={candidate.n})",
        f"baseline: {baseline.errors} of {baseline.n} rows failed",
    ]
    if candidate.errors:
        lines.append(
            "candidate failing rows: " + _list_rows(candidate.failing_rows, candidate.errors)
        )
        lines.extend(f"  {e}" for e in candidate.examples)
    return ErrorRateComparison(
        candidate=candidate,
        baseline=baseline,
        limit=limit,
        max_ratio=max_ratio,
        abs_floor=abs_floor,
        passed=bool(passed),
        message="\n".join(lines),
    )


@dataclass(frozen=True)
class Shift:
    """How differently the candidate answers than the baseline on the same rows."""

    psi: float
    #: Share of rows whose predicted label changes (None for regression).
    label_flips: float | None
    max_psi: float
    max_label_flips: float
    n: int
    passed: bool
    message: str
    #: For per-class probabilities, the class whose column shifted most.
    worst_class: Hashable | None = None
    #: Whether the limits decide ``passed``: :func:`compare_models` shows the shift without
    #: judging it when labelled rows let the metrics judge quality (see :meth:`shown`).
    judged: bool = True

    @property
    def within_limits(self) -> bool:
        """Whether the PSI and the label flips are within ``max_psi`` and ``max_label_flips``."""
        return self.psi <= self.max_psi and (
            self.label_flips is None or self.label_flips <= self.max_label_flips
        )

    def shown(self, reason: str) -> Shift:
        """This shift measured and shown but not judged (it passes), saying why."""
        first = self.message.splitlines()[0]
        return replace(self, passed=True, judged=False, message=f"{first}; not judged: {reason}")

    def limits_apply(self, reason: str) -> Shift:
        """This shift judged on its limits, saying why they apply."""
        return replace(self, message=f"{self.message}\njudged on its limits: {reason}")


def prediction_shift(
    cand_scores: ArrayLike | None,
    base_scores: ArrayLike | None,
    labels_cand: ArrayLike | None = None,
    labels_base: ArrayLike | None = None,
    *,
    max_psi: float = DEFAULT_MAX_PSI,
    max_label_flips: float = DEFAULT_MAX_LABEL_FLIPS,
    bins: int = 10,
    classes: Sequence[Hashable] | None = None,
) -> Shift:
    """PSI between the two models' scores, and the share of rows whose predicted label changes.

    Scores are binned on the baseline's quantiles (``deploy_gate.stats``); a 2-D score matrix
    (per-class probabilities) is judged on its worst column. Without scores, the PSI is taken
    over the predicted labels as categories. Fails when the PSI exceeds ``max_psi`` (0.2, the
    usual "significant shift" mark) or the label flip share exceeds ``max_label_flips`` (0.1).
    """
    import numpy as np

    if cand_scores is None or base_scores is None:
        if labels_cand is None or labels_base is None:
            raise DataError("prediction_shift needs scores or labels of both models")
        lc, lb = np.asarray(labels_cand), np.asarray(labels_base)
        _same_length(lc, lb, "labels_cand", "labels_base")
        cats = np.unique(np.concatenate([lb, lc]).astype(str))
        value = psi(_category_shares(lb, cats), _category_shares(lc, cats))
        n = lb.shape[0]
        worst: Hashable | None = None
    else:
        sc = np.asarray(cand_scores, dtype=float)
        sb = np.asarray(base_scores, dtype=float)
        if sc.shape != sb.shape or sc.ndim not in (1, 2):
            raise DataError(
                f"cand_scores {sc.shape} and base_scores {sb.shape} must have the same 1-D or "
                "2-D shape (one score or one probability row per row)"
            )
        n = sb.shape[0]
        if sb.ndim == 1:
            value, worst = _score_psi(sb, sc, bins), None
        else:
            per_class = [_score_psi(sb[:, j], sc[:, j], bins) for j in range(sb.shape[1])]
            j = int(np.argmax(per_class))
            value = per_class[j]
            worst = classes[j] if classes is not None else j
    flips: float | None = None
    if labels_cand is not None and labels_base is not None:
        lc, lb = np.asarray(labels_cand), np.asarray(labels_base)
        _same_length(lc, lb, "labels_cand", "labels_base")
        if lb.shape[0] != n:
            raise DataError(f"labels cover {lb.shape[0]} rows but scores {n}")
        flips = float(np.mean(lc != lb)) if n else 0.0
    psi_ok = value <= max_psi
    flips_ok = flips is None or flips <= max_label_flips
    on = f" (class {worst!r})" if worst is not None else ""
    psi_text = f"PSI {value:.3f}{on} {'within' if psi_ok else 'exceeds'} {max_psi:g}"
    flip_text = (
        ""
        if flips is None
        else f"labels changed on {flips:.1%} of rows ({'within' if flips_ok else 'exceeds'} "
        f"{max_label_flips:.0%})"
    )
    # The failing figure first, so that the -ra line shows it.
    parts = [flip_text, psi_text] if psi_ok and not flips_ok else [psi_text, flip_text]
    first = "prediction shift: " + ", ".join(p for p in parts if p) + f" (n={n})"
    return Shift(
        psi=value,
        label_flips=flips,
        max_psi=max_psi,
        max_label_flips=max_label_flips,
        n=n,
        passed=bool(psi_ok and flips_ok),
        message=first,
        worst_class=worst,
    )


def output_shift(
    candidate: ModelOutputs,
    baseline: ModelOutputs,
    *,
    max_psi: float = DEFAULT_MAX_PSI,
    max_label_flips: float = DEFAULT_MAX_LABEL_FLIPS,
    bins: int = 10,
) -> Shift:
    """:func:`prediction_shift` on two models' outputs, picking the right scores for the task.

    Regression compares the values; a binary classifier the positive-class probability; a
    multiclass classifier each class's probability (worst class reported); a classifier
    without probabilities the predicted-label distribution. Label flips are counted for
    classifiers. Only rows where both outputs are valid count.
    """
    if candidate.n != baseline.n:
        raise DataError(
            f"candidate has {candidate.n} outputs and baseline {baseline.n}: "
            "compare them on the same rows"
        )
    mask = candidate.valid & baseline.valid
    if candidate.task == "regression":
        return prediction_shift(
            candidate.labels[mask].astype(float),
            baseline.labels[mask].astype(float),
            max_psi=max_psi,
            max_label_flips=max_label_flips,
            bins=bins,
        )
    lc, lb = candidate.labels[mask], baseline.labels[mask]
    pc, pb, classes = candidate.proba, baseline.proba, candidate.classes
    same_classes = (
        classes is not None
        and baseline.classes is not None
        and list(classes) == list(baseline.classes)
    )
    if pc is None or pb is None or classes is None or not same_classes:
        return prediction_shift(
            None, None, lc, lb, max_psi=max_psi, max_label_flips=max_label_flips, bins=bins
        )
    pc, pb = pc[mask], pb[mask]
    if pc.shape[1] == 2:
        pc, pb = pc[:, 1], pb[:, 1]
    return prediction_shift(
        pc,
        pb,
        lc,
        lb,
        max_psi=max_psi,
        max_label_flips=max_label_flips,
        bins=bins,
        classes=classes.tolist(),
    )


# --------------------------------------------------------------------------------------------
# Everything at once, for the gate
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BaselineComparison:
    """All baseline checks of one candidate: metrics, skipped metrics, error rate, shift."""

    task: Task
    metrics: tuple[MetricComparison, ...]
    #: ``(metric, reason)`` for metrics that cannot be computed here (no labels, no proba, ...).
    skipped: tuple[tuple[str, str], ...]
    error_rate: ErrorRateComparison
    shift: Shift | None
    candidate_outputs: ModelOutputs
    baseline_outputs: ModelOutputs
    #: Rows without a label, left out of the metrics (the error rate and the shift use them).
    unlabelled: int = 0


def compare_models(
    candidate: object,
    baseline: object,
    rows: pd.DataFrame,
    y_true: ArrayLike | None = None,
    *,
    metrics: Sequence[str] | None = None,
    task: Task | None = None,
    min_relative: float = DEFAULT_MIN_RELATIVE,
    max_error_ratio: float = DEFAULT_MAX_ERROR_RATIO,
    error_floor: float = DEFAULT_ERROR_FLOOR,
    max_psi: float = DEFAULT_MAX_PSI,
    max_label_flips: float = DEFAULT_MAX_LABEL_FLIPS,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> BaselineComparison:
    """Predict once with each model and run every baseline comparison on ``rows``.

    Metrics are computed on the rows that have a label (missing labels are left out and
    counted in ``unlabelled``); without ``y_true`` every metric is skipped with the reason,
    while the error rate and the prediction shift still run on every row. ``metrics=None``
    takes the task's defaults, leaving out probability metrics when either model has no
    probabilities.

    Two models of different families score on different scales, so a shift between them is
    expected: when at least one metric judged quality on labelled rows, the shift is measured
    and shown but passes (``shift.judged`` is False); without labels it is the only evidence
    of change, and ``max_psi`` and ``max_label_flips`` decide.
    """
    import numpy as np
    import pandas as pd

    task = check_task(task)
    cand_a, base_a = adapt_model(candidate), adapt_model(baseline)
    labelled: np.ndarray | None = None
    y: np.ndarray | None = None
    if y_true is not None:
        y = np.asarray(y_true.to_numpy() if isinstance(y_true, pd.Series) else y_true)
        if y.ndim != 1 or y.shape[0] != len(rows):
            raise DataError(f"y_true has shape {y.shape} for {len(rows)} rows: one label per row")
        labelled = ~np.asarray(pd.isna(y), dtype=bool)
    if task is None:
        known = None if y is None or labelled is None else y[labelled]
        try:
            task = infer_task(base_a, known)
        except ConfigError:
            task = infer_task(cand_a, known)
    cand = predict_outputs(cand_a, rows, task=task, batch_size=batch_size)
    base = predict_outputs(base_a, rows, task=task, batch_size=batch_size)
    names = (
        tuple(metrics)
        if metrics is not None
        else default_metrics(task, has_proba=cand.proba is not None and base.proba is not None)
    )
    unlabelled = 0 if labelled is None else int((~labelled).sum())
    results: list[MetricComparison] = []
    skipped: list[tuple[str, str]] = []
    for name in names:
        spec = metric_spec(name)
        if spec.task != task:
            raise ConfigError(f"metric {name!r} is for {spec.task}, the models do {task}")
        if y is None or labelled is None:
            skipped.append((name, f"{name} needs labels: no target column in the data"))
            continue
        if not labelled.any():
            skipped.append((name, f"{name} needs labels: none of the {len(rows)} rows has one"))
            continue
        try:
            result = compare_metric(
                name,
                y[labelled],
                cand.subset(labelled),
                base.subset(labelled),
                min_relative=min_relative,
            )
        except MetricUnavailableError as exc:
            skipped.append((name, str(exc)))
            continue
        if unlabelled:
            result = replace(
                result,
                message=f"{result.message}\n{unlabelled} row(s) without a label left out "
                f"(of {len(rows)})",
            )
        results.append(result)
    errors = compare_error_rate(
        cand.error_rate(), base.error_rate(), max_ratio=max_error_ratio, abs_floor=error_floor
    )
    shift = (
        output_shift(cand, base, max_psi=max_psi, max_label_flips=max_label_flips)
        if (cand.valid & base.valid).any()
        else None
    )
    if shift is not None:
        if results:
            n = max(m.n for m in results)
            shift = shift.shown(
                f"{len(results)} metric{'s' if len(results) > 1 else ''} judged quality on "
                f"{n} labelled rows; a shift between models is expected"
            )
        elif y is None:
            shift = shift.limits_apply("there are no labels to judge quality by metrics")
        else:
            shift = shift.limits_apply("no metric could judge quality on the labelled rows")
    return BaselineComparison(
        task=task,
        metrics=tuple(results),
        skipped=tuple(skipped),
        error_rate=errors,
        shift=shift,
        candidate_outputs=cand,
        baseline_outputs=base,
        unlabelled=unlabelled,
    )


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _check_frame(rows: object, name: str) -> None:
    import pandas as pd

    if not isinstance(rows, pd.DataFrame):
        raise DataError(f"{name} must be a pandas DataFrame, got {type(rows).__name__}")


def _as_labels(y_true: ArrayLike, n: int, name: str) -> np.ndarray:
    import numpy as np
    import pandas as pd

    y = np.asarray(y_true.to_numpy() if isinstance(y_true, pd.Series) else y_true)
    if y.ndim != 1:
        raise DataError(f"{name} must be one label per row, got shape {y.shape}")
    if y.shape[0] != n:
        raise DataError(f"{name} has {y.shape[0]} labels for {n} rows")
    missing = np.asarray(pd.isna(y), dtype=bool)
    if missing.any():
        first = np.flatnonzero(missing)[:5].tolist()
        raise DataError(
            f"{name} has {int(missing.sum())} missing label(s) (positions {first}...): "
            "drop those rows first"
        )
    return y


def _as_outputs(value: ModelOutputs | ArrayLike, task: Task, name: str) -> ModelOutputs:
    import numpy as np
    import pandas as pd

    if isinstance(value, ModelOutputs):
        if value.task != task:
            raise ConfigError(f"{name} outputs are for {value.task}, the metric for {task}")
        return value
    labels = np.asarray(value)
    if labels.ndim != 1:
        raise DataError(
            f"{name} must be ModelOutputs or a 1-D array of labels/values, got shape {labels.shape}"
        )
    if task == "regression":
        labels = labels.astype(float)
        valid = np.isfinite(labels)
    else:
        valid = ~np.asarray(pd.isna(labels), dtype=bool)
    return ModelOutputs(task=task, labels=labels, valid=valid, index=pd.RangeIndex(labels.shape[0]))


def _same_length(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise DataError(f"{name_a} has {a.shape[0]} rows and {name_b} {b.shape[0]}")


def _category_shares(labels: np.ndarray, categories: np.ndarray) -> np.ndarray:
    import numpy as np

    codes = np.searchsorted(categories, labels.astype(str))
    counts = np.bincount(codes, minlength=categories.shape[0]).astype(float)
    total = counts.sum()
    return counts / total if total else counts


def _score_psi(base: np.ndarray, cand: np.ndarray, bins: int) -> float:
    edges = quantile_edges(base, bins)
    return psi(binned_shares(base, edges), binned_shares(cand, edges))


def format_metric(x: float) -> str:
    """A metric's figure in a message: three decimals in the usual range, else four digits."""
    if x == 0 or 0.001 <= abs(x) < 1000:
        return f"{x:.3f}"
    return f"{x:.4g}"


def _list_rows(rows: Sequence[Hashable], total: int, limit: int = 10) -> str:
    shown = ", ".join(repr(r) if isinstance(r, str) else str(r) for r in rows[:limit])
    return shown + (f" (+{total - limit} more)" if total > limit else "")
