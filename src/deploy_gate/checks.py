"""The built-in deployment checks, as plain functions of fixtures, and their catalogue.

Each check takes fixtures by name (``deployment``, ``deploy_gate_data``, ...), so a project that
overrides ``deployment`` in its conftest.py has every check run against its own wrapper. A check
passes by returning, fails by raising :class:`CheckFailure` with a message whose first line is
enough to act on, and skips with the reason when it cannot run.
"""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from deploy_gate import validation as v
from deploy_gate.errors import CheckFailure, InvalidOutputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from deploy_gate.artifact import LoadedArtifact, ModelProfile
    from deploy_gate.data import GateData
    from deploy_gate.gate import Gate
    from deploy_gate.options import Settings

CATEGORIES = ("smoke", "output", "latency", "errors", "version", "baseline", "rollout", "drift")

#: Batch and row-by-row outputs, and repeated outputs, must agree within this relative tolerance.
RTOL = 1e-9
#: Rows compared row by row in smoke[batch-consistency] and timed in smoke[latency-sanity].
SAMPLE_ROWS = 20
#: The string fed to a numeric feature by errors[wrong-dtype].
NOT_A_NUMBER = "deploy-gate-not-a-number"
#: A feature name no model knows, fed by errors[unknown-feature].
UNKNOWN_FEATURE = "deploy_gate_unknown_feature"


@dataclass(frozen=True)
class Check:
    """One entry of the catalogue: rendered as the item ``<category>[<case>]``."""

    category: str
    case: str
    func: Callable[..., None]
    #: Whether the check applies to a model; None profile means the artifact did not load.
    applies: Callable[[ModelProfile | None, Settings], bool] = field(
        default=lambda profile, settings: True
    )

    @property
    def name(self) -> str:
        return f"{self.category}[{self.case}]"

    @property
    def description(self) -> str:
        doc = (self.func.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else self.name


BUILTIN: list[Check] = []


def check(
    category: str,
    case: str,
    applies: Callable[[ModelProfile | None, Settings], bool] | None = None,
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def register(func: Callable[..., None]) -> Callable[..., None]:
        BUILTIN.append(Check(category, case, func, applies or (lambda p, s: True)))
        return func

    return register


def _classifier(profile: ModelProfile | None, settings: Settings) -> bool:
    return profile is not None and profile.task == "classifier"


def _with_proba(profile: ModelProfile | None, settings: Settings) -> bool:
    return _classifier(profile, settings) and profile is not None and profile.has_proba


def _with_classes(profile: ModelProfile | None, settings: Settings) -> bool:
    return _classifier(profile, settings) and profile is not None and profile.classes is not None


def _regressor(profile: ModelProfile | None, settings: Settings) -> bool:
    return profile is not None and profile.task == "regressor"


def builtin_checks(profile: ModelProfile | None, settings: Settings) -> list[Check]:
    """The built-in checks that apply to a model with this profile."""
    static = [c for c in BUILTIN if c.applies(profile, settings)]
    return (
        static
        + baseline_checks(profile, settings)
        + rollout_checks(settings)
        + drift_checks(profile, settings)
        + latency_checks(settings)
    )


# -- helpers --------------------------------------------------------------------------------


def require_real_rows(data: GateData) -> None:
    if data.synthetic:
        pytest.skip(
            f"needs realistic rows, and the gate has only {data.source}: "
            "pass --deploy-gate-data with sample or holdout rows"
        )


def first_row(data: GateData) -> dict[str, Any]:
    return {str(k): _plain(val) for k, val in data.features.iloc[0].items()}


def sample(data: GateData, n: int = SAMPLE_ROWS) -> pd.DataFrame:
    return data.features.iloc[:n]


def has_proba(deployment: Any) -> bool:
    """Whether the deployment serves probabilities (``supports_proba`` may say it does not)."""
    method = getattr(deployment, "batch_predict_proba", None)
    return callable(method) and bool(getattr(deployment, "supports_proba", True))


def predict(deployment: Any, rows: pd.DataFrame, *, what: str = "batch_predict") -> np.ndarray:
    """Call the deployment and return its output as an array (the model's errors propagate)."""
    return v.as_array(deployment.batch_predict(rows))


def same_outputs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row mask of outputs that agree: within RTOL for numbers, exactly otherwise."""
    import numpy as np

    if a.shape != b.shape:
        return np.zeros(len(a), dtype=bool)
    fa, fb = v.numeric_view(a), v.numeric_view(b)
    if fa is not None and fb is not None:
        close = np.isclose(fa, fb, rtol=RTOL, atol=0.0, equal_nan=True)
    else:
        close = a == b
    close = np.asarray(close)
    return np.asarray(close.reshape(len(close), -1).all(axis=1) if close.ndim > 1 else close)


def is_clear_error(
    exc: BaseException,
    kinds: tuple[type[BaseException], ...] = (ValueError,),
) -> bool:
    """An error of one of ``kinds`` with a message, as opposed to an obscure crash.

    Output validation errors do not count: they mean the model produced an invalid output.
    """
    if isinstance(exc, InvalidOutputError):
        return False
    return isinstance(exc, kinds) and bool(str(exc).strip())


def describe_exc(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else '(no message)'}"


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) and getattr(value, "ndim", 0) == 0 else value


def show(value: Any) -> str:
    """A model output as a person reads it: 0.25, 'yes', [0.2 0.9]."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return np.array2string(value, precision=6, separator=", ")
    return _fmt(_plain(value))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value)


# -- outputs on sample rows and edge rows ---------------------------------------------------


@dataclass
class EdgeOutcome:
    label: str
    prediction: Any = None
    proba: Any = None
    error: BaseException | None = None


@dataclass
class Observation:
    """The deployment's outputs on every sample row and every edge row, computed once."""

    n_data_rows: int
    labels: list[str]
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


_observations: weakref.WeakKeyDictionary[Any, tuple[int, Observation]] = weakref.WeakKeyDictionary()


def edge_rows(data: GateData) -> tuple[pd.DataFrame, list[str]]:
    """Copies of the first row with one feature at its observed min, max, 0, or missing."""
    import numpy as np
    import pandas as pd

    features = data.features
    base = features.iloc[[0]]
    rows: list[pd.DataFrame] = []
    labels: list[str] = []
    for column in features.columns:
        values = features[column]
        cases: list[tuple[str, Any]] = []
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            cases += [("min", values.min()), ("max", values.max()), ("zero", 0)]
        cases.append(("missing", np.nan if pd.api.types.is_numeric_dtype(values) else None))
        for case, value in cases:
            row = base.copy()
            if value is None:
                row[column] = row[column].astype(object)
            elif isinstance(value, float) and pd.api.types.is_integer_dtype(row[column]):
                row[column] = row[column].astype(float)
            row.loc[row.index[0], column] = value
            rows.append(row)
            shown = "" if case in ("zero", "missing") else f"({_fmt(_plain(value))})"
            labels.append(f"edge row {column}={case}{shown}")
    return pd.concat(rows, ignore_index=True), labels


def observe(deployment: Any, data: GateData) -> Observation:
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
    if has_proba(deployment):
        try:
            proba = v.as_array(deployment.batch_predict_proba(rows))
        except AttributeError as exc:
            proba_error = describe_exc(exc)
    edge_frame, edge_labels = edge_rows(data)
    edges = [EdgeOutcome(label) for label in edge_labels]
    try:
        preds = predict(deployment, edge_frame)
        probs = (
            v.as_array(deployment.batch_predict_proba(edge_frame)) if proba is not None else None
        )
        if len(preds) != len(edges):
            raise ValueError("edge batch length mismatch")
        for i, outcome in enumerate(edges):
            outcome.prediction = preds[i]
            outcome.proba = probs[i] if probs is not None and len(probs) == len(edges) else None
    except Exception:
        for i, outcome in enumerate(edges):
            one = edge_frame.iloc[[i]]
            try:
                outcome.prediction = predict(deployment, one)[0]
                if proba is not None:
                    outcome.proba = v.as_array(deployment.batch_predict_proba(one))[0]
            except Exception as exc:
                outcome.error = exc
    ok = [e for e in edges if e.error is None]
    labels = [f"row {i}" for i in range(len(rows))] + [e.label for e in ok]
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


def _proba_or_skip(obs: Observation, deployment: Any) -> np.ndarray:
    if obs.proba is None:
        reason = obs.proba_error or f"{type(deployment).__name__} has no batch_predict_proba"
        pytest.skip(f"no probabilities to check: {reason}")
    return obs.proba


# -- smoke ----------------------------------------------------------------------------------


@check("smoke", "load")
def smoke_load(
    deploy_gate: Gate,
    deploy_gate_artifact_path: Path,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """The artifact loads (and is a model with predict())."""
    artifact = deploy_gate.artifact_or_error(deploy_gate_artifact_path)
    if isinstance(artifact, BaseException):
        reason = describe_exc(artifact)
        if deploy_gate_artifact_path.name not in reason:
            reason = f"{deploy_gate_artifact_path} failed to load: {reason}"
        raise CheckFailure(reason)
    deploy_gate_property("loader", artifact.loader)
    deploy_gate_property("model_type", artifact.profile.model_type)
    deploy_gate_property("task", artifact.profile.task)


@check("smoke", "inference-single")
def smoke_inference_single(deployment: Any, deploy_gate_data: GateData) -> None:
    """predict_single on one row returns an output."""
    output = deployment.predict_single(first_row(deploy_gate_data))
    if output is None:
        raise CheckFailure("predict_single returned None for row 0")


@check("smoke", "output-valid")
def smoke_output_valid(
    deployment: Any, deploy_gate_data: GateData, model_artifact: LoadedArtifact
) -> None:
    """The single-row output is a valid prediction (finite, known label, valid probabilities)."""
    rows = sample(deploy_gate_data, 1)
    preds = predict(deployment, rows)
    proba = v.as_array(deployment.batch_predict_proba(rows)) if has_proba(deployment) else None
    classes = getattr(deployment, "classes", None) or model_artifact.profile.classes
    problems = v.find_problems(preds, n_rows=1, proba=proba, classes=classes)
    if problems:
        raise CheckFailure(
            "invalid output for row 0: "
            + "; ".join(map(str, problems))
            + f"\n  output: {show(preds)}"
        )


@check("smoke", "batch")
def smoke_batch(deployment: Any, deploy_gate_data: GateData) -> None:
    """batch_predict returns one output per row."""
    rows = deploy_gate_data.features
    preds = predict(deployment, rows)
    problem = v.length_problem(preds, len(rows))
    if problem is not None:
        raise CheckFailure(f"batch_predict on {len(rows)} rows: {problem}")


@check("smoke", "batch-consistency")
def smoke_batch_consistency(deployment: Any, deploy_gate_data: GateData) -> None:
    """Batch outputs equal row-by-row outputs (relative tolerance 1e-9)."""
    import numpy as np

    rows = sample(deploy_gate_data)
    batch = predict(deployment, rows)
    _require_one_per_row(batch, len(rows))
    single = v.as_array([deployment.predict_single(r) for r in _records(rows)])
    single = single.reshape(batch.shape) if single.size == batch.size else single
    differ = [int(i) for i in np.flatnonzero(~same_outputs(batch, single))]
    if differ:
        lines = "\n".join(
            f"  row {i}: batch {show(batch[i])} vs single {show(single[i])}" for i in differ[:10]
        )
        raise CheckFailure(
            f"batch and row-by-row outputs differ on {v.describe_rows(differ, len(rows))} "
            f"(relative tolerance {RTOL:g})\n{lines}"
        )


@check("smoke", "deterministic")
def smoke_deterministic(deployment: Any, deploy_gate_data: GateData) -> None:
    """The same rows twice give the same outputs."""
    import numpy as np

    rows = deploy_gate_data.features
    first = predict(deployment, rows)
    second = predict(deployment, rows)
    _require_one_per_row(first, len(rows))
    _require_one_per_row(second, len(rows))
    differ = [int(i) for i in np.flatnonzero(~same_outputs(first, second))]
    if differ:
        lines = "\n".join(
            f"  row {i}: {show(first[i])} then {show(second[i])}" for i in differ[:10]
        )
        raise CheckFailure(
            f"outputs changed between two identical calls on "
            f"{v.describe_rows(differ, len(rows))}\n{lines}"
        )


@check("smoke", "latency-sanity")
def smoke_latency_sanity(
    deployment: Any,
    deploy_gate_data: GateData,
    deploy_gate_settings: Settings,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """Mean single-row latency is under a generous budget (deploy_gate_smoke_latency_ms)."""
    records = _records(sample(deploy_gate_data))
    budget = float(deploy_gate_settings.smoke_latency_ms)
    threads = deploy_gate_settings.latency_threads
    timings = []
    # Thread pools are limited to deploy_gate_latency_threads around every gate check.
    for row in records[:2]:  # warm-up, untimed
        deployment.predict_single(row)
    for row in (records * 10)[: max(10, min(len(records), 20))]:
        start = time.perf_counter()
        deployment.predict_single(row)
        timings.append((time.perf_counter() - start) * 1000.0)
    mean = sum(timings) / len(timings)
    deploy_gate_property("mean_ms", round(mean, 4))
    deploy_gate_property("budget_ms", budget)
    deploy_gate_property("threads", "auto" if threads is None else threads)
    if mean > budget:
        raise CheckFailure(
            f"mean single-row latency {mean:.1f} ms exceeds budget {budget:.1f} ms "
            f"(n={len(timings)} calls after 2 warm-up calls, "
            f"threads={'auto' if threads is None else threads}; deploy_gate_smoke_latency_ms)"
        )


def _require_one_per_row(outputs: np.ndarray, n_rows: int) -> None:
    """Comparisons need one output per row; a wrong count is smoke[batch]'s finding."""
    if v.length_problem(outputs, n_rows) is not None:
        pytest.skip(
            f"cannot compare outputs: batch_predict gave {len(outputs)} for {n_rows} rows "
            "(see smoke[batch])"
        )


def _records(rows: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): _plain(val) for k, val in row.items()} for _, row in rows.iterrows()]


# -- output validity ------------------------------------------------------------------------


@check("output", "shape")
def output_shape(
    deployment: Any,
    deploy_gate_data: GateData,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """One output per row (sample and edge rows); probabilities one row per input row."""
    require_real_rows(deploy_gate_data)
    obs = observe(deployment, deploy_gate_data)
    deploy_gate_property("rows_checked", len(obs.labels))
    n = len(obs.labels)
    problem = v.length_problem(obs.predictions, n)
    if problem is None and obs.proba is not None:
        problem = v.length_problem(obs.proba, n, "probability rows")
    if problem is not None:
        raise CheckFailure(f"{problem} (sample rows and edge rows)")


@check("output", "numeric-dtype")
def output_numeric_dtype(
    deployment: Any, deploy_gate_data: GateData, model_artifact: LoadedArtifact
) -> None:
    """Outputs are numbers (regressors' values; classifiers' probabilities)."""
    require_real_rows(deploy_gate_data)
    obs = observe(deployment, deploy_gate_data)
    if model_artifact.profile.task == "classifier":
        if obs.proba is None:
            pytest.skip("class labels need not be numeric and there are no probabilities")
        arrays = [("probabilities", obs.proba)]
    else:
        arrays = [("outputs", obs.predictions)]
    for what, values in arrays:
        if not v.is_numeric(values) and v.numeric_view(values) is None:
            raise CheckFailure(
                f"{what} have dtype {values.dtype}, not numeric "
                f"(first value {show(values.flat[0])})"
            )


@check("output", "no-nan")
def output_no_nan(deployment: Any, deploy_gate_data: GateData) -> None:
    """No NaN in outputs or probabilities, on sample rows and edge rows."""
    require_real_rows(deploy_gate_data)
    obs = observe(deployment, deploy_gate_data)
    for what, values in (("output", obs.predictions), ("probability", obs.proba)):
        if values is not None:
            rows = v.nan_rows(values)
            if rows:
                _fail_rows(f"NaN {what}", rows, obs, values)


@check("output", "no-inf")
def output_no_inf(deployment: Any, deploy_gate_data: GateData) -> None:
    """No +/-Inf in outputs or probabilities, on sample rows and edge rows."""
    require_real_rows(deploy_gate_data)
    obs = observe(deployment, deploy_gate_data)
    for what, values in (("output", obs.predictions), ("probability", obs.proba)):
        if values is not None:
            rows = v.inf_rows(values)
            if rows:
                _fail_rows(f"Inf {what}", rows, obs, values)


@check("output", "edge-rows")
def output_edge_rows(
    deployment: Any,
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
def output_probabilities_range(deployment: Any, deploy_gate_data: GateData) -> None:
    """Every probability is in [0, 1]."""
    require_real_rows(deploy_gate_data)
    obs = observe(deployment, deploy_gate_data)
    proba = _proba_or_skip(obs, deployment)
    rows = v.proba_range_rows(proba)
    if rows:
        _fail_rows("probability outside [0, 1]", rows, obs, proba)


@check("output", "probabilities-sum", applies=_with_proba)
def output_probabilities_sum(deployment: Any, deploy_gate_data: GateData) -> None:
    """Each row's probabilities sum to 1 within 1e-6."""
    require_real_rows(deploy_gate_data)
    obs = observe(deployment, deploy_gate_data)
    proba = _proba_or_skip(obs, deployment)
    rows = v.proba_sum_rows(proba)
    if rows:
        sums = proba.astype(float).sum(axis=1)
        _fail_rows(
            f"probabilities not summing to 1 (tolerance {v.PROBA_SUM_TOLERANCE:g})", rows, obs, sums
        )


@check("output", "known-labels", applies=_with_classes)
def output_known_labels(
    deployment: Any, deploy_gate_data: GateData, model_artifact: LoadedArtifact
) -> None:
    """Predicted labels are among the model's classes_."""
    require_real_rows(deploy_gate_data)
    obs = observe(deployment, deploy_gate_data)
    classes = getattr(deployment, "classes", None) or model_artifact.profile.classes or ()
    rows = v.unknown_label_rows(obs.predictions, classes)
    if rows:
        _fail_rows(f"label not among classes {list(classes)!r}", rows, obs, obs.predictions)


@check("output", "regression-range", applies=_regressor)
def output_regression_range(
    deployment: Any,
    deploy_gate_data: GateData,
    deploy_gate_settings: Settings,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """Outputs lie in deploy_gate_output_range, or the target's range widened by its span."""
    require_real_rows(deploy_gate_data)
    low, high, source = _output_range(deploy_gate_data, deploy_gate_settings)
    deploy_gate_property("range_low", low)
    deploy_gate_property("range_high", high)
    obs = observe(deployment, deploy_gate_data)
    rows = v.out_of_range_rows(obs.predictions, low, high)
    if rows:
        _fail_rows(f"output outside [{low:.6g}, {high:.6g}] ({source})", rows, obs, obs.predictions)


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


# -- error scenarios ------------------------------------------------------------------------


def _factory_reaches(deployment: Any, deployment_factory: Callable[[Path], Any], path: Path) -> Any:
    """A fresh, unloaded deployment from the factory, or a skip when the project overrides
    ``deployment`` but not ``deployment_factory`` (the check would judge the wrong class)."""
    fresh = deployment_factory(path)
    if type(fresh) is not type(deployment):
        pytest.skip(
            f"deployment is a {type(deployment).__name__} but deployment_factory makes "
            f"{type(fresh).__name__}: override deployment_factory too to check loading"
        )
    return fresh


@check("errors", "missing-artifact")
def errors_missing_artifact(
    deployment: Any, deployment_factory: Callable[[Path], Any], tmp_path: Path
) -> None:
    """Loading a missing file raises FileNotFoundError naming the path."""
    missing = tmp_path / "no-such-model.joblib"
    try:
        _factory_reaches(deployment, deployment_factory, missing).load_model()
    except FileNotFoundError as exc:
        if str(missing) not in str(exc) and missing.name not in str(exc):
            raise CheckFailure(
                f"FileNotFoundError for a missing artifact does not name the path: {exc}"
            ) from None
        return
    except Exception as exc:
        raise CheckFailure(
            f"loading a missing artifact raised {describe_exc(exc)}, expected FileNotFoundError"
        ) from None
    raise CheckFailure(f"loading a missing artifact ({missing}) raised nothing")


def _expect_key_error(call: Callable[[], Any], name: str, what: str) -> None:
    try:
        result = call()
    except KeyError as exc:
        if name not in str(exc):
            raise CheckFailure(
                f"{what} raised KeyError that does not name {name!r}: {exc}"
            ) from None
        return
    except Exception as exc:
        raise CheckFailure(
            f"{what} raised {describe_exc(exc)}, expected KeyError naming {name!r}"
        ) from None
    raise CheckFailure(
        f"{what} was accepted silently (returned {show(result)}); expected KeyError naming {name!r}"
    )


@check("errors", "unknown-feature")
def errors_unknown_feature(deployment: Any, deploy_gate_data: GateData) -> None:
    """A feature the model does not know gives a KeyError naming it."""
    row = {**first_row(deploy_gate_data), UNKNOWN_FEATURE: 1.0}
    _expect_key_error(
        lambda: deployment.predict_single(row),
        UNKNOWN_FEATURE,
        "predict_single with an unknown feature",
    )
    frame = sample(deploy_gate_data, 3).assign(**{UNKNOWN_FEATURE: 1.0})
    _expect_key_error(
        lambda: deployment.batch_predict(frame),
        UNKNOWN_FEATURE,
        "batch_predict with an unknown column",
    )


@check("errors", "missing-feature")
def errors_missing_feature(deployment: Any, deploy_gate_data: GateData) -> None:
    """A missing feature gives a KeyError naming it."""
    row = first_row(deploy_gate_data)
    name = list(row)[-1]
    del row[name]
    _expect_key_error(
        lambda: deployment.predict_single(row), name, f"predict_single without feature {name!r}"
    )
    frame = sample(deploy_gate_data, 3).drop(columns=[name])
    _expect_key_error(
        lambda: deployment.batch_predict(frame), name, f"batch_predict without column {name!r}"
    )


@check("errors", "nan-input")
def errors_nan_input(
    deployment: Any, deploy_gate_data: GateData, model_artifact: LoadedArtifact
) -> None:
    """NaN in any feature gives a valid output or a clear ValueError, never NaN or a crash."""
    import numpy as np
    import pandas as pd

    features = deploy_gate_data.features
    base = features.iloc[[0]]
    failures: list[str] = []
    classes = getattr(deployment, "classes", None) or model_artifact.profile.classes
    for column in features.columns:
        row = base.copy()
        row[column] = (
            row[column].astype(float)
            if pd.api.types.is_numeric_dtype(row[column])
            else row[column].astype(object)
        )
        row.loc[row.index[0], column] = np.nan
        try:
            out = predict(deployment, row)
            proba = (
                v.as_array(deployment.batch_predict_proba(row)) if has_proba(deployment) else None
            )
        except Exception as exc:
            if is_clear_error(exc):
                continue
            failures.append(f"  {column}=NaN: {describe_exc(exc)} (not a clear ValueError)")
            continue
        problems = v.find_problems(out, n_rows=1, proba=proba, classes=classes)
        if problems:
            shown = show(out) if proba is None else f"{show(out)} with probabilities {show(proba)}"
            failures.append(
                f"  {column}=NaN: invalid output {shown} ({'; '.join(map(str, problems))})"
            )
    if failures:
        raise CheckFailure(
            f"NaN input mishandled for {len(failures)} of {len(features.columns)} features\n"
            + "\n".join(failures)
        )


@check("errors", "wrong-dtype")
def errors_wrong_dtype(deployment: Any, deploy_gate_data: GateData) -> None:
    """A string in a numeric feature gives a clear error, not a silent prediction."""
    import pandas as pd

    features = deploy_gate_data.features
    numeric = [
        c
        for c in features.columns
        if pd.api.types.is_numeric_dtype(features[c])
        and not pd.api.types.is_bool_dtype(features[c])
    ]
    if not numeric:
        pytest.skip("no numeric feature to put a string into")
    column = numeric[0]
    row = features.iloc[[0]].copy()
    row[column] = row[column].astype(object)
    row.loc[row.index[0], column] = NOT_A_NUMBER
    try:
        out = predict(deployment, row)
    except Exception as exc:
        if is_clear_error(exc, (ValueError, TypeError)):
            return
        raise CheckFailure(
            f"a string in numeric feature {column!r} raised {describe_exc(exc)}, "
            "expected a clear ValueError or TypeError"
        ) from None
    raise CheckFailure(
        f"a string ({NOT_A_NUMBER!r}) in numeric feature {column!r} was accepted silently: "
        f"the model returned {show(out)}"
    )


@check("errors", "empty-batch")
def errors_empty_batch(deployment: Any, deploy_gate_data: GateData) -> None:
    """An empty batch gives an empty result or a clear error."""
    empty = deploy_gate_data.features.iloc[:0]
    try:
        out = predict(deployment, empty)
    except Exception as exc:
        if is_clear_error(exc):
            return
        raise CheckFailure(
            f"an empty batch raised {describe_exc(exc)}, "
            "expected an empty result or a clear ValueError"
        ) from None
    if out.ndim == 0 or len(out) != 0:
        raise CheckFailure(f"an empty batch returned {show(out)}, expected an empty result")


@check("errors", "reordered-columns")
def errors_reordered_columns(deployment: Any, deploy_gate_data: GateData) -> None:
    """Columns in another order give the same outputs or a clear error, never silently others."""
    import numpy as np

    rows = deploy_gate_data.features.iloc[:200]
    if rows.shape[1] < 2:
        pytest.skip("a single feature cannot be reordered")
    expected = predict(deployment, rows)
    _require_one_per_row(expected, len(rows))
    shuffled = rows[list(reversed(rows.columns))]
    try:
        got = predict(deployment, shuffled)
    except Exception as exc:
        if is_clear_error(exc, (ValueError, KeyError)):
            return
        raise CheckFailure(
            f"reordered columns raised {describe_exc(exc)}, "
            "expected the same outputs or a clear error"
        ) from None
    _require_one_per_row(got, len(rows))
    differ = [int(i) for i in np.flatnonzero(~same_outputs(expected, got))]
    if differ:
        lines = "\n".join(
            f"  row {i}: {show(expected[i])} became {show(got[i])}" for i in differ[:5]
        )
        raise CheckFailure(
            f"outputs changed on {v.describe_rows(differ, len(rows))} when the columns came in "
            "reverse order: the model reads columns by position, not by name\n" + lines
        )


@check("errors", "input-mutation")
def errors_input_mutation(deployment: Any, deploy_gate_data: GateData) -> None:
    """Predicting leaves the caller's DataFrame unchanged."""
    rows = deploy_gate_data.features.iloc[:50].copy()
    before = rows.copy(deep=True)
    predict(deployment, rows)
    if not rows.equals(before):
        changed = [
            str(c) for c in before.columns if c not in rows.columns or not rows[c].equals(before[c])
        ]
        added = [str(c) for c in rows.columns if c not in before.columns]
        raise CheckFailure(
            "batch_predict changed the caller's DataFrame: "
            + ", ".join(
                [f"column {c!r} modified or dropped" for c in changed]
                + [f"column {c!r} added" for c in added]
            )
        )


@check("errors", "not-loaded")
def errors_not_loaded(
    deployment: Any,
    deployment_factory: Callable[[Path], Any],
    deploy_gate_artifact_path: Path,
    deploy_gate_data: GateData,
) -> None:
    """Predicting before load_model() raises ValueError mentioning "not loaded"."""
    fresh = _factory_reaches(deployment, deployment_factory, deploy_gate_artifact_path)
    try:
        result = fresh.predict_single(first_row(deploy_gate_data))
    except ValueError as exc:
        if "not loaded" not in str(exc).lower():
            raise CheckFailure(
                f"ValueError before load_model() does not say 'not loaded': {exc}"
            ) from None
        return
    except Exception as exc:
        raise CheckFailure(
            f"predicting before load_model() raised {describe_exc(exc)}, "
            "expected ValueError mentioning 'not loaded'"
        ) from None
    raise CheckFailure(
        f"predicting before load_model() returned {show(result)}; expected ValueError 'not loaded'"
    )


# -- version --------------------------------------------------------------------------------


@check("version", "version-id")
def version_version_id(
    model_artifact: LoadedArtifact,
    deployment: Any,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """Records the version id, sha256, size, loader and library versions; the file on disk
    still has the content that was loaded and checked."""
    from deploy_gate.ledger import sha256_file

    for key, value in model_artifact.metadata().items():
        deploy_gate_property(key, value)
    served = getattr(deployment, "model_version", None)
    if served is not None and served != model_artifact.version_id:
        deploy_gate_property("deployment_model_version", served)
    on_disk = sha256_file(model_artifact.path)
    if on_disk != model_artifact.sha256:
        raise CheckFailure(
            f"{model_artifact.path} changed during the gate run: sha256 {on_disk[:12]}... on disk, "
            f"{model_artifact.sha256[:12]}... when loaded and checked"
        )


def _ledger_in_use(profile: ModelProfile | None, settings: Settings) -> bool:
    return bool(settings.record) or Path(settings.ledger).exists()


@check("version", "ledger", applies=_ledger_in_use)
def version_ledger(
    model_artifact: LoadedArtifact,
    deploy_gate_settings: Settings,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """Against the ledger: a re-deploy of a recorded hash is named; a version id recorded for
    other bytes is refused."""
    from deploy_gate.ledger import Ledger

    settings_ledger = Path(deploy_gate_settings.ledger)
    ledger = Ledger(settings_ledger)
    if not ledger.exists():
        pytest.skip(f"no ledger yet at {settings_ledger}: --deploy-gate-record starts one")
    if ledger.collides(model_artifact.version_id, model_artifact.sha256):
        raise CheckFailure(
            f"version id {model_artifact.version_id} is already recorded in {settings_ledger} "
            "for other bytes: refusing a colliding version"
        )
    earlier = ledger.by_sha256(model_artifact.sha256)
    if earlier is not None:
        deploy_gate_property("redeploy_of", earlier.version)
        deploy_gate_property("redeploy_recorded_at", earlier.recorded_at)
    current = ledger.current()
    if current is not None:
        deploy_gate_property("ledger_current", current.version)


def _pinned(profile: ModelProfile | None, settings: Settings) -> bool:
    return settings.pin is not None


@check("version", "pinned-hash", applies=_pinned)
def version_pinned_hash(
    deploy_gate: Gate,
    deploy_gate_artifact_path: Path,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """The artifact matches its hash in the pin file (deploy_gate_pin), checked before loading."""
    from deploy_gate.ledger import sha256_file
    from deploy_gate.safeload import find_pin, read_pins

    pin_file = Path(deploy_gate.settings.pin)
    pinned = find_pin(deploy_gate_artifact_path, read_pins(pin_file), pin_file.parent)
    if pinned is None:
        pytest.skip(f"{deploy_gate_artifact_path.name} is not listed in {pin_file}")
    deploy_gate_property("pinned_sha256", pinned)
    mismatch = deploy_gate.pin_mismatch(deploy_gate_artifact_path)
    if mismatch is not None:
        raise CheckFailure(mismatch)
    deploy_gate_property("sha256", sha256_file(deploy_gate_artifact_path))


# -- baseline comparison and rollout --------------------------------------------------------


class ColumnSelector:
    """Hands a deployment only the columns its model takes, so a candidate and a baseline with
    different features can be fed the same table."""

    def __init__(self, deployment: Any, names: Sequence[str] | None) -> None:
        self.deployment = deployment
        self.names = list(names) if names is not None else None
        self.classes = getattr(deployment, "classes", None)
        self.supports_proba = has_proba(deployment)

    def _rows(self, rows: pd.DataFrame) -> pd.DataFrame:
        return rows if self.names is None else rows[self.names]

    def batch_predict(self, rows: pd.DataFrame) -> Any:
        return self.deployment.batch_predict(self._rows(rows))

    def batch_predict_proba(self, rows: pd.DataFrame) -> Any:
        return self.deployment.batch_predict_proba(self._rows(rows))


@dataclass(frozen=True)
class BaselineRun:
    """The baseline's deployment and the table both models are fed (the ``deploy_gate_baseline``
    fixture)."""

    artifact: LoadedArtifact
    deployment: Any
    feature_names: tuple[str, ...] | None


def _with_baseline(profile: ModelProfile | None, settings: Settings) -> bool:
    return settings.baseline is not None


def baseline_checks(profile: ModelProfile | None, settings: Settings) -> list[Check]:
    """``baseline[<metric>]`` per metric, then ``baseline[error-rate]`` and
    ``baseline[prediction-shift]``; none without --deploy-gate-baseline."""
    from deploy_gate.compare import default_metrics

    if settings.baseline is None:
        return []
    names: tuple[str, ...] = ()
    if settings.metrics is not None:
        names = tuple(settings.metrics)
    elif profile is not None and profile.task == "classifier":
        names = default_metrics("classification", has_proba=profile.has_proba)
    elif profile is not None and profile.task == "regressor":
        names = default_metrics("regression")
    return [Check("baseline", name, _metric_check(name), _with_baseline) for name in names] + [
        Check("baseline", "error-rate", baseline_error_rate, _with_baseline),
        Check("baseline", "prediction-shift", baseline_prediction_shift, _with_baseline),
    ]


def comparison(
    gate: Gate, artifact: LoadedArtifact, deployment: Any, baseline: BaselineRun, data: GateData
) -> Any:
    """compare_models() for this candidate against the baseline, computed once per artifact."""
    from deploy_gate.compare import compare_models

    def compute() -> Any:
        settings = gate.settings
        return compare_models(
            ColumnSelector(deployment, tuple(data.features.columns)),
            ColumnSelector(baseline.deployment, baseline.feature_names),
            data.table,
            data.target,
            metrics=settings.metrics,
            min_relative=settings.min_relative,
            max_error_ratio=settings.max_error_ratio,
            error_floor=settings.error_floor,
            max_psi=settings.max_shift,
            max_label_flips=settings.max_label_flips,
        )

    return gate.cached(("comparison", artifact.path.resolve()), compute)


def _record_baseline(baseline: BaselineRun, record: Callable[[str, object], None]) -> None:
    record("baseline_version", baseline.artifact.version_id)
    record("baseline_sha256", baseline.artifact.sha256)


def _metric_check(metric: str) -> Callable[..., None]:
    def baseline_metric(
        deploy_gate: Gate,
        model_artifact: LoadedArtifact,
        deployment: Any,
        deploy_gate_baseline: BaselineRun,
        deploy_gate_data: GateData,
        deploy_gate_property: Callable[[str, object], None],
    ) -> None:
        require_real_rows(deploy_gate_data)
        result = comparison(
            deploy_gate, model_artifact, deployment, deploy_gate_baseline, deploy_gate_data
        )
        _record_baseline(deploy_gate_baseline, deploy_gate_property)
        skipped = dict(result.skipped)
        if metric in skipped:
            pytest.skip(f"{metric}: {skipped[metric]}")
        found = [m for m in result.metrics if m.metric == metric]
        if not found:
            pytest.skip(f"{metric} was not computed")
        m = found[0]
        deploy_gate_property("metric", metric)
        for name in ("candidate", "baseline", "ratio", "threshold", "n"):
            deploy_gate_property(name, getattr(m, name))
        if not m.passed:
            raise CheckFailure(m.message)

    baseline_metric.__doc__ = (
        f"The candidate's {metric} reaches the floor relative to the baseline."
    )
    return baseline_metric


def baseline_error_rate(
    deploy_gate: Gate,
    model_artifact: LoadedArtifact,
    deployment: Any,
    deploy_gate_baseline: BaselineRun,
    deploy_gate_data: GateData,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """The candidate's error rate is at most deploy_gate_max_error_ratio x the baseline's."""
    require_real_rows(deploy_gate_data)
    result = comparison(
        deploy_gate, model_artifact, deployment, deploy_gate_baseline, deploy_gate_data
    ).error_rate
    _record_baseline(deploy_gate_baseline, deploy_gate_property)
    deploy_gate_property("candidate_error_rate", result.candidate.rate)
    deploy_gate_property("baseline_error_rate", result.baseline.rate)
    deploy_gate_property("limit", result.limit)
    if not result.passed:
        raise CheckFailure(result.message)


def baseline_prediction_shift(
    deploy_gate: Gate,
    model_artifact: LoadedArtifact,
    deployment: Any,
    deploy_gate_baseline: BaselineRun,
    deploy_gate_data: GateData,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """PSI of the scores and the share of changed labels between candidate and baseline stay
    under deploy_gate_max_shift and deploy_gate_max_label_flips."""
    require_real_rows(deploy_gate_data)
    shift = comparison(
        deploy_gate, model_artifact, deployment, deploy_gate_baseline, deploy_gate_data
    ).shift
    _record_baseline(deploy_gate_baseline, deploy_gate_property)
    if shift is None:
        pytest.skip("no outputs to compare: both models failed on every row")
    deploy_gate_property("psi", shift.psi)
    if shift.label_flips is not None:
        deploy_gate_property("label_flips", shift.label_flips)
    if not shift.passed:
        raise CheckFailure(shift.message)


def rollout_checks(settings: Settings) -> list[Check]:
    """``rollout[5%]`` ... ``rollout[100%]``; none without --deploy-gate-baseline."""
    from deploy_gate.rollout import StageResult

    if settings.baseline is None:
        return []
    labels = [StageResult(share, "advanced", "").label for share in settings.rollout_stages]
    return [
        Check("rollout", label, _stage_check(index, label), _with_baseline)
        for index, label in enumerate(labels)
    ]


def rollout_results(
    gate: Gate, artifact: LoadedArtifact, deployment: Any, baseline: BaselineRun, data: GateData
) -> Any:
    """The simulated rollout of this candidate, replayed once per artifact."""
    from deploy_gate.rollout import simulate_rollout

    def compute() -> Any:
        settings = gate.settings
        assert data.target is not None  # the stage checks skip without labels
        return simulate_rollout(
            ColumnSelector(deployment, tuple(data.features.columns)),
            ColumnSelector(baseline.deployment, baseline.feature_names),
            data.table,
            data.target,
            stages=settings.rollout_stages,
            key=settings.rollout_key,
            order_by=settings.rollout_order_by,
            confidence=settings.rollout_confidence,
            min_samples=settings.rollout_min_samples,
            seed=settings.rollout_seed,
            min_relative=settings.min_relative,
            max_error_ratio=settings.max_error_ratio,
            error_floor=settings.error_floor,
        )

    return gate.cached(("rollout", artifact.path.resolve()), compute)


def _stage_check(index: int, label: str) -> Callable[..., None]:
    def rollout_stage(
        deploy_gate: Gate,
        model_artifact: LoadedArtifact,
        deployment: Any,
        deploy_gate_baseline: BaselineRun,
        deploy_gate_data: GateData,
        deploy_gate_property: Callable[[str, object], None],
    ) -> None:
        require_real_rows(deploy_gate_data)
        if deploy_gate_data.target is None:
            pytest.skip("the rollout is judged on labels: pass --deploy-gate-target")
        results = rollout_results(
            deploy_gate, model_artifact, deployment, deploy_gate_baseline, deploy_gate_data
        )
        stage = results[index]
        _record_baseline(deploy_gate_baseline, deploy_gate_property)
        deploy_gate_property("stage", label)
        deploy_gate_property("status", stage.status)
        deploy_gate_property("rows", stage.rows)
        deploy_gate_property("candidate_requests", stage.candidate_requests)
        if stage.outcome == "skipped":
            pytest.skip(stage.message)
        if stage.outcome == "failed":
            raise CheckFailure(stage.message)

    rollout_stage.__doc__ = f"The simulated rollout passes the {label} stage without rollback."
    return rollout_stage


# -- drift ----------------------------------------------------------------------------------


def drift_features(profile: ModelProfile | None, settings: Settings) -> tuple[str, ...]:
    """The features drift is judged on: the model's, else the saved profile's, else the data's."""
    from deploy_gate.data import read_columns

    if profile is not None and profile.feature_names is not None:
        return profile.feature_names
    if settings.profile is not None:
        from deploy_gate.drift import Profile

        return Profile.load(settings.profile).feature_names
    if settings.data is not None:
        return tuple(c for c in read_columns(settings.data) if c != settings.target)
    return ()


def drift_checks(profile: ModelProfile | None, settings: Settings) -> list[Check]:
    """``drift[<feature>]`` per feature and ``drift[prediction]`` with --deploy-gate-current;
    ``drift[save-profile]`` with --deploy-gate-save-profile."""
    checks = []
    if settings.current is not None:
        checks = [
            Check("drift", name, _drift_check(name)) for name in drift_features(profile, settings)
        ]
        checks.append(Check("drift", "prediction", _drift_check("prediction")))
    if settings.save_profile is not None:
        checks.append(Check("drift", "save-profile", drift_save_profile))
    return checks


def _scores(deployment: Any, names: Sequence[str]) -> Callable[[pd.DataFrame], Any]:
    from deploy_gate.drift import prediction_scores

    def predict(rows: pd.DataFrame) -> Any:
        rows = rows[list(names)]
        out = (
            deployment.batch_predict_proba(rows)
            if has_proba(deployment)
            else deployment.batch_predict(rows)
        )
        return prediction_scores(v.as_array(out))

    return predict


def drift_results(
    gate: Gate, artifact: LoadedArtifact, deployment: Any, data: GateData | None
) -> dict[str, Any]:
    """Drift of every feature and of the predictions, computed once per artifact; the current
    data is streamed in chunks."""
    from deploy_gate.drift import (
        DriftThresholds,
        Profile,
        detect_drift,
        drift_against_profile,
        iter_chunks,
    )

    def compute() -> dict[str, Any]:
        settings = gate.settings
        names = list(drift_features(artifact.profile, settings))
        thresholds = DriftThresholds(
            psi_threshold=settings.drift_psi,
            pvalue=settings.drift_pvalue,
            ks_floor=settings.drift_effect_floor,
            cramers_v_floor=settings.drift_effect_floor,
        )
        current = iter_chunks(settings.current, columns=names)
        predict = _scores(deployment, names)
        if settings.profile is not None:
            results = drift_against_profile(
                Profile.load(settings.profile),
                current,
                features=names,
                thresholds=thresholds,
                predict=predict,
            )
        else:
            if data is None or data.synthetic:
                raise _DriftSkip(
                    "drift needs reference rows: pass --deploy-gate-data (the rows the model was "
                    "validated on) or --deploy-gate-profile"
                )
            results = detect_drift(
                data.table[names], current, features=names, thresholds=thresholds, predict=predict
            )
        return {r.feature if r.kind != "prediction" else "prediction": r for r in results}

    return gate.cached(("drift", artifact.path.resolve()), compute)  # type: ignore[no-any-return]


class _DriftSkip(Exception):
    pass


def _drift_check(feature: str) -> Callable[..., None]:
    def drift(
        deploy_gate: Gate,
        model_artifact: LoadedArtifact,
        deployment: Any,
        deploy_gate_property: Callable[[str, object], None],
    ) -> None:
        from deploy_gate.errors import DataError

        data = deploy_gate.data_for(model_artifact)
        try:
            results = drift_results(
                deploy_gate, model_artifact, deployment, data if not isinstance(data, str) else None
            )
        except _DriftSkip as exc:
            pytest.skip(str(exc))
        except DataError as exc:
            raise CheckFailure(f"drift could not be computed: {exc}") from None
        result = results.get(feature)
        if result is None:
            pytest.skip(
                f"no drift figure for {feature!r}"
                + (": the profile was saved without predictions" if feature == "prediction" else "")
            )
        for name, value in result.properties():
            deploy_gate_property(name, value)
        if not result.passed:
            raise CheckFailure(result.message)

    drift.__doc__ = (
        "The model's scores on current rows are distributed like on the reference rows."
        if feature == "prediction"
        else f"Feature {feature!r} of the current rows is distributed like in the reference."
    )
    return drift


def drift_save_profile(
    deploy_gate: Gate,
    model_artifact: LoadedArtifact,
    deployment: Any,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """Writes the reference profile of --deploy-gate-data to --deploy-gate-save-profile."""
    from deploy_gate.drift import build_profile, iter_chunks

    settings = deploy_gate.settings
    if settings.data is None:
        pytest.skip("a profile is built from --deploy-gate-data: pass the reference rows")
    names = list(drift_features(model_artifact.profile, settings))
    profile = build_profile(
        iter_chunks(settings.data, columns=names),
        features=names,
        predict=_scores(deployment, names),
    )
    target = Path(settings.save_profile)
    target.parent.mkdir(parents=True, exist_ok=True)
    profile.save(target)
    deploy_gate_property("profile_path", str(target))
    deploy_gate_property("profile_rows", profile.rows)
    deploy_gate_property("profile_bytes", target.stat().st_size)


# -- latency --------------------------------------------------------------------------------

PERCENTILES = ("p50", "p95", "p99")
#: Rows (or batches) the latency measurement cycles through.
LATENCY_INPUTS = 200


def latency_budgets(settings: Settings) -> dict[tuple[str, int], float | None]:
    """``{(percentile, batch): budget_ms}``: p99 of single rows is 50 ms unless configured."""
    budgets: dict[tuple[str, int], float | None] = {("p99", 1): 50.0}
    for label, batch, value in settings.latency_budget or ():
        budgets[(label, batch)] = value
    return budgets


def latency_checks(settings: Settings) -> list[Check]:
    """``latency[p50-batch=1]`` ... per batch size, and ``latency[p99-vs-baseline-batch=N]``
    with a baseline."""
    budgets = latency_budgets(settings)
    checks = []
    for batch in settings.latency_batch_sizes:
        labels = dict.fromkeys([*PERCENTILES, *(p for p, b in budgets if b == batch)])
        checks += [
            Check("latency", f"{label}-batch={batch}", _latency_check(label, batch))
            for label in labels
        ]
        if settings.baseline is not None:
            checks.append(
                Check(
                    "latency",
                    f"p99-vs-baseline-batch={batch}",
                    _latency_vs_baseline_check(batch),
                    _with_baseline,
                )
            )
    return checks


def _latency_settings(settings: Settings) -> Any:
    from deploy_gate.latency import LatencySettings

    return LatencySettings(
        threads=settings.latency_threads,
        disable_gc=settings.latency_gc == "off",
        max_seconds=float(settings.latency_max_seconds),
    )


def _latency_inputs(
    deployment: Any, data: GateData, batch: int, names: Sequence[str] | None = None
) -> tuple[Callable[[Any], object], list[Any]]:
    """The call to time and the inputs it cycles through: real rows, one mapping per call for
    single rows, DataFrames of ``batch`` rows otherwise."""
    table = data.table
    rows = table[list(names)] if names is not None else data.features
    if batch == 1:
        return deployment.predict_single, _records(rows.iloc[:LATENCY_INPUTS])
    n = len(rows)
    frames = [
        rows.take([(start + i) % n for i in range(batch)])
        for start in range(0, batch * min(LATENCY_INPUTS // 4, max(1, n // batch + 1)), batch)
    ]
    return deployment.batch_predict, frames


def latency_measurement(
    gate: Gate, artifact: LoadedArtifact, deployment: Any, data: GateData, batch: int
) -> Any:
    """One measurement per artifact and batch size; it feeds all percentile items of the size."""
    from deploy_gate.latency import LatencyMeasurement

    def compute() -> Any:
        budgets = latency_budgets(gate.settings)
        fn, inputs = _latency_inputs(deployment, data, batch)
        labels = dict.fromkeys([*PERCENTILES, *(p for p, b in budgets if b == batch)])
        return LatencyMeasurement(
            fn,
            inputs,
            {label: budgets.get((label, batch)) for label in labels},
            batch_size=batch,
            settings=_latency_settings(gate.settings),
        )

    return gate.cached(("latency", artifact.path.resolve(), batch), compute)


def _histogram(durations_ns: Sequence[Any]) -> str:
    import numpy as np

    values = np.concatenate([np.asarray(d, dtype=float) for d in durations_ns]) / 1e6
    if values.size == 0:
        return json.dumps({"edges_ms": [], "counts": []})
    high = float(np.quantile(values, 0.999))
    counts, edges = np.histogram(np.clip(values, None, high), bins=30)
    return json.dumps(
        {"edges_ms": [round(float(e), 6) for e in edges], "counts": [int(c) for c in counts]}
    )


def _judge_latency(verdict: Any, settings: Settings, record: Callable[[str, object], None]) -> None:
    import warnings

    from deploy_gate.errors import LatencyInconclusiveWarning
    from deploy_gate.latency import LatencyStatus

    record("percentile", verdict.percentile)
    record("batch", verdict.batch_size)
    record("value", verdict.value)
    for name, value in verdict.figures.items():
        record(name, value)
    if verdict.status == LatencyStatus.FAILED:
        raise CheckFailure(verdict.message)
    if verdict.status == LatencyStatus.INCONCLUSIVE:
        if settings.latency_inconclusive == "warn":
            record("inconclusive_warned", True)
            warnings.warn(LatencyInconclusiveWarning(verdict.message), stacklevel=2)
            return
        raise CheckFailure(verdict.message)


def _latency_check(label: str, batch: int) -> Callable[..., None]:
    def latency(
        deploy_gate: Gate,
        model_artifact: LoadedArtifact,
        deployment: Any,
        deploy_gate_data: GateData,
        deploy_gate_property: Callable[[str, object], None],
    ) -> None:
        measurement = latency_measurement(
            deploy_gate, model_artifact, deployment, deploy_gate_data, batch
        )
        verdict = measurement.verdict(label)
        # Before judging, so a failed check keeps its histogram and rounds for the reports.
        deploy_gate_property("histogram", _histogram(measurement.durations_ns()))
        rounds = [round(float(x), 6) for x in measurement.round_values_ms(label)]
        deploy_gate_property("round_values_ms", json.dumps(rounds))
        _judge_latency(verdict, deploy_gate.settings, deploy_gate_property)

    latency.__doc__ = f"{label} latency of batches of {batch} is within its budget (or measured)."
    return latency


def _latency_vs_baseline_check(batch: int) -> Callable[..., None]:
    def latency_vs_baseline(
        deploy_gate: Gate,
        model_artifact: LoadedArtifact,
        deployment: Any,
        deploy_gate_baseline: BaselineRun,
        deploy_gate_data: GateData,
        deploy_gate_property: Callable[[str, object], None],
    ) -> None:
        from deploy_gate.latency import LatencyComparison

        def compute() -> Any:
            settings = deploy_gate.settings
            cand_fn, cand_inputs = _latency_inputs(deployment, deploy_gate_data, batch)
            base_fn, base_inputs = _latency_inputs(
                deploy_gate_baseline.deployment,
                deploy_gate_data,
                batch,
                deploy_gate_baseline.feature_names or tuple(deploy_gate_data.features.columns),
            )
            pairs = list(zip(cand_inputs, base_inputs, strict=True))
            return LatencyComparison(
                lambda pair: cand_fn(pair[0]),
                lambda pair: base_fn(pair[1]),
                pairs,
                max_ratio=settings.latency_max_ratio,
                noise_floor_ms=settings.latency_noise_floor,
                batch_size=batch,
                settings=_latency_settings(settings),
            ).verdict()

        verdict = deploy_gate.cached(
            ("latency-vs-baseline", model_artifact.path.resolve(), batch), compute
        )
        _record_baseline(deploy_gate_baseline, deploy_gate_property)
        _judge_latency(verdict, deploy_gate.settings, deploy_gate_property)

    latency_vs_baseline.__doc__ = (
        f"Batches of {batch} are at most deploy_gate_latency_max_ratio times slower than the "
        "baseline's, timed interleaved in the same run."
    )
    return latency_vs_baseline


def iter_checks(extra: Iterable[Iterable[Check]]) -> list[Check]:
    """Flatten the hook results into one list, keeping the first of any duplicate name."""
    seen: set[str] = set()
    out: list[Check] = []
    for group in extra:
        for item in group or ():
            if item.name not in seen:
                seen.add(item.name)
                out.append(item)
    return out
