"""Helpers the checks share: rows to feed, output comparison, error and value rendering."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from deploy_gate import validation as v
from deploy_gate.errors import InvalidOutputError
from deploy_gate.validation import plain

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from deploy_gate.data import GateData

#: Batch and row-by-row outputs, and repeated outputs, must agree within this relative tolerance.
RTOL = 1e-9
#: Rows compared row by row in smoke[batch-consistency] and timed in smoke[latency-sanity].
SAMPLE_ROWS = 20


def require_real_rows(data: GateData) -> None:
    if data.synthetic:
        pytest.skip(
            f"needs realistic rows, and the gate has only {data.source}: "
            "pass --deploy-gate-data with sample or holdout rows"
        )


def first_row(data: GateData) -> dict[str, Any]:
    return {str(k): plain(val) for k, val in data.features.iloc[0].items()}


def sample(data: GateData, n: int = SAMPLE_ROWS) -> pd.DataFrame:
    return data.features.iloc[:n]


def has_proba(deployment: Any) -> bool:
    """Whether the deployment serves probabilities (``supports_proba`` may say it does not)."""
    method = getattr(deployment, "batch_predict_proba", None)
    return callable(method) and bool(getattr(deployment, "supports_proba", True))


def predict(deployment: Any, rows: pd.DataFrame) -> np.ndarray:
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
    return [{str(k): plain(val) for k, val in row.items()} for _, row in rows.iterrows()]
