"""The mergeable quantile sketch of drift profiles: Apache DataSketches' KLL, and nothing else.

Every use of the ``datasketches`` package goes through this module, so an upgrade that changes
its API breaks one small module and its tests. The library is imported on first use.

KLL (Karnin, Lang, Liberty 2016) keeps about ``3 * k`` values of a stream of any length and
answers rank queries within a normalized rank error that depends on ``k`` alone: with 99%
confidence, every rank the sketch reports is within ``rank_error(k)`` of the true rank, as a
share of the values (DataSketches' "double-sided" a-priori bound, the one that covers CDF and
PMF queries). Sketches merge, in any order, with the same error bound as a sketch of the whole.
The sketch is randomised: two sketches of the same values may differ within the bound.
"""

from __future__ import annotations

import base64
import binascii
from functools import cache
from typing import TYPE_CHECKING, Any

from deploy_gate.errors import DataError

if TYPE_CHECKING:
    import numpy as np

#: Smallest and largest ``k`` the library accepts.
MIN_K = 8
MAX_K = 65_535
#: Confidence of the a-priori error bound the library states.
CONFIDENCE = 0.99
#: What the profile file says the sketch is, so a reader knows how to decode it.
SKETCH_KIND = "datasketches-kll-doubles"


def _library() -> Any:
    import datasketches

    return datasketches


class QuantileSketch:
    """A KLL sketch of float64 values (NaN never goes in: missing values are counted apart)."""

    __slots__ = ("_sketch",)

    def __init__(self, k: int, *, _sketch: Any = None) -> None:
        if _sketch is None:
            if not isinstance(k, int) or not MIN_K <= k <= MAX_K:
                raise DataError(f"the sketch size k must be an integer in [{MIN_K}, {MAX_K}]")
            _sketch = _library().kll_doubles_sketch(k)
        self._sketch = _sketch

    @property
    def k(self) -> int:
        return int(self._sketch.k)

    @property
    def n(self) -> int:
        """How many values went in."""
        return int(self._sketch.n)

    @property
    def exact(self) -> bool:
        """True while the sketch still holds every value (no compaction happened)."""
        return not bool(self._sketch.is_estimation_mode())

    @property
    def rank_error(self) -> float:
        """Bound on the error of any rank it reports, as a share of ``n`` (0 while exact)."""
        return 0.0 if self.exact else rank_error(self.k)

    def update(self, values: np.ndarray) -> None:
        """Add float64 values without NaN."""
        if values.size:
            if not values.flags.writeable or values.dtype.kind != "f" or values.itemsize != 8:
                # The binding takes writable float64 arrays only (pandas hands out read-only
                # views of Arrow-backed columns).
                import numpy as np

                values = np.array(values, dtype=np.float64)
            self._sketch.update(values)

    def merge(self, other: QuantileSketch) -> None:
        """Add everything ``other`` summarises."""
        self._sketch.merge(other._sketch)

    def copy(self) -> QuantileSketch:
        return QuantileSketch.from_bytes(self.to_bytes())

    def quantiles(self, ranks: np.ndarray) -> np.ndarray:
        """The values at normalized ranks in [0, 1] (inclusive ranks: at or below)."""
        import numpy as np

        if ranks.size == 0 or self.n == 0:
            return np.empty(0)
        out: np.ndarray = np.asarray(self._sketch.get_quantiles(ranks, True), dtype=np.float64)
        return out

    def cdf(self, points: np.ndarray) -> np.ndarray:
        """Share of the values strictly below each of the sorted, distinct ``points``."""
        import numpy as np

        if points.size == 0 or self.n == 0:
            return np.zeros(points.size)
        # get_cdf gives one more entry (1.0); ranks are exclusive with inclusive=False.
        out = np.asarray(self._sketch.get_cdf(points, False), dtype=np.float64)[:-1]
        return out

    def to_bytes(self) -> bytes:
        return bytes(self._sketch.serialize())

    @classmethod
    def from_bytes(cls, data: bytes) -> QuantileSketch:
        try:
            sketch = _library().kll_doubles_sketch.deserialize(data)
        except Exception as exc:  # any failure of the decoder means the bytes are unusable
            raise DataError(f"the quantile sketch is corrupted ({exc})") from exc
        return cls(0, _sketch=sketch)

    def to_text(self) -> str:
        """The sketch as base64 text, for a JSON profile (DataSketches' portable binary)."""
        return base64.b64encode(self.to_bytes()).decode("ascii")

    @classmethod
    def from_text(cls, text: str) -> QuantileSketch:
        try:
            data = base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, AttributeError) as exc:
            raise DataError("the quantile sketch is not base64 text") from exc
        return cls.from_bytes(data)


@cache
def rank_error(k: int) -> float:
    """The library's a-priori normalized rank error for ``k`` (double-sided, 99% confidence)."""
    return float(_library().kll_doubles_sketch.get_normalized_rank_error(k, True))


__all__ = ["CONFIDENCE", "MAX_K", "MIN_K", "SKETCH_KIND", "QuantileSketch", "rank_error"]
