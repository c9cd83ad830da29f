"""A per-check time limit, so a model whose predict() hangs fails its check instead of the run."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from deploy_gate.errors import CheckFailure


class CheckTimeout(CheckFailure):
    """A check ran past ``deploy_gate_check_timeout``."""


@contextmanager
def deadline(seconds: float, what: str) -> Iterator[None]:
    """Raise CheckTimeout inside the block after ``seconds``.

    Uses SIGALRM, so it works in the main thread on POSIX and interrupts Python code (a model
    stuck in a C call is interrupted when the call returns). Elsewhere it does nothing.
    """
    if (
        not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise CheckTimeout(
            f"{what} did not finish within {seconds:g} s (deploy_gate_check_timeout): "
            "the model hangs or is far too slow"
        )

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
