"""Output validity on every sample row and on edge rows."""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

import pytest

from deploy_gate import validation as v
from deploy_gate.checks import Check, check, declared
from deploy_gate.checks.common import (
    fmt,
    has_proba,
    is_clear_error,
    predict,
    require_real_rows,
    show,
)
from deploy_gate.errors import CheckFailure, describe_exc
from deploy_gate.validation import plain

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from deploy_gate.artifact import LoadedArtifact, ModelProfile
    from deploy_gate.data import GateData
    from deploy_gate.deployment import Deployment, ProbabilisticDeployment
    from deploy_gate.options import Settings


def _classifier(profile: ModelProfile | None, settings: Settings) -> bool:
    return profile is not None and profile.task == "classifier"


def _with_proba(profile: ModelProfile | None, settings: Settings) -> bool:
    return _classifier(profile, settings) and profile is not None and profile.has_proba


def _with_classes(profile: ModelProfile | None, settings: Settings) -> bool:
    return _classifier(profile, settings) and profile is not None and profile.classes is not None


def _with_classes_and_proba(profile: ModelProfile | None, settings: Settings) -> bool:
    return _with_classes(profile, settings) and _with_proba(profile, settings)


def _regressor(profile: ModelProfile | None, settings: Settings) -> bool:
    return profile is not None and profile.task == "regressor"


@dataclass
class EdgeOutcome:
    label: str
    prediction: object = None
    proba: object = None
    error: BaseException | None = None
    #: The edited value lies outside the feature's observed range (a zero where the data
    #: never reaches 0): an extrapolation, which a derived output range says nothing about.
    extrapolated: bool = False


@dataclass
class Observation:
    """The deployment's outputs on every sample row and every edge row, computed once."""

    n_data_rows: int
    labels: Sequence[str]
    predictions: np.ndarray
    proba: np.ndarray | None
    edges: list[EdgeOutcome]
    proba_error: str | None = None

    @property
    def rejected(self) -> list[EdgeOutcome]:
        return [e for e in self.edges if e.error is not None and is_clear_error(e.error)]

    @property
    def crashed(self) -> list[EdgeOutcome]:
        return [e for e in self.edges if e.error is not None and not is_clear_error(e.error)]


class RowLabels(Sequence[str]):
    """``row 0`` ... ``row N-1``, then the edge rows' labels: a message names a few rows, so
    the names are made when asked for, not one string per sample row up front."""

    def __init__(self, n_rows: int, edges: list[str]) -> None:
        self.n_rows = n_rows
        self.edges = edges

    def __len__(self) -> int:
        return self.n_rows + len(self.edges)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return f"row {index}" if index < self.n_rows else self.edges[index - self.n_rows]


_observations: weakref.WeakKeyDictionary[Deployment, tuple[int, Observation]] = (
    weakref.WeakKeyDictionary()
)


def edge_rows(data: GateData) -> tuple[pd.DataFrame, list[str], list[bool]]:
    """Copies of the first row with one feature at its observed min, max, 0, beyond its range
    (see ``_beyond``), or missing; their labels; and whether each one's value lies outside the
    feature's observed range (beyond it, or a zero where every observed value is positive, or
    every one negative)."""
    import numpy as np
    import pandas as pd

    features = data.features
    base = features.iloc[[0]]
    rows: list[pd.DataFrame] = []
    labels: list[str] = []
    extrapolated: list[bool] = []
    for column in features.columns:
        values = features[column]
        cases: list[tuple[str, Any]] = []
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        low = high = None
        if numeric:
            low, high = values.min(), values.max()
            cases += [("min", low), ("max", high), ("zero", 0), *_beyond(values, low, high)]
        # A missing flag or category is None in an object column; a missing number is NaN. A
        # column of a dtype whose missing value is pandas' NA (nullable boolean, string[python],
        # Arrow) keeps its dtype: as an object column it would carry the NA of the other edge
        # rows' values (row 0's gaps) to the model as objects scikit-learn cannot read.
        # A date or duration column keeps its dtype with NaT: as an object column of None,
        # pandas 2.0 could not concatenate it with the tz-aware rows of the other edge rows.
        timely = pd.api.types.is_datetime64_any_dtype(values) or pd.api.types.is_timedelta64_dtype(
            values
        )
        cases.append(("missing", np.nan if numeric else pd.NaT if timely else None))
        keeps_dtype = timely or getattr(values.dtype, "na_value", None) is pd.NA
        for case, value in cases:
            row = base.copy()
            if value is None and not keeps_dtype:
                row[column] = row[column].astype(object)
            elif isinstance(value, float) and pd.api.types.is_integer_dtype(row[column]):
                row[column] = row[column].astype(float)
            row.loc[row.index[0], column] = value
            rows.append(row)
            shown = "" if case in ("zero", "missing") else f"({fmt(plain(value))})"
            labels.append(f"edge row {column}={case}{shown}")
            extrapolated.append(
                case in BEYOND_CASES or (case == "zero" and _excludes_zero(low, high))
            )
    return pd.concat(rows, ignore_index=True), labels, extrapolated


#: The edge cases whose value lies beyond the feature's observed range.
BEYOND_CASES = ("above-max", "below-min")


def _beyond(values: pd.Series, low: Any, high: Any) -> list[tuple[str, Any]]:
    """Values a span beyond the observed range: above the maximum, and below the minimum when
    the feature takes negative values (for one that never does, the zero edge row already lies
    below it, and a negative count or price is no input a service receives).

    Production sends values the holdout never held (a new record price, an older customer), and
    a model that looks them up in a table fitted on the training range crashes on the first one:
    a classifier raising RuntimeError for x1 above its training maximum was approved, since no
    edge row went past the holdout's own maximum. A span beyond stays a value of the feature's
    scale (the year 2033 where years run 2015-2024), not an overflow. Integer columns get an
    integer their dtype holds, or no such row when the maximum is the dtype's own.
    """
    import numpy as np
    import pandas as pd

    try:
        low_f, high_f = float(low), float(high)
    except (TypeError, ValueError):  # pandas' NA: a column with no value
        return []
    if not (math.isfinite(low_f) and math.isfinite(high_f)):
        return []
    span = high_f - low_f or max(abs(high_f), 1.0)
    cases: list[tuple[str, Any]] = [("above-max", high_f + span)]
    if low_f < 0:
        cases.append(("below-min", low_f - span))
    dtype: Any = values.dtype  # a numpy dtype, or pandas' nullable one with its numpy_dtype
    kind: Any = np.dtype(getattr(dtype, "numpy_dtype", dtype))
    if not pd.api.types.is_integer_dtype(values):
        if pd.api.types.is_float_dtype(values):
            top = float(np.finfo(kind).max)
            return [(case, value) for case, value in cases if abs(value) < top]
        return cases
    info = np.iinfo(kind)
    found = []
    for case, value in cases:
        whole = math.ceil(value) if value > 0 else math.floor(value)
        whole = min(max(whole, int(info.min)), int(info.max))
        if (case == "above-max" and whole > high_f) or (case == "below-min" and whole < low_f):
            found.append((case, whole))
    return found


def _excludes_zero(low: Any, high: Any) -> bool:
    """Whether an observed range [low, high] leaves 0 out; unknown bounds (NaN, NA: a column
    with no value) claim nothing."""
    try:
        return bool(low > 0 or high < 0)
    except TypeError:  # pandas' NA has no truth value
        return False


def _observe_edges(
    deployment: Deployment,
    prober: ProbabilisticDeployment | None,
    frame: pd.DataFrame,
    edges: list[EdgeOutcome],
) -> None:
    """Each edge row's output (and probabilities), as one batch, or row by row when the model
    rejects the batch, recording each row's error."""
    try:
        preds = predict(deployment, frame)
        probs = v.as_array(prober.batch_predict_proba(frame)) if prober is not None else None
        if len(preds) != len(edges):
            raise ValueError("edge batch length mismatch")
        for i, outcome in enumerate(edges):
            outcome.prediction = preds[i]
            outcome.proba = probs[i] if probs is not None and len(probs) == len(edges) else None
    except Exception:
        for i, outcome in enumerate(edges):
            one = frame.iloc[[i]]
            try:
                outcome.prediction = predict(deployment, one)[0]
                if prober is not None:
                    outcome.proba = v.as_array(prober.batch_predict_proba(one))[0]
            except Exception as exc:
                outcome.error = exc


def observe(deployment: Deployment, data: GateData) -> Observation:
    """Outputs on the sample rows (one batch) and the edge rows (a batch, or row by row when
    the batch is rejected), cached per deployment object."""
    import numpy as np

    cached = _observations.get(deployment)
    if cached is not None and cached[0] == id(data):
        return cached[1]
    rows = data.features
    predictions = predict(deployment, rows)
    proba = None
    proba_error = None
    # The deployment as asked for probabilities: None when it serves none, or refused them on
    # the sample rows (so exactly when ``proba`` is None).
    prober: ProbabilisticDeployment | None = deployment if has_proba(deployment) else None
    if prober is not None:
        try:
            proba = v.as_array(prober.batch_predict_proba(rows))
        except AttributeError as exc:
            proba_error = describe_exc(exc)
            prober = None
    edge_frame, edge_labels, outside = edge_rows(data)
    edges = [
        EdgeOutcome(label, extrapolated=far)
        for label, far in zip(edge_labels, outside, strict=True)
    ]
    # The rows with a missing value apart from the others: a model that refuses NaN rejects
    # every batch holding one, and the rest then still go as one batch. Row by row only within
    # a rejected group: on 300 features, 900 edge rows one by one (twice, with probabilities)
    # took a StandardScaler + LogisticRegression past the check's 60 s deadline.
    missing = edge_frame.isna().to_numpy().any(axis=1) if len(edge_frame) else np.zeros(0, bool)
    for group in (np.flatnonzero(~missing), np.flatnonzero(missing)):
        if group.size:
            _observe_edges(deployment, prober, edge_frame.iloc[group], [edges[i] for i in group])
    ok = [e for e in edges if e.error is None]
    labels = RowLabels(len(rows), [e.label for e in ok])
    all_preds = predictions
    if ok and predictions.ndim >= 1 and len(predictions) == len(rows):
        try:
            all_preds = np.concatenate([predictions, np.asarray([e.prediction for e in ok])])
        except ValueError:
            all_preds = predictions
    all_proba = proba
    if proba is not None and ok and all(e.proba is not None for e in ok):
        try:
            all_proba = np.concatenate([proba, np.asarray([e.proba for e in ok])])
        except ValueError:
            all_proba = proba
    observation = Observation(
        n_data_rows=len(rows),
        labels=labels,
        predictions=all_preds,
        proba=all_proba,
        edges=edges,
        proba_error=proba_error,
    )
    _observations[deployment] = (id(data), observation)
    return observation


def _rows_message(problem: str, rows: Sequence[int], obs: Observation, total: int) -> str:
    return f"{problem} in {v.describe_rows(rows, total, obs.labels)}"


def _fail_rows(problem: str, rows: Sequence[int], obs: Observation, values: np.ndarray) -> None:
    total = len(values)
    detail = "\n".join(f"  {obs.labels[i]}: {show(values[i])}" for i in list(rows)[:10])
    raise CheckFailure(f"{_rows_message(problem, rows, obs, total)}\n{detail}")


def _record_edges(obs: Observation, deploy_gate_property: Callable[[str, object], None]) -> None:
    deploy_gate_property("edge_rows", len(obs.edges))
    if obs.rejected:
        deploy_gate_property(
            "edge_rows_rejected",
            "; ".join(f"{e.label}: {describe_exc(e.error)}" for e in obs.rejected if e.error),
        )


def _proba_or_skip(obs: Observation, deployment: Deployment) -> np.ndarray:
    if obs.proba is None:
        reason = obs.proba_error or f"{type(deployment).__name__} has no batch_predict_proba"
        pytest.skip(f"no probabilities to check: {reason}")
    return obs.proba


@check("output", "shape")
def output_shape(
    deployment: Deployment,
    deploy_gate_data: GateData,
    model_artifact: LoadedArtifact,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """One output per row (sample and edge rows); probabilities one row per input row, with
    one column per class of ``classes_``."""
    require_real_rows(deploy_gate_data)
    obs = observe(deployment, deploy_gate_data)
    deploy_gate_property("rows_checked", len(obs.labels))
    n = len(obs.labels)
    problem = v.length_problem(obs.predictions, n)
    if problem is None and obs.proba is not None:
        problem = v.length_problem(obs.proba, n, "probability rows")
    if problem is not None:
        raise CheckFailure(f"{problem} (sample rows and edge rows)")
    if (width := _width_problem(obs, model_artifact.profile, deploy_gate_data)) is not None:
        raise CheckFailure(width)


def _width_problem(obs: Observation, profile: ModelProfile, data: GateData) -> str | None:
    """Outputs wider than the model's task allows: several values per row where a client
    expects one label or one number, or probability columns that do not match ``classes_``.

    A classifier's ``predict`` gives one label per row, and a model scored against the one
    label column of the data gives one value per row; an ``(n, 1)`` column is one value per
    row. Without labels a regressor may have several outputs, so its width is not judged.
    """
    preds, target = obs.predictions, data.target
    classifier = profile.task == "classifier"
    if preds.ndim == 2 and preds.shape[1] != 1 and (classifier or target is not None):
        if classifier:
            why = (
                "a classifier's predict() gives one label per row (a one-hot or probability "
                "matrix belongs in predict_proba())"
            )
        else:
            name = target.name if target is not None else None
            why = f"the data has one label column to score it against ({name!r})"
        return (
            f"expected one output per row, got {preds.shape[1]} per row "
            f"(shape {preds.shape}): {why}"
        )
    proba, classes = obs.proba, profile.classes
    if (
        proba is not None
        and classes is not None
        and proba.ndim == 2
        and proba.shape[1] != len(classes)
    ):
        return (
            f"probabilities have {proba.shape[1]} columns for the {len(classes)} classes of "
            f"classes_ ({v.describe_names([str(c) for c in classes])}): a client cannot tell "
            "which column is which class"
        )
    return None


@check("output", "numeric-dtype")
def output_numeric_dtype(
    deployment: Deployment, deploy_gate_data: GateData, model_artifact: LoadedArtifact
) -> None:
    """Outputs are numbers (regressors' values; classifiers' probabilities)."""
    require_real_rows(deploy_gate_data)
    obs = observe(deployment, deploy_gate_data)
    task = model_artifact.profile.task
    if task == "classifier":
        if obs.proba is None:
            pytest.skip("class labels need not be numeric and there are no probabilities")
        arrays = [("probability", obs.proba)]
    else:
        arrays = [("output", obs.predictions)]
    for what, values in arrays:
        _fail_non_numeric(what, values, obs)
    if task == "regressor" and obs.predictions.dtype.kind == "b":
        raise CheckFailure(
            f"a regressor returned booleans (dtype bool) for all {len(obs.labels)} rows: a "
            "client expects numbers (a thresholded output, such as predict() > 0?)"
        )


def _fail_non_numeric(what: str, values: np.ndarray, obs: Observation) -> None:
    # Strings fail even when they read as numbers: a client would receive "1.5", not 1.5.
    # Complex numbers fail too: no client of a model expects an imaginary part.
    rows = v.non_numeric_rows(values)
    if rows:
        kind = "complex" if values.dtype.kind == "c" else "non-numeric"
        _fail_rows(f"{kind} {what} (dtype {values.dtype})", rows, obs, values)


def _fail_on(
    problem: str, finder: Callable[[np.ndarray], tuple[int, ...]], obs: Observation
) -> None:
    for what, values in (("output", obs.predictions), ("probability", obs.proba)):
        if values is not None:
            rows = finder(values)
            if rows:
                _fail_rows(f"{problem} {what}", rows, obs, values)


@check("output", "no-nan")
def output_no_nan(deployment: Deployment, deploy_gate_data: GateData) -> None:
    """No NaN in outputs or probabilities, on sample rows and edge rows."""
    require_real_rows(deploy_gate_data)
    _fail_on("NaN", v.nan_rows, observe(deployment, deploy_gate_data))


@check("output", "no-inf")
def output_no_inf(deployment: Deployment, deploy_gate_data: GateData) -> None:
    """No +/-Inf in outputs or probabilities, on sample rows and edge rows."""
    require_real_rows(deploy_gate_data)
    _fail_on("Inf", v.inf_rows, observe(deployment, deploy_gate_data))


@check("output", "edge-rows")
def output_edge_rows(
    deployment: Deployment,
    deploy_gate_data: GateData,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """Each edge row gets an output or a clear ValueError (rejections are reported, not failed)."""
    require_real_rows(deploy_gate_data)
    obs = observe(deployment, deploy_gate_data)
    _record_edges(obs, deploy_gate_property)
    crashed = obs.crashed
    if crashed:
        lines = "\n".join(f"  {e.label}: {describe_exc(e.error)}" for e in crashed if e.error)
        raise CheckFailure(
            f"{len(crashed)} of {len(obs.edges)} edge rows crashed the model with an error "
            f"that is not a clear ValueError\n{lines}"
        )


@check("output", "probabilities-range", applies=_with_proba)
def output_probabilities_range(deployment: Deployment, deploy_gate_data: GateData) -> None:
    """Every probability is in [0, 1]."""
    require_real_rows(deploy_gate_data)
    obs = observe(deployment, deploy_gate_data)
    proba = _proba_or_skip(obs, deployment)
    rows = v.proba_range_rows(proba)
    if rows:
        _fail_rows("probability outside [0, 1]", rows, obs, proba)


@check("output", "probabilities-sum", applies=_with_proba)
def output_probabilities_sum(deployment: Deployment, deploy_gate_data: GateData) -> None:
    """Each row's probabilities sum to 1 within 1e-6 (1e-5 for float32 probabilities)."""
    require_real_rows(deploy_gate_data)
    obs = observe(deployment, deploy_gate_data)
    proba = _proba_or_skip(obs, deployment)
    tolerance = v.proba_sum_tolerance(proba)
    rows = v.proba_sum_rows(proba, tolerance)
    if rows:
        sums = proba.astype(float).sum(axis=1)
        _fail_rows(f"probabilities not summing to 1 (tolerance {tolerance:g})", rows, obs, sums)


@check("output", "known-labels", applies=_with_classes)
def output_known_labels(
    deployment: Deployment, deploy_gate_data: GateData, model_artifact: LoadedArtifact
) -> None:
    """Predicted labels are among the model's classes_."""
    require_real_rows(deploy_gate_data)
    obs = observe(deployment, deploy_gate_data)
    classes = getattr(deployment, "classes", None) or model_artifact.profile.classes or ()
    rows = v.unknown_label_rows(obs.predictions, classes)
    if rows:
        _fail_rows(f"label not among classes {list(classes)!r}", rows, obs, obs.predictions)


@check("output", "labels-match-probabilities", applies=_with_classes_and_proba)
def output_labels_match_probabilities(
    deployment: Deployment, deploy_gate_data: GateData, model_artifact: LoadedArtifact
) -> None:
    """Predicted labels follow the probabilities (any threshold, for two classes).

    A service that answers with the label and a client that reads the probability must not be
    told two different things: predict() inverted against predict_proba(), or probability
    columns in another order than classes_, fail here.
    """
    require_real_rows(deploy_gate_data)
    obs = observe(deployment, deploy_gate_data)
    proba = _proba_or_skip(obs, deployment)
    classes = getattr(deployment, "classes", None) or model_artifact.profile.classes or ()
    n = obs.n_data_rows
    found = v.label_probability_mismatch(obs.predictions[:n], proba[:n], list(classes))
    if found is not None:
        rows, rule = found
        detail = "\n".join(
            f"  {obs.labels[i]}: predicted {show(obs.predictions[i])}, probabilities "
            f"{show(proba[i])}"
            for i in rows[:10]
        )
        raise CheckFailure(
            f"labels contradict the probabilities ({rule}) in "
            f"{v.describe_rows(rows, n, obs.labels)}; classes {list(classes)!r}\n{detail}"
        )


def _with_labels(profile: ModelProfile | None, settings: Settings) -> bool:
    return (
        profile is not None
        and profile.task in ("classifier", "regressor")
        and settings.target is not None
    )


@check("output", "not-worse-than-chance", applies=_with_labels)
def output_not_worse_than_chance(
    deployment: Deployment,
    deploy_gate_data: GateData,
    model_artifact: LoadedArtifact,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """With labels (deploy_gate_target): outputs are not significantly worse than chance.

    Without a baseline nothing else looks at the labels, and a model whose labels are inverted
    or permuted, or whose outputs are shuffled against its rows, passed every other check.
    A weak but honest model passes: it must do significantly *worse* than guessing to fail.
    """
    import numpy as np

    require_real_rows(deploy_gate_data)
    if deploy_gate_data.target is None:
        pytest.skip("no labels: the data has no target column")
    obs = observe(deployment, deploy_gate_data)
    n = obs.n_data_rows
    # The observation holds the data rows' outputs, then the edge rows' when both fit.
    if len(obs.predictions) < n or (obs.proba is not None and len(obs.proba) < n):
        pytest.skip("not one output per row: output[shape] judges that")
    labelled = deploy_gate_data.target.notna().to_numpy()
    count = int(labelled.sum())
    deploy_gate_property("labelled_rows", count)
    # Each distinct row (features and label) once: a holdout of 30 rows repeated ten times (a
    # request log with retries, an oversampled holdout) is 30 rows of evidence, not 300, and a
    # healthy model's unlucky 0.41 balanced accuracy on them was "significant" at 300.
    table = deploy_gate_data.features.assign(**{"\0label": deploy_gate_data.target})
    labelled = labelled & v.first_of_each_row(table)
    if (distinct := int(labelled.sum())) < count:
        deploy_gate_property("distinct_labelled_rows", distinct)
    proba = obs.proba[:n][labelled] if obs.proba is not None else None
    classes = getattr(deployment, "classes", None) or model_artifact.profile.classes
    task = model_artifact.profile.task or ""
    try:
        problem = v.worse_than_chance(
            task,
            obs.predictions[:n][labelled],
            np.asarray(deploy_gate_data.target.to_numpy()[labelled]),
            proba,
            list(classes) if classes is not None else None,
        )
    except ValueError as exc:
        pytest.skip(f"outputs not compared with the labels: {exc}")
    if problem is not None:
        raise CheckFailure(problem)


def _regressor_or_proba(profile: ModelProfile | None, settings: Settings) -> bool:
    return _regressor(profile, settings) or _with_proba(profile, settings)


@check("output", "not-constant", applies=_regressor_or_proba)
def output_not_constant(
    deployment: Deployment,
    deploy_gate_data: GateData,
    model_artifact: LoadedArtifact,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """The outputs respond to the inputs: not one and the same output for every row.

    A regressor's predictions, or a classifier's probabilities, identical on every distinct
    row of the data (or varying only in their 7th digit: ``v.near_constant_output``) come from
    a model that ignores its input (a preprocessing step that
    discards the features, a model that learned nothing); no other check looks at that without
    a baseline. A classifier's labels alone may rightly be one class for every row (rare
    positives), so a classifier without probabilities is not judged here.
    """
    import numpy as np

    require_real_rows(deploy_gate_data)
    obs = observe(deployment, deploy_gate_data)
    n = obs.n_data_rows
    distinct = v.distinct_rows(deploy_gate_data.features)
    deploy_gate_property("distinct_rows", distinct)
    if distinct < v.CONSTANT_MIN_ROWS:
        pytest.skip(
            f"{distinct} distinct data rows, fewer than the {v.CONSTANT_MIN_ROWS} this needs"
        )
    outputs = obs.proba if obs.proba is not None else obs.predictions
    what = "probabilities" if obs.proba is not None else "prediction"
    if len(outputs) < n:
        pytest.skip("not one output per row: output[shape] judges that")
    try:
        value = v.constant_output(outputs[:n])
    except ValueError as exc:
        pytest.skip(f"outputs not judged: {exc}")
    if value is not None:
        raise CheckFailure(
            f"the model gives the same {what} {value} for all {n} rows ({distinct} distinct "
            "rows of the data): its outputs do not depend on its input (a step that discards "
            "the features, or a model that learned nothing?)"
        )
    target = deploy_gate_data.target
    labels = None if target is None else np.asarray(target.to_numpy())
    if (near := v.near_constant_output(outputs[:n], labels, obs.proba is not None)) is not None:
        raise CheckFailure(
            f"the model gives effectively the same {what} for all {n} rows ({distinct} "
            f"distinct rows of the data): {near}; a model that learned nothing (a "
            "regularisation strength in the wrong units?)"
        )


@check("output", "regression-range", applies=_regressor)
def output_regression_range(
    deployment: Deployment,
    deploy_gate_data: GateData,
    deploy_gate_settings: Settings,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """Numeric outputs within deploy_gate_output_range, or the target's range widened by its span.

    A value that is not a number lies in no range: strings fail, naming their rows.
    """
    require_real_rows(deploy_gate_data)
    low, high, source = _output_range(deploy_gate_data, deploy_gate_settings)
    derived = deploy_gate_settings.output_range is None
    deploy_gate_property("range_low", low)
    deploy_gate_property("range_high", high)
    obs = observe(deployment, deploy_gate_data)
    # A value that is not a number lies in no range (strings would otherwise be skipped).
    _fail_non_numeric("output", obs.predictions, obs)
    rows = v.out_of_range_rows(obs.predictions, low, high)
    if derived:
        # The target's range describes outputs on the inputs the data holds. An edge row whose
        # input lies outside them (year=0 where years run 2015-2024) asks the model to
        # extrapolate, and a healthy linear model answers far outside that range: reported,
        # not failed. An explicit deploy_gate_output_range is a contract for every input.
        far = _extrapolated_rows(obs)
        passed_over = [r for r in rows if r in far]
        if passed_over:
            deploy_gate_property(
                "edge_rows_extrapolated",
                "; ".join(f"{obs.labels[r]}: {show(obs.predictions[r])}" for r in passed_over),
            )
            rows = tuple(r for r in rows if r not in far)
    if rows:
        _fail_rows(f"output outside [{low:.6g}, {high:.6g}] ({source})", rows, obs, obs.predictions)


def _extrapolated_rows(obs: Observation) -> set[int]:
    """Positions, among ``obs.predictions``, of the edge rows whose input is an extrapolation."""
    ok = [e for e in obs.edges if e.error is None]
    if len(obs.predictions) != obs.n_data_rows + len(ok):
        return set()  # the edge outputs could not be joined to the data rows'
    return {obs.n_data_rows + i for i, e in enumerate(ok) if e.extrapolated}


def _output_range(data: GateData, settings: Settings) -> tuple[float, float, str]:
    import pandas as pd

    if settings.output_range is not None:
        low, high = settings.output_range
        return float(low), float(high), f"from {settings.source('output_range')}"
    target = data.target
    if target is None or not pd.api.types.is_numeric_dtype(target) or target.dropna().empty:
        pytest.skip(
            "no output range: set deploy_gate_output_range, or pass --deploy-gate-target "
            "with a numeric label column to derive it"
        )
    lo, hi = float(target.min()), float(target.max())
    span = hi - lo
    return lo - span, hi + span, f"target range [{lo:.6g}, {hi:.6g}] widened by its span"


def _score_check(metric: str, value: float) -> Callable[..., None]:
    def output_score(
        deployment: Deployment,
        deploy_gate_data: GateData,
        model_artifact: LoadedArtifact,
        deploy_gate_property: Callable[[str, object], None],
    ) -> None:
        import numpy as np
        import pandas as pd

        from deploy_gate.capabilities import comparison_task
        from deploy_gate.compare import METRICS, ModelOutputs, compute_metric
        from deploy_gate.errors import MetricUnavailableError

        spec = METRICS[metric]
        higher = spec.higher_is_better
        bound = f"{'floor' if higher else 'ceiling'} {value:g} (deploy_gate_min_scores)"
        deploy_gate_property("metric", metric)
        deploy_gate_property("floor" if higher else "ceiling", value)
        # Asked for and not judged is not passed: each way this cannot run fails, saying why.
        task = model_artifact.profile.task
        if comparison_task(task) != spec.task:
            raise CheckFailure(
                f"{metric} is a {spec.task} score and {model_artifact.path.name} is "
                f"{'a ' + task if comparison_task(task) else 'a model whose task is unknown'}: "
                f"the {bound} cannot be judged"
            )
        data = deploy_gate_data
        if data.synthetic or data.target is None:
            raise CheckFailure(
                f"the {bound} is judged on labelled rows: pass --deploy-gate-data with "
                "--deploy-gate-target"
            )
        labelled = data.target.notna().to_numpy()
        count = int(labelled.sum())
        if not count:
            raise CheckFailure(
                f"none of the {data.n_rows} rows has a label: the {bound} is "
                "judged on labelled rows"
            )
        obs = observe(deployment, data)
        n = obs.n_data_rows
        if len(obs.predictions) < n:
            raise CheckFailure(
                f"not one output per row (see output[shape]): the {bound} cannot be judged"
            )
        proba = obs.proba[:n][labelled] if obs.proba is not None and len(obs.proba) >= n else None
        classes = getattr(deployment, "classes", None) or model_artifact.profile.classes
        if spec.needs_proba and (proba is None or classes is None):
            raise CheckFailure(
                f"{metric} needs the model's probabilities, and it serves none: the {bound} "
                "cannot be judged"
            )
        outputs = ModelOutputs(
            task=spec.task,
            labels=obs.predictions[:n][labelled],
            valid=np.ones(count, dtype=bool),
            index=pd.RangeIndex(count),
            proba=proba,
            classes=np.asarray(classes) if classes is not None else None,
        )
        try:
            score = compute_metric(metric, data.target.to_numpy()[labelled], outputs)
        except (MetricUnavailableError, ValueError, TypeError) as exc:
            raise CheckFailure(f"{metric} could not be computed: {describe_exc(exc)}") from None
        deploy_gate_property("score", score)
        deploy_gate_property("labelled_rows", count)
        if (score < value) if higher else (score > value):
            raise CheckFailure(
                f"{metric} {score:.4g} on {count} labelled rows, "
                f"{'below the' if higher else 'above the'} {bound}"
            )

    output_score.__doc__ = (
        f"The {metric} on the labelled data reaches {value:g} (deploy_gate_min_scores: at "
        "least, or at most for a lower-is-better metric)."
    )
    return output_score


def checks(profile: ModelProfile | None, settings: Settings) -> list[Check]:
    """The ``output`` checks, as this module declares them, then ``output[score-<metric>]`` for
    each score of ``deploy_gate_min_scores``."""
    scores = [
        Check("output", f"score-{metric}", _score_check(metric, value))
        for metric, value in settings.min_scores or ()
    ]
    return [*declared(__name__), *scores]
