"""Mergeable profiles: the profile of a data set is the merge of the profiles of its parts."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deploy_gate import profiles
from deploy_gate.drift import (
    CategoricalProfile,
    NumericProfile,
    Profile,
    build_profile,
)
from deploy_gate.errors import DataError
from deploy_gate.sketch import QuantileSketch, rank_error


def _frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)
    x[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "k": rng.poisson(3.0, n).astype(np.int64),
            "c": np.array(["red", "green", "blue", None], dtype=object)[rng.integers(0, 4, n)],
        }
    )


REFERENCE = build_profile(_frame(3000, 1), predict=lambda d: d["k"].to_numpy() / 10.0)


def _counts(p: Profile) -> dict[str, object]:
    """Everything in a profile that is counted exactly."""
    out: dict[str, object] = {"rows": p.rows, "reference": p.reference}
    for f in p.features:
        if isinstance(f, NumericProfile):
            out[f.name] = (f.count, f.missing, f.bin_counts, f.below, f.at_or_below, f.distinct)
        else:
            assert isinstance(f, CategoricalProfile)
            out[f.name] = (f.count, f.missing, dict(zip(f.categories, f.counts, strict=True)))
    out["sample"] = p.sample
    return out


def _split(frame: pd.DataFrame, cuts: list[int]) -> list[pd.DataFrame]:
    bounds = [0, *sorted({min(c, len(frame)) for c in cuts}), len(frame)]
    return [frame.iloc[a:b] for a, b in itertools.pairwise(bounds) if b > a]


parts_strategy = st.tuples(
    st.integers(min_value=1, max_value=600),
    st.integers(min_value=0, max_value=10_000),
    st.lists(st.integers(min_value=1, max_value=600), max_size=6),
    st.randoms(use_true_random=False),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts_strategy)
def test_the_profile_of_the_whole_equals_the_merge_of_the_profiles_of_its_parts(args):
    n, seed, cuts, rnd = args
    data = _frame(n, seed, shift=0.5)
    parts = [profiles.profile_current(p, REFERENCE, sample_rows=50) for p in _split(data, cuts)]
    rnd.shuffle(parts)

    whole = profiles.profile_current(data, REFERENCE, sample_rows=50)
    merged = profiles.merge_all(parts)

    assert _counts(merged) == _counts(whole)
    assert profiles.compare(REFERENCE, merged) == profiles.compare(REFERENCE, whole)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=300), min_size=3, max_size=3),
    st.integers(min_value=0, max_value=1000),
)
def test_merging_is_associative_and_order_independent(sizes, seed):
    a, b, c = (
        profiles.profile_current(_frame(n, seed + i), REFERENCE, sample_rows=40)
        for i, n in enumerate(sizes)
    )
    m = profiles.merge

    left = _counts(m(m(a, b), c))

    assert left == _counts(m(a, m(b, c)))
    assert left == _counts(m(m(c, a), b))
    assert left == _counts(m(b, m(c, a)))


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=400),
    st.lists(st.integers(min_value=1, max_value=400), max_size=4),
)
def test_merged_reference_profiles_keep_exact_counts_and_quantiles_within_the_bound(values, cuts):
    frame = pd.DataFrame({"v": np.asarray(values, dtype=np.float64)})
    parts = [build_profile(p, sketch_capacity=16) for p in _split(frame, cuts)]

    merged = profiles.merge_all(parts).feature("v")

    assert isinstance(merged, NumericProfile)
    assert (merged.count, merged.missing) == (len(values), 0)
    assert sum(merged.bin_counts) == len(values)
    ordered = np.sort(frame["v"].to_numpy())
    grid = np.asarray(merged.quantiles)
    targets = np.arange(grid.size) / (grid.size - 1)
    below = np.searchsorted(ordered, grid, side="left") / ordered.size
    at_most = np.searchsorted(ordered, grid, side="right") / ordered.size
    assert np.all(below <= targets + merged.rank_error + 1e-12)
    assert np.all(at_most >= targets - merged.rank_error - 1e-12)


def test_features_with_few_distinct_values_stay_exact_through_merges():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"k": rng.poisson(4.0, 50_000).astype(np.float64)})
    parts = [
        build_profile(frame.iloc[i : i + 7000], sketch_capacity=16) for i in range(0, 50_000, 7000)
    ]

    merged = profiles.merge_all(parts).feature("k")
    whole = build_profile(frame).feature("k")

    assert isinstance(merged, NumericProfile)
    assert isinstance(whole, NumericProfile)
    assert merged.rank_error == 0.0
    assert (merged.quantiles, merged.edges, merged.bin_counts) == (
        whole.quantiles,
        whole.edges,
        whole.bin_counts,
    )


def test_the_sample_is_uniform_and_bounded():
    data = pd.DataFrame({"x": np.arange(20_000, dtype=np.float64), "c": ["a"] * 20_000})
    ref = build_profile(data.iloc[:500], predict=lambda d: d["x"].to_numpy())

    current = profiles.profile_current(data, ref, sample_rows=2000)

    assert current.sample is not None
    assert (current.sample.rows, current.sample.of) == (2000, 20_000)
    sampled = np.asarray(current.sample.columns[0], dtype=np.float64)
    assert np.unique(sampled).size == 2000
    # A uniform sample of 0..19999 has its mean near 10000 (standard error about 130).
    assert abs(sampled.mean() - 10_000) < 600


def test_the_sketch_states_its_error_and_round_trips():
    sketch = QuantileSketch(200)
    sketch.update(np.random.default_rng(0).normal(size=100_000))

    copy = QuantileSketch.from_text(sketch.to_text())

    assert copy.n == 100_000
    assert sketch.rank_error == rank_error(200) == pytest.approx(0.0165, abs=0.001)
    assert abs(copy.cdf(np.array([0.0]))[0] - 0.5) <= sketch.rank_error


def test_profiles_of_different_references_or_features_do_not_merge():
    other_ref = build_profile(_frame(3000, 9))
    a = profiles.profile_current(_frame(100, 1), REFERENCE)
    b = profiles.profile_current(_frame(100, 2), other_ref)
    c = profiles.profile_current(_frame(100, 3), REFERENCE, features=["x"])

    with pytest.raises(DataError, match="different references"):
        profiles.merge(a, b)
    with pytest.raises(DataError, match="different features"):
        profiles.merge(a, c)
    with pytest.raises(DataError, match="no profiles to merge"):
        profiles.merge_all([])
