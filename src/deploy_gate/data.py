"""Sample and holdout rows: read with clear errors, or synthetic rows when there are none."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploy_gate.errors import DataError
from deploy_gate.sources import Format, open_text, read_frame, require_format

if TYPE_CHECKING:
    import pandas as pd

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

    @property
    def n_unlabelled(self) -> int:
        """Rows whose label is missing (0 without a target column)."""
        return 0 if self.target is None else int(self.target.isna().sum())

    def categories(self) -> dict[str, list[Any]]:
        """The categories of each pandas categorical column of the table, as plain values
        (str, int, float, bool): what a serving process that casts a request to the training
        schema needs. Columns whose categories are of other types are left out."""
        import pandas as pd

        out: dict[str, list[Any]] = {}
        for name, dtype in self.table.dtypes.items():
            if isinstance(dtype, pd.CategoricalDtype):
                levels = dtype.categories.tolist()
                if all(type(v) in (str, int, float, bool) for v in levels):
                    out[str(name)] = levels
        return out

    def text_dtypes(self) -> dict[str, tuple[str, str]]:
        """The pandas string dtype of each text column of the table that has one, as
        ``(storage, missing)``: storage ``python`` or ``pyarrow``, and ``nan`` for pandas 3's
        ``str`` (NaN for a missing value) or ``na`` for ``string`` (``pd.NA``)."""
        import pandas as pd

        out: dict[str, tuple[str, str]] = {}
        for name, dtype in self.table.dtypes.items():
            if isinstance(dtype, pd.StringDtype) and dtype.storage in ("python", "pyarrow"):
                missing = "na" if getattr(dtype, "na_value", pd.NA) is pd.NA else "nan"
                out[str(name)] = (str(dtype.storage), missing)
        return out

    def labelled(self) -> GateData:
        """The rows that have a label, for the checks that need one (metrics, the rollout);
        the others keep every row."""
        if self.target is None or not self.n_unlabelled:
            return self
        keep = self.target.notna().to_numpy()

        def rows(frame: pd.DataFrame) -> pd.DataFrame:
            return frame.loc[keep].reset_index(drop=True)

        return GateData(
            rows(self.features),
            self.target.loc[keep].reset_index(drop=True),
            self.source,
            self.synthetic,
            None if self.columns is None else rows(self.columns),
        )

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
    """Read CSV, Parquet or JSON lines, compressed or not (the endings of
    :data:`deploy_gate.sources.SUFFIXES`, the formats every data option accepts), naming the
    option and the file in every error.

    A file with two columns of one name is refused: pandas would rename the second (CSV) or
    keep one of them (JSON lines), and the gate would silently check the model on one of two
    different columns.
    """
    kind = _kind(path, what)
    _refuse_duplicates(path, kind, what)
    with _reading(path, kind, what):
        frame = read_frame(path, kind)
    if frame.empty:
        raise DataError(f"{what}: {path} has no rows")
    frame.columns = [str(c) for c in frame.columns]
    _check_unique(list(frame.columns), path, what)
    return frame


def read_columns(path: Path, *, what: str = "--deploy-gate-data") -> list[str]:
    """Column names of a data file, read without loading its rows where the format allows."""
    kind = _kind(path, what)
    if kind == "json":
        return [str(c) for c in read_table(path, what=what).columns]
    names = _header(path, kind, what)
    _check_unique(names, path, what)
    return names


def _kind(path: Path, what: str) -> Format:
    kind = require_format(str(path), what)
    if not path.is_file():
        raise DataError(f"{what}: file not found: {path}")
    return kind


@contextlib.contextmanager
def _reading(path: Path, kind: Format, what: str) -> Iterator[None]:
    """Whatever a reader raises, as a DataError naming the option and the file."""
    try:
        yield
    except ImportError as exc:
        raise DataError(
            f"{what}: reading {path} needs an optional library ({exc}); "
            'install it with: pip install "pytest-deploy-gate[parquet]"'
        ) from exc
    except Exception as exc:
        raise DataError(
            f"{what}: cannot read {path} as {kind}: {type(exc).__name__}: {exc}"
        ) from exc


def _header(path: Path, kind: Format, what: str) -> list[str]:
    """The column names as the file holds them, before pandas makes them unique."""
    with _reading(path, kind, what):
        if kind == "parquet":
            import pyarrow.parquet as pq

            return [str(c) for c in pq.read_schema(path).names]
        import pandas as pd

        # header=None: the first line as data, so "age,age" is not renamed to "age, age.1".
        first = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
    return [str(c) for c in first.iloc[0]] if len(first) else []


def _refuse_duplicates(path: Path, kind: Format, what: str) -> None:
    if kind != "json":
        _check_unique(_header(path, kind, what), path, what)
        return
    import json

    # Every object is read: any line may repeat a key, and pandas keeps one value silently.
    try:
        with open_text(path) as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    pairs = json.loads(line, object_pairs_hook=lambda p: p)
                except ValueError:
                    return  # not JSON: pandas says what is wrong with it
                if isinstance(pairs, list):
                    _check_unique([str(k) for k, _ in pairs], path, what, f" (line {number})")
    except DataError:
        raise
    except Exception:  # not readable (a broken .gz, ...): pandas says what is wrong with it
        return


def _check_unique(names: list[str], path: Path, what: str, where: str = "") -> None:
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    repeated = [f"{name!r} ({n} columns)" for name, n in counts.items() if n > 1 and name != ""]
    if repeated:
        raise DataError(
            f"{what}: {path} has duplicate column names{where}: {', '.join(repeated)}; the "
            "gate cannot tell which one the model should get: rename or drop the copies"
        )


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
