"""Helpers the checks share: rows to feed, output comparison, error and value rendering."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard

import pytest

from deploy_gate import validation as v
from deploy_gate.capabilities import has_probabilities
from deploy_gate.errors import InvalidOutputError
from deploy_gate.validation import plain

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from deploy_gate.data import GateData
    from deploy_gate.deployment import Deployment, ProbabilisticDeployment

#: Rows compared row by row in smoke[batch-consistency] and timed in smoke[latency-sanity].
SAMPLE_ROWS = 20


def require_real_rows(data: GateData) -> None:
    if data.synthetic:
        pytest.skip(
            f"needs realistic rows, and the gate has only {data.source}: "
            "pass --deploy-gate-data with sample or holdout rows"
        )


def first_row(data: GateData) -> dict[str, Any]:
    return records(data.features.iloc[:1])[0]


def sample(data: GateData, n: int = SAMPLE_ROWS) -> pd.DataFrame:
    return data.features.iloc[:n]


def numeric_feature(data: GateData) -> Any:
    """The label of the first numeric (not boolean) feature, to put a string into; skips
    without one."""
    import pandas as pd

    features = data.features
    for column in features.columns:
        dtype = features[column]
        if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            return column
    pytest.skip("no numeric feature to put a string into")


def has_proba(deployment: Deployment) -> TypeGuard[ProbabilisticDeployment]:
    """Whether the deployment serves probabilities (``supports_proba`` may say it does not):
    :func:`deploy_gate.capabilities.has_probabilities`, under the name the checks use.

    A deployment has ``batch_predict``, so this is true only where it also has a callable
    ``batch_predict_proba``: it may then be called as a :class:`ProbabilisticDeployment`."""
    return has_probabilities(deployment)


def predict(deployment: Deployment, rows: pd.DataFrame) -> np.ndarray:
    """Call the deployment and return its output as an array (the model's errors propagate)."""
    return v.as_array(deployment.batch_predict(rows))


@dataclass(frozen=True)
class Tolerance:
    """How closely two outputs that should be equal must agree, and why."""

    rtol: float
    why: str

    def __str__(self) -> str:
        if not self.rtol:
            return f"compared exactly: {self.why}"
        return f"relative tolerance {self.rtol:g} for {self.why}"


def output_tolerance(a: np.ndarray, b: np.ndarray) -> Tolerance:
    """The tolerance of comparing ``a`` with ``b``: that of the lower precision of the two (a
    float32 batch against single rows that came back as Python floats is float32)."""
    order = ("float16", "float32", "float64")
    floats = [p for p in (v.precision(a), v.precision(b)) if p in order]
    if not floats:
        return Tolerance(0.0, "labels and integers")
    lowest = min(floats, key=order.index)
    why = f"{lowest} outputs"
    if lowest == "float32" and "float32" not in (a.dtype.name, b.dtype.name):
        why += " (wider floats, each one a float32 number: computed in float32)"
    return Tolerance(v.RELATIVE_TOLERANCE[lowest], why)


def proba_tolerance(a: np.ndarray, b: np.ndarray) -> Tolerance:
    """The tolerance of comparing probabilities: their dtype's, but never finer than float32's.
    Runtimes that compute in float32 often hand probabilities back as float64 (ONNX's
    zipmap), and a batch rounds them differently from one row at the 7th digit; the faults
    compared for (probabilities that depend on the batch or change from call to call) move
    them by hundredths."""
    tolerance = output_tolerance(a, b)
    floor = v.RELATIVE_TOLERANCE["float32"]
    if tolerance.rtol >= floor:
        return tolerance
    return Tolerance(floor, "probabilities (as float32 at best: runtimes compute them so)")


def same_outputs(a: np.ndarray, b: np.ndarray, tolerance: Tolerance | None = None) -> np.ndarray:
    """Row mask of outputs that agree: numbers within ``tolerance`` (by default the one of
    their dtype, :func:`output_tolerance`) relative to the larger of the two or to the typical
    (median) output of the column, so that rounding in a sum that nearly cancels to 0 is not a
    change; anything else exactly."""
    import numpy as np

    if a.shape != b.shape:
        return np.zeros(len(a), dtype=bool)
    fa, fb = v.numeric_view(a), v.numeric_view(b)
    if fa is not None and fb is not None:
        rtol = (tolerance or output_tolerance(a, b)).rtol
        magnitudes = np.abs(np.concatenate([fa, fb]))
        magnitudes[~np.isfinite(magnitudes)] = np.nan
        # NaN and Inf have no size and no difference: equal_nan and isclose judge them.
        with warnings.catch_warnings(), np.errstate(invalid="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column has no scale
            scale = np.nan_to_num(np.nanmedian(magnitudes, axis=0)) if len(magnitudes) else 0.0
            near = np.abs(fa - fb) <= rtol * scale
        close = np.isclose(fa, fb, rtol=rtol, atol=0.0, equal_nan=True) | near
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


def show(value: Any) -> str:
    """A model output as a person reads it: 0.25, 'yes', [0.2 0.9]."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return np.array2string(value, precision=6, separator=", ")
    return fmt(plain(value))


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value)


def require_one_per_row(outputs: np.ndarray, n_rows: int) -> None:
    """Comparisons need one output per row; a wrong count is smoke[batch]'s finding."""
    if v.length_problem(outputs, n_rows) is not None:
        pytest.skip(
            f"cannot compare outputs: batch_predict gave {len(outputs)} for {n_rows} rows "
            "(see smoke[batch])"
        )


def records(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows as the mappings a client sends to ``predict_single``, of Python values.

    A missing value of a nullable column (``Int64``, ``boolean``, ``string``: pandas' ``NA``)
    becomes what a missing value is elsewhere in the gate: NaN in a column of numbers or flags
    (what pandas and scikit-learn turn ``NA`` into when they read the column as a batch), None
    in any other column. ``NA`` itself is pandas' own marker, which no client sends and
    scikit-learn cannot read: a healthy model fitted on an ``Int64`` column with gaps failed
    every single-row check with ``TypeError: float() argument must be ... not 'NAType'``.
    """
    import math

    import pandas as pd

    na = pd.NA
    missing = {
        column: math.nan
        if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)
        else None
        for column, dtype in rows.dtypes.items()
    }
    return [
        {str(k): missing[k] if val is na else plain(val) for k, val in row.items()}
        for _, row in rows.iterrows()
    ]
