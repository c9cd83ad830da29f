"""The gate's side of the model worker: start it, send requests under deadlines, survive it.

One ``ModelWorker`` serves one artifact. Its child process starts on the first request and
stays up across checks. Every request has a deadline enforced from here: the reply is awaited
with ``poll`` against a monotonic clock, and when time is up the child's whole process group is
killed with SIGKILL, so neither a C call nor Python code that swallows every exception can
outlive it. A child that dies (any exit status, 0 included; any signal) or answers something
that is not a valid frame makes the request raise a ``WorkerError`` that says what happened and
during which call; the next request starts a new child and replays what made its state
(constructors, ``load_model``, inputs, thread limits), until ``max_deaths`` deaths, after which
every request fails at once. A time budget for the whole worker makes everything after it fail
at once too.

Nothing from the child is unpickled: answers are decoded by ``codec`` (data only).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import math
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deploy_gate.concurrency import ConcurrentAnswers
from deploy_gate.worker import codec
from deploy_gate.worker.errors import (
    WorkerDied,
    WorkerError,
    WorkerProtocolError,
    WorkerTimeout,
)
from deploy_gate.worker.sandbox import ISOLATION_LEVELS, WorkerLimits, format_bytes

__all__ = [
    "ModelWorker",
    "RemoteObject",
    "TimedCalls",
    "TimedPairs",
    "WorkerConfig",
    "WorkerInfo",
    "worker_environment",
]

_SECRET_NAME = re.compile(
    r"TOKEN|SECRET|PASSW|CREDENTIAL|API_?KEY|ACCESS_?KEY|PRIVATE|AUTH|COOKIE|SESSION|SIGNING",
    re.IGNORECASE,
)
_SECRET_PREFIXES = (
    "ACTIONS_",
    "AWS_",
    "AZURE_",
    "GOOGLE_",
    "GCP_",
    "VAULT_",
    "TWINE_",
    "DOCKER_",
    "NPM_",
    "PYPI_",
    "CODECOV",
    "SSH_",
    "KUBE",
)
_F_SETPIPE_SZ = 1031


def worker_environment(
    scratch: str | os.PathLike[str], base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The gate's environment for the worker: secret-looking variables left out, temp in scratch.

    A name is left out when it looks like a credential (``*TOKEN*``, ``*SECRET*``, ``*PASSW*``,
    ``*KEY*`` of an API, ...) or belongs to a CI or cloud credential family (``ACTIONS_*``,
    ``AWS_*``, ``AZURE_*``, ...). Temporary files (``TMPDIR``, joblib's memmapping folder) go to the
    worker's scratch folder, the only place it can write in the sandbox.
    """
    source = os.environ if base is None else base
    env = {
        name: value
        for name, value in source.items()
        if not _SECRET_NAME.search(name)
        and not name.upper().startswith(_SECRET_PREFIXES)
        and name != "PYTHONINSPECT"
    }
    folder = os.fspath(scratch)
    for name in ("TMPDIR", "TMP", "TEMP", "JOBLIB_TEMP_FOLDER", "MPLCONFIGDIR"):
        env[name] = folder
    return env


@dataclass(frozen=True)
class WorkerConfig:
    """How a model worker is started, limited and timed."""

    #: Interpreter of the worker; another virtualenv's python runs the model in its libraries.
    python: str = sys.executable
    #: ``"sandbox"`` (limits plus network off and writes confined where the OS allows) or
    #: ``"process"`` (child process and limits only).
    isolation: str = "sandbox"
    limits: WorkerLimits = field(default_factory=WorkerLimits)
    #: Prepended to the worker's ``sys.path`` before anything is imported there.
    sys_path: tuple[str, ...] = ()
    #: The worker's environment; None means ``worker_environment()`` of the gate's.
    env: Mapping[str, str] | None = None
    #: Working directory of the worker; None keeps the gate's.
    cwd: str | None = None
    #: Deadline of one request unless the call gives its own.
    call_timeout: float = 300.0
    #: Deadline of starting the interpreter and the sandbox (imports of the model come later).
    start_timeout: float = 60.0
    #: Wall time the worker may spend serving requests in total (start-ups included); after it,
    #: every request fails at once. None: no budget.
    budget_seconds: float | None = None
    #: Deaths (crashes, kills after a deadline) after which the worker is not restarted.
    max_deaths: int = 3
    max_frame_bytes: int = codec.DEFAULT_MAX_FRAME_BYTES
    #: Methods whose successful calls are replayed on a restarted worker, after its constructors.
    replay_methods: frozenset[str] = frozenset({"load_model"})
    #: How messages name the worker: "model process", "baseline model process", ...
    label: str = "model process"
    #: CPUs the worker runs on, set before anything is imported there so that every thread the
    #: model starts inherits them; None leaves placement to the OS. A caller that waits on the
    #: same CPU (``colocated()``) makes a call's round trip a switch between two processes on
    #: one core instead of waking a second core, which a virtual machine charges dearly for.
    cpus: tuple[int, ...] | None = None
    #: How long the gate polls for an answer before it sleeps. A call answered within it costs
    #: no wake-up of the gate's idle core (45-90 us on a virtual machine, against 5-10 us for a
    #: poll), at the price of the gate's CPU time while it waits; between polls it yields the
    #: CPU to anything else runnable. 0 sleeps at once; never used on a single CPU.
    spin_seconds: float = 0.002
    #: The same for the worker, between an answer and the gate's next request.
    worker_spin_seconds: float = 0.001

    def __post_init__(self) -> None:
        if self.isolation not in ISOLATION_LEVELS:
            raise ValueError(
                f"isolation must be one of {', '.join(ISOLATION_LEVELS)}, not {self.isolation!r}"
            )
        for name in ("call_timeout", "start_timeout"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        for name in ("spin_seconds", "worker_spin_seconds"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value <= 1):
                raise ValueError(f"{name} must be 0 to 1 seconds, not {value!r}")
        if self.budget_seconds is not None and not self.budget_seconds > 0:
            raise ValueError(f"budget_seconds must be positive, not {self.budget_seconds!r}")
        if isinstance(self.max_deaths, bool) or not self.max_deaths >= 1:
            raise ValueError(f"max_deaths must be at least 1, not {self.max_deaths!r}")
        if self.cpus is not None and (
            not self.cpus or any(type(c) is not int or c < 0 for c in self.cpus)
        ):
            raise ValueError(f"cpus must be CPU numbers or None, not {self.cpus!r}")


@dataclass(frozen=True)
class WorkerInfo:
    """What a started worker reported before any model code ran there."""

    pid: int
    python: str
    executable: str
    isolation: str
    #: e.g. ("process isolated", "network off", "writes confined to /tmp/...", "memory 4.0 GiB")
    protections: tuple[str, ...]
    #: Why a protection of the chosen isolation is not in force on this machine.
    warnings: tuple[str, ...]
    versions: Mapping[str, str]


@dataclass(frozen=True)
class TimedCalls:
    """Per-call durations measured inside the worker, next to the model."""

    durations_ns: np.ndarray
    #: Involuntary context switches of the worker's measuring thread during the round.
    switches: int
    #: The whole request as seen from the gate: an upper bound on the sum of the durations.
    wall_ns: int


@dataclass(frozen=True)
class TimedPairs:
    """Durations of two objects' calls, alternating call by call inside one worker."""

    first_ns: np.ndarray
    second_ns: np.ndarray
    switches: int
    wall_ns: int


@dataclass
class _Entry:
    """A request replayed on a restarted worker."""

    op: str
    fields: dict[str, Any]
    buffers: list[memoryview]
    during: str


class ModelWorker:
    """One sandboxed child process serving one artifact; see the module docstring.

    Thread-safe (one request at a time). Use as a context manager or call ``close()``; a worker
    the program forgets is killed when it is garbage-collected or at exit.
    """

    def __init__(self, config: WorkerConfig | None = None) -> None:
        self.config = config or WorkerConfig()
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._proc: subprocess.Popen[bytes] | None = None
        self._wfd = -1
        self._reader: codec.FrameReader | None = None
        self._wpoll: Any = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._base: Path | None = None
        self._info: WorkerInfo | None = None
        self._replay: list[_Entry] = []
        self._deadlines: list[tuple[float, str, float]] = []
        self._spent = 0.0
        self._last_call_ns: int | None = None
        self._deaths = 0
        self._starts = 0
        self._last_reason = ""
        self._spent_message = ""
        self._closed = False
        self._spin_known = (-1, 0.0)
        #: Requests ``launch`` sent whose answers are not read yet: (id, what, is the hello).
        self._pending: list[tuple[int, str, bool]] = []

    @property
    def _spin(self) -> float:
        """Polling before sleeping only helps when this thread has a CPU of its own to spare.
        Asked of the OS again only after ``on_cpus`` moved a thread: not once per call."""
        moves, spin = self._spin_known
        if moves != _moves[0]:
            spin = self.config.spin_seconds if len(_cpus_here()) > 1 else 0.0
            self._spin_known = (_moves[0], spin)
        return spin

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> ModelWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> WorkerInfo:
        """Start the child now (requests start it when needed) and return what it reported."""
        with self._lock:
            self._usable("start-up")
            if self._proc is None:
                self._spawn("start-up")
            elif self._pending:
                self._settle()
            assert self._info is not None
            return self._info

    def launch(self, *prepare: str) -> bool:
        """Start the child without waiting for it, and queue a call of each ``prepare``
        function (``"module:qualname"``, no arguments, its answer dropped): the child starts
        and imports while this process goes on. The next request waits for all of it under the
        start-up timeout, and raises what went wrong (a death, an error of ``prepare``); only
        an interpreter that cannot be started at all raises here. Returns False, doing nothing,
        when a child is already running."""
        with self._lock:
            self._usable("start-up")
            if self._proc is not None:
                return False
            self._launch("start-up")
            self._post("hello", {}, [], "start-up", hello=True)
            for factory in prepare:
                encoder = codec.Encoder()
                fields = {"h": f"h{next(self._ids)}", "f": factory, "path": []}
                fields |= {"a": encoder.value([]), "k": encoder.value({})}
                self._post("construct", fields, encoder.buffers, f"constructing {factory}")
            return True

    def restart(self, during: str, timeout: float) -> WorkerInfo:
        """Replace the child with a new one brought back to the same state (its objects rebuilt
        by replaying what built them), and return what the new one reported. A process of its
        own, with Python's hash seed drawn afresh unless the environment fixes
        ``PYTHONHASHSEED``; not counted as a death.

        The deadlines in force (``deadline``) are set aside for it: a new process's start-up
        and load get ``timeout`` seconds of their own, as the first ones did, not what is left
        of the deadline of the check that asked. Raises what a restart after a death would
        (``WorkerDied`` when the state cannot be rebuilt, ``WorkerTimeout`` past ``timeout``).
        """
        with self._lock:
            self._usable(during)
            kept = self._deadlines
            self._deadlines = [(time.monotonic() + timeout, during, timeout)]
            try:
                if self._proc is not None:
                    self._stop()
                self._spawn(during)
            finally:
                self._deadlines = kept
            assert self._info is not None
            return self._info

    def close(self) -> None:
        """Kill the child and its processes and remove its scratch folder. Final."""
        with self._lock:
            self._closed = True
            self._stop()
            if self._base is not None:
                shutil.rmtree(self._base, ignore_errors=True)
                self._base = None

    @property
    def info(self) -> WorkerInfo | None:
        """What the current (or last) child reported at start-up; None before the first start."""
        return self._info

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def last_call_ns(self) -> int | None:
        """How long the method of the last ``call`` ran in the worker, in ns, as the worker
        measured it (None after other requests): the rest of the call's wall time here is the
        round trip. An untrusted worker can misreport it; use it for accounting, not verdicts."""
        return self._last_call_ns

    @property
    def deaths(self) -> int:
        return self._deaths

    @property
    def starts(self) -> int:
        return self._starts

    @property
    def seconds_spent(self) -> float:
        """Wall time spent serving requests, start-ups included (what the budget counts)."""
        return self._spent

    @property
    def scratch(self) -> Path | None:
        """The one folder the sandboxed model may write to (kept across restarts)."""
        return self._base / "scratch" if self._base is not None else None

    @property
    def log_path(self) -> Path | None:
        """Where the model's stdout and stderr go (the tail is quoted when the child dies)."""
        return self._base / "worker.log" if self._base is not None else None

    def colocated(self) -> contextlib.AbstractContextManager[None]:
        """The calling thread waits for answers on the worker's CPUs (``config.cpus``) inside
        the block, and gets its own CPUs back after it; nothing happens without ``cpus``."""
        return on_cpus(self.config.cpus)

    @contextlib.contextmanager
    def deadline(self, seconds: float, what: str) -> Iterator[None]:
        """Every request inside the block must finish within ``seconds`` from now.

        ``what`` names the deadline in the message, e.g. ``"check errors[nan-input]"``. Nested
        blocks and the per-call timeout combine: the earliest wins.
        """
        entry = (time.monotonic() + seconds, what, seconds)
        self._deadlines.append(entry)
        try:
            yield
        finally:
            self._deadlines.remove(entry)

    # -- requests ---------------------------------------------------------------------------

    def construct(
        self,
        factory: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        sys_path: Sequence[str] = (),
        timeout: float | None = None,
    ) -> RemoteObject:
        """Call ``factory`` (``"module:qualname"``) in the worker; return a proxy of the result.

        The construction is replayed on every restart, so the proxy stays valid.
        """
        __tracebackhide__ = True  # the model's failure, not the channel's: see session.py
        handle = f"h{next(self._ids)}"
        encoder = codec.Encoder()
        fields = {
            "h": handle,
            "f": factory,
            "path": [os.fspath(p) for p in sys_path],
            "a": encoder.value(list(args)),
            "k": encoder.value(dict(kwargs or {})),
        }
        made = self._request(
            "construct",
            fields,
            encoder.buffers,
            timeout=timeout,
            during=f"constructing {factory}",
            replay=True,
        )
        if not isinstance(made, dict):
            raise self._bad_frame("a construct answer without the object's type", "construct")
        methods = tuple(m for m in made.get("m") or () if type(m) is str)
        return RemoteObject(self, handle, codec.clean_text(made.get("type"), 300), methods)

    def call(
        self,
        obj: RemoteObject | str,
        method: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        replay: bool | None = None,
    ) -> Any:
        """``obj.method(*args, **kwargs)`` in the worker; the result as data or as a proxy.

        ``replay`` (default: ``method`` is in ``config.replay_methods``) records the call, once it
        succeeded, to be repeated on a restarted worker.
        """
        __tracebackhide__ = True  # the model's failure, not the channel's: see session.py
        handle = _handle(obj)
        ref = f"h{next(self._ids)}"
        encoder = codec.Encoder()
        fields: dict[str, Any] = {"h": handle, "m": method, "ref": ref}
        if args:
            # A single row as a mapping of plain values is already what it encodes to.
            fields["a"] = list(args) if _plain_row(args) else encoder.value(list(args))
        if kwargs:
            fields["k"] = encoder.value(dict(kwargs))
        if replay is None:
            replay = method in self.config.replay_methods
        return self._request(
            "call", fields, encoder.buffers, timeout=timeout, during=method, replay=replay, ref=ref
        )

    def getattr(self, obj: RemoteObject | str, name: str, *, timeout: float | None = None) -> Any:
        """The attribute's value as data, a proxy, or ``codec.CALLABLE`` for a method."""
        ref = f"h{next(self._ids)}"
        fields = {"h": _handle(obj), "n": name, "ref": ref}
        return self._request(
            "getattr", fields, [], timeout=timeout, during=f"reading {name}", ref=ref
        )

    def setattr(
        self, obj: RemoteObject | str, name: str, value: Any, *, timeout: float | None = None
    ) -> None:
        """Set an attribute in the worker (replayed on restart)."""
        encoder = codec.Encoder()
        fields = {"h": _handle(obj), "n": name, "v": encoder.value(value)}
        self._request(
            "setattr",
            fields,
            encoder.buffers,
            timeout=timeout,
            during=f"setting {name}",
            replay=True,
        )

    def put_inputs(self, key: str, inputs: Sequence[Any], *, timeout: float | None = None) -> None:
        """Store ``inputs`` in the worker once, for ``time_calls`` and ``time_pairs`` to cycle."""
        encoder = codec.Encoder()
        fields = {"key": key, "v": encoder.value(list(inputs))}
        self._request(
            "put_inputs",
            fields,
            encoder.buffers,
            timeout=timeout,
            during="storing inputs",
            replay=True,
        )

    def collect_garbage(self, *, timeout: float | None = None) -> None:
        """Run a full garbage collection in the worker (``gc.collect()``): what is unreachable
        is freed before its memory is read."""
        self._request("collect", {}, [], timeout=timeout, during="collecting garbage")

    def answer_concurrently(
        self,
        obj: RemoteObject | str,
        method: str,
        inputs_key: str,
        threads: int,
        *,
        timeout: float | None = None,
    ) -> ConcurrentAnswers:
        """``concurrency.answer_concurrently`` of ``obj.method`` inside the worker, on the
        inputs stored under ``inputs_key``: the answers one at a time and from ``threads``
        threads at once."""
        __tracebackhide__ = True  # the model's failure, not the channel's: see session.py
        fields = {"h": _handle(obj), "m": method, "key": inputs_key, "threads": int(threads)}
        during = f"calling {method} from {threads} threads at once"
        out = self._request("concurrent", fields, [], timeout=timeout, during=during)
        errors = [(int(t), int(i), str(message)) for t, i, message in out["errors"]]
        return ConcurrentAnswers(list(out["alone"]), [list(a) for a in out["threads"]], errors)

    def time_calls(
        self,
        obj: RemoteObject | str,
        method: str,
        inputs_key: str,
        calls: int,
        *,
        start: int = 0,
        gc: bool = True,
        timeout: float | None = None,
    ) -> TimedCalls:
        """Time ``calls`` calls of ``obj.method`` inside the worker (``latency.time_calls``).

        Inputs cycle from index ``start`` of those stored under ``inputs_key``. For interleaving
        two workers from the gate, alternate requests between them (``calls=1`` interleaves call
        by call at the cost of one round trip per call, which is not in the figures).
        """
        __tracebackhide__ = True  # the model's failure, not the channel's: see session.py
        fields = {
            "h": _handle(obj), "m": method, "key": inputs_key, "calls": int(calls),
            "start": int(start), "gc": gc,
        }  # fmt: skip
        begin = time.perf_counter_ns()
        out = self._request("time_calls", fields, [], timeout=timeout, during=f"timing {method}")
        wall = time.perf_counter_ns() - begin
        durations, switches = _durations(out, "d", calls), _count(out)
        return TimedCalls(durations, switches, wall)

    def time_pairs(
        self,
        first: RemoteObject | str,
        second: RemoteObject | str,
        method: str,
        inputs_key: str,
        calls: int,
        *,
        start: int = 0,
        gc: bool = True,
        timeout: float | None = None,
    ) -> TimedPairs:
        """``latency.time_pairs`` of two objects of this worker, alternating call by call."""
        __tracebackhide__ = True  # the model's failure, not the channel's: see session.py
        fields = {
            "h": _handle(first), "h2": _handle(second), "m": method, "key": inputs_key,
            "calls": int(calls), "start": int(start), "gc": gc,
        }  # fmt: skip
        begin = time.perf_counter_ns()
        out = self._request("time_pairs", fields, [], timeout=timeout, during=f"timing {method}")
        wall = time.perf_counter_ns() - begin
        return TimedPairs(
            _durations(out, "d", calls), _durations(out, "d2", calls), _count(out), wall
        )

    def set_threads(self, limit: int | None, *, timeout: float | None = None) -> None:
        """Limit the worker's BLAS/OpenMP thread pools (threadpoolctl), once for the process.

        The limit reaches the libraries loaded at that moment, so set it after ``load_model``;
        None restores the original limits. Replayed on restart.
        """
        self._request(
            "threads",
            {"limit": limit},
            [],
            timeout=timeout,
            during="limiting threads",
            replay=True,
        )

    def describe(self, obj: RemoteObject | str, *, timeout: float | None = None) -> Any:
        """A loaded ``ModelDeployment``'s (or ``LoadedArtifact``'s) artifact as plain data.

        Keys: path, sha256, size, version_id, loader, profile (the ``ModelProfile`` fields, ready
        for ``ModelProfile(**profile)``), metadata, load_warnings, libraries. None for other
        objects or before ``load_model()``.
        """
        return self._request(
            "describe", {"h": _handle(obj)}, [], timeout=timeout, during="describing the artifact"
        )

    def release(self, obj: RemoteObject | str) -> None:
        """Let the worker drop an object (a proxy used after this raises in the worker)."""
        self._request("release", {"h": _handle(obj)}, [], timeout=None, during="releasing")

    def echo(self, value: Any, *, timeout: float | None = None) -> Any:
        """Send ``value`` to the worker and back (a round trip through the codec)."""
        encoder = codec.Encoder()
        return self._request(
            "echo", {"v": encoder.value(value)}, encoder.buffers, timeout=timeout, during="echo"
        )

    def request(
        self,
        op: str,
        fields: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        during: str | None = None,
    ) -> Any:
        """A raw request: ``fields`` are encoded as values; see ``serve`` for the operations."""
        encoder = codec.Encoder()
        encoded = {name: encoder.value(value) for name, value in (fields or {}).items()}
        return self._request(op, encoded, encoder.buffers, timeout=timeout, during=during or op)

    # -- the round trip ---------------------------------------------------------------------

    def _request(
        self,
        op: str,
        fields: dict[str, Any],
        buffers: list[memoryview],
        *,
        timeout: float | None,
        during: str,
        replay: bool = False,
        ref: str | None = None,
    ) -> Any:
        __tracebackhide__ = True  # the model's failure, not the channel's: see session.py
        with self._lock:
            self._usable(during)
            if self._proc is None:
                self._spawn(during)
            elif self._pending:
                self._settle()
            result = self._roundtrip(op, fields, buffers, timeout, during)
            if replay or (
                type(result) is RemoteObject and ref is not None and result._dg_handle == ref
            ):
                self._replay.append(_Entry(op, fields, buffers, during))
            return result

    def _usable(self, during: str) -> None:
        if self._closed:
            raise WorkerDied(f"{self.config.label} was closed; {during} not run")
        if self._spent_message:
            raise WorkerTimeout(f"{self._spent_message}; {during} not run")
        budget = self.config.budget_seconds
        if budget is not None and self._spent >= budget:
            self._spent_message = (
                f"the {budget:g} s time budget of the {self.config.label} is spent"
            )
            raise WorkerTimeout(f"{self._spent_message}; {during} not run")
        if self._deaths >= self.config.max_deaths:
            raise WorkerDied(
                f"{self.config.label} died {self._deaths} times; not restarted "
                f"({during} not run). Last: {self._last_reason}"
            )

    def _deadline(self, timeout: float | None) -> tuple[float, str]:
        now = time.monotonic()
        seconds = self.config.call_timeout if timeout is None else timeout
        best, why = now + seconds, f"call:{seconds:g}"
        for at, what, limit in self._deadlines:
            if at < best:
                best, why = at, f"check:{limit:g}:{what}"
        budget = self.config.budget_seconds
        if budget is not None and now + (budget - self._spent) < best:
            best, why = now + (budget - self._spent), "budget"
        return best, why

    def _roundtrip(
        self,
        op: str,
        fields: dict[str, Any],
        buffers: list[memoryview],
        timeout: float | None,
        during: str,
    ) -> Any:
        assert self._reader is not None
        __tracebackhide__ = True  # the model's failure, not the channel's: see session.py
        request_id = next(self._ids)
        chunks = codec.pack_frame({"op": op, "id": request_id, **fields}, buffers)
        deadline, why = self._deadline(timeout)
        begin = time.monotonic()
        try:
            codec.write_frame(self._wfd, chunks, deadline, self._wpoll)
            # A latency measurement is long, and polling beside it would disturb it.
            spin = 0.0 if op in _MEASUREMENTS else self._spin
            header, frames = self._reader.read(deadline, spin)
        except _CHANNEL_FAILURES as exc:
            raise self._channel_failed(exc, begin, why, during) from None
        self._spent += time.monotonic() - begin
        return self._answer(request_id, header, frames, during)

    def _channel_failed(
        self, exc: BaseException, begin: float, why: str, during: str
    ) -> WorkerError:
        """What a failure of the channel (one of ``_CHANNEL_FAILURES``) says about the child,
        with the time waited since ``begin`` counted against the budget."""
        self._spent += time.monotonic() - begin
        if isinstance(exc, codec.DeadlineExpired):
            return self._timed_out(why, during)
        if isinstance(exc, codec.FrameError):
            return self._bad_frame(str(exc), during)
        return self._died(during)  # EOFError, BrokenPipeError: the channel closed

    def _answer(self, request_id: int, header: dict[str, Any], frames: Any, during: str) -> Any:
        """The result an answer carries, or the error it reports raised."""
        __tracebackhide__ = True  # the model's failure, not the channel's: see session.py
        ns = header.get("ns")
        self._last_call_ns = ns if type(ns) is int else None
        if header.get("id") != request_id:
            raise self._bad_frame("an answer to another request", during)
        if "e" in header:
            try:
                error = codec.rebuild_exception(header["e"])
            except codec.FrameError as exc:
                raise self._bad_frame(str(exc), during) from None
            raise error
        result = header.get("r")
        if type(result) in codec.PLAIN:  # most single-row answers: nothing to decode
            return result
        try:
            return codec.Decoder(frames, self._proxy).value(result)
        except codec.FrameError as exc:
            raise self._bad_frame(str(exc), during) from None

    def _post(
        self,
        op: str,
        fields: dict[str, Any],
        buffers: list[memoryview],
        during: str,
        *,
        hello: bool = False,
    ) -> None:
        """Send a request of ``launch`` whose answer ``_settle`` reads later."""
        request_id = next(self._ids)
        chunks = codec.pack_frame({"op": op, "id": request_id, **fields}, buffers)
        deadline, why = self._deadline(self.config.start_timeout)
        try:
            codec.write_frame(self._wfd, chunks, deadline, self._wpoll)
        except codec.DeadlineExpired:
            raise self._timed_out(why, during) from None
        except BrokenPipeError:
            pass  # the child is gone already: reading its answer finds out how, and says so
        self._pending.append((request_id, during, hello))

    def _settle(self) -> None:
        """Read the answers to what ``launch`` sent, under the start-up timeout, the first one
        being the child's hello; a failure raises as the request's own would."""
        assert self._reader is not None
        deadline, why = self._deadline(self.config.start_timeout)
        while self._pending:
            request_id, during, hello = self._pending[0]
            begin = time.monotonic()
            try:
                header, frames = self._reader.read(deadline, 0.0)
            except _CHANNEL_FAILURES as exc:
                raise self._channel_failed(exc, begin, why, during) from None
            self._spent += time.monotonic() - begin
            del self._pending[0]
            answer = self._answer(request_id, header, frames, during)
            if hello:
                self._handshake(answer, during)

    def _proxy(self, ref: codec.Ref) -> RemoteObject:
        return RemoteObject(self, ref.handle, ref.type_name, ref.methods)

    # -- starting ---------------------------------------------------------------------------

    def _spawn(self, during: str) -> None:
        """Start the child and wait for its hello (and the replay of its state)."""
        what = self._launch(during)
        hello = self._roundtrip("hello", {}, [], self.config.start_timeout, what)
        self._handshake(hello, what)

    def _launch(self, during: str) -> str:
        """Start the child process; what its start is called in messages."""
        config = self.config
        if self._base is None:
            self._base = Path(tempfile.mkdtemp(prefix="deploy-gate-worker-"))
        scratch = self._base / "scratch"
        scratch.mkdir(exist_ok=True)
        log_path = self._base / "worker.log"
        child_config = {
            "isolation": config.isolation,
            "limits": config.limits.to_data(),
            "scratch": str(scratch),
            "gate_pid": os.getpid(),
            "sys_path": list(config.sys_path),
            "max_frame_bytes": config.max_frame_bytes,
            "cpus": list(config.cpus) if config.cpus is not None else None,
            "spin_seconds": config.worker_spin_seconds,
        }
        env = dict(config.env) if config.env is not None else worker_environment(scratch)
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        for fd in (request_write, reply_read):
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, _F_SETPIPE_SZ, 1 << 20)
        command = [config.python, "-u", "-B", "-m", "deploy_gate.worker.serve"]
        self._starts += 1
        try:
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    [*command, json.dumps(child_config)],
                    stdin=request_read,
                    stdout=reply_write,
                    stderr=log,
                    env=env,
                    cwd=config.cwd,
                    start_new_session=True,
                    close_fds=True,
                )
        except OSError as exc:
            for fd in (request_read, request_write, reply_read, reply_write):
                os.close(fd)
            self._deaths += 1
            self._last_reason = (
                f"cannot start the {config.label} with {config.python}: {exc.strerror or exc}"
            )
            raise WorkerDied(self._last_reason) from None
        os.close(request_read)
        os.close(reply_write)
        os.set_blocking(request_write, False)
        os.set_blocking(reply_read, False)
        self._proc = proc
        self._wfd = request_write
        self._reader = codec.FrameReader(reply_read, max_frame_bytes=config.max_frame_bytes)
        self._wpoll = select.poll()
        self._wpoll.register(request_write, select.POLLOUT)
        self._finalizer = weakref.finalize(self, _kill_group, proc.pid, (request_write, reply_read))
        return "start-up" if self._starts == 1 else f"restart for {during}"

    def _handshake(self, hello: Any, what: str) -> None:
        """Check the child's hello and bring it back to its state (after a restart)."""
        config = self.config
        self._info = _info(hello, config.label)
        if hello.get("protocol") != codec.PROTOCOL_VERSION:
            raise self._bad_frame(
                f"protocol {hello.get('protocol')!r} (this gate speaks "
                f"{codec.PROTOCOL_VERSION}; install the same pytest-deploy-gate in "
                f"{config.python})",
                what,
            )
        for entry in list(self._replay):
            try:
                self._roundtrip(
                    entry.op, entry.fields, entry.buffers, None, f"{entry.during} (replayed)"
                )
            except WorkerError:
                raise
            except BaseException as exc:
                self._stop()
                self._deaths += 1
                self._last_reason = (
                    f"the restarted {config.label} could not be brought back to its state: "
                    f"{entry.during} raised {type(exc).__name__}: {exc}"
                )
                raise WorkerDied(self._last_reason) from None

    # -- failures ---------------------------------------------------------------------------

    def _stop(self) -> tuple[int | None, Any]:
        """Kill the process group, reap the child; its wait status and rusage (None if gone)."""
        proc = self._proc
        self._pending.clear()
        if proc is None:
            return None, None
        self._proc = None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        status, usage = _reap(proc)
        self._close_fds()
        return status, usage

    def _close_fds(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(OSError):
                os.close(self._reader.fd)
            self._reader = None
        if self._wfd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._wfd)
            self._wfd = -1

    def _died(self, during: str) -> WorkerDied:
        """The channel closed: wait briefly for the exit status, then explain the death."""
        proc = self._proc
        assert proc is not None
        exited = _wait_exit(proc.pid, 2.0)
        status, usage = self._stop()
        label = self.config.label
        if not exited or status is None:
            reason = (
                f"{label} closed its channel to the gate during {during} without exiting; killed it"
            )
        else:
            reason = _describe_status(status, usage, during, self.config)
        self._deaths += 1
        self._last_reason = reason
        return WorkerDied(reason + self._log_tail())

    def _timed_out(self, why: str, during: str) -> WorkerTimeout:
        self._stop()
        self._deaths += 1
        label = self.config.label
        kind, _, rest = why.partition(":")
        if kind == "budget":
            self._spent_message = (
                f"the {self.config.budget_seconds:g} s time budget of the {label} is spent"
            )
            reason = f"{self._spent_message}: killed it during {during}; not restarted"
        elif kind == "check":
            seconds, _, what = rest.partition(":")
            reason = (
                f"{what} did not finish within its {seconds} s deadline: killed the {label} "
                f"during {during}"
            )
        else:
            reason = f"{label} did not answer {during} within {rest} s: killed it"
        self._last_reason = reason
        return WorkerTimeout(reason)

    def _bad_frame(self, detail: str, during: str) -> WorkerProtocolError:
        self._stop()
        self._deaths += 1
        reason = f"{self.config.label} sent an invalid answer during {during} ({detail}); killed it"
        self._last_reason = reason
        return WorkerProtocolError(reason)

    def _log_tail(self, max_bytes: int = 16384, max_lines: int = 10) -> str:
        """The end of the model's output, or of faulthandler's report of a crash."""
        path = self.log_path
        if path is None:
            return ""
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - max_bytes))
                tail = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        lines = [
            line
            for line in codec.clean_text(tail, max_bytes).splitlines()
            if line.strip() and not line.startswith("Extension modules:")
        ]
        crash = [i for i, line in enumerate(lines) if line.startswith("Fatal Python error")]
        lines = lines[crash[-1] :][:max_lines] if crash else lines[-max_lines:]
        if not lines:
            return ""
        shown = "\n".join(f"  | {line[:300]}" for line in lines)
        return f"\nlast output of the {self.config.label}:\n{shown}"


class RemoteObject(codec.Proxy):
    """A proxy for an object living in a model worker.

    Methods of the object's class run in the worker when called (their names come with the
    proxy, so a call is one round trip); other attribute reads go to the worker each time
    (properties such as ``is_loaded`` change). Results are data (numpy arrays, frames, plain
    values) or further proxies; a proxy passed as an argument arrives as the object itself.
    Dunder names are not forwarded.
    """

    __slots__ = ("__weakref__", "_dg_handle", "_dg_methods", "_dg_type", "_dg_worker")

    def __init__(
        self,
        worker: ModelWorker,
        handle: str,
        type_name: str = "",
        methods: Sequence[str] = (),
    ) -> None:
        object.__setattr__(self, "_dg_worker", worker)
        object.__setattr__(self, "_dg_handle", handle)
        object.__setattr__(self, "_dg_type", type_name)
        object.__setattr__(
            self, "_dg_methods", {name: _RemoteMethod(self, name) for name in methods}
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        method = self._dg_methods.get(name)
        if method is not None:
            return method
        value = self._dg_worker.getattr(self, name)
        if value is codec.CALLABLE:
            method = _RemoteMethod(self, name)
            self._dg_methods[name] = method
            return method
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        self._dg_methods.pop(name, None)
        self._dg_worker.setattr(self, name, value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._dg_worker.call(self, "__call__", args, kwargs)

    def __repr__(self) -> str:
        where = self._dg_worker.config.label
        return f"<remote {self._dg_type or 'object'} {self._dg_handle} in the {where}>"


class _RemoteMethod:
    __slots__ = ("_name", "_obj")

    def __init__(self, obj: RemoteObject, name: str) -> None:
        self._obj = obj
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        obj = self._obj
        __tracebackhide__ = True  # the model's failure, not the channel's: see session.py
        return obj._dg_worker.call(obj, self._name, args, kwargs)

    def __repr__(self) -> str:
        return f"<remote method {self._name} of {self._obj!r}>"


@dataclass(frozen=True)
class Remote:
    """Where a proxied object lives: see ``remote``."""

    worker: ModelWorker
    #: The object's handle in the worker.
    handle: str
    #: ``module.QualifiedName`` of the object's class in the worker.
    type_name: str
    #: The proxy itself (for a method: the proxy it belongs to).
    proxy: RemoteObject
    #: The method's name when ``remote`` was given a method of a proxy, else None.
    method: str | None = None


def remote(obj: object) -> Remote | None:
    """Where ``obj`` lives when it is a worker proxy or a method of one, None otherwise.

    The one public way to look behind a proxy: any attribute read on a proxy itself goes to the
    object in the worker, so the proxy's own state is not reachable as attributes.
    """
    method = None
    if isinstance(obj, _RemoteMethod):
        obj, method = obj._obj, obj._name
    if not isinstance(obj, RemoteObject):
        return None
    get = object.__getattribute__
    return Remote(get(obj, "_dg_worker"), get(obj, "_dg_handle"), get(obj, "_dg_type"), obj, method)


#: Requests that time the model in the worker.
_MEASUREMENTS = frozenset({"time_calls", "time_pairs"})
#: What writing a request or reading an answer raises when the child cannot be heard from.
_CHANNEL_FAILURES = (codec.DeadlineExpired, EOFError, BrokenPipeError, codec.FrameError)


def _plain_row(args: Sequence[Any]) -> bool:
    """``args`` is one mapping of text to plain values (not bool subclasses, numpy scalars,
    or the codec's tag as a key): JSON as it stands."""
    if len(args) != 1 or type(args[0]) is not dict:
        return False
    row = args[0]
    return codec.TAG not in row and all(
        type(k) is str and type(v) in codec.PLAIN for k, v in row.items()
    )


#: How many times ``on_cpus`` moved a thread: a worker asks the OS for the CPUs it may poll on
#: again only after a move.
_moves = [0]


def _cpus_here() -> set[int] | range:
    """The CPUs the calling thread may run on (all of them where the OS does not say)."""
    if hasattr(os, "sched_getaffinity"):
        return os.sched_getaffinity(0)
    return range(os.cpu_count() or 1)


def one_cpu(index: int = 0) -> tuple[int, ...] | None:
    """One of the CPUs this process may use, the ``index``-th modulo their number (so parallel
    pytest workers spread over them), or None where there is nothing to choose: one CPU, or an
    OS without ``sched_setaffinity``."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return (cpus[index % len(cpus)],)


@contextlib.contextmanager
def on_cpus(cpus: Sequence[int] | None) -> Iterator[None]:
    """The calling thread runs on ``cpus`` inside the block (threads it starts there keep
    them); its own set comes back after it. None, or an OS that cannot, changes nothing."""
    if not cpus or not hasattr(os, "sched_setaffinity"):
        yield
        return
    try:
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, cpus)
    except OSError:  # CPUs this thread may not use (a container's cpuset changed): no change
        yield
        return
    _moves[0] += 1
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, before)
        _moves[0] += 1


def _handle(obj: RemoteObject | str) -> str:
    return obj if isinstance(obj, str) else obj._dg_handle


def _durations(out: Any, key: str, calls: int) -> np.ndarray:
    values = out.get(key) if isinstance(out, dict) else None
    if not isinstance(values, np.ndarray) or values.dtype != np.float64 or values.shape != (calls,):
        raise WorkerProtocolError(f"timing answer without {calls} float64 durations")
    return values


def _count(out: Any) -> int:
    switches = out.get("s")
    return switches if type(switches) is int else 0


def _info(hello: Any, label: str) -> WorkerInfo:
    if not isinstance(hello, dict):
        raise WorkerProtocolError(f"{label} answered hello with {type(hello).__name__}")

    def texts(key: str) -> tuple[str, ...]:
        return tuple(codec.clean_text(x, 300) for x in hello.get(key) or () if type(x) is str)

    versions = hello.get("versions")
    return WorkerInfo(
        pid=int(hello.get("pid") or 0),
        python=codec.clean_text(hello.get("python"), 40),
        executable=codec.clean_text(hello.get("executable"), 500),
        isolation=codec.clean_text(hello.get("isolation"), 20),
        protections=texts("protections"),
        warnings=texts("warnings"),
        versions={
            codec.clean_text(k, 60): codec.clean_text(v, 60)
            for k, v in (versions.items() if isinstance(versions, dict) else ())
        },
    )


def _wait_exit(pid: int, seconds: float) -> bool:
    """Whether ``pid`` exits within ``seconds`` (it is not reaped, so its group stays killable)."""
    end = time.monotonic() + seconds
    pause = 0.0005
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _reap(proc: subprocess.Popen[bytes]) -> tuple[int | None, Any]:
    end = time.monotonic() + 10.0
    while True:
        try:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        except ChildProcessError:
            return None, None
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return status, usage
        if time.monotonic() > end:  # stuck in the kernel (D state): leave it, do not hang
            return None, None
        time.sleep(0.001)


def _kill_group(pid: int, fds: tuple[int, ...]) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.waitpid(pid, 0)
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _describe_status(status: int, usage: Any, during: str, config: WorkerConfig) -> str:
    label = config.label
    limits = config.limits
    if os.WIFEXITED(status):
        return f"{label} exited with status {os.WEXITSTATUS(status)} during {during}"
    number = os.WTERMSIG(status)
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    cpu = (usage.ru_utime + usage.ru_stime) if usage is not None else 0.0
    if number == getattr(signal, "SIGXCPU", -1) or (
        number == signal.SIGKILL and limits.cpu_seconds is not None and cpu >= limits.cpu_seconds
    ):
        return (
            f"{label} exceeded its CPU time limit of {limits.cpu_seconds} s ({name}) "
            f"during {during}"
        )
    if number == getattr(signal, "SIGXFSZ", -1):
        size = format_bytes(limits.file_size_bytes) if limits.file_size_bytes else "?"
        return f"{label} exceeded its file size limit of {size} ({name}) during {during}"
    text = f"{label} killed by {name} during {during}"
    memory = format_bytes(limits.memory_bytes) if limits.memory_bytes else "no limit"
    if number == signal.SIGKILL:
        peak = format_bytes(usage.ru_maxrss * 1024) if usage is not None else "?"
        text += f" (not by the gate: out of memory? peak memory {peak}, memory limit {memory})"
    elif number == signal.SIGABRT:
        text += f" (abort() in native code; a failed allocation under the {memory} memory limit?)"
    return text
