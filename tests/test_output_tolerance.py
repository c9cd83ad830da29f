"""Outputs are compared at the precision of their dtype: float32 is not float64."""

from __future__ import annotations

import numpy as np
import pytest

from deploy_gate.checks.common import output_tolerance, same_outputs
from deploy_gate.validation import non_numeric_rows


def test_float32_outputs_one_rounding_step_apart_agree() -> None:
    batch = np.array([240.608, 1.5, 0.0, -3.25], dtype=np.float32)
    single = np.nextafter(batch, np.float32(np.inf))

    assert same_outputs(batch, single).all()
    assert output_tolerance(batch, single).rtol == pytest.approx(1e-5)
    assert output_tolerance(batch, single).why == "float32 outputs"


def test_float32_batch_against_single_rows_returned_as_python_floats_uses_float32() -> None:
    batch = np.array([240.608, 17.25], dtype=np.float32)
    single = np.array([float(np.nextafter(v, np.float32(np.inf))) for v in batch])

    assert single.dtype == np.float64
    assert same_outputs(batch, single).all()


def test_float64_outputs_computed_in_float32_are_compared_as_float32() -> None:
    # A network run in float32 behind a wrapper answering float64 (or Python floats): its
    # batch sums in another order than one row, one float32 rounding step apart.
    computed = np.array([2103.9912, 1.5, -0.3337, 7.0], dtype=np.float32)
    batch = computed.astype(np.float64)
    single = np.nextafter(computed, np.float32(np.inf)).astype(np.float64)
    assert not np.allclose(batch, single, rtol=1e-7, atol=0.0)

    assert same_outputs(batch, single).all()
    assert same_outputs(batch, single.astype(object)).all()
    tolerance = output_tolerance(batch, single)
    assert tolerance.rtol == pytest.approx(1e-5)
    assert tolerance.why == (
        "float32 outputs (wider floats, each one a float32 number: computed in float32)"
    )
    # A change far beyond float32's rounding is still one.
    assert not same_outputs(batch, batch * 1.001).any()


def test_float64_outputs_of_a_float64_model_keep_float64s_tolerance() -> None:
    # One output that happens to be a float32 number (1.5) does not make the model float32.
    a = np.array([240.608, 1.5, 310.1])

    assert output_tolerance(a, a).why == "float64 outputs"
    assert not same_outputs(a, a * (1 + 1e-6))[[0, 2]].any()


def test_float32_outputs_far_beyond_rounding_differ() -> None:
    batch = np.array([240.608, 1.5], dtype=np.float32)

    assert not same_outputs(batch, batch * np.float32(1.001)).any()


def test_float64_outputs_must_agree_to_a_ten_millionth() -> None:
    a = np.array([240.608, 1.5])

    assert not same_outputs(a, a * (1 + 1e-5)).any()
    assert same_outputs(a, a * (1 + 1e-8)).all()
    assert output_tolerance(a, a).rtol == pytest.approx(1e-7)
    assert output_tolerance(a, a).why == "float64 outputs"


def test_a_value_near_zero_is_judged_on_the_scale_of_the_outputs() -> None:
    # 1e-7 on an output of 0.0001 next to outputs of 300 is float32 rounding, not a change.
    batch = np.array([300.0, 1e-4], dtype=np.float32)
    single = np.array([300.0, 1e-4 + 1e-7], dtype=np.float32)

    assert same_outputs(batch, single).all()


def test_integer_and_string_labels_are_compared_exactly() -> None:
    assert not same_outputs(np.array([1, 2]), np.array([1, 3]))[1]
    assert output_tolerance(np.array([1, 2]), np.array([1, 2])).rtol == 0.0
    assert list(same_outputs(np.array(["a", "b"]), np.array(["a", "c"]))) == [True, False]


def test_probability_rows_compare_every_column() -> None:
    a = np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32)
    b = a.copy()
    b[1, 0] = 0.6

    assert list(same_outputs(a, b)) == [True, False]


@pytest.mark.parametrize(
    ("values", "rows"),
    [
        (np.array([1.5, 2.0]), ()),
        (np.array([1, 2]), ()),
        (np.array([True, False]), ()),
        (np.array(["1.5", "2.0"]), (0, 1)),
        (np.array(["1.5", 2.0, None, 3], dtype=object), (0, 2)),
        (np.array([1.5, 2.0], dtype=object), ()),
    ],
)
def test_non_numeric_rows_names_strings_even_when_they_read_as_numbers(
    values: np.ndarray, rows: tuple[int, ...]
) -> None:
    assert non_numeric_rows(values) == rows


def test_nan_and_inf_outputs_compare_without_warnings() -> None:
    a = np.array([np.nan, np.inf, -np.inf, 1.0], dtype=np.float32)
    b = np.array([np.nan, np.inf, np.inf, 1.0], dtype=np.float32)

    assert list(same_outputs(a, b)) == [True, True, False, True]
    assert list(same_outputs(np.full(2, np.nan), np.full(2, np.nan))) == [True, True]
