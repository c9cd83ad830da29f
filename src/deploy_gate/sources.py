"""Where the data of a profile lives: files, folders, globs and fsspec URLs, read in chunks.

:func:`expand` turns what a user names (``data.parquet``, ``window/``, ``logs/*.csv``,
``s3://bucket/window/``) into :class:`DataUnit` s, each one file or one Parquet row group, the
units a Dask cluster maps over. :func:`read_unit` reads a unit in DataFrame chunks of bounded
size. Local files are read as :func:`deploy_gate.drift.iter_chunks` reads them; URLs go through
fsspec and the user's backend for the scheme (s3fs, gcsfs, adlfs, ...). Every failure is a
``DataError`` naming the file.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from deploy_gate.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

Format: TypeAlias = Literal["parquet", "csv", "json", "profile"]

_SUFFIXES: dict[str, Format] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".csv.gz": "csv",
    ".csv.bz2": "csv",
    ".csv.zip": "csv",
    ".csv.xz": "csv",
    ".jsonl": "json",
    ".ndjson": "json",
    ".json": "json",
    ".jsonl.gz": "json",
}
_GLOB = re.compile(r"[*?\[]")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: How a saved profile begins (Profile.to_json), to tell it from JSON-lines data.
_PROFILE_HEAD = re.compile(rb'^\s*\{\s*"format"\s*:\s*"deploy-gate-profile"')


@dataclass(frozen=True)
class DataUnit:
    """One file, or some row groups of one Parquet file, to read as one task.

    ``storage_options`` go to fsspec for URLs (credentials, endpoints); they are items, so a
    unit is hashable and can travel to a Dask worker.
    """

    location: str
    format: Format
    row_groups: tuple[int, ...] | None = None
    storage_options: tuple[tuple[str, Any], ...] = ()

    @property
    def is_url(self) -> bool:
        return bool(_URL.match(self.location))

    def __str__(self) -> str:
        if self.row_groups is None:
            return self.location
        groups = ",".join(map(str, self.row_groups))
        return f"{self.location} (row group {groups})"


def format_of(name: str) -> Format | None:
    """The data format a file name says, or None."""
    lower = name.lower()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return _SUFFIXES[suffix]
    return None


def expand(
    sources: Sequence[str | os.PathLike[str]],
    *,
    storage_options: Mapping[str, Any] | None = None,
    what: str = "DATA",
) -> list[DataUnit]:
    """The files that ``sources`` name, as units, in a stable order.

    A folder stands for the Parquet, CSV and JSON-lines files inside it (recursively); a glob for
    the files it matches; a URL (``s3://``, ``gs://``, ``memory://``, ...) is expanded the same
    way through fsspec. Saved profiles (JSON files written by deploy-gate) come back with format
    ``"profile"``. Nothing found is a ``DataError`` naming the source and ``what``.
    """
    if not sources:
        raise DataError(f"{what}: name at least one file, folder, glob or URL")
    options = tuple(sorted((storage_options or {}).items()))
    units: list[DataUnit] = []
    for source in sources:
        text = os.fspath(source)
        found = (
            _expand_url(text, dict(options), what)
            if _URL.match(text)
            else _expand_local(text, what)
        )
        units += [_unit(name, options, what) for name in found]
    return units


def _expand_local(text: str, what: str) -> list[str]:
    if os.path.isdir(text):
        found = sorted(
            os.path.join(root, name)
            for root, _, names in os.walk(text)
            for name in names
            if format_of(name) is not None and not name.startswith((".", "_"))
        )
        if not found:
            raise DataError(f"{what}: the folder {text!r} holds no Parquet, CSV or JSON-lines file")
        return found
    if os.path.isfile(text):
        return [text]
    if _GLOB.search(text):
        found = sorted(p for p in glob.glob(text, recursive=True) if os.path.isfile(p))
        if not found:
            raise DataError(f"{what}: the pattern {text!r} matches no file")
        return found
    raise DataError(f"{what}: {text!r}: no such file or directory")


def _fs(url: str, options: Mapping[str, Any], what: str) -> tuple[Any, str]:
    try:
        from fsspec.core import url_to_fs
    except ImportError as exc:
        raise DataError(
            f"{what}: reading {url} needs fsspec and the backend for its scheme "
            "(e.g. pip install s3fs, gcsfs)"
        ) from exc
    try:
        fs, path = url_to_fs(url, **options)
    except (ImportError, ValueError) as exc:
        raise DataError(f"{what}: cannot open {url}: {exc}") from exc
    return fs, path


def _expand_url(url: str, options: Mapping[str, Any], what: str) -> list[str]:
    fs, path = _fs(url, options, what)
    try:
        if _GLOB.search(path):
            paths = [p for p in fs.glob(path) if fs.isfile(p)]
            empty = f"the pattern {url} matches no file"
        elif fs.isdir(path):
            paths = [
                p
                for p in fs.find(path)
                if format_of(p) is not None and not os.path.basename(p).startswith((".", "_"))
            ]
            empty = f"{url} holds no Parquet, CSV or JSON-lines file"
        elif fs.exists(path):
            paths = [path]
            empty = ""
        else:
            raise DataError(f"{what}: {url}: no such file or directory")
    except DataError:
        raise
    except Exception as exc:  # any backend failure (credentials, network) names the URL
        raise DataError(f"{what}: cannot list {url}: {type(exc).__name__}: {exc}") from exc
    if not paths:
        raise DataError(f"{what}: {empty}")
    return sorted(fs.unstrip_protocol(p) for p in paths)


def _unit(name: str, options: tuple[tuple[str, Any], ...], what: str) -> DataUnit:
    fmt = format_of(name)
    if fmt is None:
        raise DataError(
            f"{what}: cannot read {name!r}: unknown format "
            "(expected .parquet, .csv, .jsonl/.json or a saved profile)"
        )
    unit = DataUnit(name, fmt, storage_options=options)
    if fmt == "json" and _looks_like_profile(unit):
        return replace(unit, format="profile")
    return unit


def _looks_like_profile(unit: DataUnit) -> bool:
    try:
        with _open(unit, "DATA", compression=None) as fh:
            head: bytes = fh.read(256)
    except DataError:
        return False
    return bool(_PROFILE_HEAD.match(head))


def is_profile_file(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a profile saved by deploy-gate rather than data."""
    name = os.fspath(path)
    if format_of(name) != "json":
        return False
    return _looks_like_profile(DataUnit(name, "json"))


def read_text(unit: DataUnit, what: str) -> str:
    """The whole file as UTF-8 text (for saved profiles)."""
    with _open(unit, what, compression=None) as fh:
        try:
            data: bytes = fh.read()
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{what}: {unit.location} is not UTF-8 text") from exc


def split_row_groups(units: Sequence[DataUnit], what: str = "DATA") -> list[DataUnit]:
    """Each Parquet unit as one unit per row group (the partitions of a Dask run)."""
    out: list[DataUnit] = []
    for unit in units:
        if unit.format != "parquet" or unit.row_groups is not None:
            out.append(unit)
            continue
        with _open(unit, what, compression=None) as fh:
            pfile = _parquet(unit, fh, what)
            out += [replace(unit, row_groups=(i,)) for i in range(pfile.num_row_groups)]
    return out


def read_unit(
    unit: DataUnit,
    *,
    chunk_rows: int = 100_000,
    columns: Sequence[str] | None = None,
    what: str = "DATA",
) -> Iterator[pd.DataFrame]:
    """The rows of ``unit`` in DataFrames of at most ``chunk_rows`` rows (only ``columns``)."""
    if unit.format == "profile":
        raise DataError(f"{what}: {unit.location} is a saved profile, not data")
    if not unit.is_url and unit.row_groups is None:
        from deploy_gate.drift import iter_chunks

        yield from _named(iter_chunks(unit.location, chunk_rows=chunk_rows, columns=columns), what)
        return
    cols = None if columns is None else list(columns)
    if unit.format == "parquet":
        with _open(unit, what, compression=None) as fh:
            pfile = _parquet(unit, fh, what)
            if cols is not None:
                present = set(pfile.schema_arrow.names)
                lacking = [c for c in cols if c not in present]
                if lacking:
                    raise DataError(
                        f"{what}: {unit.location} lacks feature(s) {', '.join(map(repr, lacking))}"
                    )
            try:
                batches = pfile.iter_batches(
                    batch_size=chunk_rows, row_groups=unit.row_groups, columns=cols
                )
                for batch in batches:
                    yield batch.to_pandas()
            except Exception as exc:  # any pyarrow failure means the file is unusable as data
                raise DataError(f"{what}: cannot read {unit} as Parquet: {exc}") from exc
        return
    import pandas as pd

    with _open(unit, what, compression="infer") as fh:
        try:
            reader: Iterable[pd.DataFrame]
            if unit.format == "csv":
                reader = pd.read_csv(fh, chunksize=chunk_rows, usecols=cols)
            else:
                reader = pd.read_json(fh, lines=True, chunksize=chunk_rows)
            for chunk in reader:
                yield chunk if cols is None or unit.format == "csv" else chunk[cols]
        except pd.errors.EmptyDataError as exc:
            raise DataError(f"{what}: {unit.location} is empty") from exc
        except (OSError, ValueError, KeyError, UnicodeDecodeError) as exc:
            raise DataError(
                f"{what}: cannot read {unit.location} as {unit.format.upper()}: {exc}"
            ) from exc


def _named(chunks: Iterator[pd.DataFrame], what: str) -> Iterator[pd.DataFrame]:
    try:
        yield from chunks
    except DataError as exc:
        raise DataError(f"{what}: {exc}") from exc


def _parquet(unit: DataUnit, fh: Any, what: str) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DataError(
            f"{what}: reading {unit.location} needs pyarrow "
            "(pip install 'pytest-deploy-gate[parquet]')"
        ) from exc
    try:
        # pre_buffer=False: column by column, so memory stays near one batch.
        return pq.ParquetFile(fh, pre_buffer=False)
    except Exception as exc:
        raise DataError(f"{what}: cannot read {unit.location} as Parquet: {exc}") from exc


class _open:
    """A binary file object for a unit, local or through fsspec, with errors naming it."""

    def __init__(self, unit: DataUnit, what: str, *, compression: str | None) -> None:
        self.unit = unit
        self.what = what
        self.compression = compression
        self.handle: Any = None

    def __enter__(self) -> Any:
        unit = self.unit
        try:
            if unit.is_url:
                import fsspec

                self.handle = fsspec.open(
                    unit.location,
                    "rb",
                    compression=self.compression,
                    **dict(unit.storage_options),
                ).open()
            elif self.compression == "infer":
                import fsspec

                self.handle = fsspec.open(unit.location, "rb", compression="infer").open()
            else:
                self.handle = open(unit.location, "rb")
        except FileNotFoundError as exc:
            raise DataError(f"{self.what}: {unit.location}: no such file") from exc
        except IsADirectoryError as exc:
            raise DataError(f"{self.what}: {unit.location} is a folder, not a file") from exc
        except ImportError as exc:
            raise DataError(
                f"{self.what}: reading {unit.location} needs fsspec and the backend for its "
                "scheme (e.g. pip install s3fs, gcsfs)"
            ) from exc
        except Exception as exc:
            raise DataError(
                f"{self.what}: cannot open {unit.location}: {type(exc).__name__}: {exc}"
            ) from exc
        return self.handle

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            self.handle.close()


__all__ = [
    "DataUnit",
    "expand",
    "format_of",
    "is_profile_file",
    "read_text",
    "read_unit",
    "split_row_groups",
]
