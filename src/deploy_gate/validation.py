"""Output validation: plain functions that find the rows whose output is not a valid prediction.

Used by the gate's output checks, by the default deployment wrapper and by the runtime monitor.
Every finder returns the offending row positions so a message can name them.
"""

from __future__ import annotations

import contextlib
import itertools
import numbers
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: Probabilities of one row must sum to 1 within this (float64 probabilities; see
#: ``proba_sum_tolerance`` for lower precisions).
PROBA_SUM_TOLERANCE = 1e-6

#: Outputs that should be equal (a batch and its rows one by one, two calls, two column
#: orders) agree within this relative tolerance, by the precision the outputs were computed
#: in: a float32 model sums its trees or products at 7 significant digits, float64 at 16, less
#: what cancellation takes (a kernel ridge with a small alpha, dual coefficients of 3e5 that
#: cancel to outputs of 6, differed between a batch and one row by 2.5e-9). Integers and
#: labels must be equal.
RELATIVE_TOLERANCE = {"float16": 1e-3, "float32": 1e-5, "float64": 1e-7}


@dataclass(frozen=True)
class OutputProblem:
    """One kind of invalid output and the rows that show it."""

    kind: str  # "length", "nan", "inf", "dtype", "proba-range", "proba-sum", "label", "range"
    rows: tuple[int, ...]
    detail: str

    def __str__(self) -> str:
        return self.detail


def as_array(outputs: Any) -> np.ndarray:
    """The model's output as an array; pandas objects, lists and sparse matrices (scipy's,
    which ``np.asarray`` would wrap whole as one object) are accepted."""
    import numpy as np

    if hasattr(outputs, "nnz") and callable(getattr(outputs, "toarray", None)):
        return np.asarray(outputs.toarray())
    values = getattr(outputs, "to_numpy", None)
    return np.asarray(values() if callable(values) else outputs)


def is_numeric(arr: np.ndarray) -> bool:
    """Real numbers or booleans (complex numbers are not: a model's outputs are real)."""
    import numpy as np

    real = np.issubdtype(arr.dtype, np.number) and not np.issubdtype(arr.dtype, np.complexfloating)
    return bool(real or np.issubdtype(arr.dtype, np.bool_))


def numeric_view(arr: np.ndarray) -> np.ndarray | None:
    """A float view of the output, or None when it holds non-numbers (such as string labels;
    strings that read as numbers, "0.25", are strings: a client would receive them as such)."""

    if is_numeric(arr):
        return arr.astype(float, copy=False)
    if arr.dtype == object:
        if _any_instance(arr, (str, bytes)):
            return None
        try:
            return arr.astype(float)
        except (TypeError, ValueError):
            return None
    return None


def precision(arr: np.ndarray) -> str:
    """The precision an output was computed in: ``float16``/``float32``/``float64`` for floats
    (numbers in an object array count as float64), ``exact`` for integers, booleans and
    anything that is not a number.

    Wider floats whose every finite value a float32 holds exactly were computed in float32 and
    widened on the way out (a network run in float32 behind a wrapper that answers float64 or
    Python floats): they count as float32. A value computed in float64 is a float32 number by
    chance about once in 2**29, so this never mistakes a float64 model for a float32 one with
    more than a few outputs; a float64 model whose outputs are all short binary fractions
    (whole numbers, halves) is compared at float32's tolerance, which changes nothing for it.
    """
    import numpy as np

    if np.issubdtype(arr.dtype, np.floating):
        if arr.dtype.itemsize < 8:
            return f"float{arr.dtype.itemsize * 8}"
        return "float32" if _float32_numbers(arr) else "float64"
    if arr.dtype == object and (floats := numeric_view(arr)) is not None:
        return "float32" if _float32_numbers(floats) else "float64"
    return "exact"


def _float32_numbers(arr: np.ndarray) -> bool:
    """Whether every finite value of ``arr`` (at least one) is a float32 number."""
    import numpy as np

    finite = arr[np.isfinite(arr)]
    if not finite.size:
        return False
    with np.errstate(over="ignore"):  # beyond float32's range: inf, unequal
        return bool(np.array_equal(finite.astype(np.float32), finite))


def non_numeric_rows(outputs: np.ndarray) -> tuple[int, ...]:
    """Rows holding something that is not a number: strings (also "1.5"), None, objects."""
    if is_numeric(outputs):
        return ()
    if outputs.dtype != object:
        return tuple(range(len(outputs))) if outputs.ndim else (0,)
    mask = ~_real_number_mask(outputs)
    return rows_where(mask) if outputs.ndim else ((0,) if mask.any() else ())


def _real_number_mask(arr: np.ndarray) -> np.ndarray:
    """Where the values of an object array are real numbers (``numbers.Real``, ``np.bool_``).

    ``map`` over the C iterator ``arr.flat`` with the builtin ``isinstance`` runs no Python
    bytecode per value (an object array has no faster way to ask each value its type). Python's
    floats and ints (numpy's float64 too) are tried first against their concrete types, which is
    quick; only the values left over are asked about the abstract ``numbers.Real``, which is
    slower. Every concrete type tried first is a ``numbers.Real``, so the answer is the same.
    """
    import numpy as np

    found = np.fromiter(
        map(isinstance, arr.flat, itertools.repeat((float, int))), dtype=bool, count=arr.size
    )
    rest = np.flatnonzero(~found)
    if rest.size:
        real = (numbers.Real, np.bool_)
        found[rest] = np.fromiter(
            map(isinstance, arr.ravel()[rest], itertools.repeat(real)), dtype=bool, count=rest.size
        )
    return found.reshape(arr.shape)


def _any_instance(arr: np.ndarray, types: tuple[type, ...]) -> bool:
    return any(map(isinstance, arr.flat, itertools.repeat(types)))


def rows_where(mask: np.ndarray) -> tuple[int, ...]:
    """Row positions where ``mask`` holds, for 1-D or 2-D masks (any column counts)."""
    import numpy as np

    if mask.ndim > 1:
        mask = np.asarray(mask.reshape(mask.shape[0], -1).any(axis=1))
    return tuple(np.flatnonzero(mask).tolist())


def describe_rows(rows: Sequence[int], total: int, labels: Sequence[str] | None = None) -> str:
    """``rows 4, 17, 33 (3 of 120)``, naming rows by label when labels are given."""
    more = ", ..." if len(rows) > 5 else ""
    if labels is not None:
        names = [labels[i] if i < len(labels) else f"row {i}" for i in rows[:5]]
        return f"{', '.join(names)}{more} ({len(rows)} of {total})"
    word = "row" if len(rows) == 1 else "rows"
    return f"{word} {', '.join(map(str, rows[:5]))}{more} ({len(rows)} of {total})"


def describe_names(names: Sequence[str], limit: int = 12) -> str:
    """``'age', 'income', ...``: the first ``limit`` names, quoted."""
    shown = ", ".join(map(repr, list(names)[:limit]))
    return shown + (", ..." if len(names) > limit else "")


def length_problem(outputs: np.ndarray, n_rows: int, what: str = "outputs") -> OutputProblem | None:
    if outputs.ndim == 0:
        held = _held_in_worker(outputs)
        if held is not None:
            return OutputProblem(
                "length",
                (),
                f"expected {n_rows} {what}, got a {held} that the model process could not send "
                "as data: it holds values that are not numbers, text, booleans or dates (such "
                "as decimal.Decimal), which no client can receive as they are",
            )
        return OutputProblem("length", (), f"expected {n_rows} {what}, got a scalar")
    if outputs.shape[0] != n_rows:
        return OutputProblem(
            "length", (), f"expected {n_rows} {what} (one per row), got {outputs.shape[0]}"
        )
    if outputs.ndim > 2:
        return OutputProblem("length", (), f"expected 1-D or 2-D {what}, got shape {outputs.shape}")
    return None


def _held_in_worker(outputs: np.ndarray) -> str | None:
    """The type of what a 0-d object array wraps when it is an object left in a model worker
    (an answer with no data encoding), else None."""
    if outputs.dtype != object:
        return None
    from deploy_gate.worker import remote

    where = remote(outputs.item())
    return where.type_name if where is not None else None


def nan_rows(outputs: np.ndarray) -> tuple[int, ...]:
    import numpy as np

    values = numeric_view(outputs)
    return () if values is None else rows_where(np.isnan(values))


def inf_rows(outputs: np.ndarray) -> tuple[int, ...]:
    import numpy as np

    values = numeric_view(outputs)
    return () if values is None else rows_where(np.isinf(values))


def proba_range_rows(proba: np.ndarray) -> tuple[int, ...]:
    """Rows with a probability outside [0, 1] (NaN is left to ``nan_rows``)."""
    import numpy as np

    values = numeric_view(proba)
    if values is None:
        return tuple(range(len(proba)))
    with np.errstate(invalid="ignore"):
        return rows_where((values < 0.0) | (values > 1.0))


def proba_sum_tolerance(proba: np.ndarray) -> float:
    """How far from 1 a row of these probabilities may sum: 1e-6, or the relative tolerance
    of their precision when that is wider (float32: 1e-5), each entry being rounded."""
    return max(PROBA_SUM_TOLERANCE, RELATIVE_TOLERANCE.get(precision(proba), 0.0))


def proba_sum_rows(proba: np.ndarray, tolerance: float | None = None) -> tuple[int, ...]:
    """Rows whose probabilities do not sum to 1 within ``tolerance`` (by default
    :func:`proba_sum_tolerance`; NaN rows left out)."""
    import numpy as np

    if tolerance is None:
        tolerance = proba_sum_tolerance(proba)
    values = numeric_view(proba)
    if values is None or values.ndim != 2:
        return tuple(range(len(proba)))
    sums = values.sum(axis=1)
    return rows_where(np.isfinite(sums) & (np.abs(sums - 1.0) > tolerance))


def unknown_label_rows(predictions: np.ndarray, classes: Sequence[Any]) -> tuple[int, ...]:
    """Rows with a prediction (any of its values, for 2-D outputs) not among ``classes``.

    A value is known when the Python value it holds (:func:`plain`) is in ``set(classes)``:
    ``1``, ``1.0`` and ``True`` are the same label, ``"1"`` is another, NaN is never known.
    Numeric outputs are matched with ``np.isin`` against the classes' exact values; other
    outputs (strings, objects) are looked up once per distinct value.
    """
    known = set(classes)
    n = len(predictions)
    values = predictions.reshape(n, -1) if predictions.ndim > 1 else predictions
    return rows_where(~_known_mask(values, known))


def label_probability_mismatch(
    predictions: np.ndarray, proba: np.ndarray, classes: Sequence[Any]
) -> tuple[tuple[int, ...], str] | None:
    """Rows whose predicted label the probabilities contradict, and the rule they break; None
    when labels and probabilities agree (or cannot be paired: 2-D labels, other shapes).

    Two classes: a model may predict with any threshold on ``P(classes[1])`` (a tuned
    threshold, an SVM's decision function under its Platt-scaled probabilities), so what must
    hold is that some threshold separates the rows predicted ``classes[1]`` from the others:
    the rows on the wrong side of the best one fail when they are more than 1% of the rows, and
    all rows contradicting the probabilities fail when the rows predicted ``classes[1]`` are
    *less* likely to be it (median) than the others: labels or columns swapped. More classes:
    the same direction for each class, one against the rest; the label need not be the most
    probable class (an SVC with class weights votes one-vs-one and may disagree with its
    probabilities on most rows of a rare class, healthily). Rows with unknown labels or
    non-finite probabilities are left to the checks made for them.
    """
    import numpy as np

    n = len(predictions)
    k = len(classes)
    if predictions.ndim != 1 or proba.ndim != 2 or proba.shape != (n, k) or k < 2 or n == 0:
        return None
    index = np.full(n, -1)
    for position, label in enumerate(classes):
        index[_known_mask(predictions, {label})] = position
    try:
        values = proba.astype(np.float64)
    except (TypeError, ValueError):
        return None
    kept = np.flatnonzero((index >= 0) & np.isfinite(values).all(axis=1))
    if len(kept) < 2:
        return None
    index, values = index[kept], values[kept]
    if k == 2:
        return _binary_mismatch(kept, index == 1, values[:, 1], classes)
    from scipy import stats

    for position, label in enumerate(classes):
        chosen = index == position
        if chosen.all() or not chosen.any():
            continue
        mine, others = values[chosen, position], values[~chosen, position]
        rows = tuple(kept[np.flatnonzero(chosen)].tolist())
        typical, elsewhere = np.median(mine), np.median(others)
        if typical < elsewhere:
            return (
                rows,
                f"rows predicted {label!r} are less likely to be {label!r} (median probability "
                f"{typical:.3g}) than the other rows ({elsewhere:.3g}): labels or probability "
                "columns swapped",
            )
        if min(len(mine), len(others)) < CLASS_RANKING_MIN_ROWS:
            continue
        # The share of (predicted, other) row pairs that the column orders right: about 1 for a
        # healthy model (0.995 and up, an SVC with class weights voting one-vs-one included),
        # about a half or less for two columns swapped, where the medians may still agree.
        u = stats.mannwhitneyu(mine, others).statistic
        ranking = float(u) / (len(mine) * len(others))
        if ranking < CLASS_RANKING_FLOOR:
            return (
                rows,
                f"the probability column of {label!r} ranks the rows predicted {label!r} above "
                f"the others in only {ranking:.0%} of pairs, where a model's own labels and "
                "probabilities agree in 99% and more: labels or probability columns swapped",
            )
    return None


#: More than two classes: a class's probability column must rank the rows predicted it above
#: the others in at least this share of pairs (``label_probability_mismatch``) ...
CLASS_RANKING_FLOOR = 0.75
#: ... judged when at least this many rows are predicted it, and as many are not.
CLASS_RANKING_MIN_ROWS = 10


#: One-sided p-value below which outputs count as worse than chance: a gate that blocks on
#: this must not cry wolf, and faulty outputs (inverted, permuted) are far beyond it.
CHANCE_P_VALUE = 1e-3
#: Fewest labelled rows on which the comparison with chance is judged at all.
CHANCE_MIN_ROWS = 20
#: A regressor whose median output lies outside all its labels, with a mean absolute error
#: above this multiple of the labels' median's, is on another scale (see ``off_scale``) ...
SCALE_ERROR_RATIO = 2.0
#: ... judged on at least this many labelled rows.
SCALE_MIN_ROWS = 100
#: Outputs whose error a usual inverse transform cuts to half of theirs and to this share of the
#: labels' median's are on another scale (see ``off_scale``).
SCALE_INVERSE_GAIN = 0.75
#: ... and cuts to at most this fraction of their own error.
SCALE_INVERSE_CUT = 3.0
#: A straight line brings outputs back to the labels' scale (a standardised target) only when
#: its slope is at least this factor from 1, either way.
SCALE_LINE_FACTOR = 3.0


def _inverses() -> tuple[tuple[str, Callable[[np.ndarray], np.ndarray]], ...]:
    """The usual transforms' inverses, by the name a message gives them."""
    import numpy as np

    return (
        ("exp", np.exp),
        ("expm1", np.expm1),
        ("10 to the power", lambda p: np.power(10.0, p)),
        ("100 times", lambda p: 100.0 * p),
        ("1000 times", lambda p: 1000.0 * p),
        ("a hundredth", lambda p: p / 100.0),
        ("a thousandth", lambda p: p / 1000.0),
    )


#: A target column with more different values than this is not a classifier's labels (a
#: regression target gated beside it): labels that are none of its values are not judged.
CHANCE_MAX_LABELS = 50
#: Share of labelled rows whose label is none of the model's classes from which a classifier
#: fails: it can never be right on them. A rare class missing from training stays below it.
UNPREDICTABLE_SHARE = 0.05


#: Fewest distinct data rows on which identical outputs mean a model that ignores its input.
CONSTANT_MIN_ROWS = 20


def distinct_rows(frame: pd.DataFrame) -> int:
    """How many different rows ``frame`` holds (missing values equal to each other)."""
    return int(first_of_each_row(frame).sum())


def first_of_each_row(frame: pd.DataFrame) -> np.ndarray:
    """A boolean mask of the rows of ``frame`` that no earlier row repeats (missing values
    equal to each other)."""
    import numpy as np
    import pandas as pd

    if frame.shape[1] == 0:
        return np.arange(len(frame)) < 1
    try:
        hashes = pd.util.hash_pandas_object(frame, index=False)
    except TypeError:  # unhashable cells (lists, dicts): their text stands in for them
        hashes = pd.util.hash_pandas_object(frame.astype(str), index=False)
    return np.asarray(~hashes.duplicated().to_numpy(), dtype=bool)


def constant_output(outputs: np.ndarray) -> str | None:
    """The one output every row got, shown for a message, or None when they differ.

    Numbers compare exactly (a constant model gives the same bits; any real model varies
    somewhere); NaN outputs are left out (output[no-nan] judges them). Raises ``ValueError``
    when fewer than two rows have a finite output."""
    import numpy as np

    values = numeric_view(outputs)
    if values is None:  # labels or other objects: compare them as they are
        flat = np.asarray(outputs, dtype=object).reshape(len(outputs), -1)
        first = flat[0]
        same = bool(np.all(flat == first))
        return (
            repr(plain(first[0]) if first.size == 1 else [plain(x) for x in first])
            if same
            else None
        )
    rows = values.reshape(len(values), -1)
    finite = np.isfinite(rows).all(axis=1)
    if finite.sum() < 2:
        raise ValueError("fewer than two rows have a finite output")
    kept = rows[finite]
    if not (kept == kept[0]).all():
        return None
    shown = [round(float(x), 6) for x in kept[0]]
    return repr(shown[0] if len(shown) == 1 else shown)


#: How little outputs may vary, relative to their scale, before they count as one output for
#: every row. A regularisation strength in the wrong units leaves a model that answers its
#: intercept with a wobble in the 8th digit (``Ridge(alpha=1e12)``: 84.0406628 +/- 3e-7 where
#: the labels spread over 47; ``LogisticRegression(C=1e-10)``: P = 0.4096667 +/- 4e-8). Healthy
#: models, however weak, vary by orders of magnitude more.
NEAR_CONSTANT_SPREAD = 1e-6


def near_constant_output(
    outputs: np.ndarray, labels: np.ndarray | None, probabilities: bool
) -> str | None:
    """Why outputs that are not identical still amount to one output for every row, or None.

    Probabilities have a known scale: they are judged when every column spans at most
    ``NEAR_CONSTANT_SPREAD`` of its largest value (a rare-event probability of 1e-7 +/- 5e-8
    spans half of it and passes). A regressor's outputs have no scale of their own (a
    timestamp of 1.7e9 +/- 1000 spans 6e-7 of its value), so they are judged only against
    labels: spanning at most ``NEAR_CONSTANT_SPREAD`` of the labels' standard deviation.
    Non-numbers and rows without a finite output are left out."""
    import numpy as np

    values = numeric_view(np.asarray(outputs))
    if values is None:
        return None
    rows = values.reshape(len(values), -1)
    rows = rows[np.isfinite(rows).all(axis=1)]
    if len(rows) < 2:
        return None
    spans = np.ptp(rows, axis=0)
    if probabilities:
        scale = np.abs(rows).max(axis=0)
        if not (scale > 0).all() or not (spans <= NEAR_CONSTANT_SPREAD * scale).all():
            return None
        against = "of its largest value in every probability column"
    else:
        target = numeric_view(np.asarray(labels)) if labels is not None else None
        if target is None or rows.shape[1] != 1:
            return None
        target = target[np.isfinite(target)]
        sd = float(np.std(target)) if len(target) >= 2 else 0.0
        if sd == 0 or spans[0] > NEAR_CONSTANT_SPREAD * sd:
            return None
        against = f"of the labels' standard deviation {sd:.4g}"
    middle = [float(np.median(column)) for column in rows.T]
    shown = ", ".join(f"{m:.7g}" for m in middle)
    return (
        f"outputs spread over at most {float(spans.max()):.2g} around {shown} on "
        f"{len(rows)} rows, under {NEAR_CONSTANT_SPREAD:g} {against}"
    )


def _distinct(values: Iterable[Any]) -> list[Any]:
    """Distinct values in the order they first come; those that cannot be hashed (a dict a
    model answered) are told apart by equality."""
    values = list(values)
    with contextlib.suppress(TypeError):
        return list(dict.fromkeys(values))
    hashable: dict[Any, None] = {}
    others: list[Any] = []
    order: list[Any] = []
    for value in values:
        try:
            if value in hashable:
                continue
            hashable[value] = None
        except TypeError:
            if value in others:
                continue
            others.append(value)
        order.append(value)
    return order


def _some(values: Sequence[Any], most: int = 5) -> str:
    """A short list for a message: the first ``most`` values, then how many more."""
    more = f" and {len(values) - most} more" if len(values) > most else ""
    return f"{list(values[:most])!r}{more}"


def off_scale(predictions: np.ndarray, target: np.ndarray) -> str | None:
    """Why a regressor's outputs are on another scale than its labels, or None.

    Outputs of a model trained on a transformed target (``log(y)``, cents for euros, kelvin
    for degrees) and served without the inverse still rank the rows right, so only their size
    tells. Judged on at least ``SCALE_MIN_ROWS`` rows, either of:

    - the median output lies outside everything the labels hold (below the smallest or above
      the largest), and the mean absolute error is more than ``SCALE_ERROR_RATIO`` times that
      of one constant, the labels' median. A weak, biased or quantile model's typical output
      lies among its labels; one fitted to the 99.9th percentile that learned nothing would not.
    - the inverse of a usual transform (``exp``, ``expm1``, ``10**``, a factor of 100 or 1000)
      cuts the outputs' mean absolute error to half, and to ``SCALE_INVERSE_GAIN`` of the
      labels' median's. With skewed labels (prices, durations), ``log(y)`` lies among the
      labels; a healthy model does not get much closer to its labels when its outputs are
      exponentiated or scaled by a hundred (a low quantile's, on small labels, comes near the
      labels' median's error: hence the margin).
    - outputs that err more than ``SCALE_ERROR_RATIO`` times the labels' median, which a
      straight line (least squares, rising, a slope ``SCALE_LINE_FACTOR`` or more from 1)
      brings to half their error and to ``SCALE_INVERSE_GAIN`` of the median's: a
      standardised target served as z-scores.
    """
    import numpy as np

    if len(target) < SCALE_MIN_ROWS:
        return None
    center = float(np.median(target))
    spread = float(np.mean(np.abs(target - center)))
    if not spread > 0:
        return None
    middle = float(np.median(predictions))
    low, high = float(np.min(target)), float(np.max(target))
    error = float(np.mean(np.abs(predictions - target)))
    hint = "a model trained on a transformed target (log, other units) served without the "
    hint += "inverse transform?"
    versus = (
        f"the mean absolute error, {error:.4g}, is {error / spread:.1f} times that of always "
        f"predicting the labels' median ({center:.4g}); {hint}"
    )
    if not low <= middle <= high and error > SCALE_ERROR_RATIO * spread:
        return (
            f"predictions are off the labels' scale: the median prediction, {middle:.4g}, lies "
            f"outside every label ({low:.4g} to {high:.4g}), and {versus}"
        )

    def brought_back(how: str, restored: float, why: str) -> str | None:
        """The message when ``how`` brings the outputs to half their error and to
        ``SCALE_INVERSE_GAIN`` of the labels' median's, else None."""
        halved = restored <= error / SCALE_INVERSE_CUT and restored <= SCALE_INVERSE_GAIN * spread
        if not (np.isfinite(restored) and halved):
            return None
        return (
            f"predictions are off the labels' scale: {how} is within {restored:.4g} of the "
            f"labels on average, against {error:.4g} as served and {spread:.4g} for always "
            f"predicting the labels' median ({center:.4g}); {why}"
        )

    for name, inverse in _inverses():
        with np.errstate(all="ignore"):
            back = inverse(predictions.astype(np.float64))
            restored = float(np.mean(np.abs(back - target)))
        if (message := brought_back(f"{name} of them", restored, hint)) is not None:
            return message
    if error > SCALE_ERROR_RATIO * spread and float(np.ptp(predictions)) > 0:
        # A standardised target (z-scores) served without its inverse: no usual transform
        # brings it back, but a straight line does. Judged only on outputs that err more than
        # twice a constant's, which no healthy model does, however weak or shrunk.
        # The line must change the scale, not only shift it: a model fitted to the 99th
        # percentile of skewed prices errs that much too, by its bias, and a line of slope
        # 0.87-1.23 took half of it away.
        slope, intercept = np.polyfit(predictions.astype(np.float64), target, 1)
        restored = float(np.mean(np.abs(intercept + slope * predictions - target)))
        if slope > 0 and max(slope, 1 / slope) >= SCALE_LINE_FACTOR:
            return brought_back(
                f"{intercept:.4g} + {slope:.4g} x each",
                restored,
                "a model trained on a standardised target served without the inverse?",
            )
    return None


#: Probability of its answer from which a binary classifier is taken at its word.
CONFIDENT = 0.99
#: Share of its confident answers below which a binary classifier is confidently wrong: a
#: coin does better. Probabilities saturated by a feature in the wrong units (income in cents,
#: x1000) were right on 41% of 2,374 rows answered at 0.99 or more, with a balanced accuracy
#: at chance, which no other check saw without a baseline.
CONFIDENT_MAX_ACCURACY = 0.45


def _probability_matrix(
    proba: np.ndarray | None, classes: Sequence[Any] | None, n: int
) -> np.ndarray | None:
    """The probabilities as finite numbers, one column per class, or None."""
    import numpy as np

    if proba is None or classes is None or proba.shape != (n, len(classes)):
        return None
    scores = numeric_view(proba)
    return scores if scores is not None and np.isfinite(scores).all() else None


def _confidently_wrong(labels: np.ndarray, scores: np.ndarray, classes: Sequence[Any]) -> list[str]:
    """A binary classifier's rows answered with probability ``CONFIDENT`` or more, when they
    are significantly more often wrong than right (a one-sided binomial test) and right on
    fewer than ``CONFIDENT_MAX_ACCURACY`` of them. A weak model is unsure or mostly right where
    it is sure; an unpruned tree on noise (every probability 0 or 1) is right on half."""
    import numpy as np
    from scipy import stats

    confident = scores.max(axis=1) >= CONFIDENT
    asked = int(confident.sum())
    if asked < CHANCE_MIN_ROWS:
        return []
    answer = scores.argmax(axis=1)
    right = sum(
        int(np.count_nonzero(confident & (answer == j) & _known_mask(labels, {plain(c)})))
        for j, c in enumerate(classes)
    )
    p_value = float(stats.binomtest(right, asked, 0.5, alternative="less").pvalue)
    if p_value >= CHANCE_P_VALUE or right >= CONFIDENT_MAX_ACCURACY * asked:
        return []
    return [
        f"right on {right} of the {asked} rows it answers with probability {CONFIDENT} or "
        f"more ({right / asked:.0%}, one-sided binomial p = {p_value:.1e}): confidently "
        "wrong more often than a coin"
    ]


def worse_than_chance(
    task: str,
    predictions: np.ndarray,
    target: np.ndarray,
    proba: np.ndarray | None = None,
    classes: Sequence[Any] | None = None,
) -> str | None:
    """Why the outputs do significantly worse than chance against the labels, or None.

    A healthy model, however weak, does not do significantly *worse* than guessing: outputs
    that do are inverted, permuted or detached from their rows. Rows whose label is missing
    must be left out by the caller. Raises ``ValueError`` naming the reason when the outputs
    cannot be judged (too few rows, labels that are not values of the target).

    - Classifier: the balanced accuracy is below what predictions independent of the labels
      score (each class's recall would be the share of rows predicted that class), by a
      one-sided normal test and by at least a tenth of it. With two classes and probabilities,
      also: ROC AUC below 0.45 and below 0.5 by a one-sided Mann-Whitney U test; and the rows
      it answers with probability 0.99 or more right less often than a coin
      (``_confidently_wrong``). With probabilities, a class holding ``UNPREDICTABLE_SHARE`` of
      the labels that gets probability 0 on every row fails as a label it cannot predict.
    - Regressor: Spearman's rank correlation with the target below -0.1 and negative by a
      one-sided test; or outputs on another scale than the labels (``off_scale``).
    """
    import numpy as np
    from scipy import stats

    n = len(predictions)
    if predictions.ndim == 2 and predictions.shape[1] == 1:
        predictions = predictions[:, 0]  # one column (a target fitted as a column): one output
    if predictions.ndim != 1 or len(target) != n:
        raise ValueError("only one output per row is compared with the labels")
    if n < CHANCE_MIN_ROWS:
        raise ValueError(f"{n} labelled rows, fewer than the {CHANCE_MIN_ROWS} it needs")
    if task == "regressor":
        x, y = numeric_view(predictions), numeric_view(np.asarray(target))
        if x is None or y is None:
            raise ValueError("outputs or labels are not numbers")
        finite = np.isfinite(x) & np.isfinite(y)
        if finite.sum() < CHANCE_MIN_ROWS or np.ptp(x[finite]) == 0 or np.ptp(y[finite]) == 0:
            return None  # a constant is no worse than chance; other checks judge NaN outputs
        rho, p_value = stats.spearmanr(x[finite], y[finite], alternative="less")
        if p_value < CHANCE_P_VALUE and rho < -0.1:
            return (
                f"predictions rank the rows against their labels: Spearman correlation "
                f"{rho:.3f} with the target (one-sided p = {p_value:.1e}, {int(finite.sum())} "
                "rows); inverted outputs?"
            )
        return off_scale(x[finite], y[finite])
    labels = np.asarray(target, dtype=object)
    values = list(dict.fromkeys(plain(v) for v in labels))
    recalls, shares, sizes = [], [], []
    for value in values:
        truth = _known_mask(labels, {value})
        guessed = _known_mask(predictions, {value})
        sizes.append(int(truth.sum()))
        recalls.append(float((guessed & truth).sum()) / max(sizes[-1], 1))
        shares.append(float(guessed.mean()))
    overlap = sum(shares)
    if overlap == 0 and len(values) > CHANCE_MAX_LABELS:
        raise ValueError(
            f"the target holds {len(values)} different values, not class labels like the "
            "model's (a regression target?)"
        )
    if overlap == 0:
        # Not a partial overlap (a holdout without some class) but none at all: the labels
        # the model gives are not the target's, and every metric against them is meaningless.
        predicted = _distinct(map(plain, np.asarray(predictions, dtype=object).flat))
        return (
            f"none of the {n} predicted labels is a value of the target column: the model "
            f"predicts {_some(predicted)}, the target holds {_some(values)}; a target column "
            "other than the one the model was trained on, or labels encoded another way?"
        )
    if overlap < 0.5:
        raise ValueError(
            f"most predicted labels are not values of the target column (target holds "
            f"{values[:5]!r}{'...' if len(values) > 5 else ''})"
        )
    if classes is not None and len(classes):
        # A label the model has no class for can never be predicted: a class left out of
        # training, which balanced accuracy at the model's own rates does not see.
        known = {plain(c) for c in classes}
        beyond = [value for value in values if value not in known]
        count = int(np.count_nonzero(~_known_mask(labels, known))) if beyond else 0
        if count >= UNPREDICTABLE_SHARE * n:
            ours = [plain(c) for c in classes]
            return (
                f"{count} of the {n} labelled rows ({count / n:.0%}) have a label the model "
                f"can never predict: {_some(beyond)} not among its classes {_some(ours)}; "
                "trained without them?"
            )
    columns = _probability_matrix(proba, classes, n)
    if columns is not None and classes is not None:
        # A class the probabilities rule out on every row is one the model never gives, as
        # if it had no class for it: a probability column zeroed on the way out.
        for j, value in enumerate(plain(c) for c in classes):
            count = int(np.count_nonzero(_known_mask(labels, {value})))
            if count >= UNPREDICTABLE_SHARE * n and not columns[:, j].any():
                return (
                    f"{count} of the {n} labelled rows ({count / n:.0%}) have the label "
                    f"{value!r}, and the model gives it probability 0 on every row: it can "
                    "never be right on them (a probability column zeroed or dropped?)"
                )
    k = len(values)
    q, m = np.asarray(shares), np.asarray(sizes, dtype=float)
    balanced, chance = float(np.mean(recalls)), float(q.sum() / k)
    spread = float(np.sqrt(np.sum(q * (1 - q) / np.maximum(m, 1))) / k)
    problems = []
    if spread > 0:
        p_value = float(stats.norm.cdf((balanced - chance) / spread))
        if p_value < CHANCE_P_VALUE and balanced < 0.9 * chance:
            problems.append(
                f"balanced accuracy {balanced:.3f} where labels guessed at the same rates "
                f"score {chance:.3f} (one-sided p = {p_value:.1e}, {n} rows)"
            )
    if proba is not None and classes is not None and len(classes) == 2 and proba.ndim == 2:
        positive = _known_mask(labels, {plain(classes[1])})
        scores = numeric_view(proba[:, 1]) if proba.shape == (n, 2) else None
        if scores is not None and 0 < positive.sum() < n and np.isfinite(scores).all():
            from sklearn.metrics import roc_auc_score

            auc = float(roc_auc_score(positive, scores))
            p_value = float(
                stats.mannwhitneyu(scores[positive], scores[~positive], alternative="less").pvalue
            )
            if p_value < CHANCE_P_VALUE and auc < 0.45:
                problems.append(
                    f"ROC AUC {auc:.3f} of P({classes[1]!r}) (one-sided Mann-Whitney p = "
                    f"{p_value:.1e})"
                )
    if columns is not None and classes is not None and len(classes) == 2:
        problems.extend(_confidently_wrong(labels, columns, classes))
    if not problems:
        return None
    return (
        "outputs are significantly worse than chance against the labels: "
        + "; ".join(problems)
        + "; labels inverted or permuted, outputs detached from their rows, or inputs on "
        "another scale than in training?"
    )


def _binary_mismatch(
    kept: np.ndarray, positive: np.ndarray, p: np.ndarray, classes: Sequence[Any]
) -> tuple[tuple[int, ...], str] | None:
    import numpy as np

    if positive.all() or not positive.any():
        return None  # one label for every row: any threshold outside the probabilities
    low, high = float(np.median(p[positive])), float(np.median(p[~positive]))
    if low < high:
        wrong = np.flatnonzero((positive & (p < 0.5)) | (~positive & (p > 0.5)))
        return (
            tuple(kept[wrong].tolist()),
            f"rows predicted {classes[1]!r} are less likely to be {classes[1]!r} (median "
            f"probability {low:.3g}) than rows predicted {classes[0]!r} ({high:.3g}): labels or "
            "probability columns swapped",
        )
    # The best threshold: rows below it predicted classes[0], at or above it classes[1]; equal
    # probabilities fall on the same side. Violations at cut i: positives below i plus
    # negatives from i on.
    order = np.argsort(p, kind="stable")
    ps, pos = p[order], positive[order]
    below_pos = np.concatenate([[0], np.cumsum(pos)])
    below_neg = np.concatenate([[0], np.cumsum(~pos)])
    violations = below_pos + (below_neg[-1] - below_neg)
    cuts = np.concatenate([[True], ps[1:] > ps[:-1], [True]])
    violations = np.where(cuts, violations, len(p) + 1)
    best = int(np.argmin(violations))
    if violations[best] <= max(1, len(p) // 100):
        return None
    wrong_sorted = np.concatenate([np.flatnonzero(pos[:best]), best + np.flatnonzero(~pos[best:])])
    wrong = np.sort(order[wrong_sorted])
    return (
        tuple(kept[wrong].tolist()),
        f"no threshold on the probability of {classes[1]!r} gives the predicted labels: the best "
        f"one leaves {len(wrong)} rows on the wrong side",
    )


#: Label types whose equality with a number follows from their value alone.
_PLAIN_NUMBERS = (bool, int, float)
_PLAIN_OTHERS = (str, bytes, type(None))


def _known_mask(values: np.ndarray, known: set[Any]) -> np.ndarray:
    """Where ``plain(value) in known`` holds, for every value of ``values`` (same shape)."""
    import numpy as np

    if values.size == 0 or not known:
        return np.zeros(values.shape, dtype=bool)
    if values.dtype.kind in "biu" or (values.dtype.kind == "f" and values.dtype.itemsize <= 8):
        exact = _numeric_classes(values.dtype, known)
        if exact is not None:
            numbers = values.astype(np.float64) if values.dtype.kind == "f" else values
            return np.isin(numbers, exact)
    if values.dtype.kind in "US":
        texts = _text_classes(values.dtype, known)
        if texts is not None:
            return np.isin(values, texts)
    return _known_by_distinct_value(values, known)


def _text_classes(dtype: np.dtype[Any], known: set[Any]) -> np.ndarray | None:
    """The classes a string (``U``) or bytes (``S``) output can equal, as an array of that
    kind; None when a class's equality with a string is not decided by its value alone."""
    import numpy as np

    kind: type[str | bytes] = str if dtype.kind == "U" else bytes
    nul: Any = "\0" if kind is str else b"\0"
    found = []
    for label in known:
        value = plain(label)
        if type(value) is kind:
            # numpy drops trailing NULs: no value of such an array ends with one.
            if not value.endswith(nul):
                found.append(value)
        elif type(value) not in (*_PLAIN_NUMBERS, *_PLAIN_OTHERS):
            return None
    return np.asarray(found, dtype=dtype.kind)


def _numeric_classes(dtype: np.dtype[Any], known: set[Any]) -> np.ndarray | None:
    """The classes a number of ``dtype`` can equal, as an array of its kind for ``np.isin``;
    None when a class's equality with a number is not decided by its value alone."""
    import math

    import numpy as np

    integral = dtype.kind in "biu"
    found: list[int | float] = []
    for label in known:
        value = plain(label)
        if type(value) in _PLAIN_OTHERS:
            continue  # a number never equals a string, bytes or None
        if type(value) not in _PLAIN_NUMBERS:
            return None
        if integral:
            if isinstance(value, float) and not value.is_integer():
                continue  # also NaN and inf: no integer equals them
            found.append(int(value))
        elif isinstance(value, float):
            if not math.isnan(value):  # a NaN output is a new object: never the class's NaN
                found.append(value)
        else:
            try:
                as_float = float(value)
            except OverflowError:
                continue
            if as_float == value:  # an integer too large for a float equals no float
                found.append(as_float)
    if not integral:
        return np.asarray(found, dtype=np.float64)
    kind = np.int64 if dtype.kind != "u" else np.uint64
    info = np.iinfo(kind)
    return np.asarray([v for v in found if info.min <= v <= info.max], dtype=kind)


def _known_by_distinct_value(values: np.ndarray, known: set[Any]) -> np.ndarray:
    """Membership judged once per distinct value, for strings, mixed objects, dates, complex
    numbers: a dict (Python's own hashing and equality, as the set lookup uses) gives each
    value a code, through ``map`` over builtins, with no Python bytecode per value."""
    import numpy as np

    # tolist() gives numpy scalars as the Python values they hold (what plain() does); the
    # values of an object array come out as they are, and plain() sees each distinct one below.
    items = values.ravel().tolist()
    codes: dict[Any, int] = {}
    try:
        found = np.fromiter(
            map(codes.setdefault, items, itertools.count()), dtype=np.intp, count=len(items)
        )
    except TypeError:  # an unhashable value: as the set lookup does, value by value
        return _known_one_by_one(values, known)
    is_known = np.zeros(len(items), dtype=bool)
    for value, code in codes.items():
        is_known[code] = plain(value) in known
    return is_known[found].reshape(values.shape)


def _known_one_by_one(values: np.ndarray, known: set[Any]) -> np.ndarray:
    """Membership value by value, where some value cannot be hashed (a dict, a list): such a
    value is no class (every class is hashable, as a set of them), so it is unknown."""
    import numpy as np

    def is_known(value: Any) -> bool:
        try:
            return plain(value) in known
        except TypeError:
            return False

    found = np.fromiter(map(is_known, values.flat), dtype=bool, count=values.size)
    return found.reshape(values.shape)


def out_of_range_rows(outputs: np.ndarray, low: float, high: float) -> tuple[int, ...]:
    """Rows with a finite output outside [low, high]; NaN, Inf and non-numbers are other
    checks' business."""
    import numpy as np

    values = numeric_view(outputs)
    if values is None:
        return ()
    with np.errstate(invalid="ignore"):
        return rows_where(np.isfinite(values) & ((values < low) | (values > high)))


def find_problems(
    predictions: Any = None,
    *,
    n_rows: int,
    proba: Any = None,
    classes: Sequence[Any] | None = None,
    value_range: tuple[float, float] | None = None,
) -> list[OutputProblem]:
    """Every problem with one batch of outputs (predictions and/or probabilities).

    Used by the runtime wrapper and monitor; the gate's checks call the finders one by one so
    each check judges one property.
    """
    problems: list[OutputProblem] = []
    if predictions is not None:
        problems += _prediction_problems(as_array(predictions), n_rows, classes, value_range)
    if proba is not None:
        probs = as_array(proba)
        length = length_problem(probs, n_rows, "probability rows")
        if length is not None:
            return [*problems, length]
        for kind, rows in (
            ("nan", nan_rows(probs)),
            ("proba-range", proba_range_rows(probs)),
            ("proba-sum", proba_sum_rows(probs)),
        ):
            if rows:
                problems.append(
                    OutputProblem(kind, rows, f"{kind} in {describe_rows(rows, n_rows)}")
                )
    return problems


def _prediction_problems(
    preds: np.ndarray,
    n_rows: int,
    classes: Sequence[Any] | None,
    value_range: tuple[float, float] | None,
) -> list[OutputProblem]:
    length = length_problem(preds, n_rows)
    if length is not None:
        return [length]
    problems = [
        OutputProblem(kind, rows, f"{kind.upper()} in {describe_rows(rows, n_rows)}")
        for kind, rows in (("nan", nan_rows(preds)), ("inf", inf_rows(preds)))
        if rows
    ]
    if classes is not None:
        rows = unknown_label_rows(preds, classes)
        if rows:
            problems.append(
                OutputProblem("label", rows, f"unknown label in {describe_rows(rows, n_rows)}")
            )
    elif value_range is not None:
        rows = out_of_range_rows(preds, *value_range)
        if rows:
            problems.append(
                OutputProblem(
                    "range", rows, f"outside {value_range} in {describe_rows(rows, n_rows)}"
                )
            )
    return problems


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds; anything else unchanged."""
    item = getattr(value, "item", None)
    return item() if callable(item) and getattr(value, "ndim", 0) == 0 else value


def input_changes(
    deployment: Any, rows: pd.DataFrame, more: pd.DataFrame | None = None
) -> dict[str, list[str]]:
    """What ``batch_predict`` and, when the deployment has it, ``batch_predict_proba`` change
    in a copy of ``rows`` each is given, then in one of ``more`` (:func:`frame_changes`).
    ``batch_predict``'s errors on ``rows`` propagate; every other error is left to the checks
    made for it (``more`` holds missing values, which a model may refuse)."""
    found: dict[str, list[str]] = {}
    for frame in (rows, more):
        if frame is None or not len(frame):
            continue
        for method in ("batch_predict", "batch_predict_proba"):
            call = getattr(deployment, method, None)
            if call is None or found.get(method):
                continue
            given = frame.copy(deep=True)
            try:
                call(given)
            except Exception:
                if method == "batch_predict" and frame is rows:
                    raise
                continue
            found[method] = frame_changes(frame, given)
    return found


def frame_changes(before: pd.DataFrame, after: pd.DataFrame) -> list[str]:
    """What a call did to a frame it was given: rows reordered, dropped or added, the index
    replaced, columns modified, dropped or added."""
    if after.equals(before):
        return []
    if len(after) != len(before):
        return [f"{len(before)} rows became {len(after)}"]
    if not after.index.equals(before.index):
        if after.index.sort_values().equals(before.index.sort_values()):
            return ["rows reordered (sorted in place?)"]
        return ["the index replaced"]
    changed = [
        str(c) for c in before.columns if c not in after.columns or not after[c].equals(before[c])
    ]
    added = [str(c) for c in after.columns if c not in before.columns]
    return [f"column {c!r} modified or dropped" for c in changed] + [
        f"column {c!r} added" for c in added
    ]
