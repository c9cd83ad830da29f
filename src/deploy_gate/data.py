"""Sample and holdout rows: read with clear errors, or synthetic rows when there are none."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from deploy_gate.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

READERS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}

#: Rows drawn when a model is probed without data.
SYNTHETIC_ROWS = 32


@dataclass(frozen=True)
class GateData:
    """Rows the checks feed to the model, and the labels when a target column was named."""

    features: pd.DataFrame
    target: pd.Series | None
    source: str
    synthetic: bool = False
    #: Every column of the file but the target (ids, keys, timestamps too), row for row.
    columns: pd.DataFrame | None = None

    @property
    def table(self) -> pd.DataFrame:
        """The feature rows with the file's other columns, for replays keyed on them."""
        return self.features if self.columns is None else self.columns

    @property
    def n_rows(self) -> int:
        return len(self.features)

    def restrict(self, names: tuple[str, ...]) -> GateData:
        """The columns a model takes, in its order; other columns (ids, timestamps, other
        labels) stay out of the features. Missing model features are a DataError."""
        missing = [n for n in names if n not in self.features.columns]
        if missing:
            raise DataError(
                f"--deploy-gate-data: {self.source} lacks feature(s) the model takes: "
                f"{', '.join(map(repr, missing))}"
            )
        if list(self.features.columns) == list(names):
            return self
        return GateData(
            self.features[list(names)], self.target, self.source, self.synthetic, self.table
        )


def read_table(path: Path, *, what: str = "--deploy-gate-data") -> pd.DataFrame:
    """Read CSV, Parquet or JSON lines, naming the option and the file in every error."""
    import pandas as pd

    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"{what}: cannot read {path}: unknown file type {path.suffix!r} "
            f"(expected one of {', '.join(sorted(READERS))})"
        )
    if not path.is_file():
        raise DataError(f"{what}: file not found: {path}")
    try:
        if kind == "csv":
            frame = pd.read_csv(path)
        elif kind == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_json(path, lines=True)
    except ImportError as exc:
        raise DataError(
            f"{what}: reading {path} needs an optional library ({exc}); "
            'install it with: pip install "pytest-deploy-gate[parquet]"'
        ) from exc
    except Exception as exc:
        raise DataError(
            f"{what}: cannot read {path} as {kind}: {type(exc).__name__}: {exc}"
        ) from exc
    if frame.empty:
        raise DataError(f"{what}: {path} has no rows")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def read_columns(path: Path) -> list[str]:
    """Column names of a data file, read without loading its rows where the format allows."""
    kind = READERS.get(path.suffix.lower())
    if kind == "parquet":
        import pyarrow.parquet as pq

        return [str(c) for c in pq.read_schema(path).names]
    if kind == "csv":
        import pandas as pd

        return [str(c) for c in pd.read_csv(path, nrows=0).columns]
    return [str(c) for c in read_table(path).columns]


def load_data(path: Path, target: str | None, *, what: str = "--deploy-gate-data") -> GateData:
    frame = read_table(path, what=what)
    labels = None
    if target:
        if target not in frame.columns:
            raise DataError(
                f"--deploy-gate-target: column {target!r} is not in {path} "
                f"(columns: {', '.join(map(str, frame.columns[:20]))}"
                f"{', ...' if len(frame.columns) > 20 else ''})"
            )
        labels = frame[target]
        frame = frame.drop(columns=[target])
    frame = frame.reset_index(drop=True)
    if labels is not None:
        labels = labels.reset_index(drop=True)
    return GateData(features=frame, target=labels, source=str(path), columns=frame)


def synthetic_data(feature_names: tuple[str, ...], *, rows: int = SYNTHETIC_ROWS) -> GateData:
    """Standard-normal numeric rows for a model that says how many features it takes."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    values = rng.standard_normal((rows, len(feature_names)))
    return GateData(
        features=pd.DataFrame(values, columns=list(feature_names)),
        target=None,
        source=f"{rows} synthetic standard-normal rows",
        synthetic=True,
    )
