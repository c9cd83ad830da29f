"""Calls from several threads at once, as a threaded server makes them.

A serving process that answers requests from a thread pool (FastAPI's ``def`` endpoints,
Flask's threaded server, gunicorn's ``gthread`` workers) calls the model from several threads
at once. A model that keeps per-call state on itself (the input stored on ``self`` and read back
later, a shared buffer, a cache filled in two steps) answers one request with another's data
there, and nowhere else: one call at a time, every answer is right.

``answer_concurrently`` asks the same inputs one at a time, then from several threads at once,
with the threads made to switch often and inside the model's own code, so the two can be
compared. pytest-free, and free of numpy: the model worker runs it next to the
model (``deploy_gate.worker``), and ``--deploy-gate-isolation none`` runs it in the gate.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import FrameType

#: The interpreter's thread switch interval while the threads run, in seconds (its default is
#: 5 ms, longer than a whole single-row call of most models: the threads would take turns call
#: by call). Restored afterwards.
SWITCH_INTERVAL = 20e-6


def _yield_at_calls() -> Callable[[FrameType, str, Any], None]:
    """A profile function that hands the interpreter to another thread at every call of a
    Python function outside the standard library, installed packages and this package: the
    model's own code (a custom transformer, a serving class).

    Per-call state is exposed only when another thread runs between a write to it and the read
    that follows, and those are usually a method call apart (``self.frame = X`` then
    ``self._clean()``, which reads ``self.frame``). Preempted on a timer alone, even every
    20 us, the threads of the gate's own test of such a model landed in that gap on 0-4 of 96
    calls; yielding at each call of the model's code, on 64-76 of 96. The libraries a model
    is built from are left alone: their calls are many, and yielding at each would make a
    call of a scikit-learn pipeline many times slower. The profile function itself still runs
    at every call: on the example project's pipeline, 64 threaded calls took 1.2 s with one
    that does nothing against 0.9 s without. (``sys.monitoring`` would be cheaper, but it is
    Python 3.12 and later.)
    """
    import os
    import sysconfig

    paths = sysconfig.get_paths()
    libraries = tuple(
        {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    )
    # The gate's own serving code too, wherever it is installed (an editable install is not
    # in site-packages): the same cost and the same blame either way.
    libraries += (os.path.dirname(__file__) + os.sep,)
    known: dict[str, bool] = {}

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event != "call":
            return
        filename = frame.f_code.co_filename
        own = known.get(filename)
        if own is None:
            own = known[filename] = not filename.startswith((*libraries, "<"))
        if own:
            # Gives up the GIL and the CPU long enough for a waiting thread to take both. Not
            # sleep(0): on Python 3.10 that is select() with no timeout, which returns before a
            # waiting thread wakes, and the same thread takes the GIL back. Measured on the
            # test model above, 3 threads, 10 runs: sleep(0) exposed it on 0-3 of 21 calls under
            # 3.10 and 10-18 under 3.11; sleep(1e-6) on 8-17 under both, with the CPUs busy too.
            time.sleep(1e-6)

    return profile


@dataclass(frozen=True)
class ConcurrentAnswers:
    """The answers to ``inputs`` one at a time (``alone``), and from each thread (``threads``:
    one list per thread, in input order); a call that raised is ``None`` there, with its error
    in ``errors`` as ``(thread, input index, "Type: message")``."""

    alone: list[Any]
    threads: list[list[Any]]
    errors: list[tuple[int, int, str]]


def answer_concurrently(
    fn: Callable[[Any], Any], inputs: Sequence[Any], threads: int
) -> ConcurrentAnswers:
    """Call ``fn`` on every input one at a time, then on every input again from each of
    ``threads`` threads, all started together.

    Thread ``t`` starts its pass at its own offset into ``inputs`` (``t * len // threads``) and
    wraps around, so different inputs are in flight at the same moment: threads that all asked
    the same input at once would overwrite each other's state with equal values and show
    nothing. A call that raises one at a time raises here; one that raises only from a thread is
    recorded in ``errors``.
    """
    if threads < 2:
        raise ValueError(f"threads must be at least 2, not {threads!r}")
    items = list(inputs)
    if not items:
        raise ValueError("inputs must not be empty")
    alone = [fn(x) for x in items]
    n = len(items)
    answers: list[list[Any]] = [[None] * n for _ in range(threads)]
    errors: list[tuple[int, int, str]] = []
    start = threading.Barrier(threads)

    def run(t: int) -> None:
        offset = t * n // threads
        try:
            start.wait()
        except threading.BrokenBarrierError:  # another thread could not be started
            return
        for k in range(n):
            i = (offset + k) % n
            try:
                answers[t][i] = fn(items[i])
            except Exception as exc:  # the model's failure under concurrency, reported as data
                errors.append((t, i, f"{type(exc).__name__}: {exc}"))

    workers = [
        threading.Thread(target=run, args=(t,), name=f"deploy-gate-serving-{t}", daemon=True)
        for t in range(threads)
    ]
    interval, profile = sys.getswitchinterval(), threading.getprofile()
    sys.setswitchinterval(SWITCH_INTERVAL)
    threading.setprofile(_yield_at_calls())  # for the threads started below
    try:
        try:
            for worker in workers:
                worker.start()
        except BaseException:  # e.g. RLIMIT_NPROC: release the threads already waiting
            start.abort()
            raise
        for worker in workers:
            worker.join()
    finally:
        threading.setprofile(profile)
        sys.setswitchinterval(interval)
    return ConcurrentAnswers(alone, answers, sorted(errors))
