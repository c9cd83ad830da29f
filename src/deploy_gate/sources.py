"""Where the data of a profile lives: files, folders, globs and fsspec URLs, read in chunks.

:func:`expand` turns what a user names (``data.parquet``, ``window/``, ``logs/*.csv``,
``s3://bucket/window/``) into :class:`DataUnit` s, each one file or one Parquet row group, the
units a Dask cluster maps over. :func:`read_unit` reads a unit in DataFrame chunks of bounded
size; URLs go through fsspec and the user's backend for the scheme (s3fs, gcsfs, adlfs, ...).
Every failure is a ``DataError`` naming the file.

This module is the one home of "which file is which format" (:data:`SUFFIXES`,
:func:`format_of`, :func:`require_format`) and of reading a local data file, whole
(:func:`read_frame`) or in chunks (:func:`iter_chunks`, re-exported by :mod:`deploy_gate.drift`):
``--deploy-gate-data``, ``--deploy-gate-current`` and ``deploy-gate profile build`` accept the
same files because they all read them here.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import IO, TYPE_CHECKING, Any, Literal, TypeAlias

from deploy_gate.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

Format: TypeAlias = Literal["parquet", "csv", "json", "profile"]

#: Which file name ending is which data format, for every option and command that reads data.
#: Compressed files are decompressed by the ending (pandas infers it; fsspec for URLs).
SUFFIXES: Mapping[str, Format] = {
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
#: Longest first, so ".csv.gz" wins over a shorter ending.
_BY_LENGTH = sorted(SUFFIXES, key=len, reverse=True)
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
    for suffix in _BY_LENGTH:
        if lower.endswith(suffix):
            return SUFFIXES[suffix]
    return None


def require_format(name: str, what: str | None = None) -> Format:
    """The data format a file name says; any other name is a ``DataError`` naming ``what`` (the
    option or command), the file and the accepted endings."""
    fmt = format_of(name)
    if fmt is None:
        ext = os.path.splitext(name)[1]
        raise DataError(
            f"{what + ': ' if what else ''}cannot read {name!r}: unknown format"
            f"{f' {ext!r}' if ext else ''} (expected a name ending in one of "
            f"{', '.join(sorted(SUFFIXES))})"
        )
    return fmt


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
    unit = DataUnit(name, require_format(name, what), storage_options=options)
    if unit.format == "json" and _looks_like_profile(unit):
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
    _check_chunk_rows(chunk_rows)
    cols = None if columns is None else list(columns)
    where = repr(unit.location)
    if unit.row_groups is not None:
        where += f" (row group {','.join(map(str, unit.row_groups))})"
    if not unit.is_url:
        if not os.path.exists(unit.location):
            raise DataError(f"{what}: cannot read {unit.location!r}: no such file")
        chunks = _chunks(unit.location, unit.format, where, chunk_rows, cols, unit.row_groups)
        yield from _named(chunks, what)
        return
    compression = None if unit.format == "parquet" else "infer"
    with _open(unit, what, compression=compression) as fh:
        yield from _named(_chunks(fh, unit.format, where, chunk_rows, cols, unit.row_groups), what)


def iter_chunks(
    path: str | os.PathLike[str],
    *,
    chunk_rows: int = 100_000,
    columns: Sequence[str] | None = None,
) -> Iterator[pd.DataFrame]:
    """Read a local Parquet, CSV or JSON-lines file (any ending of :data:`SUFFIXES`) as
    DataFrames of at most ``chunk_rows`` rows.

    Memory stays bounded by the chunk (and, for Parquet, one row group). Unreadable input raises
    ``DataError`` naming the file.
    """
    _check_chunk_rows(chunk_rows)
    name = os.fspath(path)
    cols = None if columns is None else list(columns)
    # Checks run now, not at the first next(): a bad path fails where the reader is made.
    if not os.path.exists(name):
        raise DataError(f"cannot read {name!r}: no such file")
    return _chunks(name, require_format(name), repr(name), chunk_rows, cols)


def read_frame(path: str | os.PathLike[str], fmt: Format) -> pd.DataFrame:
    """A whole local data file of format ``fmt`` as one DataFrame, compressed or not.

    What pandas or pyarrow raise passes through: the caller names its option and the file.
    """
    import pandas as pd

    if fmt == "parquet":
        return pd.read_parquet(path)
    if fmt == "csv":
        return pd.read_csv(path)
    if fmt == "json":
        return pd.read_json(path, lines=True)
    raise DataError(f"cannot read {os.fspath(path)!r}: it is a saved profile, not data")


def open_text(path: str | os.PathLike[str]) -> IO[str]:
    """A local file as UTF-8 text lines (undecodable bytes replaced), decompressed by its ending
    (``.gz``, ``.bz2``, ``.xz``)."""
    name = os.fspath(path)
    lower = name.lower()
    if lower.endswith(".gz"):
        import gzip

        return gzip.open(name, "rt", encoding="utf-8", errors="replace")
    if lower.endswith(".bz2"):
        import bz2

        return bz2.open(name, "rt", encoding="utf-8", errors="replace")
    if lower.endswith(".xz"):
        import lzma

        return lzma.open(name, "rt", encoding="utf-8", errors="replace")
    return open(name, encoding="utf-8", errors="replace")


def _check_chunk_rows(chunk_rows: int) -> None:
    if not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ConfigError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")


def _chunks(
    source: Any,
    fmt: Format,
    where: str,
    chunk_rows: int,
    cols: list[str] | None,
    row_groups: tuple[int, ...] | None = None,
) -> Iterator[pd.DataFrame]:
    """The rows of a local path or an open binary file in chunks, the one chunked reader of
    data; errors are ``DataError`` s naming ``where`` (the file) and no option."""
    if fmt == "parquet":
        pfile = _parquet_file(source, where)
        if cols is not None:
            _require_columns(pfile.schema_arrow.names, cols, where)
        try:
            batches = pfile.iter_batches(batch_size=chunk_rows, row_groups=row_groups, columns=cols)
            for batch in batches:
                yield batch.to_pandas()
        except Exception as exc:  # any pyarrow failure means the file is unusable as data
            raise DataError(f"cannot read {where} as Parquet: {exc}") from exc
        return
    import pandas as pd

    try:
        reader: Iterable[pd.DataFrame]
        if fmt == "csv":
            reader = pd.read_csv(source, chunksize=chunk_rows, usecols=cols)
        else:
            reader = pd.read_json(source, lines=True, chunksize=chunk_rows)
        for chunk in reader:
            if cols is not None and fmt == "json":
                _require_columns(chunk.columns, cols, where)
                chunk = chunk[cols]
            yield chunk
    except DataError:
        raise
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"cannot read {where}: the file is empty") from exc
    except (OSError, ValueError, KeyError, UnicodeDecodeError, EOFError) as exc:
        raise DataError(f"cannot read {where} as {fmt.upper()}: {exc}") from exc


def _require_columns(present: Iterable[Any], cols: list[str], where: str) -> None:
    have = {str(c) for c in present}
    lacking = [c for c in cols if c not in have]
    if lacking:
        raise DataError(f"cannot read {where}: no column(s) {', '.join(map(repr, lacking))}")


@contextlib.contextmanager
def _naming(what: str) -> Iterator[None]:
    """A ``DataError`` of a reader, prefixed with the option or command that named the file."""
    try:
        yield
    except DataError as exc:
        raise DataError(f"{what}: {exc}") from exc


def _named(chunks: Iterator[pd.DataFrame], what: str) -> Iterator[pd.DataFrame]:
    with _naming(what):
        yield from chunks


def _parquet_file(source: Any, where: str) -> Any:
    """A ``pyarrow.parquet.ParquetFile`` of a path or an open binary file."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DataError(
            f"cannot read {where}: Parquet needs pyarrow "
            "(pip install 'pytest-deploy-gate[parquet]')"
        ) from exc
    try:
        # pre_buffer=False: reading a row group column by column keeps peak memory near one
        # batch instead of one whole row group of raw bytes plus its decoded copy.
        return pq.ParquetFile(source, pre_buffer=False)
    except Exception as exc:  # any pyarrow failure means the file is unusable as data
        raise DataError(f"cannot read {where} as Parquet: {exc}") from exc


def _parquet(unit: DataUnit, fh: Any, what: str) -> Any:
    with _naming(what):
        return _parquet_file(fh, repr(unit.location))


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
    "SUFFIXES",
    "DataUnit",
    "expand",
    "format_of",
    "is_profile_file",
    "iter_chunks",
    "open_text",
    "read_frame",
    "read_text",
    "read_unit",
    "require_format",
    "split_row_groups",
]
