"""The vectorised output finders give exactly what the per-value loops they replaced gave.

The reference functions below are the loops as they were (issue 17 replaced them): one Python
call per predicted value. Each finder is compared with its reference on tricky inputs: mixed
label types, strings against ints, NaN, None, numpy scalar types, 2-D outputs.
"""

from __future__ import annotations

import decimal
import enum
import fractions
import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deploy_gate.validation import (
    non_numeric_rows,
    numeric_view,
    plain,
    rows_where,
    unknown_label_rows,
)


def outcome(func: Any, *args: Any) -> object:
    """What ``func(*args)`` returns, or the type of what it raises."""
    try:
        return func(*args)
    except Exception as exc:
        return type(exc)


def reference_unknown_label_rows(
    predictions: np.ndarray, classes: Sequence[Any]
) -> tuple[int, ...]:
    known = set(classes)
    flat = predictions.reshape(len(predictions), -1) if predictions.ndim > 1 else predictions
    rows = []
    for i, value in enumerate(flat):
        items = value if flat.ndim > 1 else (value,)
        if any(plain(v) not in known for v in items):
            rows.append(i)
    return tuple(rows)


def reference_non_numeric_rows(outputs: np.ndarray) -> tuple[int, ...]:
    if np.issubdtype(outputs.dtype, np.number) or np.issubdtype(outputs.dtype, np.bool_):
        return ()
    if outputs.dtype != object:
        return tuple(range(len(outputs))) if outputs.ndim else (0,)
    mask = np.array(
        [not isinstance(value, (numbers.Real, np.bool_)) for value in outputs.flat], dtype=bool
    ).reshape(outputs.shape)
    return rows_where(mask) if outputs.ndim else ((0,) if mask.any() else ())


def reference_is_string_free(arr: np.ndarray) -> bool:
    return not any(isinstance(value, (str, bytes)) for value in arr.flat)


class Colour(enum.IntEnum):
    RED = 1
    BLUE = 2


NAN = float("nan")

#: Values a model might return, and classes a model might claim, in every awkward type.
TRICKY = [
    0,
    1,
    2,
    -1,
    2**53 + 1,
    2**70,
    0.0,
    -0.0,
    1.0,
    0.5,
    0.1,
    NAN,
    float("inf"),
    True,
    False,
    None,
    "0",
    "1",
    "a",
    "",
    "a\0",  # numpy drops a trailing NUL: no string array holds this value
    b"a",
    b"a\0",
    np.int64(1),
    np.int8(-1),
    np.uint64(2**63),
    np.float32(0.1),
    np.float32(0.5),
    np.float64(NAN),
    np.bool_(True),
    np.str_("a"),
    np.bytes_(b"a"),
    Colour.RED,
    decimal.Decimal("1"),
    fractions.Fraction(1, 2),
    complex(1, 0),
]

CLASS_SETS = [
    [0, 1],
    [0.0, 1.0],
    [True, False],
    ["0", "1"],
    ["a", "b"],
    [0, "a", None],
    [None],
    [NAN, 1],
    [np.int64(0), np.int64(1)],
    [np.float32(0.1), 0.5],
    [np.str_("a"), 1],
    [b"a", "a"],
    [2**53 + 1, 2**70, -1],
    [np.uint64(2**63), 2],
    [Colour.RED, Colour.BLUE],
    [decimal.Decimal("1"), fractions.Fraction(1, 2)],
    [complex(1, 0)],
    [float("inf"), -0.0],
    [],
]


def _as_arrays(values: list[Any]) -> list[np.ndarray]:
    """The values as every array a model could hand them over in."""
    arrays = [np.array(values, dtype=object)]
    for dtype in (
        np.int64,
        np.int8,
        np.uint8,
        np.uint64,
        np.float64,
        np.float32,
        np.bool_,
        str,
        bytes,
    ):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # NaN cast to int: whatever numpy makes of it
                arrays.append(np.array(values, dtype=dtype))
        except (TypeError, ValueError, OverflowError):
            pass
    return arrays


ARRAYS = [
    np.array([0, 1, 1, 2, 0]),
    np.array([0, 1, 1, 2, 0], dtype=np.uint8),
    np.array([True, False, True]),
    np.array([0.0, 1.0, NAN, 0.5, -0.0, float("inf")]),
    np.array([0.1, 0.5, 1.0], dtype=np.float32),
    np.array([0.1, 0.5, 1.0], dtype=np.float16),
    np.array(["a", "b", "1", ""]),
    np.array([b"a", b"b"]),
    np.array([1 + 0j, 2 + 1j]),
    np.array(["2024-01-01", "NaT"], dtype="datetime64[ns]"),
    np.array([0.5, 1.0], dtype=np.longdouble),
    np.array(TRICKY, dtype=object),
    np.array([[0, 1], [1, 1], [2, 0]]),
    np.array([["a", 1], [None, "b"], [NAN, 0]], dtype=object),
    np.array([], dtype=np.int64),
    np.array([], dtype=object),
]


@pytest.mark.parametrize("classes", CLASS_SETS, ids=repr)
@pytest.mark.parametrize("predictions", ARRAYS, ids=lambda a: f"{a.dtype}{a.shape}")
def test_unknown_labels_are_the_rows_the_per_value_loop_found(
    predictions: np.ndarray, classes: list[Any]
) -> None:
    expected = outcome(reference_unknown_label_rows, predictions, classes)
    assert outcome(unknown_label_rows, predictions, classes) == expected


def test_a_class_that_is_nan_matches_only_the_very_same_nan_object() -> None:
    nan_class = float("nan")
    predictions = np.array([nan_class, float("nan"), 1], dtype=object)
    assert unknown_label_rows(predictions, [nan_class, 1]) == (1,)
    assert reference_unknown_label_rows(predictions, [nan_class, 1]) == (1,)


def test_an_unhashable_prediction_is_an_unknown_label() -> None:
    # The per-value set lookup raised TypeError, which failed checks with the gate's own
    # error; no class can be unhashable, so such a prediction is simply not a class.
    predictions = np.array([1, [1, 2], {"label": 1}], dtype=object)
    with pytest.raises(TypeError):
        reference_unknown_label_rows(predictions, [1])
    assert unknown_label_rows(predictions, [1]) == (1, 2)


def test_a_zero_d_array_inside_an_object_array_is_judged_by_the_value_it_holds() -> None:
    predictions = np.empty(2, dtype=object)
    predictions[0], predictions[1] = np.array(1), np.array(3)
    assert unknown_label_rows(predictions, [1, 2]) == (1,)
    assert reference_unknown_label_rows(predictions, [1, 2]) == (1,)


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.sampled_from(TRICKY), min_size=0, max_size=12),
    classes=st.lists(st.sampled_from(TRICKY), min_size=0, max_size=5),
)
def test_unknown_labels_agree_on_any_mix_of_tricky_values(
    values: list[Any], classes: list[Any]
) -> None:
    try:
        set(classes)
    except TypeError:
        return
    for predictions in _as_arrays(values):
        expected = outcome(reference_unknown_label_rows, predictions, classes)
        assert outcome(unknown_label_rows, predictions, classes) == expected, predictions.dtype


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.sampled_from(TRICKY), min_size=0, max_size=12))
def test_non_numeric_rows_and_numeric_view_agree_on_any_mix(values: list[Any]) -> None:
    for arr in (*_as_arrays(values), np.array(values, dtype=object).reshape(-1, 1)):
        assert outcome(non_numeric_rows, arr) == outcome(reference_non_numeric_rows, arr)
        if arr.dtype == object:
            string_free = reference_is_string_free(arr)
            view = numeric_view(arr)
            if not string_free:
                assert view is None
            else:
                try:
                    expected = arr.astype(float)
                except (TypeError, ValueError):
                    assert view is None
                else:
                    assert view is not None
                    np.testing.assert_array_equal(view, expected)


def test_a_million_numeric_labels_are_matched_by_np_isin() -> None:
    """Not timed: a million values go through, and the rows found are the planted ones."""
    predictions = np.zeros(1_000_000, dtype=np.int64)
    predictions[[3, 500_000, 999_999]] = 7
    assert unknown_label_rows(predictions, [0, 1]) == (3, 500_000, 999_999)
    strings = np.where(predictions == 0, "no", "maybe").astype(object)
    assert unknown_label_rows(strings, ["no", "yes"]) == (3, 500_000, 999_999)
