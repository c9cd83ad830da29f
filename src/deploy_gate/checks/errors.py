"""Error scenarios: how the deployment handles missing files, bad features and bad rows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from deploy_gate import validation as v
from deploy_gate.checks import Check, check, declared
from deploy_gate.checks.common import (
    first_row,
    has_proba,
    is_clear_error,
    numeric_feature,
    output_tolerance,
    predict,
    require_one_per_row,
    same_outputs,
    sample,
    show,
)
from deploy_gate.errors import CheckFailure, describe_exc

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from deploy_gate.artifact import LoadedArtifact, ModelProfile
    from deploy_gate.data import GateData
    from deploy_gate.deployment import Deployment
    from deploy_gate.options import Settings

#: The string fed to a numeric feature by errors[wrong-dtype].
NOT_A_NUMBER = "deploy-gate-not-a-number"
#: A feature name no model knows, fed by errors[unknown-feature].
UNKNOWN_FEATURE = "deploy_gate_unknown_feature"
#: A category value no model was fitted on, fed by errors[unseen-category].
UNSEEN_CATEGORY = "deploy-gate-unseen-category"


def _factory_reaches(
    deployment: Deployment, deploy_gate_factory: Callable[[Path], Deployment], path: Path
) -> Deployment:
    """A fresh, unloaded deployment from the factory, or a skip when the project overrides
    ``deployment`` but not ``deployment_factory`` (the check would judge the wrong class)."""
    fresh = deploy_gate_factory(path)
    if _kind(fresh) != _kind(deployment):
        pytest.skip(
            f"deployment is a {_kind(deployment)} but deployment_factory makes "
            f"{_kind(fresh)}: override deployment_factory too to check loading"
        )
    return fresh


def _kind(deployment: Deployment) -> str:
    """The class name of a deployment, or of the object a model worker proxy stands for."""
    from deploy_gate.worker import remote

    where = remote(deployment)
    if where is not None:
        return where.type_name.rpartition(".")[2] or "object"
    return type(deployment).__name__


@check("errors", "missing-artifact")
def errors_missing_artifact(
    deployment: Deployment, deploy_gate_factory: Callable[[Path], Deployment], tmp_path: Path
) -> None:
    """Loading a missing file raises FileNotFoundError naming the path."""
    missing = tmp_path / "no-such-model.joblib"
    try:
        _factory_reaches(deployment, deploy_gate_factory, missing).load_model()
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


def _expect_key_error(call: Callable[[], object], name: str, what: str) -> None:
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
def errors_unknown_feature(deployment: Deployment, deploy_gate_data: GateData) -> None:
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
def errors_missing_feature(deployment: Deployment, deploy_gate_data: GateData) -> None:
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


def _each_feature_edited(
    deployment: Deployment,
    deploy_gate_data: GateData,
    model_artifact: LoadedArtifact,
    columns: list[Any],
    edit: Callable[[pd.DataFrame, Any], None],
    shown_value: str,
) -> list[str]:
    """The first row with one feature edited at a time (``edit(row, column)`` in place): a line
    per feature whose output is invalid or whose error is not a clear ValueError, naming it as
    ``column=shown_value``.

    The edited rows go first as one batch, and only when the batch is refused or answered with
    an invalid output is each row sent alone, to name the features. A table of 500 features
    took 500 single-row calls through the worker's codec, and the check outlived its deadline
    on a busy machine; a model that takes every edited row answers them in one call.
    """
    base = deploy_gate_data.features.iloc[[0]]
    failures: list[str] = []
    classes = getattr(deployment, "classes", None) or model_artifact.profile.classes
    rows = []
    for column in columns:
        row = base.copy()
        edit(row, column)
        rows.append(row)
    batch = _stacked(rows, columns) if len(rows) > 1 else None
    if batch is not None and _answers_validly(deployment, batch, classes):
        return []
    for column, row in zip(columns, rows, strict=True):
        try:
            out, proba = _outputs(deployment, row)
        except Exception as exc:
            if is_clear_error(exc):
                continue
            failures.append(
                f"  {column}={shown_value}: {describe_exc(exc)} (not a clear ValueError)"
            )
            continue
        problems = v.find_problems(out, n_rows=1, proba=proba, classes=classes)
        if problems:
            shown = show(out) if proba is None else f"{show(out)} with probabilities {show(proba)}"
            failures.append(
                f"  {column}={shown_value}: invalid output {shown} "
                f"({'; '.join(map(str, problems))})"
            )
    return failures


def _stacked(rows: list[pd.DataFrame], columns: list[Any]) -> pd.DataFrame | None:
    """The edited rows as one frame, ``columns[i]`` edited in ``rows[i]``, each column of the
    dtype its edited row gave it, as when that row is sent alone; None when a column cannot be
    cast to it. pandas would otherwise make a float column with NaN and integers a nullable
    ``Float64`` holding ``NA``, which scikit-learn cannot read, and a categorical column with a
    new category an object column, which a model reading pandas' categories (LightGBM)
    refuses."""
    import numpy as np
    import pandas as pd

    batch = pd.concat(rows, ignore_index=True)
    for column, row in zip(columns, rows, strict=True):
        dtype = row[column].dtype
        if batch[column].dtype == dtype:
            continue
        try:
            if isinstance(dtype, np.dtype) and dtype.kind == "f":  # pandas' NA (other rows) as NaN
                batch[column] = batch[column].to_numpy(dtype=dtype, na_value=np.nan)
            else:
                batch[column] = batch[column].astype(dtype)
        except (TypeError, ValueError):  # each row alone, then
            return None
    return batch


def _outputs(deployment: Deployment, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """The deployment's outputs on ``rows``, and its probabilities where it serves them."""
    out = predict(deployment, rows)
    proba = v.as_array(deployment.batch_predict_proba(rows)) if has_proba(deployment) else None
    return out, proba


def _answers_validly(deployment: Deployment, batch: pd.DataFrame, classes: Any) -> bool:
    """Whether the deployment answers every row of ``batch`` with a valid output (and valid
    probabilities, where it serves them) without raising."""
    try:
        out, proba = _outputs(deployment, batch)
    except Exception:  # the rows alone say which feature it was
        return False
    return not v.find_problems(out, n_rows=len(batch), proba=proba, classes=classes)


@check("errors", "nan-input")
def errors_nan_input(
    deployment: Deployment, deploy_gate_data: GateData, model_artifact: LoadedArtifact
) -> None:
    """NaN in any feature gives a valid output or a clear ValueError, never NaN or a crash."""
    import numpy as np
    import pandas as pd

    def to_nan(row: pd.DataFrame, column: Any) -> None:
        row[column] = (
            row[column].astype(float)
            if pd.api.types.is_numeric_dtype(row[column])
            else row[column].astype(object)
        )
        row.loc[row.index[0], column] = np.nan

    features = deploy_gate_data.features
    failures = _each_feature_edited(
        deployment, deploy_gate_data, model_artifact, list(features.columns), to_nan, "NaN"
    )
    if failures:
        raise CheckFailure(
            f"NaN input mishandled for {len(failures)} of {len(features.columns)} features\n"
            + "\n".join(failures)
            + "\nA request with such a field missing gets this from the service: impute the "
            "feature in the model (a text feature too), or gate the serving code that refuses "
            "it, through a deployment_factory whose deployment raises a ValueError naming it"
        )


@check("errors", "unseen-category")
def errors_unseen_category(
    deployment: Deployment, deploy_gate_data: GateData, model_artifact: LoadedArtifact
) -> None:
    """A category value the model never saw, in any text or categorical feature, gives a valid
    output or a clear ValueError, never a crash or an invalid output.

    New values arrive in production (a new city, a new product code): a model that looks them
    up in a dict crashes with a KeyError on the first one, and a service answers a 500.
    """
    import pandas as pd

    def to_unseen(row: pd.DataFrame, column: Any) -> None:
        if isinstance(row[column].dtype, pd.CategoricalDtype):  # keeps the model's dtype
            row[column] = row[column].cat.add_categories([UNSEEN_CATEGORY])
        row.loc[row.index[0], column] = UNSEEN_CATEGORY

    features = deploy_gate_data.features
    # Text and categories only: a duration, period or interval column holds no category, and
    # pandas refuses a string in it (the gate's own edit would fail, not the model).
    columns = [
        column
        for column in features.columns
        if isinstance(features[column].dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(features[column])
        or pd.api.types.is_string_dtype(features[column])
    ]
    if not columns:
        pytest.skip("no text or categorical feature to put an unseen value into")
    failures = _each_feature_edited(
        deployment, deploy_gate_data, model_artifact, columns, to_unseen, repr(UNSEEN_CATEGORY)
    )
    if failures:
        raise CheckFailure(
            f"a value never seen before mishandled in {len(failures)} of {len(columns)} text "
            "or categorical features\n" + "\n".join(failures)
        )


@check("errors", "wrong-dtype")
def errors_wrong_dtype(deployment: Deployment, deploy_gate_data: GateData) -> None:
    """A string in a numeric feature gives a clear error, not a silent prediction.

    The feature is the first numeric one whose value the model reads: a pipeline that drops a
    column (an id left in the data, ``remainder="drop"``) cannot be asked about it, and
    accepting a string there changes nothing.
    """
    column = _numeric_feature_read(deployment, deploy_gate_data)
    row = deploy_gate_data.features.iloc[[0]].copy()
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


#: Numeric features tried, in order, for one the model reads (one batch of two rows each).
READ_PROBE_FEATURES = 50


def _numeric_feature_read(deployment: Deployment, data: GateData) -> Any:
    """The first numeric feature whose value changes the first row's output, moved to the
    smallest and the largest value the data holds; the first numeric feature when none shows
    it (a model that answers labels only may not change its label) or the model refuses the
    batch. Skips without a numeric feature."""
    import pandas as pd

    first = numeric_feature(data)
    features = data.features
    types = pd.api.types
    names = [
        c
        for c in features.columns
        if types.is_numeric_dtype(features[c]) and not types.is_bool_dtype(features[c])
    ][:READ_PROBE_FEATURES]
    if len(names) < 2:
        return first
    probe = features.iloc[[0] * (1 + 2 * len(names))].reset_index(drop=True)
    for i, name in enumerate(names):
        probe.loc[1 + 2 * i, name] = features[name].min()
        probe.loc[2 + 2 * i, name] = features[name].max()
    try:
        out, proba = _outputs(deployment, probe)
    except Exception:  # the string's own question decides; this one only chooses the feature
        return first
    for got in (out, proba):
        if got is None or got.ndim == 0 or len(got) != len(probe):
            return first
    for i, name in enumerate(names):
        moved = [1 + 2 * i, 2 + 2 * i]
        for got in (out, proba):
            if got is not None and not same_outputs(got[moved], got[[0, 0]]).all():
                return name
    return first


@check("errors", "empty-batch")
def errors_empty_batch(deployment: Deployment, deploy_gate_data: GateData) -> None:
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
def errors_reordered_columns(
    deployment: Deployment,
    deploy_gate_data: GateData,
    model_artifact: LoadedArtifact,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """Reordered columns give the same outputs or a clear error wherever names are claimed.

    A model that claims no names (an ONNX single tensor, a model fitted on an array) reads
    columns by position by contract: it passes, and the order it needs is recorded.
    """
    rows = deploy_gate_data.features.iloc[:200]
    if rows.shape[1] < 2:
        pytest.skip("a single feature cannot be reordered")
    model_names = model_artifact.profile.feature_names
    if model_names is None:
        # Positional by contract: whatever serves it must keep this order.
        deploy_gate_property("column_order", ", ".join(map(str, rows.columns)))
    changed = _reorder(lambda r: predict(deployment, r), rows)
    if changed is not None:
        summary, detail = changed
        claimed = _claims_names(deployment, model_names)
        if claimed is not None:
            raise CheckFailure(f"{summary}: {claimed}\n{detail}")
        deploy_gate_property(
            "positional",
            f"neither {_kind(deployment)} nor the model claims column names: "
            "the serving code must send the columns in column_order",
        )
    if model_names is not None and _is_gate_default(deployment):
        # The gate's own deployment lines columns up by name, which would hide how the model
        # reads them; the model is what ships, so it is asked directly.
        model = model_artifact.model
        changed = _reorder(lambda r: v.as_array(model.predict(r)), rows)
        if changed is not None:
            summary, detail = changed
            raise CheckFailure(
                f"{summary}: the model records feature names ({v.describe_names(model_names)}) "
                "but reads columns by position, not by name: a service that passes a request's "
                "fields in another order gets other answers and no error; serve it through a "
                "deployment_factory whose deployment selects the columns by name (README, "
                f"'Positional models')\n{detail}"
            )


def _reorder(
    call: Callable[[pd.DataFrame], np.ndarray], rows: pd.DataFrame
) -> tuple[str, str] | None:
    """How the outputs changed when the columns came in reverse order (a summary and the
    rows), or None when they did not or a clear error refused the other order. Outputs that
    already differ between two calls in the same order fail as not reproducible."""
    import numpy as np

    expected = call(rows.copy())
    require_one_per_row(expected, len(rows))
    try:
        got = call(rows[list(reversed(rows.columns))].copy())
    except Exception as exc:
        if is_clear_error(exc, (ValueError, KeyError)):
            return None
        raise CheckFailure(
            f"reordered columns raised {describe_exc(exc)}, "
            "expected the same outputs or a clear error"
        ) from None
    require_one_per_row(got, len(rows))
    tolerance = output_tolerance(expected, got)
    differ = [int(i) for i in np.flatnonzero(~same_outputs(expected, got, tolerance))]
    if not differ:
        return None
    again = call(rows.copy())
    unstable = [int(i) for i in np.flatnonzero(~same_outputs(expected, again, tolerance))]
    if unstable:
        raise CheckFailure(
            f"outputs are not reproducible: two calls with the columns in the same order "
            f"differ on {v.describe_rows(unstable, len(rows))} ({tolerance}; "
            "see smoke[deterministic]), so a change of order cannot be judged"
        )
    summary = (
        f"outputs changed on {v.describe_rows(differ, len(rows))} when the columns came in "
        f"reverse order ({tolerance})"
    )
    return summary, "\n".join(
        f"  row {i}: {show(expected[i])} became {show(got[i])}" for i in differ[:5]
    )


def _claims_names(deployment: Deployment, model_names: tuple[str, ...] | None) -> str | None:
    """Who claims column names (so must honour them), or None when nobody does: a deployment
    with ``feature_names`` None over a model that names no features is positional."""
    try:
        # Optional, not part of Deployment: missing is an AttributeError like any other error.
        names = getattr(deployment, "feature_names")  # noqa: B009
    except Exception:  # a proxy raises what the object in the worker raised
        # A wrapper of its own that takes DataFrames: it accepts named columns.
        return f"{_kind(deployment)} takes named columns and ignores their names"
    if names:
        return (
            f"{_kind(deployment)} takes named columns ({v.describe_names(names)}) and ignores "
            "their names"
        )
    if model_names is not None:
        return f"the model names its columns ({v.describe_names(model_names)}) and ignores them"
    return None


def _is_gate_default(deployment: Deployment) -> bool:
    """Whether ``deployment`` is the gate's own ModelDeployment (here or in a model worker),
    not a project's wrapper."""
    from deploy_gate.deployment import ModelDeployment
    from deploy_gate.worker import remote

    where = remote(deployment)
    if where is not None:
        return where.type_name == f"{ModelDeployment.__module__}.ModelDeployment"
    return type(deployment) is ModelDeployment


@check("errors", "input-mutation")
def errors_input_mutation(deployment: Deployment, deploy_gate_data: GateData) -> None:
    """Predicting leaves the caller's DataFrame unchanged."""
    from deploy_gate.gate import beside
    from deploy_gate.validation import input_changes

    features = deploy_gate_data.features
    rows = features.iloc[:50].copy()
    # Then rows with missing values: a model that fills them in place changes only those (NaN
    # at rows 100, 400 and 700 of 1000 went unseen in the first 50).
    later = features.iloc[50:]
    more = later[later.isna().any(axis=1)].iloc[:50].copy()
    probe = beside(deployment, "deploy_gate.worker.inside:InputMutationProbe")
    changed = input_changes(deployment, rows, more) if probe is None else probe.run(rows, more)
    for method, changes in changed.items():
        if changes:
            raise CheckFailure(f"{method} changed the caller's DataFrame: " + ", ".join(changes))


@check("errors", "not-loaded")
def errors_not_loaded(
    deployment: Deployment,
    deploy_gate_factory: Callable[[Path], Deployment],
    deploy_gate_artifact_path: Path,
    deploy_gate_data: GateData,
) -> None:
    """Predicting before load_model() raises ValueError mentioning "not loaded"."""
    fresh = _factory_reaches(deployment, deploy_gate_factory, deploy_gate_artifact_path)
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


def checks(profile: ModelProfile | None, settings: Settings) -> list[Check]:
    """The ``errors`` checks, as this module declares them."""
    return declared(__name__)
