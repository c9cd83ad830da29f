"""Small statistics shared by the drift, comparison and rollout checks.

Only what neither ``scipy.stats`` nor ``sklearn.metrics`` offers lives here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike

#: Share given to a bin that is empty on one side, so PSI stays finite (a common choice).
PSI_EMPTY_BIN_FLOOR = 1e-4


def psi(
    expected_shares: ArrayLike, actual_shares: ArrayLike, floor: float = PSI_EMPTY_BIN_FLOOR
) -> float:
    """Population stability index between two share vectors over the same bins.

    ``sum((a - e) * ln(a / e))`` with shares clipped to ``floor`` so that an empty bin on either
    side contributes a large but finite term. Shares are renormalised after clipping.
    """
    import numpy as np

    e = np.clip(np.asarray(expected_shares, dtype=float), floor, None)
    a = np.clip(np.asarray(actual_shares, dtype=float), floor, None)
    if e.shape != a.shape:
        raise ValueError(f"share vectors differ in length: {e.shape} vs {a.shape}")
    e = e / e.sum()
    a = a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def psi_terms(
    expected_shares: ArrayLike, actual_shares: ArrayLike, floor: float = PSI_EMPTY_BIN_FLOOR
) -> np.ndarray:
    """Per-bin PSI contributions, to name the bins that moved most in a failure message."""
    import numpy as np

    e = np.clip(np.asarray(expected_shares, dtype=float), floor, None)
    a = np.clip(np.asarray(actual_shares, dtype=float), floor, None)
    e = e / e.sum()
    a = a / a.sum()
    terms: np.ndarray = (a - e) * np.log(a / e)
    return terms


def quantile_edges(values: ArrayLike, bins: int = 10) -> np.ndarray:
    """Inner bin edges at the quantiles of ``values`` (duplicates dropped), NaN ignored."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return np.empty(0)
    qs = np.quantile(v, np.linspace(0, 1, bins + 1)[1:-1])
    edges: np.ndarray = np.unique(qs)
    return edges


def binned_shares(values: ArrayLike, inner_edges: ArrayLike) -> np.ndarray:
    """Share of the non-missing ``values`` in each bin delimited by ``inner_edges``."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    edges = np.asarray(inner_edges, dtype=float)
    counts = np.bincount(np.searchsorted(edges, v, side="right"), minlength=edges.size + 1)
    total = counts.sum()
    return counts / total if total else counts.astype(float)
