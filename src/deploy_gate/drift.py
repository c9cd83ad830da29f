"""Per-feature drift between reference data (or a saved profile of it) and current data.

Numeric features are compared with the population stability index (PSI) on quantile bins of the
reference plus the two-sample Kolmogorov-Smirnov test; categorical features with PSI on category
shares plus the chi-square test of homogeneity. Missing values are a bin/category of their own,
so a feature that suddenly goes missing drifts too.

Verdict rule (the same for every feature): a feature drifts when the change is both
**significant** and **material**:

- significant: ``p < pvalue``, where ``p`` is the KS p-value (numeric; the smaller of it and a
  chi-square test on the missing share when either side has missing values) or the chi-square
  p-value on the category table (categorical);
- material: ``PSI > psi_threshold``, or the effect size reaches its floor: KS ``D >= ks_floor``
  (numeric) or Cramér's ``V >= cramers_v_floor`` (categorical).

Significance keeps a hundred rows of noise (where PSI alone fluctuates around 0.2) from failing;
the effect floor keeps a million rows from turning a negligible but "significant" shift into a
failure. For identical distributions the false-alarm rate per feature is at most ``pvalue`` at
small sizes and essentially zero from a few thousand rows on.

A :class:`Profile` replaces the reference data: it is built in one streaming pass with bounded
memory and holds, per feature, the bin edges and counts, category counts, missing counts and a
mergeable quantile sketch (Apache DataSketches' KLL, see :mod:`deploy_gate.sketch`). Drift against
a profile is computed in one streaming pass over the current data; the KS statistic then carries
a stated error bound (``FeatureDrift.ks_error``, see :func:`build_profile`). Profiles of current
data counted against a reference, how they merge and how they compare with the reference, are
in :mod:`deploy_gate.profiles`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np
import pandas as pd

from deploy_gate.errors import CheckFailure, ConfigError, DataError
from deploy_gate.sketch import MAX_K, SKETCH_KIND, QuantileSketch

# Reading data in chunks has one home, deploy_gate.sources; re-exported here, where it always was.
from deploy_gate.sources import iter_chunks
from deploy_gate.stats import psi, psi_terms, quantile_edges

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

Kind: TypeAlias = Literal["numeric", "categorical", "prediction"]
#: Name under which prediction drift is reported (its own item, ``drift[prediction]``).
PREDICTION = "prediction"
#: Beyond this many rows per side the KS p-value is asymptotic (as in ``scipy.stats.ks_2samp``).
_EXACT_KS_MAX_N = 10_000
#: Beyond this effective size the KS p-value uses the limiting distribution (see _ks_pvalue).
_KSTWO_MAX_EN = 1_000
#: How many of the bins/categories that moved most a result names.
_MOVED_SHOWN = 3
#: Unseen categories named individually; the rest share one bin.
_UNSEEN_NAMED = 50
_UNSEEN_REST = "(other unseen)"
_OTHER = "(other)"
_MISSING = "missing"
PROFILE_FORMAT = "deploy-gate-profile"
#: Version 2 added the KLL sketch, the reference fingerprint, current-side counts and the sample;
#: version 1 files still load (without a sketch they cannot be merged).
PROFILE_VERSION = 2
_READABLE_VERSIONS = (1, 2)
#: A numeric feature with at most this many distinct values is counted exactly, value by value.
DISTINCT_LIMIT = 1000


# --------------------------------------------------------------------------------------------
# Settings and results


@dataclass(frozen=True)
class DriftThresholds:
    """When a feature counts as drifted: PSI threshold, p-value and the effect-size floors."""

    psi_threshold: float = 0.2
    pvalue: float = 0.01
    ks_floor: float = 0.1
    cramers_v_floor: float = 0.1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.psi_threshold) and self.psi_threshold > 0):
            raise ConfigError(f"psi_threshold must be > 0, got {self.psi_threshold!r}")
        if not 0 < self.pvalue < 1:
            raise ConfigError(f"pvalue must be in (0, 1), got {self.pvalue!r}")
        for name in ("ks_floor", "cramers_v_floor"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ConfigError(f"{name} must be in [0, 1], got {value!r}")


@dataclass(frozen=True)
class MovedBin:
    """One bin or category and how its share moved between reference and current data."""

    label: str
    reference_share: float
    current_share: float
    psi_term: float

    def __str__(self) -> str:
        return f"{self.label}: {self.reference_share:.1%} -> {self.current_share:.1%}"


@dataclass(frozen=True)
class FeatureDrift:
    """The drift verdict for one feature (or for the model's predictions).

    ``statistic``/``pvalue`` are the KS ``D`` (numeric) or the chi-square statistic
    (categorical) and the p-value the verdict used; ``effect`` is KS ``D`` or Cramér's ``V``.
    ``ks_error`` bounds ``|D - exact D|`` when the reference is a profile (0 when exact).
    """

    feature: str
    kind: Kind
    psi: float
    psi_threshold: float
    test: Literal["ks", "chi2"]
    statistic: float
    pvalue: float
    pvalue_threshold: float
    effect: float
    effect_floor: float
    passed: bool
    n_reference: int
    n_current: int
    missing_reference: float
    missing_current: float
    moved: tuple[MovedBin, ...]
    unseen: tuple[str, ...]
    ks_error: float
    message: str

    @property
    def effect_name(self) -> str:
        """``"KS D"`` or ``"Cramér's V"``."""
        return "KS D" if self.test == "ks" else "Cramér's V"

    def properties(self) -> list[tuple[str, object]]:
        """Figures for JUnit ``user_properties`` and the summary table, as name/value pairs."""
        return [
            ("drift_feature", self.feature),
            ("drift_kind", self.kind),
            ("drift_passed", self.passed),
            ("drift_psi", round(self.psi, 6)),
            ("drift_psi_threshold", self.psi_threshold),
            ("drift_test", self.test),
            ("drift_statistic", round(self.statistic, 6)),
            ("drift_pvalue", float(f"{self.pvalue:.6g}")),
            ("drift_pvalue_threshold", self.pvalue_threshold),
            ("drift_effect", round(self.effect, 6)),
            ("drift_effect_floor", self.effect_floor),
            ("drift_n_reference", self.n_reference),
            ("drift_n_current", self.n_current),
            ("drift_missing_reference", round(self.missing_reference, 6)),
            ("drift_missing_current", round(self.missing_current, 6)),
        ]


# --------------------------------------------------------------------------------------------
# Profile


#: A feature (or ``prediction``) to its drift verdict, to why it has none (a skip), or to why
#: the model could not score the rows (a failure of ``drift[prediction]``): what the gate's
#: drift checks compute once per artifact.
DriftResults: TypeAlias = "dict[str, FeatureDrift | str | CheckFailure]"


@dataclass(frozen=True)
class NumericProfile:
    """Reference summary of one numeric feature (or of the model's scores).

    ``quantiles[i]`` is the value at rank ``i / (len(quantiles) - 1)`` of the non-missing values;
    ``rank_error`` bounds the error of those ranks as a share of the non-missing count (with 99%
    confidence once the sketch summarises; 0 when exact). ``sketch`` is the KLL sketch of the
    non-missing values as base64 text (None in profiles of format 1).

    In a profile of current data counted against a reference, ``edges`` are the reference's and
    ``bin_counts`` are exact; ``points`` are the reference's distinct quantiles and edges, and
    ``below``/``at_or_below`` count the current values under/at-or-under each of them exactly.

    ``distinct`` holds every distinct value with its count while there are at most
    :data:`DISTINCT_LIMIT` of them (counts, codes, flags): such a feature is profiled exactly
    however its data was split, and merges stay exact.
    """

    name: str
    count: int
    missing: int
    edges: tuple[float, ...]
    bin_counts: tuple[int, ...]
    quantiles: tuple[float, ...]
    rank_error: float
    kind: Literal["numeric"] = "numeric"
    sketch: str | None = None
    points: tuple[float, ...] = ()
    below: tuple[int, ...] = ()
    at_or_below: tuple[int, ...] = ()
    distinct: tuple[tuple[float, int], ...] | None = None

    @property
    def ks_error(self) -> float:
        """Bound on ``|D - exact D|`` for a KS statistic computed against this profile."""
        if self.count - self.missing == 0:
            return 0.0
        return 2.0 / (len(self.quantiles) - 1) + 3.0 * self.rank_error


@dataclass(frozen=True)
class CategoricalProfile:
    """Reference summary of one categorical feature: counts per category (as strings).

    ``other`` counts the values of categories beyond the ``max_categories`` most frequent.
    """

    name: str
    count: int
    missing: int
    categories: tuple[str, ...]
    counts: tuple[int, ...]
    other: int = 0
    kind: Literal["categorical"] = "categorical"


FeatureProfile: TypeAlias = NumericProfile | CategoricalProfile
#: A JSON scalar of a sampled row: numbers, strings, booleans; None for a missing value.
SampleValue: TypeAlias = float | int | str | bool | None


@dataclass(frozen=True)
class ProfileSample:
    """A uniform sample of current rows, without replacement, for prediction drift.

    The rows with the ``size`` smallest 64-bit row hashes (``hashes``) are kept, so the sample of
    a data set equals the merge of the samples of its parts. ``of`` is the number of rows it was
    drawn from; ``columns`` holds the sampled values of each feature, row for row.
    """

    size: int
    of: int
    names: tuple[str, ...]
    columns: tuple[tuple[SampleValue, ...], ...]
    hashes: tuple[int, ...]

    @property
    def rows(self) -> int:
        return len(self.hashes)

    def frame(self) -> pd.DataFrame:
        """The sampled rows as a DataFrame (numbers as float64, missing as NaN/None)."""
        data: dict[str, Any] = {}
        for name, values in zip(self.names, self.columns, strict=True):
            if all(
                v is None or (isinstance(v, float | int) and not isinstance(v, bool))
                for v in values
            ):
                data[name] = np.array(
                    [np.nan if v is None else v for v in values], dtype=np.float64
                )
            else:
                data[name] = pd.Series(list(values), dtype=object)
        return pd.DataFrame(data, columns=list(self.names))


@dataclass(frozen=True)
class Profile:
    """A saved reference: everything drift needs from the training data, in a small JSON file.

    ``reference`` is None for a reference profile; a profile of current data counted against a
    reference names that reference's :attr:`fingerprint` there (see :mod:`deploy_gate.profiles`),
    and may carry a ``sample`` of its rows for prediction drift.
    """

    features: tuple[FeatureProfile, ...]
    prediction: NumericProfile | None = None
    rows: int = 0
    bins: int = 10
    reference: str | None = None
    sample: ProfileSample | None = None
    _by_name: dict[str, FeatureProfile] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        self._by_name.update((f.name, f) for f in self.features)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The profiled features, in order."""
        return tuple(f.name for f in self.features)

    def feature(self, name: str) -> FeatureProfile:
        """The profile of one feature; a ``DataError`` naming it when it is not profiled."""
        try:
            return self._by_name[name]
        except KeyError:
            raise DataError(f"feature {name!r} is not in the profile") from None

    @property
    def fingerprint(self) -> str:
        """What current data is counted against: a hash of the bins, quantiles and categories.

        Profiles of current data record the fingerprint of the reference they were counted
        against, so they are never compared with (or merged across) another reference.
        """
        parts: list[Any] = [self.bins]
        for f in (*self.features, *(() if self.prediction is None else (self.prediction,))):
            if isinstance(f, NumericProfile):
                parts.append([f.name, f.kind, list(f.edges), list(f.quantiles)])
            else:
                parts.append([f.name, f.kind, list(f.categories), f.other > 0])
        digest = hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()
        return "sha256:" + digest[:32]

    def to_json(self, *, indent: int | None = None) -> str:
        """The profile as JSON text (shares are written next to counts for readers)."""
        doc: dict[str, Any] = {
            "format": PROFILE_FORMAT,
            "version": PROFILE_VERSION,
            "rows": self.rows,
            "bins": self.bins,
            "sketch": SKETCH_KIND,
            "fingerprint": self.fingerprint,
            "reference": self.reference,
            "features": [_feature_to_dict(f) for f in self.features],
            "prediction": None if self.prediction is None else _feature_to_dict(self.prediction),
            "sample": None if self.sample is None else _sample_to_dict(self.sample),
        }
        return json.dumps(doc, indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, text: str, *, source: str = "profile") -> Profile:
        """Read a profile written by :meth:`to_json` (format 1 or 2); a ``DataError`` naming
        ``source`` if it is not one."""
        try:
            doc = json.loads(text)
            if not isinstance(doc, dict) or doc.get("format") != PROFILE_FORMAT:
                raise ValueError("not a deploy-gate profile")
            version = doc.get("version")
            if version not in _READABLE_VERSIONS:
                newer = isinstance(version, int) and version > PROFILE_VERSION
                raise ValueError(
                    f"profile format version {version!r} "
                    + (
                        "is newer than this pytest-deploy-gate reads: upgrade it"
                        if newer
                        else f"is unknown (readable: {', '.join(map(str, _READABLE_VERSIONS))})"
                    )
                )
            if version > 1 and doc.get("sketch") not in (None, SKETCH_KIND):
                raise ValueError(f"unknown sketch kind {doc.get('sketch')!r}")
            features = tuple(_feature_from_dict(d) for d in doc["features"])
            pred = doc.get("prediction")
            prediction = None if pred is None else _feature_from_dict(pred)
            if prediction is not None and not isinstance(prediction, NumericProfile):
                raise ValueError("the prediction profile must be numeric")
            reference = doc.get("reference")
            if reference is not None and not isinstance(reference, str):
                raise ValueError("'reference' must be a fingerprint string or null")
            sample = doc.get("sample")
            profile = cls(
                features,
                prediction,
                rows=int(doc["rows"]),
                bins=int(doc["bins"]),
                reference=reference,
                sample=None if sample is None else _sample_from_dict(sample),
            )
            if len(set(profile.feature_names)) != len(profile.features):
                raise ValueError("a feature is profiled twice")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # DataError is a ValueError: a corrupted sketch lands here too.
            detail = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
            raise DataError(f"cannot read {source}: {detail}") from exc
        return profile

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the profile as JSON to ``path``, atomically: a gate reading the profile a
        serving process dumps (``Monitor.dump_profile``) never sees half of it."""
        from deploy_gate.files import write_atomic

        write_atomic(path, self.to_json(indent=1))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Profile:
        """Read a profile saved with :meth:`save`; a ``DataError`` naming the file if unreadable."""
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise DataError(f"cannot read profile {os.fspath(path)!r}: {exc.strerror}") from exc
        return cls.from_json(text, source=f"profile {os.fspath(path)!r}")


def _sample_to_dict(sample: ProfileSample) -> dict[str, Any]:
    return {
        "size": sample.size,
        "of": sample.of,
        "rows": sample.rows,
        # Hashes as hex: JSON readers that parse numbers as doubles would round 64-bit integers.
        "hashes": [f"{h:016x}" for h in sample.hashes],
        "columns": {
            name: [None if isinstance(v, float) and math.isnan(v) else v for v in values]
            for name, values in zip(sample.names, sample.columns, strict=True)
        },
    }


def _sample_from_dict(d: Mapping[str, Any]) -> ProfileSample:
    hashes = tuple(int(h, 16) for h in d["hashes"])
    columns = d["columns"]
    if not isinstance(columns, dict):
        raise ValueError("the sample's columns must be an object")
    for name, values in columns.items():
        if not isinstance(values, list) or len(values) != len(hashes):
            raise ValueError(f"the sample's column {name!r} does not have {len(hashes)} values")
        bad = next((v for v in values if not isinstance(v, float | int | str | bool | None)), None)
        if bad is not None:
            raise ValueError(f"the sample's column {name!r} holds {type(bad).__name__} values")
    size, of = int(d["size"]), int(d["of"])
    if not len(hashes) <= size or len(hashes) > of:
        raise ValueError("the sample holds more rows than its size or its data")
    return ProfileSample(
        size,
        of,
        tuple(str(n) for n in columns),
        tuple(tuple(v) for v in columns.values()),
        hashes,
    )


def _feature_to_dict(f: FeatureProfile) -> dict[str, Any]:
    non_missing = f.count - f.missing
    base: dict[str, Any] = {
        "name": f.name,
        "kind": f.kind,
        "count": f.count,
        "missing": f.missing,
        "missing_share": f.missing / f.count if f.count else 0.0,
    }
    if isinstance(f, NumericProfile):
        base.update(
            edges=list(f.edges),
            bin_counts=list(f.bin_counts),
            bin_shares=[c / non_missing if non_missing else 0.0 for c in f.bin_counts],
            quantiles=list(f.quantiles),
            rank_error=f.rank_error,
            sketch=f.sketch,
        )
        if f.distinct is not None:
            base["distinct"] = {
                "values": [v for v, _ in f.distinct],
                "counts": [c for _, c in f.distinct],
            }
        if f.points:
            base.update(points=list(f.points), below=list(f.below), at_or_below=list(f.at_or_below))
    else:
        base.update(
            categories=dict(zip(f.categories, f.counts, strict=True)),
            category_shares={
                c: n / non_missing if non_missing else 0.0
                for c, n in zip(f.categories, f.counts, strict=True)
            },
            other=f.other,
        )
    return base


def _feature_from_dict(d: Mapping[str, Any]) -> FeatureProfile:
    name = str(d["name"])
    try:
        if d["kind"] == "numeric":
            edges = tuple(float(x) for x in d["edges"])
            counts = tuple(int(x) for x in d["bin_counts"])
            quantiles = tuple(float(x) for x in d["quantiles"])
            if len(counts) != len(edges) + 1 or len(quantiles) < 2:
                raise ValueError("edges, bin_counts and quantiles do not fit together")
            sketch = d.get("sketch")
            if sketch is not None:
                if not isinstance(sketch, str):
                    raise ValueError(f"feature {name!r}: the sketch must be base64 text")
                n = QuantileSketch.from_text(sketch).n
                if n != int(d["count"]) - int(d["missing"]):
                    raise ValueError(
                        f"feature {name!r}: its sketch holds {n} values but the counts say "
                        f"{int(d['count']) - int(d['missing'])}"
                    )
            points = tuple(float(x) for x in d.get("points", ()))
            below = tuple(int(x) for x in d.get("below", ()))
            at_or_below = tuple(int(x) for x in d.get("at_or_below", ()))
            if not len(points) == len(below) == len(at_or_below):
                raise ValueError(f"feature {name!r}: points, below and at_or_below differ")
            distinct = None
            if d.get("distinct") is not None:
                distinct = tuple(
                    (float(v), int(c))
                    for v, c in zip(d["distinct"]["values"], d["distinct"]["counts"], strict=True)
                )
            return NumericProfile(
                name,
                int(d["count"]),
                int(d["missing"]),
                edges,
                counts,
                quantiles,
                float(d["rank_error"]),
                sketch=sketch,
                points=points,
                below=below,
                at_or_below=at_or_below,
                distinct=distinct,
            )
        if d["kind"] == "categorical":
            cats = {str(k): int(v) for k, v in d["categories"].items()}
            return CategoricalProfile(
                name,
                int(d["count"]),
                int(d["missing"]),
                tuple(cats),
                tuple(cats.values()),
                int(d.get("other", 0)),
            )
    except KeyError as exc:
        raise ValueError(f"feature {name!r} lacks key {exc}") from exc
    raise ValueError(f"feature {name!r} has unknown kind {d['kind']!r}")


class DistinctCounts:
    """Exact counts of each distinct value while there are at most ``DISTINCT_LIMIT`` of them."""

    __slots__ = ("counts", "values")

    def __init__(self, values: np.ndarray, counts: np.ndarray) -> None:
        self.values = values
        self.counts = counts

    @classmethod
    def of(cls, sorted_values: np.ndarray) -> DistinctCounts | None:
        if sorted_values.size == 0:
            return cls(np.empty(0), np.empty(0, dtype=np.int64))
        starts = np.flatnonzero(np.concatenate([[True], sorted_values[1:] != sorted_values[:-1]]))
        if starts.size > DISTINCT_LIMIT:
            return None
        counts = np.diff(np.append(starts, sorted_values.size)).astype(np.int64)
        return cls(sorted_values[starts], counts)

    def merged(self, other: DistinctCounts | None) -> DistinctCounts | None:
        if other is None:
            return None
        values, inverse = np.unique(
            np.concatenate([self.values, other.values]), return_inverse=True
        )
        if values.size > DISTINCT_LIMIT:
            return None
        counts = np.bincount(inverse, weights=np.concatenate([self.counts, other.counts]))
        return DistinctCounts(values, np.rint(counts).astype(np.int64))

    def as_tuple(self) -> tuple[tuple[float, int], ...]:
        return tuple((float(v), int(c)) for v, c in zip(self.values, self.counts, strict=True))

    @classmethod
    def from_tuple(cls, pairs: tuple[tuple[float, int], ...] | None) -> DistinctCounts | None:
        if pairs is None:
            return None
        return cls(
            np.array([v for v, _ in pairs], dtype=np.float64),
            np.array([c for _, c in pairs], dtype=np.int64),
        )


class _NumericBuilder:
    """Count, missing count, extremes, KLL sketch and (while few) distinct values of one
    numeric feature over chunks.

    The first chunk's values are kept (sorted) until a second one arrives, so that a profile of
    one DataFrame is exact rather than read off the sketch.
    """

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.count = 0
        self.missing = 0
        self.sketch = QuantileSketch(capacity)
        self.lo = math.inf
        self.hi = -math.inf
        self.chunks = 0
        self.first: np.ndarray | None = None
        self.distinct: DistinctCounts | None = DistinctCounts.of(np.empty(0))

    def add(self, values: np.ndarray) -> None:
        if self.chunks == 0 or self.distinct is not None:
            ordered, n_nan = _sorted_non_missing(values)
            self.add_sorted(ordered, int(values.size), n_nan)
            return
        # Past the first chunk of a feature with many distinct values, no sort is needed.
        nan = np.isnan(values)
        n_nan = int(np.count_nonzero(nan))
        self.count += int(values.size)
        self.missing += n_nan
        finite_or_inf = values[~nan] if n_nan else values
        if finite_or_inf.size:
            self.chunks += 1
            self.first = None
            self.sketch.update(finite_or_inf)
            self.lo = min(self.lo, float(finite_or_inf.min()))
            self.hi = max(self.hi, float(finite_or_inf.max()))

    def add_sorted(self, ordered: np.ndarray, n_values: int, n_nan: int) -> None:
        """Add a chunk of ``n_values`` values, ``n_nan`` of them missing and the others given
        sorted in ``ordered``."""
        self.count += n_values
        self.missing += n_nan
        if ordered.size:
            self.chunks += 1
            self.sketch.update(ordered)
            self.lo = min(self.lo, float(ordered[0]))
            self.hi = max(self.hi, float(ordered[-1]))
            self.first = ordered if self.chunks == 1 else None
            if self.distinct is not None:
                self.distinct = self.distinct.merged(DistinctCounts.of(ordered))

    def finish(self, bins: int, n_quantiles: int) -> NumericProfile:
        exact = None
        if self.distinct is not None:
            exact = (self.distinct.values, np.cumsum(self.distinct.counts))
        elif self.first is not None:
            exact = (self.first, np.arange(1, self.first.size + 1))
        return numeric_profile(
            self.name,
            self.count,
            self.missing,
            self.sketch,
            self.lo,
            self.hi,
            bins,
            n_quantiles,
            exact=exact,
            distinct=self.distinct,
        )


def numeric_profile(
    name: str,
    count: int,
    missing: int,
    sketch: QuantileSketch,
    lo: float,
    hi: float,
    bins: int,
    n_quantiles: int,
    *,
    exact: tuple[np.ndarray, np.ndarray] | None = None,
    distinct: DistinctCounts | None = None,
) -> NumericProfile:
    """A reference profile of one numeric feature: quantile grid, edges, bin counts and the
    error bound, from its sketch or, when ``exact`` holds every value (sorted distinct values and
    their cumulative counts), exactly."""
    non_missing = count - missing
    text = sketch.to_text()
    kept = None if distinct is None else distinct.as_tuple()
    if non_missing == 0:
        return NumericProfile(
            name, count, missing, (), (0,), (0.0, 0.0), 0.0, sketch=text, distinct=kept
        )
    targets = np.arange(n_quantiles + 1) / n_quantiles
    if exact is not None:
        values, ranks = exact
        idx = np.minimum(
            np.searchsorted(ranks, targets * non_missing, side="left"), values.size - 1
        )
        grid = values[idx]
        rank_error = 0.0
    else:
        grid = sketch.quantiles(targets)
        rank_error = sketch.rank_error
    # The extremes are tracked exactly; the sketch may have compacted them away.
    grid[0], grid[-1] = lo, hi
    edges = quantile_edges(grid, bins)
    if exact is not None:
        values, ranks = exact
        pos = np.searchsorted(values, edges, side="left")
        below = np.where(pos > 0, ranks[np.maximum(pos - 1, 0)], 0)
    else:
        below = np.rint(sketch.cdf(edges) * non_missing).astype(np.int64)
    bin_counts = np.diff(np.concatenate([[0], below, [non_missing]]))
    return NumericProfile(
        name,
        count,
        missing,
        tuple(float(e) for e in edges),
        tuple(int(c) for c in bin_counts),
        tuple(float(q) for q in grid),
        rank_error,
        sketch=text,
        distinct=kept,
    )


class _CategoricalCounter:
    """Exact category counts while the number of distinct values stays under ``limit``."""

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.count = 0
        self.missing = 0
        self.counts: dict[str, int] = {}
        self.other = 0
        self.limit = limit

    def add(self, series: pd.Series) -> None:
        self.count += len(series)
        self.missing += int(series.isna().sum())
        vc = series.value_counts(dropna=True, sort=False)
        for key, n in zip(vc.index, vc.to_numpy(), strict=True):
            if n:
                k = str(key)
                self.counts[k] = self.counts.get(k, 0) + int(n)
        if len(self.counts) > self.limit:
            # Bounded memory for very high-cardinality features: keep the frequent half.
            keep = sorted(self.counts.items(), key=lambda kv: -kv[1])[: self.limit // 2]
            self.other += sum(self.counts.values()) - sum(n for _, n in keep)
            self.counts = dict(keep)

    def finish(self, max_categories: int) -> CategoricalProfile:
        items = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        kept, rest = items[:max_categories], items[max_categories:]
        return CategoricalProfile(
            self.name,
            self.count,
            self.missing,
            tuple(k for k, _ in kept),
            tuple(n for _, n in kept),
            self.other + sum(n for _, n in rest),
        )


def build_profile(
    data: pd.DataFrame | Iterable[pd.DataFrame],
    *,
    features: Sequence[str] | None = None,
    predict: Callable[[pd.DataFrame], ArrayLike] | None = None,
    bins: int = 10,
    quantiles: int = 1000,
    sketch_capacity: int = 4096,
    max_categories: int = 1000,
) -> Profile:
    """Summarise reference data in one streaming pass, for drift checks without the data.

    ``data`` is a DataFrame or an iterable of DataFrame chunks (see :func:`iter_chunks`).
    ``predict`` maps a chunk to the model's scores (one per row, see
    :func:`prediction_scores`) so that prediction drift can be judged later.

    Memory is bounded by the chunk size plus a KLL sketch of about ``3 * sketch_capacity``
    floats per numeric feature (``sketch_capacity`` is KLL's ``k``). A single DataFrame is
    summarised exactly. The stored ranks are within ``rank_error`` (0 when exact; else the KLL
    bound for ``k``, with 99% confidence: 0.1% for the default ``k=4096``), and a KS statistic
    computed against the profile is within ``2 / quantiles + 3 * rank_error`` of the exact one
    (``NumericProfile.ks_error``).
    """
    for name, value, low in (
        ("bins", bins, 2),
        ("quantiles", quantiles, 2),
        ("sketch_capacity", sketch_capacity, 16),
        ("max_categories", max_categories, 1),
    ):
        if not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    if sketch_capacity > MAX_K:
        raise ConfigError(f"sketch_capacity must be at most {MAX_K}, got {sketch_capacity!r}")
    if quantiles < bins:
        raise ConfigError(f"quantiles ({quantiles}) must be at least bins ({bins})")
    builders: dict[str, _NumericBuilder | _CategoricalCounter] | None = None
    columns: dict[str, Any] = {}
    scores: _NumericBuilder | None = None
    rows = 0
    for index, chunk in enumerate(_chunks(data, "data")):
        if builders is None:
            columns = _select_columns(chunk, features, "reference data")
            builders = {
                name: (
                    _NumericBuilder(name, sketch_capacity)
                    if _kind_of(chunk[col], name) == "numeric"
                    else _CategoricalCounter(name, max(20 * max_categories, 10_000))
                )
                for name, col in columns.items()
            }
            if predict is not None:
                scores = _NumericBuilder(PREDICTION, sketch_capacity)
        rows += len(chunk)
        for name, col in columns.items():
            if col not in chunk.columns:
                raise DataError(f"chunk {index} of the reference data lacks feature {name!r}")
            b = builders[name]
            if isinstance(b, _NumericBuilder):
                b.add(_as_float(chunk[col], name, "reference data"))
            else:
                b.add(chunk[col])
        if scores is not None and predict is not None:
            scores.add(_scores(predict, chunk, "reference data"))
    if builders is None or rows == 0:
        raise DataError("the reference data has no rows")
    profiles = tuple(
        b.finish(bins, quantiles) if isinstance(b, _NumericBuilder) else b.finish(max_categories)
        for b in builders.values()
    )
    prediction = scores.finish(bins, quantiles) if scores is not None else None
    return Profile(profiles, prediction, rows=rows, bins=bins)


# --------------------------------------------------------------------------------------------
# Column handling


def _chunks(data: pd.DataFrame | Iterable[pd.DataFrame], what: str) -> Iterator[pd.DataFrame]:
    if isinstance(data, pd.DataFrame):
        yield data
        return
    for chunk in data:
        if not isinstance(chunk, pd.DataFrame):
            raise DataError(f"{what}: expected DataFrame chunks, got {type(chunk).__name__}")
        yield chunk


def _select_columns(
    frame: pd.DataFrame, features: Sequence[str] | None, what: str
) -> dict[str, Any]:
    by_name = {str(c): c for c in frame.columns}
    if features is None:
        return by_name
    missing = [f for f in features if f not in by_name]
    if missing:
        raise DataError(f"{what} lacks feature(s) {', '.join(map(repr, missing))}")
    return {f: by_name[f] for f in features}


def is_time_dtype(dtype: Any) -> bool:
    """Whether a column holds dates, times or durations: they drift by nature (every new day
    is outside the reference's range), so they get no drift figure."""
    return bool(
        pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype)
    )


def _kind_of(series: pd.Series, name: str) -> Literal["numeric", "categorical"]:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "categorical"
    if is_time_dtype(dtype):
        raise DataError(
            f"feature {name!r} holds dates/times, which drift by nature; "
            "leave it out of the drift features"
        )
    if pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype):
        return "numeric"
    return "categorical"


def _as_float(series: pd.Series, name: str, what: str) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    converted = pd.to_numeric(series, errors="coerce")
    bad = converted.isna() & series.notna()
    if bad.any():
        example = series[bad].iloc[0]
        raise DataError(
            f"feature {name!r} is numeric in the reference but {what} has non-numeric "
            f"values such as {example!r} (row {series.index[bad.to_numpy()][0]!r})"
        )
    return converted.to_numpy(dtype=np.float64, na_value=np.nan)


def prediction_scores(output: ArrayLike) -> np.ndarray:
    """One score per row from a model output, the convention prediction drift uses.

    1-D outputs are used as they are; two probability columns give the positive class's; more
    columns give the top probability (the model's confidence).
    """
    arr = np.asarray(output, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    elif arr.ndim == 2:
        arr = arr[:, 1] if arr.shape[1] == 2 else arr.max(axis=1)
    if arr.ndim != 1:
        raise DataError(f"predictions must be 1-D or 2-D, got shape {arr.shape}")
    return arr


def _scores(
    predict: Callable[[pd.DataFrame], ArrayLike], chunk: pd.DataFrame, what: str
) -> np.ndarray:
    try:
        scores = prediction_scores(predict(chunk))
    except (TypeError, ValueError) as exc:
        raise DataError(f"predicting on {what} gave no numeric scores: {exc}") from exc
    if scores.shape[0] != len(chunk):
        raise DataError(f"predicting on {what} gave {scores.shape[0]} scores for {len(chunk)} rows")
    return scores


# --------------------------------------------------------------------------------------------
# Statistics


def _sorted_edges(sorted_values: np.ndarray, bins: int) -> np.ndarray:
    """``stats.quantile_edges`` for values already sorted without NaN (no second partition)."""
    n = sorted_values.size
    if n == 0:
        return np.empty(0)
    # numpy's default "linear" quantile: virtual index (n - 1) * q.
    pos = (n - 1) * np.linspace(0, 1, bins + 1)[1:-1]
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    frac = pos - lo
    a, b = sorted_values[lo], sorted_values[hi]
    with np.errstate(invalid="ignore"):
        qs = np.where(frac == 0, a, a + (b - a) * frac)
    edges: np.ndarray = np.unique(qs)
    return edges


def _ks_statistic_sorted(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample KS statistic of two sorted samples (same value as ``scipy.stats.ks_2samp``).

    ``F_a`` is constant between consecutive distinct values of ``a`` while ``F_b`` only grows,
    so the largest gap is at a distinct value ``u`` of ``a`` (right values) or just before it
    (left limits): one ``searchsorted`` with sorted needles instead of scipy's two over the
    pooled sample, and far fewer needles when ``a`` has ties.
    """
    n, m = a.size, b.size
    ends = np.flatnonzero(a[1:] != a[:-1])  # last index of each run of equal values but one
    if ends.size == n - 1:
        u, f_right, f_left = a, np.arange(1, n + 1) / n, np.arange(n) / n
    else:
        ends = np.append(ends, n - 1)
        u = a[ends]
        f_right = (ends + 1) / n
        f_left = np.concatenate([[0], ends[:-1] + 1]) / n
    right = np.searchsorted(b, u, side="right")  # #b <= u
    left = right.copy()  # #b < u: differs only where b holds u itself
    tie = right > 0
    tie[tie] = b[right[tie] - 1] == u[tie]
    if tie.any():
        left[tie] = np.searchsorted(b, u[tie], side="left")
    return float(max(np.abs(f_right - right / m).max(), np.abs(f_left - left / m).max()))


def _ks_pvalue(d: float, n: int, m: int) -> float:
    """Two-sided KS p-value for samples of ``n`` and ``m`` values.

    Up to an effective size of 1000 this is ``scipy.stats.ks_2samp(method="asymp")`` exactly
    (``kstwo``). Beyond, ``kstwo.sf`` costs up to seconds per call (measured 2-3 s at 500k), so
    the limiting Kolmogorov distribution with Stephens' small-sample correction is used:
    within 1% of ``kstwo`` for p > 1e-8, and within 0.3% around p = 0.01.
    """
    from scipy import stats

    en = n * m / (n + m)
    if en <= _KSTWO_MAX_EN:
        p = stats.kstwo.sf(d, max(1, round(en)))
    else:
        root = math.sqrt(en)
        p = stats.kstwobign.sf((root + 0.12 + 0.11 / root) * d)
    return float(np.clip(p, 0.0, 1.0))


def _missing_pvalue(miss_ref: int, n_ref: int, miss_cur: int, n_cur: int) -> float:
    """Chi-square p-value that the missing share is the same on both sides."""
    if miss_ref + miss_cur == 0 or miss_ref + miss_cur == n_ref + n_cur:
        return 1.0
    from scipy import stats

    table = [[miss_ref, n_ref - miss_ref], [miss_cur, n_cur - miss_cur]]
    return float(stats.chi2_contingency(table).pvalue)


def _fmt_p(p: float) -> str:
    return "p<1e-12" if p < 1e-12 else f"p={p:.2g}"


def _fmt_edge(x: float) -> str:
    return f"{x:.4g}"


def _bin_labels(edges: Sequence[float]) -> list[str]:
    if not edges:
        return ["(-inf, inf)"]
    labels = [f"(-inf, {_fmt_edge(edges[0])})"]
    labels += [f"[{_fmt_edge(a)}, {_fmt_edge(b)})" for a, b in itertools.pairwise(edges)]
    labels.append(f"[{_fmt_edge(edges[-1])}, inf)")
    return labels


def _judge(
    *,
    feature: str,
    kind: Kind,
    labels: Sequence[str],
    ref_counts: np.ndarray,
    cur_counts: np.ndarray,
    n_ref: int,
    n_cur: int,
    miss_ref: int,
    miss_cur: int,
    test: Literal["ks", "chi2"],
    statistic: float,
    pvalue: float,
    effect: float,
    ks_error: float,
    unseen: tuple[str, ...],
    th: DriftThresholds,
) -> FeatureDrift:
    """PSI over the given bins (missing appended), the verdict rule and the message."""
    ref_full = np.append(ref_counts, miss_ref).astype(np.float64)
    cur_full = np.append(cur_counts, miss_cur).astype(np.float64)
    ref_shares = ref_full / max(n_ref, 1)
    cur_shares = cur_full / max(n_cur, 1)
    value = psi(ref_shares, cur_shares)
    terms = psi_terms(ref_shares, cur_shares)
    all_labels = [*labels, _MISSING]
    order = np.argsort(-terms, kind="stable")
    # Name only bins that carry a real part of the PSI, not the noise beside them.
    cutoff = 0.1 * float(terms[order[0]]) if terms.size else 0.0
    moved = tuple(
        MovedBin(all_labels[i], float(ref_shares[i]), float(cur_shares[i]), float(terms[i]))
        for i in order[:_MOVED_SHOWN]
        if terms[i] > 0 and terms[i] >= cutoff and ref_shares[i] != cur_shares[i]
    )
    floor = th.ks_floor if test == "ks" else th.cramers_v_floor
    significant = pvalue < th.pvalue
    material_psi = value > th.psi_threshold
    material_effect = effect >= floor
    passed = not (significant and (material_psi or material_effect))

    eff = (
        f"KS D={effect:.3f}" + (f"\u00b1{ks_error:.3f}" if ks_error else "")
        if test == "ks"
        else f"chi2={statistic:.4g}, Cram\u00e9r's V={effect:.3f}"
    )
    sizes = f"n_ref={n_ref}, n_cur={n_cur}"
    psi_txt = f"PSI {value:.2f}"
    if not passed and material_psi:
        head = (
            f"drift in {feature!r}: {psi_txt} > {th.psi_threshold:.2f} ({eff}, {_fmt_p(pvalue)}; "
            f"{sizes})"
        )
    elif not passed:
        head = (
            f"drift in {feature!r}: {eff} >= {floor:.2f}, {_fmt_p(pvalue)} < {th.pvalue:g} "
            f"({psi_txt} <= {th.psi_threshold:.2f}; {sizes})"
        )
    elif material_psi or material_effect:
        what = f"{psi_txt} > {th.psi_threshold:.2f}" if material_psi else f"{eff} >= {floor:.2f}"
        head = (
            f"no significant drift in {feature!r}: {what} but {_fmt_p(pvalue)} >= {th.pvalue:g} "
            f"({sizes})"
        )
    else:
        head = (
            f"no drift in {feature!r}: {psi_txt} <= {th.psi_threshold:.2f}, {eff} < {floor:.2f} "
            f"({_fmt_p(pvalue)}; {sizes})"
        )
    tail = ""
    if moved and not passed:
        tail += "; most moved: " + ", ".join(str(b) for b in moved)
    if unseen:
        shown = ", ".join(repr(u) for u in unseen[:5]) + (", ..." if len(unseen) > 5 else "")
        tail += f"; unseen: {shown}"
    return FeatureDrift(
        feature=feature,
        kind=kind,
        psi=value,
        psi_threshold=th.psi_threshold,
        test=test,
        statistic=statistic,
        pvalue=pvalue,
        pvalue_threshold=th.pvalue,
        effect=effect,
        effect_floor=floor,
        passed=passed,
        n_reference=n_ref,
        n_current=n_cur,
        missing_reference=miss_ref / n_ref if n_ref else 0.0,
        missing_current=miss_cur / n_cur if n_cur else 0.0,
        moved=moved,
        unseen=unseen,
        ks_error=ks_error,
        message=head + tail,
    )


# --------------------------------------------------------------------------------------------
# Numeric drift


def _sorted_non_missing(values: np.ndarray) -> tuple[np.ndarray, int]:
    n_nan = int(np.count_nonzero(np.isnan(values)))
    # NaN sorts last, so one sort and a view drop them without an extra copy.
    return np.sort(values)[: values.size - n_nan], n_nan


def _numeric_drift_raw(
    feature: str,
    kind: Kind,
    reference: np.ndarray,
    current: np.ndarray,
    bins: int,
    th: DriftThresholds,
) -> FeatureDrift:
    ref, miss_ref = _sorted_non_missing(reference)
    cur, miss_cur = _sorted_non_missing(current)
    edges = _sorted_edges(ref, bins)

    def counts(sorted_values: np.ndarray) -> np.ndarray:
        # Same bins as stats.binned_shares (value == edge goes up), read off the sorted values.
        cuts = np.searchsorted(sorted_values, edges, side="left")
        return np.diff(np.concatenate([[0], cuts, [sorted_values.size]]))

    if ref.size == 0 or cur.size == 0:
        d, p = 0.0, 1.0
    elif max(ref.size, cur.size) <= _EXACT_KS_MAX_N:
        from scipy import stats

        with warnings.catch_warnings():
            # scipy falls back to the asymptotic p-value with a RuntimeWarning; that is fine.
            warnings.simplefilter("ignore", RuntimeWarning)
            res = stats.ks_2samp(ref, cur)
        d, p = float(res.statistic), float(res.pvalue)
    else:
        d = _ks_statistic_sorted(ref, cur)
        p = _ks_pvalue(d, ref.size, cur.size)
    p = min(p, _missing_pvalue(miss_ref, reference.size, miss_cur, current.size))
    return _judge(
        feature=feature,
        kind=kind,
        labels=_bin_labels(edges.tolist()),
        ref_counts=counts(ref),
        cur_counts=counts(cur),
        n_ref=reference.size,
        n_cur=current.size,
        miss_ref=miss_ref,
        miss_cur=miss_cur,
        test="ks",
        statistic=d,
        pvalue=p,
        effect=d,
        ks_error=0.0,
        unseen=(),
        th=th,
    )


class _NumericAccumulator:
    """Current-side counts against a numeric profile, exact and additive over chunks.

    Counts are kept at the profile's distinct quantile values (for KS) and bin edges (for PSI):
    ``less[j]`` values below point ``j`` and ``at_most[j]`` values at or below it.
    """

    def __init__(self, profile: NumericProfile) -> None:
        self.profile = profile
        grid = np.asarray(profile.quantiles, dtype=np.float64)
        edges = np.asarray(profile.edges, dtype=np.float64)
        self.points = np.unique(np.concatenate([grid, edges]))
        self.less = np.zeros(self.points.size, dtype=np.int64)
        self.at_most = np.zeros(self.points.size, dtype=np.int64)
        self.count = 0
        self.missing = 0

    def add(self, values: np.ndarray) -> None:
        v, n_nan = _sorted_non_missing(values)
        self.add_sorted(v, int(values.size), n_nan)

    def add_sorted(self, v: np.ndarray, n_values: int, n_nan: int) -> None:
        """Count a chunk whose non-missing values are given sorted in ``v``."""
        self.count += n_values
        self.missing += n_nan
        # Sorting the chunk and looking the few points up in it is cheaper than looking every
        # value up among the points (branchy binary searches over random values).
        self.less += np.searchsorted(v, self.points, side="left")
        self.at_most += np.searchsorted(v, self.points, side="right")

    def result(self, kind: Kind, th: DriftThresholds) -> FeatureDrift:
        prof = self.profile
        m = self.count - self.missing
        n = prof.count - prof.missing
        edges = np.asarray(prof.edges, dtype=np.float64)
        below = self.less[np.searchsorted(self.points, edges)]
        cur_counts = np.diff(np.concatenate([[0], below, [m]]))
        if n == 0 or m == 0:
            d, p = 0.0, 1.0
        else:
            d = self._ks(m)
            p = _ks_pvalue(d, n, m)
        p = min(p, _missing_pvalue(prof.missing, prof.count, self.missing, self.count))
        return _judge(
            feature=prof.name,
            kind=kind,
            labels=_bin_labels(prof.edges),
            ref_counts=np.asarray(prof.bin_counts),
            cur_counts=cur_counts,
            n_ref=prof.count,
            n_cur=self.count,
            miss_ref=prof.missing,
            miss_cur=self.missing,
            test="ks",
            statistic=d,
            pvalue=p,
            effect=d,
            ks_error=prof.ks_error if n and m else 0.0,
            unseen=(),
            th=th,
        )

    def _ks(self, m: int) -> float:
        grid = np.asarray(self.profile.quantiles, dtype=np.float64)
        q = grid.size - 1
        values, first = np.unique(grid, return_index=True)
        last = grid.size - 1 - np.unique(grid[::-1], return_index=True)[1]
        # Reference CDF at each distinct quantile value: its last rank (right value); the left
        # limit is one rank before the first one when the value repeats (an atom), else the same.
        f_right = last / q
        f_left = np.where(last > first, np.maximum(first - 1, 0) / q, first / q)
        idx = np.searchsorted(self.points, values)
        g_left = self.less[idx] / m
        g_right = self.at_most[idx] / m
        return float(max(np.abs(f_right - g_right).max(), np.abs(f_left - g_left).max()))


# --------------------------------------------------------------------------------------------
# Categorical drift


class _CategoricalAccumulator:
    """Current-side category counts against a categorical profile."""

    def __init__(self, profile: CategoricalProfile) -> None:
        self.profile = profile
        self.counter = _CategoricalCounter(
            profile.name, limit=max(10_000, 20 * len(profile.counts))
        )

    def add(self, series: pd.Series) -> None:
        self.counter.add(series)

    def result(self, th: DriftThresholds) -> FeatureDrift:
        from scipy import stats

        prof = self.profile
        cur = self.counter
        known = dict(zip(prof.categories, prof.counts, strict=True))
        labels = [repr(c) for c in prof.categories]
        ref_counts = list(prof.counts)
        cur_counts = [cur.counts.get(c, 0) for c in prof.categories]
        extra = {k: n for k, n in cur.counts.items() if k not in known}
        other_cur = cur.other
        if prof.other:
            # Categories beyond the profiled ones may have been among the reference's "other".
            other_cur += sum(extra.values())
            extra = {}
        if prof.other or other_cur:
            labels.append(_OTHER)
            ref_counts.append(prof.other)
            cur_counts.append(other_cur)
        unseen_sorted = sorted(extra.items(), key=lambda kv: (-kv[1], kv[0]))
        named, rest = unseen_sorted[:_UNSEEN_NAMED], unseen_sorted[_UNSEEN_NAMED:]
        for k, n in named:
            labels.append(f"{k!r} (unseen)")
            ref_counts.append(0)
            cur_counts.append(n)
        if rest:
            labels.append(_UNSEEN_REST)
            ref_counts.append(0)
            cur_counts.append(sum(n for _, n in rest))
        table = np.array([[*ref_counts, prof.missing], [*cur_counts, cur.missing]], dtype=np.int64)
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
            chi2, p, v = 0.0, 1.0, 0.0
        else:
            res = stats.chi2_contingency(table)
            chi2, p = float(res.statistic), float(res.pvalue)
            v = float(stats.contingency.association(table, method="cramer"))
        return _judge(
            feature=prof.name,
            kind="categorical",
            labels=labels,
            ref_counts=np.asarray(ref_counts),
            cur_counts=np.asarray(cur_counts),
            n_ref=prof.count,
            n_cur=cur.count,
            miss_ref=prof.missing,
            miss_cur=cur.missing,
            test="chi2",
            statistic=chi2,
            pvalue=p,
            effect=v,
            ks_error=0.0,
            unseen=tuple(k for k, _ in named) + ((_UNSEEN_REST,) if rest else ()),
            th=th,
        )


# --------------------------------------------------------------------------------------------
# Public entry points


def _thresholds(th: DriftThresholds | None, overrides: Mapping[str, float]) -> DriftThresholds:
    base = th or DriftThresholds()
    if not overrides:
        return base
    try:
        return dataclasses.replace(base, **overrides)
    except TypeError as exc:
        known = ", ".join(f.name for f in dataclasses.fields(DriftThresholds))
        raise ConfigError(
            f"unknown drift threshold in {sorted(overrides)}; known: {known}"
        ) from exc


def detect_drift(
    reference: pd.DataFrame | Profile,
    current: pd.DataFrame | Iterable[pd.DataFrame],
    *,
    features: Sequence[str] | None = None,
    thresholds: DriftThresholds | None = None,
    predict: Callable[[pd.DataFrame], ArrayLike] | None = None,
    bins: int = 10,
    **overrides: float,
) -> list[FeatureDrift]:
    """Drift of every feature (and of the predictions when ``predict`` is given).

    ``reference`` is the data the model was validated on, or a :class:`Profile` of it;
    ``current`` is a DataFrame or an iterable of chunks (see :func:`iter_chunks`). With two
    DataFrames, KS is exact; otherwise the reference is profiled and the current data streamed
    (:func:`drift_against_profile`). ``overrides`` are :class:`DriftThresholds` fields, e.g.
    ``psi_threshold=0.25``. One result per feature, in the reference's column order, then
    ``prediction``.
    """
    th = _thresholds(thresholds, overrides)
    if isinstance(reference, Profile):
        return drift_against_profile(
            reference, current, features=features, thresholds=th, predict=predict
        )
    if not isinstance(reference, pd.DataFrame):
        raise DataError(
            f"reference must be a DataFrame or a Profile, got {type(reference).__name__}"
        )
    if not isinstance(current, pd.DataFrame):
        profile = build_profile(reference, features=features, predict=predict, bins=bins)
        return drift_against_profile(profile, current, thresholds=th, predict=predict)
    if not isinstance(bins, int) or bins < 2:
        raise ConfigError(f"bins must be an integer >= 2, got {bins!r}")
    if len(reference) == 0:
        raise DataError("the reference data has no rows")
    if len(current) == 0:
        raise DataError("the current data has no rows")
    ref_cols = _select_columns(reference, features, "reference data")
    cur_by_name = {str(c): c for c in current.columns}
    missing = [f for f in ref_cols if f not in cur_by_name]
    if missing:
        raise DataError(f"current data lacks feature(s) {', '.join(map(repr, missing))}")
    results: list[FeatureDrift] = []
    for name, col in ref_cols.items():
        ref_s, cur_s = reference[col], current[cur_by_name[name]]
        if _kind_of(ref_s, name) == "numeric":
            results.append(
                _numeric_drift_raw(
                    name,
                    "numeric",
                    _as_float(ref_s, name, "reference data"),
                    _as_float(cur_s, name, "current data"),
                    bins,
                    th,
                )
            )
        else:
            counter = _CategoricalCounter(name, limit=max(10_000, len(ref_s)))
            counter.add(ref_s)
            acc = _CategoricalAccumulator(counter.finish(max_categories=len(counter.counts) or 1))
            acc.add(cur_s)
            results.append(acc.result(th))
    if predict is not None:
        results.append(
            prediction_drift(
                _scores(predict, reference, "reference data"),
                _scores(predict, current, "current data"),
                thresholds=th,
                bins=bins,
            )
        )
    return results


def prediction_drift(
    reference_scores: ArrayLike,
    current_scores: ArrayLike,
    *,
    thresholds: DriftThresholds | None = None,
    bins: int = 10,
    name: str = PREDICTION,
    **overrides: float,
) -> FeatureDrift:
    """Drift of the model's scores (reference vs current), judged like a numeric feature.

    Scores may be 1-D or probability matrices (see :func:`prediction_scores`).
    """
    th = _thresholds(thresholds, overrides)
    ref = prediction_scores(reference_scores)
    cur = prediction_scores(current_scores)
    if ref.size == 0 or cur.size == 0:
        raise DataError("prediction drift needs scores on both sides")
    return _numeric_drift_raw(name, "prediction", ref, cur, bins, th)


def drift_against_profile(
    profile: Profile,
    current: pd.DataFrame | Iterable[pd.DataFrame],
    *,
    features: Sequence[str] | None = None,
    thresholds: DriftThresholds | None = None,
    predict: Callable[[pd.DataFrame], ArrayLike] | None = None,
    **overrides: float,
) -> list[FeatureDrift]:
    """Drift of current data against a saved profile, in one streaming pass over the chunks.

    The current side is counted exactly; memory is bounded by one chunk. KS statistics are
    within ``FeatureDrift.ks_error`` of the exact ones. Prediction drift is included when the
    profile has reference scores and ``predict`` is given.
    """
    th = _thresholds(thresholds, overrides)
    names = profile.feature_names if features is None else tuple(features)
    accs: dict[str, _NumericAccumulator | _CategoricalAccumulator] = {}
    for n in names:
        fp = profile.feature(n)
        accs[n] = (
            _NumericAccumulator(fp)
            if isinstance(fp, NumericProfile)
            else _CategoricalAccumulator(fp)
        )
    score_acc = (
        _NumericAccumulator(profile.prediction)
        if predict is not None and profile.prediction is not None
        else None
    )
    rows = 0
    for index, chunk in enumerate(_chunks(current, "current data")):
        by_name = {str(c): c for c in chunk.columns}
        lacking = [n for n in names if n not in by_name]
        if lacking:
            where = "current data" if index == 0 else f"chunk {index} of the current data"
            raise DataError(f"{where} lacks feature(s) {', '.join(map(repr, lacking))}")
        rows += len(chunk)
        for n, acc in accs.items():
            s = chunk[by_name[n]]
            if isinstance(acc, _NumericAccumulator):
                acc.add(_as_float(s, n, "the current data"))
            else:
                acc.add(s)
        if score_acc is not None and predict is not None and len(chunk):
            score_acc.add(_scores(predict, chunk, "current data"))
    if rows == 0:
        raise DataError("the current data has no rows")
    results = [
        acc.result("numeric", th) if isinstance(acc, _NumericAccumulator) else acc.result(th)
        for acc in accs.values()
    ]
    if score_acc is not None:
        results.append(score_acc.result("prediction", th))
    return results


def prediction_drift_against_profile(
    profile: Profile,
    scores: ArrayLike,
    *,
    thresholds: DriftThresholds | None = None,
    **overrides: float,
) -> FeatureDrift:
    """Drift of current scores against the reference scores stored in ``profile``.

    For callers that already hold the scores (a serving process, the monitor) rather than a
    ``predict`` function.
    """
    if profile.prediction is None:
        raise DataError("the profile holds no reference predictions (build it with predict=...)")
    acc = _NumericAccumulator(profile.prediction)
    values = prediction_scores(scores)
    if values.size == 0:
        raise DataError("prediction drift needs at least one current score")
    acc.add(values)
    return acc.result("prediction", _thresholds(thresholds, overrides))


__all__ = [
    "PREDICTION",
    "CategoricalProfile",
    "DriftThresholds",
    "FeatureDrift",
    "FeatureProfile",
    "MovedBin",
    "NumericProfile",
    "Profile",
    "build_profile",
    "detect_drift",
    "drift_against_profile",
    "iter_chunks",
    "prediction_drift",
    "prediction_drift_against_profile",
    "prediction_scores",
]
