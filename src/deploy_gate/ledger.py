"""The deployment ledger: one JSON line per approved artifact.

The ledger answers "which model is deployed" and "what do we roll back to" from a file in the
repository rather than from someone's memory. Lines are only ever appended, each by one
``os.write`` under an advisory lock, so concurrent writers (xdist workers, parallel CI jobs on a
shared volume) neither lose nor interleave lines; a reader skips a line torn by a killed writer
and reports it in :attr:`LedgerRead.skipped` instead of crashing. It never warns: a project's
``filterwarnings = error`` would turn a torn line into a failed gate.

A line recorded by a partial run (one that did not run every applicable built-in check, recorded
only on request) carries ``partial``; it is never :meth:`Ledger.current`, never a rollback target,
and never what :meth:`Ledger.verify` matches a file to.

Locking: on POSIX the lock is ``fcntl.flock`` (exclusive for writers, shared for readers); Linux
maps it onto NFS byte-range locks, so it also holds on NFS mounts. On Windows the lock is
``msvcrt.locking`` on the file's first byte, taken by readers and writers alike (Windows locks
are mandatory, so readers must queue behind writers); that path is not exercised by this
project's test suite, which runs on Linux.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from deploy_gate.errors import LedgerError, VersionCollisionError
from deploy_gate.identity import (
    DEFAULT_LIBRARIES,
    check_sha256,
    library_versions,
    sha256_file,
    version_id,
)

__all__ = [
    "DEFAULT_LEDGER",
    "DEFAULT_LIBRARIES",
    "LEDGER_FORMAT",
    "Contradiction",
    "GitInfo",
    "Ledger",
    "LedgerEntry",
    "LedgerRead",
    "SkippedLine",
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
#: Seconds a ``git`` call may take before the ledger gives up on commit and branch.
GIT_TIMEOUT = 5.0

_VERSION = re.compile(r"v_(?P<when>\d{8}T\d{6}Z)_(?P<prefix>[0-9a-f]{8})")
_GIT_COMMIT = re.compile(r"[0-9a-f]{7,64}")
_CHUNK = 1 << 20
_REQUIRED = ("version", "sha256", "size", "path", "recorded_at")


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


@dataclass(frozen=True)
class LedgerEntry:
    """One recorded, approved artifact: what it is, where it came from, and what the gate saw.

    ``counts`` maps each check category to ``{"passed": n, "failed": n, "skipped": n}``;
    ``latency`` holds the figures of the latency checks (suggested shape
    ``{"batch=1": {"p50_ms": ..., "p95_ms": ..., "p99_ms": ..., "max_ms": ...}}``);
    ``metric_ratios`` maps each baseline metric to candidate/baseline; ``ml_test_score`` is
    :meth:`deploy_gate.mltestscore.MLTestScore.to_dict`. ``partial`` is set only on a line
    recorded by a partial run (``--deploy-gate-record-partial``): per category, how many
    applicable built-in checks were ``{"deselected": n, "skipped": n}``. Non-finite figures are
    written as null.
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
    partial: dict[str, dict[str, int]] | None = None
    format: int = LEDGER_FORMAT

    def __post_init__(self) -> None:
        # Hashes are compared as strings, so store one spelling of each.
        object.__setattr__(self, "sha256", check_sha256(self.sha256, "sha256"))
        if self.baseline_sha256 is not None:
            digest = check_sha256(self.baseline_sha256, "baseline_sha256")
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
        partial: Mapping[str, Mapping[str, int]] | None = None,
        libraries: Iterable[str] | Mapping[str, str] = DEFAULT_LIBRARIES,
        git_cwd: str | os.PathLike[str] | None = None,
        record_as: str | None = None,
    ) -> LedgerEntry:
        """Describe the artifact at ``path`` for the ledger: hash, size, version id, git, versions.

        ``sha256`` skips re-hashing when the caller already has it, and ``version`` reuses the
        id the gate already showed (it must end in the hash prefix, and its time is the
        recorded time unless ``when`` says otherwise); otherwise the id is made from ``when``
        (default now), which is also the recorded time. ``libraries`` is either distribution
        names to look up or a ready ``{name: version}`` table. ``path`` is stored as given, or
        as ``record_as`` (relative to the project root keeps the ledger portable, wherever the
        run started); git runs in ``git_cwd``, by default the artifact's directory.
        """
        digest = sha256_file(path) if sha256 is None else check_sha256(sha256, "sha256")
        if version is not None and not version.endswith(f"_{digest[:8]}"):
            raise ValueError(
                f"version {version!r} does not end in the artifact's sha256 prefix {digest[:8]!r}"
            )
        if when is None and version is not None:
            when = _version_time(version)
        now = datetime.now(timezone.utc) if when is None else when
        if version is None:
            version = version_id(digest, now)
        git = git_info(git_cwd if git_cwd is not None else Path(path).resolve().parent)
        versions = (
            dict(libraries) if isinstance(libraries, Mapping) else library_versions(libraries)
        )
        return cls(
            version=version,
            sha256=digest,
            size=os.stat(path).st_size,
            path=os.fspath(path) if record_as is None else record_as,
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
            partial=None if partial is None else {k: dict(v) for k, v in partial.items()},
        )

    @property
    def is_partial(self) -> bool:
        """Whether a partial run recorded this line: never the deployed version."""
        return bool(self.partial)

    def contradictions(self, size: int | None = None) -> list[Contradiction]:
        """The fields of this line that disagree with the others (or with the artifact's
        ``size`` in bytes, when given), each named; empty when the line agrees with itself.

        The version id must read ``v_<recorded_at as %Y%m%dT%H%M%SZ>_<sha256[:8]>``, the
        baseline's id must end in the baseline's hash prefix, a recorded line must hold no
        failed check, and every count and figure must be of its kind.
        """
        found: list[Contradiction] = []

        def wrong(name: str, message: str) -> None:
            found.append(Contradiction(name, message))

        recorded = _parse_time(self.recorded_at)
        if isinstance(recorded, str):
            wrong("recorded_at", recorded)
        match = _VERSION.fullmatch(self.version)
        if match is None:
            wrong(
                "version",
                f"{self.version!r} does not have the form v_<UTC %Y%m%dT%H%M%SZ>_<sha256[:8]>",
            )
        else:
            if match["prefix"] != self.sha256[:8]:
                wrong(
                    "version",
                    f"{self.version} ends in {match['prefix']}, but the line's sha256 prefix "
                    f"is {self.sha256[:8]}",
                )
            if isinstance(recorded, datetime):
                stamp = f"{recorded.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}"
                if match["when"] != stamp:
                    wrong(
                        "version",
                        f"{self.version} was made at {match['when']}, but the line's "
                        f"recorded_at {self.recorded_at} is {stamp}",
                    )
        if size is not None and self.size != size:
            wrong(
                "size",
                f"{self.size} bytes recorded, but the file with this sha256 has {size} bytes",
            )
        if self.baseline_version is not None:
            base = _VERSION.fullmatch(str(self.baseline_version))
            if base is None:
                wrong("baseline_version", f"{self.baseline_version!r} is not a version id")
            elif self.baseline_sha256 is not None and base["prefix"] != self.baseline_sha256[:8]:
                wrong(
                    "baseline_version",
                    f"{self.baseline_version} does not end in the baseline_sha256 prefix "
                    f"{self.baseline_sha256[:8]}",
                )
        problem = _count_problem(self.counts, failed_allowed=False)
        if problem:
            wrong("counts", problem)
        problem = _count_problem(self.partial or {}, failed_allowed=True)
        if problem:
            wrong("partial", problem)
        if self.git_commit is not None and not _GIT_COMMIT.fullmatch(str(self.git_commit)):
            wrong("git_commit", f"{self.git_commit!r} is not a hex commit id")
        if isinstance(self.format, bool) or not isinstance(self.format, int):
            wrong("format", f"{self.format!r} is not a format number")
        elif not 1 <= self.format <= LEDGER_FORMAT:
            wrong("format", f"{self.format} is not a format this version reads (1-{LEDGER_FORMAT})")
        return found

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


@dataclass(frozen=True)
class Contradiction:
    """A field of a ledger line that disagrees with the others, and how."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True)
class SkippedLine:
    """A line a reader could not use: torn by a killed writer, or not an entry."""

    path: Path
    number: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.number}: skipped {self.reason}"


@dataclass(frozen=True)
class LedgerRead:
    """Everything one read of the ledger found: the entries, oldest first, the line number of
    each, and the lines it skipped (for the caller to report once)."""

    entries: tuple[LedgerEntry, ...] = ()
    line_numbers: tuple[int, ...] = ()
    skipped: tuple[SkippedLine, ...] = ()


def latest(entries: Sequence[LedgerEntry]) -> LedgerEntry | None:
    """Return the last entry a full run recorded (what is deployed), or ``None``.

    Lines recorded by partial runs never count: DESIGN 8b, an approval is earned only by a run
    that ran every applicable built-in check.
    """
    return next((e for e in reversed(entries) if not e.is_partial), None)


def rollback_target(entries: Sequence[LedgerEntry]) -> LedgerEntry | None:
    """Return the last entry of a full run whose bytes differ from the current one.

    Re-deploying the same bytes does not make them their own rollback target: after
    A, B, A the target is B; after A, B, B it is A.
    """
    current = latest(entries)
    if current is None:
        return None
    return next(
        (e for e in reversed(entries) if not e.is_partial and e.sha256 != current.sha256), None
    )


class Ledger:
    """An append-only JSON-lines file of :class:`LedgerEntry`, safe under concurrent writers."""

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_LEDGER) -> None:
        self.path = Path(path)
        # What record() has seen of the file: which file, up to which byte, and the sha256 of
        # each version id there. Each record reads only what was appended since, so N records
        # cost O(N) instead of re-reading the whole ledger every time.
        self._seen_file: tuple[int, int] | None = None
        self._seen_bytes = 0
        self._seen_tail = b""  # the last bytes seen, to notice a file rewritten in place
        self._seen_versions: dict[str, set[str]] = {}

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
        self.record_all([entry])
        return entry

    def record_all(self, entries: Sequence[LedgerEntry]) -> None:
        """Append every entry in one write, or none of them when a version id of one is
        recorded (or repeated among them) for other bytes.

        A gate of several artifacts records them together: either the ledger holds the whole
        approved set, or it holds none of it.
        """
        if not entries:
            return
        data = b"".join(e.to_json().encode("utf-8") + b"\n" for e in entries)
        with self._locked(write=True) as fd:
            self._catch_up(fd)
            pending: dict[str, str] = {}
            for entry in entries:
                known = self._seen_versions.get(entry.version, set())
                other = next((sha for sha in known if sha != entry.sha256), None)
                if other is None and pending.get(entry.version, entry.sha256) != entry.sha256:
                    other = pending[entry.version]
                if other is not None:
                    raise VersionCollisionError(_collision_message(self.path, entry, other))
                pending[entry.version] = entry.sha256
            self._append_locked(fd, data)

    def read(self) -> LedgerRead:
        """Every readable entry with its line number, and the lines skipped; a missing file is
        an empty ledger. Never warns: the caller reports :attr:`LedgerRead.skipped` once."""
        if not self.path.exists():
            return LedgerRead()
        with self._locked(write=False) as fd:
            data = self._read_locked(fd)
        return self._parse(data)

    def entries(self) -> list[LedgerEntry]:
        """Return every readable entry, oldest first (torn and unreadable lines skipped: see
        :meth:`read` for which)."""
        return list(self.read().entries)

    def current(self) -> LedgerEntry | None:
        """Return the last entry recorded by a full run: what is deployed now."""
        return latest(self.entries())

    def previous(self) -> LedgerEntry | None:
        """Return the rollback target: the last entry of a full run with another sha256 than
        :meth:`current`."""
        return rollback_target(self.entries())

    def find(self, version: str) -> LedgerEntry | None:
        """Return the entry recorded under ``version`` (partial or not), or ``None``."""
        return next((e for e in reversed(self.entries()) if e.version == version), None)

    def by_sha256(self, sha256: str) -> LedgerEntry | None:
        """Return the last entry a full run recorded for these bytes, or ``None``."""
        digest = check_sha256(sha256, "sha256")
        return next(
            (e for e in reversed(self.entries()) if e.sha256 == digest and not e.is_partial),
            None,
        )

    def verify(self, path: str | os.PathLike[str]) -> LedgerEntry | None:
        """Return the last entry of a full run whose sha256 matches the file at ``path``, or
        ``None``.

        This is how a rollback checks that the file about to be served is the recorded one.
        """
        return self.by_sha256(sha256_file(path))

    def is_redeploy(self, sha256: str) -> bool:
        """Whether these bytes were recorded before (deploying them again is a re-deploy)."""
        return self.by_sha256(sha256) is not None

    def collides(self, version: str, sha256: str) -> bool:
        """Whether ``version`` is recorded for other bytes than ``sha256`` (refuse to record)."""
        digest = check_sha256(sha256, "sha256")
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

    def _catch_up(self, fd: int) -> None:
        """Index the version ids of the lines appended since this object last looked."""
        try:
            stat = os.fstat(fd)
            tail = self._seen_tail
            if (
                (stat.st_dev, stat.st_ino) != self._seen_file
                or stat.st_size < self._seen_bytes
                or _pread_all(fd, len(tail), self._seen_bytes - len(tail)) != tail
            ):
                # Another file, or one cut short or rewritten in place: start over.
                self._seen_file, self._seen_bytes = (stat.st_dev, stat.st_ino), 0
                self._seen_versions, self._seen_tail = {}, b""
            new = _pread_all(fd, stat.st_size - self._seen_bytes, self._seen_bytes)
        except OSError as exc:
            raise LedgerError(f"cannot read ledger {self.path}: {exc.strerror}") from exc
        end = new.rfind(b"\n") + 1  # a torn tail is read again once it has its newline
        for raw in new[:end].split(b"\n"):
            found = _version_and_sha256(raw)
            if found is not None:
                self._seen_versions.setdefault(found[0], set()).add(found[1])
        self._seen_bytes += end
        self._seen_tail = (self._seen_tail + new[:end])[-64:]

    def _parse(self, data: bytes) -> LedgerRead:
        lines = data.split(b"\n")
        entries: list[LedgerEntry] = []
        numbers: list[int] = []
        skipped: list[SkippedLine] = []
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                entries.append(LedgerEntry.from_dict(json.loads(raw.decode("utf-8"))))
                numbers.append(number)
            except (ValueError, TypeError) as exc:
                torn = number == len(lines)  # the last piece has no newline after it
                reason = (
                    "torn last line (no newline: a writer was probably killed mid-write)"
                    if torn
                    else f"unreadable line ({_short(exc)})"
                )
                skipped.append(SkippedLine(self.path, number, reason))
        return LedgerRead(tuple(entries), tuple(numbers), tuple(skipped))


# How LedgerEntry.to_json starts every line; a line spelled otherwise is parsed in full.
_LINE_HEAD = re.compile(rb'\{"version": "([^"\\]*)", "sha256": "([0-9a-fA-F]{64})"')


def _version_and_sha256(raw: bytes) -> tuple[str, str] | None:
    """The version id and sha256 of one ledger line, or None for a line that is not an entry."""
    match = _LINE_HEAD.match(raw)
    if match is not None:
        return match[1].decode("utf-8"), match[2].decode("ascii").lower()
    try:
        data = json.loads(raw.decode("utf-8")) if raw.strip() else None
    except ValueError:
        return None
    if isinstance(data, dict):
        version, digest = data.get("version"), data.get("sha256")
        if isinstance(version, str) and isinstance(digest, str):
            return version, digest.lower()
    return None


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


def _collision_message(path: Path, new: LedgerEntry, recorded_sha256: str) -> str:
    return (
        f"version {new.version} is already recorded in {path} for other bytes "
        f"(recorded sha256 {recorded_sha256}, this artifact {new.sha256}); "
        "refusing to record an ambiguous version id"
    )


def _version_time(version: str) -> datetime | None:
    match = _VERSION.fullmatch(version)
    if match is None:
        return None
    return datetime.strptime(match["when"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)


def _parse_time(text: str) -> datetime | str:
    """The time of an ISO 8601 ``recorded_at``, or why it is not one with a time zone."""
    try:
        when = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return f"{text!r} is not an ISO 8601 time such as 2026-01-01T12:00:00+00:00"
    if when.tzinfo is None or when.utcoffset() is None:
        return f"{text!r} has no time zone, so it names no moment in UTC"
    return when


def _count_problem(counts: Mapping[str, Any], *, failed_allowed: bool) -> str | None:
    if not isinstance(counts, Mapping):
        return f"{counts!r} is not a table of counts per category"
    for category, table in counts.items():
        if not isinstance(table, Mapping):
            return f"{category}: {table!r} is not a table of counts"
        for kind, n in table.items():
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                return f"{category}.{kind} = {n!r} is not a non-negative count"
        if not failed_allowed and table.get("failed", 0):
            return (
                f"{category} has {table['failed']} failed, but only a gate with no failed "
                "check is recorded"
            )
    return None


def _pread(fd: int, n: int, offset: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, n, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # pragma: no cover - Windows
    return os.read(fd, n)  # pragma: no cover - Windows


def _pread_all(fd: int, n: int, offset: int) -> bytes:
    chunks = []
    while n > 0:
        chunk = _pread(fd, min(n, _CHUNK * 64), offset)
        if not chunk:
            break
        chunks.append(chunk)
        n -= len(chunk)
        offset += len(chunk)
    return b"".join(chunks)


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
