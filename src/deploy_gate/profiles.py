"""Profiles as the unit of scale: built where the data lives, merged, compared profile to profile.

A profile of *current* data is counted against a reference :class:`~deploy_gate.drift.Profile`:
per numeric feature, exact counts over the reference's bin edges and at its quantile points (so
the KS statistic against the reference is the one the raw rows would give), missing and row
counts, and a KLL sketch of its own values; per categorical feature, exact category counts; and
a bounded uniform sample of rows, on which the gate's model worker computes prediction drift (a
model never runs where the data lives). It records the reference's fingerprint, so it is never
judged against another reference.

Every part of a profile is mergeable: the profile of a data set equals :func:`merge` of the
profiles of its parts, in any order and grouping (counts add, sketches merge, the sample keeps
the rows with the smallest hashes). That is what lets :func:`build` run anywhere: in process on
one DataFrame, streamed over files in bounded memory, or as map-reduce over row groups on a Dask
cluster (``engine="dask"``, the ``dask`` extra; see :mod:`deploy_gate.cluster`).

Reference profiles (no reference of their own) merge too: counts and sketches add and the bins
are recomputed from the merged sketch (exact again for features with few distinct values).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from deploy_gate.drift import (
    CategoricalProfile,
    DistinctCounts,
    DriftThresholds,
    FeatureDrift,
    FeatureProfile,
    NumericProfile,
    Profile,
    ProfileSample,
    SampleValue,
    _as_float,
    _CategoricalAccumulator,
    _CategoricalCounter,
    _chunks,
    _NumericAccumulator,
    _NumericBuilder,
    _scores,
    _sorted_non_missing,
    _thresholds,
    build_profile,
    numeric_profile,
    prediction_scores,
)
from deploy_gate.errors import ConfigError, DataError
from deploy_gate.sketch import QuantileSketch
from deploy_gate.sources import DataUnit, expand, read_text, read_unit

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

#: Rows a current profile samples for prediction drift (when its reference has predictions).
DEFAULT_SAMPLE_ROWS = 5000
#: KLL ``k`` of current profiles (as ``build_profile``'s default).
DEFAULT_SKETCH_K = 4096
_MISSING_KEY = "\x00missing"
_HASH_SEED = np.uint64(0x9E3779B97F4A7C15)
_HASH_PRIME = np.uint64(0x100000001B3)


@dataclass(frozen=True)
class BuildOptions:
    """How :func:`build` profiles data: what travels to every map task of a cluster run."""

    reference: Profile | None = None
    features: tuple[str, ...] | None = None
    chunk_rows: int = 100_000
    sample_rows: int = DEFAULT_SAMPLE_ROWS
    sketch_capacity: int = DEFAULT_SKETCH_K
    bins: int = 10
    quantiles: int = 1000
    max_categories: int = 1000

    def __post_init__(self) -> None:
        for name, low in (
            ("chunk_rows", 1),
            ("sample_rows", 0),
            ("sketch_capacity", 16),
            ("bins", 2),
            ("quantiles", 2),
            ("max_categories", 1),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")

    @property
    def columns(self) -> tuple[str, ...] | None:
        """The columns to read: the chosen features, else the reference's, else all."""
        if self.features is not None:
            return self.features
        if self.reference is not None:
            return self.reference.feature_names
        return None


# --------------------------------------------------------------------------------------------
# Building a current profile


class _CurrentNumeric:
    """Exact counts at the reference's points plus the feature's own sketch and extremes."""

    def __init__(self, ref: NumericProfile, capacity: int) -> None:
        self.ref = ref
        self.counts = _NumericAccumulator(ref)
        self.own = _NumericBuilder(ref.name, capacity)

    def add(self, values: np.ndarray) -> None:
        ordered, n_nan = _sorted_non_missing(values)
        self.counts.add_sorted(ordered, int(values.size), n_nan)
        self.own.add_sorted(ordered, int(values.size), n_nan)

    def finish(self, bins: int, n_quantiles: int) -> NumericProfile:
        own = self.own.finish(bins, n_quantiles)
        acc = self.counts
        return _with_counts(self.ref, own, acc.points, acc.less, acc.at_most)


def _with_counts(
    ref: NumericProfile,
    own: NumericProfile,
    points: np.ndarray,
    less: np.ndarray,
    at_most: np.ndarray,
) -> NumericProfile:
    """``own`` (a profile of the current values) binned over the reference's edges and points."""
    non_missing = own.count - own.missing
    edges = np.asarray(ref.edges, dtype=np.float64)
    below = less[np.searchsorted(points, edges)]
    bin_counts = np.diff(np.concatenate([[0], below, [non_missing]]))
    return dataclasses.replace(
        own,
        edges=ref.edges,
        bin_counts=tuple(int(c) for c in bin_counts),
        points=tuple(float(p) for p in points),
        below=tuple(int(c) for c in less),
        at_or_below=tuple(int(c) for c in at_most),
    )


def _category_limit(ref: CategoricalProfile) -> int:
    # The same bound as drift_against_profile's, so both count the same categories.
    return max(10_000, 20 * len(ref.counts))


def _categorical_profile(counter: _CategoricalCounter) -> CategoricalProfile:
    return counter.finish(max_categories=max(len(counter.counts), 1))


class _Sampler:
    """The ``size`` rows with the smallest row hashes seen so far (a mergeable uniform sample)."""

    def __init__(self, size: int, names: Sequence[str]) -> None:
        self.size = size
        self.names = tuple(names)
        self.of = 0
        self.hashes = np.empty(0, dtype=np.uint64)
        self.columns: dict[str, np.ndarray] = {n: np.empty(0, dtype=object) for n in names}

    def add(self, hashes: np.ndarray, columns: Mapping[str, np.ndarray]) -> None:
        self.of += int(hashes.size)
        if self.size == 0 or hashes.size == 0:
            return
        take = (
            hashes < self.hashes.max()
            if self.hashes.size >= self.size
            else np.ones(hashes.size, dtype=bool)
        )
        if not take.any():
            return
        all_hashes = np.concatenate([self.hashes, hashes[take]])
        keep = np.argsort(all_hashes, kind="stable")[: self.size]
        self.hashes = all_hashes[keep]
        for n in self.names:
            both = np.concatenate([self.columns[n], columns[n][take].astype(object)])
            self.columns[n] = both[keep]

    def finish(self) -> ProfileSample:
        return ProfileSample(
            self.size,
            self.of,
            self.names,
            tuple(tuple(_json_scalar(v) for v in self.columns[n]) for n in self.names),
            tuple(int(h) for h in self.hashes),
        )


def _json_scalar(value: Any) -> SampleValue:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool | int | float | str):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _row_hashes(numeric: Mapping[str, np.ndarray], keys: Mapping[str, np.ndarray], n: int) -> Any:
    """A 64-bit hash of each row's values, the same whatever chunk or file the row is in."""
    h = np.full(n, _HASH_SEED, dtype=np.uint64)
    for name in sorted({*numeric, *keys}):
        if name in numeric:
            # + 0.0 turns -0.0 into 0.0, which compares equal and must hash equal.
            column = pd.util.hash_array(numeric[name] + 0.0)
        else:
            column = pd.util.hash_array(keys[name])
        h = (h * _HASH_PRIME) ^ column
    return h


def _category_keys(series: pd.Series) -> np.ndarray:
    keys = series.astype(str).to_numpy(dtype=object)
    keys[series.isna().to_numpy()] = _MISSING_KEY
    return keys


class CurrentProfileBuilder:
    """Counts current data against ``reference`` chunk by chunk; :meth:`finish` gives the profile.

    ``sample_rows`` rows are sampled for prediction drift when the reference holds predictions
    (0 turns the sample off). Scores the serving process already has can be added with
    :meth:`add_scores` (the :class:`~deploy_gate.monitor.Monitor` does).
    """

    def __init__(
        self,
        reference: Profile,
        *,
        features: Sequence[str] | None = None,
        sample_rows: int = DEFAULT_SAMPLE_ROWS,
        sketch_capacity: int = DEFAULT_SKETCH_K,
    ) -> None:
        names = reference.feature_names if features is None else tuple(features)
        self.reference = reference
        self.names = names
        self.sketch_capacity = sketch_capacity
        self.rows = 0
        self.numeric: dict[str, _CurrentNumeric] = {}
        self.categorical: dict[str, _CategoricalCounter] = {}
        for name in names:
            fp = reference.feature(name)
            if isinstance(fp, NumericProfile):
                self.numeric[name] = _CurrentNumeric(fp, sketch_capacity)
            else:
                self.categorical[name] = _CategoricalCounter(name, limit=_category_limit(fp))
        self.scores = (
            _CurrentNumeric(reference.prediction, sketch_capacity)
            if reference.prediction is not None
            else None
        )
        self.scored = False
        size = sample_rows if reference.prediction is not None else 0
        self.sampler = _Sampler(size, names) if size else None

    def add(self, chunk: pd.DataFrame, *, what: str = "the current data") -> None:
        """Count one DataFrame of current rows (it must hold every profiled feature)."""
        by_name = {str(c): c for c in chunk.columns}
        lacking = [n for n in self.names if n not in by_name]
        if lacking:
            raise DataError(f"{what} lacks feature(s) {', '.join(map(repr, lacking))}")
        self.rows += len(chunk)
        floats: dict[str, np.ndarray] = {}
        for name, acc in self.numeric.items():
            floats[name] = _as_float(chunk[by_name[name]], name, what)
            acc.add(floats[name])
        for name, counter in self.categorical.items():
            counter.add(chunk[by_name[name]])
        if self.sampler is not None and len(chunk):
            keys = {n: _category_keys(chunk[by_name[n]]) for n in self.categorical}
            hashes = _row_hashes(floats, keys, len(chunk))
            columns = {
                n: floats[n] if n in floats else chunk[by_name[n]].to_numpy(dtype=object)
                for n in self.names
            }
            self.sampler.add(hashes, columns)

    def add_scores(self, scores: ArrayLike) -> None:
        """Count the model's scores on (some of) the rows, against the reference's scores."""
        if self.scores is None:
            raise DataError("the reference profile holds no predictions to count scores against")
        self.scores.add(prediction_scores(scores))
        self.scored = True

    def finish(self) -> Profile:
        ref = self.reference
        features: list[FeatureProfile] = []
        for name in self.names:
            if name in self.numeric:
                features.append(self.numeric[name].finish(ref.bins, _grid_size(ref, name)))
            else:
                features.append(_categorical_profile(self.categorical[name]))
        prediction = None
        if self.scores is not None and self.scored and ref.prediction is not None:
            prediction = self.scores.finish(ref.bins, len(ref.prediction.quantiles) - 1)
        return Profile(
            tuple(features),
            prediction,
            rows=self.rows,
            bins=ref.bins,
            reference=ref.fingerprint,
            sample=None if self.sampler is None else self.sampler.finish(),
        )


def _grid_size(ref: Profile, name: str) -> int:
    fp = ref.feature(name)
    return max(len(fp.quantiles) - 1, 2) if isinstance(fp, NumericProfile) else 2


def profile_current(
    data: pd.DataFrame | Iterable[pd.DataFrame],
    reference: Profile,
    *,
    features: Sequence[str] | None = None,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    sketch_capacity: int = DEFAULT_SKETCH_K,
) -> Profile:
    """The profile of current data (a DataFrame or chunks) counted against ``reference``."""
    builder = CurrentProfileBuilder(
        reference, features=features, sample_rows=sample_rows, sketch_capacity=sketch_capacity
    )
    for chunk in _chunks(data, "current data"):
        builder.add(chunk)
    return builder.finish()


# --------------------------------------------------------------------------------------------
# Merging


def merge(a: Profile, b: Profile) -> Profile:
    """The profile of the union of the data ``a`` and ``b`` profile.

    Both must be counted against the same reference (or both be reference profiles) and hold the
    same features. Associative and commutative: counts add exactly, KLL sketches merge within
    their error bound, samples keep the rows with the smallest hashes.
    """
    if a.reference != b.reference:
        raise DataError(
            "cannot merge profiles counted against different references "
            f"({a.reference or 'a reference profile'} and {b.reference or 'a reference profile'})"
        )
    if a.feature_names != b.feature_names:
        raise DataError(
            f"cannot merge profiles of different features: {list(a.feature_names)} and "
            f"{list(b.feature_names)}"
        )
    if a.bins != b.bins:
        raise DataError(f"cannot merge profiles of {a.bins} and {b.bins} bins")
    features = tuple(
        _merge_feature(fa, fb, a.bins, reference=a.reference is None)
        for fa, fb in zip(a.features, b.features, strict=True)
    )
    prediction = None
    if a.prediction is not None and b.prediction is not None:
        merged = _merge_feature(a.prediction, b.prediction, a.bins, reference=a.reference is None)
        assert isinstance(merged, NumericProfile)
        prediction = merged
    sample = None
    if a.sample is not None and b.sample is not None:
        sample = _merge_samples(a.sample, b.sample)
    return Profile(
        features,
        prediction,
        rows=a.rows + b.rows,
        bins=a.bins,
        reference=a.reference,
        sample=sample,
    )


def merge_all(profiles: Iterable[Profile]) -> Profile:
    """:func:`merge` of one or more profiles."""
    items = list(profiles)
    if not items:
        raise DataError("no profiles to merge")
    return reduce(merge, items)


def _merge_feature(
    a: FeatureProfile, b: FeatureProfile, bins: int, *, reference: bool
) -> FeatureProfile:
    if a.kind != b.kind:
        raise DataError(f"feature {a.name!r} is {a.kind} in one profile and {b.kind} in the other")
    if isinstance(a, CategoricalProfile) and isinstance(b, CategoricalProfile):
        counts = dict(zip(a.categories, a.counts, strict=True))
        for key, n in zip(b.categories, b.counts, strict=True):
            counts[key] = counts.get(key, 0) + n
        items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return CategoricalProfile(
            a.name,
            a.count + b.count,
            a.missing + b.missing,
            tuple(k for k, _ in items),
            tuple(n for _, n in items),
            a.other + b.other,
        )
    assert isinstance(a, NumericProfile)
    assert isinstance(b, NumericProfile)
    if a.sketch is None or b.sketch is None:
        raise DataError(
            f"feature {a.name!r}: a profile of format 1 holds no sketch and cannot be merged; "
            "rebuild it with this version"
        )
    sketch = QuantileSketch.from_text(a.sketch)
    sketch.merge(QuantileSketch.from_text(b.sketch))
    distinct = _merged_distinct(a, b)
    count, missing = a.count + b.count, a.missing + b.missing
    lo, hi = _extremes(a, b)
    grid = max(len(a.quantiles), len(b.quantiles)) - 1
    exact = None if distinct is None else (distinct.values, np.cumsum(distinct.counts))
    own = numeric_profile(
        a.name, count, missing, sketch, lo, hi, bins, grid, exact=exact, distinct=distinct
    )
    if reference:
        return own
    if a.points != b.points or a.edges != b.edges:
        raise DataError(f"feature {a.name!r}: the two profiles were counted over other points")
    return _with_counts(
        a,
        own,
        np.asarray(a.points, dtype=np.float64),
        np.add(a.below, b.below),
        np.add(a.at_or_below, b.at_or_below),
    )


def _merged_distinct(a: NumericProfile, b: NumericProfile) -> DistinctCounts | None:
    da, db = DistinctCounts.from_tuple(a.distinct), DistinctCounts.from_tuple(b.distinct)
    return None if da is None else da.merged(db)


def _extremes(a: NumericProfile, b: NumericProfile) -> tuple[float, float]:
    lows = [p.quantiles[0] for p in (a, b) if p.count > p.missing]
    highs = [p.quantiles[-1] for p in (a, b) if p.count > p.missing]
    return (min(lows), max(highs)) if lows else (math.inf, -math.inf)


def _merge_samples(a: ProfileSample, b: ProfileSample) -> ProfileSample:
    if a.names != b.names:
        raise DataError("cannot merge samples of different columns")
    size = min(a.size, b.size)
    hashes = np.array([*a.hashes, *b.hashes], dtype=np.uint64)
    keep = np.argsort(hashes, kind="stable")[:size]
    columns = tuple(
        tuple(np.array([*ca, *cb], dtype=object)[keep].tolist())
        for ca, cb in zip(a.columns, b.columns, strict=True)
    )
    return ProfileSample(size, a.of + b.of, a.names, columns, tuple(int(h) for h in hashes[keep]))


# --------------------------------------------------------------------------------------------
# Comparing


def compare(
    reference: Profile,
    current: Profile,
    *,
    features: Sequence[str] | None = None,
    thresholds: DriftThresholds | None = None,
    predict: Callable[[pd.DataFrame], ArrayLike] | None = None,
    current_source: str = "the current profile",
    **overrides: float,
) -> list[FeatureDrift]:
    """Drift of a current profile against its reference profile, without any rows.

    The verdicts and messages are those :func:`~deploy_gate.drift.drift_against_profile` gives
    on the raw current rows: the current profile holds the same exact counts. Prediction drift
    comes from ``predict`` on the profile's sample (its size is stated in the message), else
    from the scores counted into the profile; without either it is left out.
    """
    th = _thresholds(thresholds, overrides)
    check_reference(reference, current, current_source)
    names = reference.feature_names if features is None else tuple(features)
    results: list[FeatureDrift] = []
    for name in names:
        ref_f = reference.feature(name)
        try:
            cur_f = current.feature(name)
        except DataError:
            raise DataError(f"{current_source} lacks feature {name!r}") from None
        if ref_f.kind != cur_f.kind:
            raise DataError(
                f"{current_source}: feature {name!r} is {cur_f.kind}, the reference's {ref_f.kind}"
            )
        if isinstance(ref_f, NumericProfile):
            assert isinstance(cur_f, NumericProfile)
            results.append(_numeric_result(ref_f, cur_f, "numeric", th, current_source))
        else:
            assert isinstance(cur_f, CategoricalProfile)
            acc = _CategoricalAccumulator(ref_f)
            acc.counter.count, acc.counter.missing = cur_f.count, cur_f.missing
            acc.counter.counts = dict(zip(cur_f.categories, cur_f.counts, strict=True))
            acc.counter.other = cur_f.other
            results.append(acc.result(th))
    if reference.prediction is not None:
        scored = _prediction(reference, current, predict, th, current_source)
        if scored is not None:
            results.append(scored)
    return results


def check_reference(reference: Profile, current: Profile, current_source: str) -> None:
    """A ``DataError`` unless ``current`` was counted against ``reference``."""
    if current.reference is None:
        raise DataError(
            f"{current_source} is a reference profile, not a profile of current data counted "
            "against the reference: build it with deploy-gate profile build DATA --reference "
            "REF.json"
        )
    if current.reference != reference.fingerprint:
        raise DataError(
            f"{current_source} was built against another reference ({current.reference}; this "
            f"reference is {reference.fingerprint}): rebuild it with deploy-gate profile build "
            "DATA --reference naming this reference profile"
        )


def _numeric_result(
    ref: NumericProfile,
    cur: NumericProfile,
    kind: Literal["numeric", "prediction"],
    th: DriftThresholds,
    current_source: str,
) -> FeatureDrift:
    acc = _NumericAccumulator(ref)
    if cur.points != tuple(float(p) for p in acc.points):
        raise DataError(
            f"{current_source}: feature {ref.name!r} was not counted at the reference's points"
        )
    acc.count, acc.missing = cur.count, cur.missing
    acc.less = np.asarray(cur.below, dtype=np.int64)
    acc.at_most = np.asarray(cur.at_or_below, dtype=np.int64)
    return acc.result(kind, th)


def _prediction(
    reference: Profile,
    current: Profile,
    predict: Callable[[pd.DataFrame], ArrayLike] | None,
    th: DriftThresholds,
    current_source: str,
) -> FeatureDrift | None:
    assert reference.prediction is not None
    sample = current.sample
    if predict is not None and sample is not None and sample.rows:
        acc = _NumericAccumulator(reference.prediction)
        acc.add(_scores(predict, sample.frame(), f"the sample of {current_source}"))
        result = acc.result("prediction", th)
        return dataclasses.replace(
            result,
            message=f"{result.message} [model scores on a uniform sample of {sample.rows} of "
            f"{sample.of} current rows]",
        )
    if current.prediction is not None and current.prediction.points:
        return _numeric_result(
            reference.prediction, current.prediction, "prediction", th, current_source
        )
    return None


def prediction_skip_reason(reference: Profile, current: Profile) -> str:
    """Why a comparison of these profiles has no prediction drift figure."""
    if reference.prediction is None:
        return "the reference profile was saved without predictions"
    return (
        "the current profile holds no sample of rows to score (it was built with "
        "--sample-rows 0) and no scores"
    )


# --------------------------------------------------------------------------------------------
# Loading and building


def load(path: str | os.PathLike[str], *, what: str = "profile") -> Profile:
    """A saved profile, local or at an fsspec URL; errors name ``what`` and the file."""
    from deploy_gate.sources import format_of

    name = os.fspath(path)
    unit = DataUnit(name, format_of(name) or "json")
    return Profile.from_json(read_text(unit, what), source=f"{what} {name!r}")


def profile_unit(unit: DataUnit, options: BuildOptions, what: str = "DATA") -> Profile:
    """The profile of one unit of data (a map task), or the saved profile it is."""
    if unit.format == "profile":
        return load(unit.location, what=what)
    chunks = read_unit(unit, chunk_rows=options.chunk_rows, columns=options.columns, what=what)
    if options.reference is None:
        unreadable: list[DataError] = []

        def reading() -> Iterator[pd.DataFrame]:
            try:
                yield from chunks
            except DataError as exc:  # already names the flag and the file
                unreadable.append(exc)
                raise

        try:
            return build_profile(
                reading(),
                features=options.features,
                bins=options.bins,
                quantiles=options.quantiles,
                sketch_capacity=options.sketch_capacity,
                max_categories=options.max_categories,
            )
        except DataError as exc:
            if exc in unreadable:
                raise
            raise DataError(f"{what}: {unit}: {exc}") from exc
    builder = CurrentProfileBuilder(
        options.reference,
        features=options.features,
        sample_rows=options.sample_rows,
        sketch_capacity=options.sketch_capacity,
    )
    for chunk in chunks:
        builder.add(chunk, what=f"{what}: {unit}")
    return builder.finish()


def build(
    sources: Sequence[str | os.PathLike[str]],
    *,
    reference: Profile | None = None,
    features: Sequence[str] | None = None,
    engine: Literal["stream", "dask"] = "stream",
    scheduler: str | None = None,
    workers: int | None = None,
    chunk_rows: int = 100_000,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    sketch_capacity: int = DEFAULT_SKETCH_K,
    storage_options: Mapping[str, Any] | None = None,
    what: str = "DATA",
) -> Profile:
    """The profile of the data that ``sources`` name (files, folders, globs, fsspec URLs, and
    saved profiles, which are merged in).

    With ``reference``, a profile of current data counted against it (see
    :class:`CurrentProfileBuilder`); without, a reference profile. ``engine="stream"`` reads the
    files here, one chunk of ``chunk_rows`` rows at a time; ``engine="dask"`` maps over Parquet
    row groups and files on the Dask cluster at ``scheduler`` (default: a local cluster of
    ``workers`` processes) and merges the parts there. Both give the same counts.
    """
    if engine not in ("stream", "dask"):
        raise ConfigError(f"engine must be 'stream' or 'dask', got {engine!r}")
    options = BuildOptions(
        reference=reference,
        features=None if features is None else tuple(features),
        chunk_rows=chunk_rows,
        sample_rows=sample_rows,
        sketch_capacity=sketch_capacity,
    )
    units = expand(sources, storage_options=storage_options, what=what)
    if engine == "dask":
        from deploy_gate.cluster import map_reduce_on_dask

        profile = map_reduce_on_dask(
            units,
            profile_unit,
            merge,
            broadcast={"options": options},
            scheduler=scheduler,
            workers=workers,
            what=what,
        )
    else:
        profile = merge_all(
            _checked(profile_unit(u, options, what), u, options, what) for u in units
        )
    return _checked(profile, None, options, what)


def _checked(profile: Profile, unit: DataUnit | None, options: BuildOptions, what: str) -> Profile:
    where = f"{what}: {unit}" if unit is not None else what
    ref = options.reference
    if ref is not None and unit is not None and unit.format == "profile":
        check_reference(ref, profile, f"{where} (a saved profile)")
    if ref is None and profile.reference is not None:
        raise DataError(
            f"{where} is a profile of current data; pass --reference to merge such profiles"
        )
    if unit is None and profile.rows == 0:
        raise DataError(f"{what}: the data has no rows")
    return profile


__all__ = [
    "DEFAULT_SAMPLE_ROWS",
    "BuildOptions",
    "CurrentProfileBuilder",
    "build",
    "check_reference",
    "compare",
    "load",
    "merge",
    "merge_all",
    "prediction_skip_reason",
    "profile_current",
    "profile_unit",
]
