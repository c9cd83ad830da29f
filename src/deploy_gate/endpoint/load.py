"""Latency of an endpoint as its clients see it: requests timed by the client, ``concurrency`` of
them in flight at once, judged by the same verdict rules as in-process latency
(:class:`deploy_gate.latency.LatencyMeasurement`, fed through its ``RoundTimer`` seam).

The figures include the client's own work per request (encoding the body, decoding the answer,
httpx); :func:`client_overhead_ns` measures that part against a server that answers at once, so
the report can say how much of a percentile is the client's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    import numpy as np

T = TypeVar("T")


class ConcurrentTimer(Generic[T]):
    """A ``RoundTimer`` that keeps ``concurrency`` calls of ``fn`` in flight and returns each
    call's duration (send to answer, in ns), in the order the calls were issued.

    The first error a call raises is raised from the round: a latency figure of failing
    requests would be a figure of error pages.
    """

    def __init__(
        self,
        fn: Callable[[T], object],
        inputs: Sequence[T],
        concurrency: int,
        clock: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.fn = fn
        self.inputs = list(inputs)
        self.concurrency = concurrency
        self.clock = clock
        self._pool: ThreadPoolExecutor | None = None

    def _timed(self, x: T) -> int:
        t0 = self.clock()
        self.fn(x)
        return self.clock() - t0

    def __call__(self, calls: int, start: int) -> tuple[np.ndarray, int]:
        import numpy as np

        n = len(self.inputs)
        batch = [self.inputs[(start + i) % n] for i in range(calls)]
        if self.concurrency == 1 or calls == 1:
            durations = [self._timed(x) for x in batch]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self.concurrency, thread_name_prefix="deploy-gate-load"
                )
            # map keeps `concurrency` calls in flight and raises the first error in order.
            durations = list(self._pool.map(self._timed, batch))
        # Preemptions of the server are the server's latency: none are set aside.
        return np.asarray(durations, dtype=np.float64), 0

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


class _InstantServer:
    """A loopback HTTP/1.1 server that answers every request at once with a fixed JSON body,
    run in a thread: what a request costs the client when the server costs nothing."""

    def __init__(self, body: bytes) -> None:
        import socket

        self.body = body
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = int(self.sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:

        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: Any) -> None:
        response = (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(self.body)).encode()
            + b"\r\n\r\n"
            + self.body
        )
        buffer = b""
        with conn:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                buffer += chunk
                while True:
                    head, sep, rest = buffer.partition(b"\r\n\r\n")
                    if not sep:
                        break
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        key, _, value = line.partition(b":")
                        if key.strip().lower() == b"content-length":
                            length = int(value.strip())
                    if len(rest) < length:
                        break
                    buffer = rest[length:]
                    conn.sendall(response)

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(timeout=2)


def client_overhead_ns(
    call: Callable[[str], object], answer: bytes, calls: int = 200
) -> np.ndarray:
    """Per-request durations (ns) of ``call(base_url)`` against a loopback server that answers
    ``answer`` at once: the client's overhead (encoding, httpx, the loopback, decoding), one
    request at a time. ``call`` gets the server's base URL and sends one request there."""
    import numpy as np

    server = _InstantServer(answer)
    try:
        base = f"http://127.0.0.1:{server.port}"
        for _ in range(min(20, calls)):  # warm-up: connection, code paths
            call(base)
        durations = []
        for _ in range(calls):
            t0 = time.perf_counter_ns()
            call(base)
            durations.append(time.perf_counter_ns() - t0)
    finally:
        server.close()
    return np.asarray(durations, dtype=np.float64)
