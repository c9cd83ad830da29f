"""pandas dtypes that differ between the pandas releases the gate supports, built in one place."""

from __future__ import annotations

from typing import Any


def string_dtype(storage: str | None, nan_missing: bool) -> Any:
    """pandas' string dtype of ``storage`` (``python``, ``pyarrow`` or None for pandas' default)
    whose missing value is NaN (``nan_missing``: pandas 3's ``str``) or ``pd.NA`` (``string``);
    None where this pandas cannot build it: before 2.3 there is no NaN variant, and the
    ``pyarrow`` storage needs pyarrow. Callers choose their own fallback."""
    import numpy as np
    import pandas as pd

    try:
        if nan_missing:
            return pd.StringDtype(storage=storage, na_value=np.nan)  # type: ignore[call-arg,unused-ignore]
        return pd.StringDtype(storage=storage)  # type: ignore[arg-type,unused-ignore]
    except (TypeError, ValueError, ImportError):
        return None
