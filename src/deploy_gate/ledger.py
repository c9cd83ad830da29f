"""The deployment ledger: one JSON line per approved artifact.

The ledger answers "which model is deployed" and "what do we roll back to" from a file in the
repository rather than from someone's memory. Lines are only ever appended, each by one
``os.write`` under an advisory lock, so concurrent writers (xdist workers, parallel CI jobs on a
shared volume) neither lose nor interleave lines; a reader skips a line torn by a killed writer
with a :class:`~deploy_gate.errors.LedgerWarning` instead of crashing.

Locking: on POSIX the lock is ``fcntl.flock`` (exclusive for writers, shared for readers); Linux
maps it onto NFS byte-range locks, so it also holds on NFS mounts. On Windows the lock is
``msvcrt.locking`` on the file's first byte, taken by readers and writers alike (Windows locks
are mandatory, so readers must queue behind writers); that path is not exercised by this
project's test suite, which runs on Linux.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import platform
import re
import subprocess
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from deploy_gate.errors import LedgerError, LedgerWarning, VersionCollisionError

__all__ = [
    "DEFAULT_LEDGER",
    "DEFAULT_LIBRARIES",
    "LEDGER_FORMAT",
    "GitInfo",
    "Ledger",
    "LedgerEntry",
    "git_info",
    "latest",
    "library_versions",
    "rollback_target",
    "sha256_file",
    "version_id",
]

#: File name of the ledger when none is configured (``deploy_gate_ledger``).
DEFAULT_LEDGER = "deployments.jsonl"
#: Version of the line format; readers ignore keys they do not know, so it only grows.
LEDGER_FORMAT = 1
#: Distributions whose versions a ledger line records when they are installed.
DEFAULT_LIBRARIES = (
    "pytest-deploy-gate",
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "joblib",
    "skops",
    "onnxruntime",
)
#: Seconds a ``git`` call may take before the ledger gives up on commit and branch.
GIT_TIMEOUT = 5.0

_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20
_REQUIRED = ("version", "sha256", "size", "path", "recorded_at")


def version_id(sha256: str, when: datetime | None = None) -> str:
    """Return the version id ``v_<UTC %Y%m%dT%H%M%SZ>_<sha256[:8]>`` of an artifact.

    The timestamp makes ids sort by time; the hash prefix ties the id to the bytes.
    ``when`` defaults to now and must be timezone-aware (a naive time has no UTC meaning).
    """
    digest = _check_sha256(sha256, "sha256")
    if when is None:
        when = datetime.now(timezone.utc)
    elif when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(
            f"when must be a timezone-aware datetime, got naive {when.isoformat()!r}; "
            "use datetime.now(timezone.utc)"
        )
    return f"v_{when.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}_{digest[:8]}"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the hex sha256 of a file, read in 1 MiB chunks so large artifacts stay cheap."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class GitInfo:
    """Commit and branch of a git work tree; both ``None`` outside one."""

    commit: str | None = None
    branch: str | None = None


# CI checkouts are usually a detached HEAD; these name the branch the run is for.
_CI_BRANCH_VARIABLES = ("GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME", "BRANCH_NAME")


def git_info(cwd: str | os.PathLike[str] | None = None, timeout: float = GIT_TIMEOUT) -> GitInfo:
    """Return the commit and branch of the git work tree around ``cwd``; never raises.

    Outside a work tree, without git, or when git takes longer than ``timeout`` seconds, both
    are ``None``: the ledger records what it can rather than failing the gate. On a detached
    HEAD (the usual CI checkout) the branch comes from the CI's environment when it names one.
    """
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--is-inside-work-tree", "HEAD", "--abbrev-ref", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return GitInfo()
    lines = done.stdout.split()
    if done.returncode != 0 or len(lines) != 3 or lines[0] != "true":
        return GitInfo()
    commit, branch = lines[1], lines[2]
    if branch == "HEAD":
        branch = next((os.environ[v] for v in _CI_BRANCH_VARIABLES if os.environ.get(v)), "")
    return GitInfo(commit=commit, branch=branch or None)


def library_versions(names: Iterable[str] = DEFAULT_LIBRARIES) -> dict[str, str]:
    """Return ``{distribution: version}`` for those of ``names`` that are installed."""
    found: dict[str, str] = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


@dataclass(frozen=True)
class LedgerEntry:
    """One recorded, approved artifact: what it is, where it came from, and what the gate saw.

    ``counts`` maps each check category to ``{"passed": n, "failed": n, "skipped": n}``;
    ``latency`` holds the figures of the latency checks (suggested shape
    ``{"batch=1": {"p50_ms": ..., "p95_ms": ..., "p99_ms": ..., "max_ms": ...}}``);
    ``metric_ratios`` maps each baseline metric to candidate/baseline; ``ml_test_score`` is
    :meth:`deploy_gate.mltestscore.MLTestScore.to_dict`. Non-finite figures are written as null.
    """

    version: str
    sha256: str
    size: int
    path: str
    recorded_at: str
    git_commit: str | None = None
    git_branch: str | None = None
    python: str = field(default_factory=platform.python_version)
    libraries: dict[str, str] = field(default_factory=dict)
    loader: str | None = None
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    latency: dict[str, Any] = field(default_factory=dict)
    baseline_version: str | None = None
    baseline_sha256: str | None = None
    metric_ratios: dict[str, float] | None = None
    ml_test_score: dict[str, Any] | None = None
    format: int = LEDGER_FORMAT

    def __post_init__(self) -> None:
        # Hashes are compared as strings, so store one spelling of each.
        object.__setattr__(self, "sha256", _check_sha256(self.sha256, "sha256"))
        if self.baseline_sha256 is not None:
            digest = _check_sha256(self.baseline_sha256, "baseline_sha256")
            object.__setattr__(self, "baseline_sha256", digest)
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise ValueError(f"size must be a non-negative int of bytes, got {self.size!r}")
        for name in ("version", "path", "recorded_at"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string, got {value!r}")

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        *,
        sha256: str | None = None,
        version: str | None = None,
        when: datetime | None = None,
        counts: Mapping[str, Mapping[str, int]] | None = None,
        latency: Mapping[str, Any] | None = None,
        loader: str | None = None,
        baseline_version: str | None = None,
        baseline_sha256: str | None = None,
        metric_ratios: Mapping[str, float] | None = None,
        ml_test_score: Mapping[str, Any] | None = None,
        libraries: Iterable[str] | Mapping[str, str] = DEFAULT_LIBRARIES,
        git_cwd: str | os.PathLike[str] | None = None,
    ) -> LedgerEntry:
        """Describe the artifact at ``path`` for the ledger: hash, size, version id, git, versions.

        ``sha256`` skips re-hashing when the caller already has it, and ``version`` reuses the
        id the gate already showed (it must end in the hash prefix); otherwise the id is made
        from ``when`` (default now), which is also the recorded time. ``libraries`` is either
        distribution names to look up or a ready ``{name: version}`` table. ``path`` is stored
        as given, so pass it relative to the project root to keep the ledger portable; git
        runs in ``git_cwd``, by default the artifact's directory.
        """
        now = datetime.now(timezone.utc) if when is None else when
        digest = sha256_file(path) if sha256 is None else _check_sha256(sha256, "sha256")
        if version is None:
            version = version_id(digest, now)
        elif not version.endswith(f"_{digest[:8]}"):
            raise ValueError(
                f"version {version!r} does not end in the artifact's sha256 prefix {digest[:8]!r}"
            )
        git = git_info(git_cwd if git_cwd is not None else Path(path).resolve().parent)
        versions = (
            dict(libraries) if isinstance(libraries, Mapping) else library_versions(libraries)
        )
        return cls(
            version=version,
            sha256=digest,
            size=os.stat(path).st_size,
            path=os.fspath(path),
            recorded_at=now.astimezone(timezone.utc).isoformat(timespec="seconds"),
            git_commit=git.commit,
            git_branch=git.branch,
            libraries=versions,
            loader=loader,
            counts={k: dict(v) for k, v in (counts or {}).items()},
            latency=dict(latency or {}),
            baseline_version=baseline_version,
            baseline_sha256=baseline_sha256,
            metric_ratios=None if metric_ratios is None else dict(metric_ratios),
            ml_test_score=None if ml_test_score is None else dict(ml_test_score),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the entry as plain JSON-ready data (numpy scalars unwrapped, NaN/Inf as None)."""
        return {f.name: _jsonable(getattr(self, f.name), f.name) for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        """Return the entry as one line of JSON, without the newline."""
        return json.dumps(self.to_dict(), ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LedgerEntry:
        """Read an entry back from :meth:`to_dict` data; keys this version does not know are
        ignored so that a newer writer's lines stay readable."""
        if not isinstance(data, Mapping):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def latest(entries: Sequence[LedgerEntry]) -> LedgerEntry | None:
    """Return the last recorded entry (what is deployed), or ``None`` for an empty ledger."""
    return entries[-1] if entries else None


def rollback_target(entries: Sequence[LedgerEntry]) -> LedgerEntry | None:
    """Return the last recorded entry whose bytes differ from the current one.

    Re-deploying the same bytes does not make them their own rollback target: after
    A, B, A the target is B; after A, B, B it is A.
    """
    current = latest(entries)
    if current is None:
        return None
    return next((e for e in reversed(entries) if e.sha256 != current.sha256), None)


class Ledger:
    """An append-only JSON-lines file of :class:`LedgerEntry`, safe under concurrent writers."""

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_LEDGER) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Ledger({os.fspath(self.path)!r})"

    def exists(self) -> bool:
        """Whether the ledger file exists (a ledger that never recorded anything does not)."""
        return self.path.is_file()

    def append(self, entry: LedgerEntry) -> None:
        """Append ``entry`` as one line: one write under an exclusive lock, then fsync.

        When the file's last byte is not a newline (a writer was killed mid-line), the write
        starts with one so the new line is never glued onto the torn one.
        """
        line = entry.to_json().encode("utf-8") + b"\n"
        with self._locked(write=True) as fd:
            self._append_locked(fd, line)

    def record(self, entry: LedgerEntry) -> LedgerEntry:
        """Append ``entry`` unless its version id is recorded for other bytes.

        The check and the append happen under one lock, so two writers cannot both pass the
        check. Raises :class:`~deploy_gate.errors.VersionCollisionError` on a collision.
        """
        line = entry.to_json().encode("utf-8") + b"\n"
        with self._locked(write=True) as fd:
            for old in self._parse(self._read_locked(fd)):
                if old.version == entry.version and old.sha256 != entry.sha256:
                    raise VersionCollisionError(_collision_message(self.path, entry, old))
            self._append_locked(fd, line)
        return entry

    def entries(self) -> list[LedgerEntry]:
        """Return every readable entry, oldest first; a missing file is an empty ledger.

        Torn or unparseable lines are skipped with a :class:`~deploy_gate.errors.LedgerWarning`
        naming the file and line number.
        """
        if not self.path.exists():
            return []
        with self._locked(write=False) as fd:
            data = self._read_locked(fd)
        return self._parse(data)

    def current(self) -> LedgerEntry | None:
        """Return the last recorded entry: what is deployed now."""
        return latest(self.entries())

    def previous(self) -> LedgerEntry | None:
        """Return the rollback target: the last recorded entry with another sha256 than
        :meth:`current`."""
        return rollback_target(self.entries())

    def find(self, version: str) -> LedgerEntry | None:
        """Return the entry recorded under ``version``, or ``None``."""
        return next((e for e in reversed(self.entries()) if e.version == version), None)

    def by_sha256(self, sha256: str) -> LedgerEntry | None:
        """Return the last entry recorded for these bytes, or ``None``."""
        digest = _check_sha256(sha256, "sha256")
        return next((e for e in reversed(self.entries()) if e.sha256 == digest), None)

    def verify(self, path: str | os.PathLike[str]) -> LedgerEntry | None:
        """Return the last entry whose sha256 matches the file at ``path``, or ``None``.

        This is how a rollback checks that the file about to be served is the recorded one.
        """
        return self.by_sha256(sha256_file(path))

    def is_redeploy(self, sha256: str) -> bool:
        """Whether these bytes were recorded before (deploying them again is a re-deploy)."""
        return self.by_sha256(sha256) is not None

    def collides(self, version: str, sha256: str) -> bool:
        """Whether ``version`` is recorded for other bytes than ``sha256`` (refuse to record)."""
        digest = _check_sha256(sha256, "sha256")
        return any(e.version == version and e.sha256 != digest for e in self.entries())

    @contextlib.contextmanager
    def _locked(self, *, write: bool) -> Iterator[int]:
        flags = (os.O_RDWR | os.O_APPEND | os.O_CREAT) if write else os.O_RDONLY
        flags |= getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
        action = "write" if write else "read"
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            raise LedgerError(f"cannot {action} ledger {self.path}: {exc.strerror}") from exc
        try:
            try:
                _lock(fd, exclusive=write)
            except OSError as exc:
                raise LedgerError(f"cannot lock ledger {self.path}: {exc.strerror}") from exc
            try:
                yield fd
            finally:
                _unlock(fd)
        finally:
            os.close(fd)

    def _read_locked(self, fd: int) -> bytes:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = list(iter(lambda: os.read(fd, _CHUNK), b""))
        except OSError as exc:
            raise LedgerError(f"cannot read ledger {self.path}: {exc.strerror}") from exc
        return b"".join(chunks)

    def _append_locked(self, fd: int, line: bytes) -> None:
        try:
            size = os.fstat(fd).st_size
            if size and _pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
            view = memoryview(line)
            # One write puts the whole line down; the loop only matters for the rare short
            # write (disk nearly full), and the lock keeps other writers out meanwhile.
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as exc:
            raise LedgerError(f"cannot write ledger {self.path}: {exc.strerror}") from exc
        if size == 0:
            _fsync_directory(self.path.parent)

    def _parse(self, data: bytes) -> list[LedgerEntry]:
        lines = data.split(b"\n")
        entries: list[LedgerEntry] = []
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                entries.append(LedgerEntry.from_dict(json.loads(raw.decode("utf-8"))))
            except (ValueError, TypeError) as exc:
                torn = number == len(lines)  # the last piece has no newline after it
                reason = (
                    "torn last line (no newline: a writer was probably killed mid-write)"
                    if torn
                    else f"unreadable line ({_short(exc)})"
                )
                warnings.warn(
                    LedgerWarning(f"{self.path}:{number}: skipped {reason}"), stacklevel=3
                )
        return entries


def _check_sha256(value: object, name: str) -> str:
    if not isinstance(value, str) or not _SHA256.fullmatch(value.lower()):
        raise ValueError(f"{name} must be 64 hex digits, got {value!r}")
    return value.lower()


def _jsonable(value: Any, where: str) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return _jsonable(item(), where)
    raise TypeError(f"ledger field {where} holds {type(value).__name__}, which JSON cannot hold")


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 120 else text[:117] + "..."


def _collision_message(path: Path, new: LedgerEntry, old: LedgerEntry) -> str:
    return (
        f"version {new.version} is already recorded in {path} for other bytes "
        f"(recorded sha256 {old.sha256}, this artifact {new.sha256}); "
        "refusing to record an ambiguous version id"
    )


def _pread(fd: int, n: int, offset: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, n, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # pragma: no cover - Windows
    return os.read(fd, n)  # pragma: no cover - Windows


def _fsync_directory(directory: Path) -> None:
    # A new file's directory entry must reach the disk too, or a crash can lose the file.
    if sys.platform == "win32":
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


if sys.platform == "win32":  # pragma: no cover - not exercised on the Linux CI
    import msvcrt
    import time

    _WINDOWS_LOCK_TIMEOUT = 120.0

    def _lock(fd: int, *, exclusive: bool) -> None:
        # Windows has no shared lock here; readers and writers queue on the first byte.
        deadline = time.monotonic() + _WINDOWS_LOCK_TIMEOUT
        while True:
            os.lseek(fd, 0, os.SEEK_SET)
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)  # itself retries for ~10 s
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        with contextlib.suppress(OSError):
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(fd: int, *, exclusive: bool) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
