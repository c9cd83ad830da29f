"""Small models, one healthy and many hostile, that test_worker.py runs in a model worker.

Each hostile model does its one thing in ``predict`` (and ``predict_proba``), so loading works
and the act happens during ``predict_single``/``batch_predict``. They are pickled with joblib and
loaded through ``ModelDeployment`` with ``trust=("worker_models",)``, or built directly by name.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import time
from typing import Any

import numpy as np
import pandas as pd

FEATURES = ("a", "b")


class Healthy:
    """Label 1 when a + b > 0, probabilities from a logistic of a + b."""

    def __init__(self) -> None:
        self.feature_names_in_ = np.array(FEATURES, dtype=object)
        self.n_features_in_ = len(FEATURES)
        self.classes_ = np.array([0, 1])

    def _score(self, X: Any) -> np.ndarray:
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X, columns=list(FEATURES))
        return np.asarray(frame["a"], dtype=float) + np.asarray(frame["b"], dtype=float)

    def predict(self, X: Any) -> np.ndarray:
        self.act()
        return (self._score(X) > 0).astype(int)

    def predict_proba(self, X: Any) -> np.ndarray:
        self.act()
        p = 1.0 / (1.0 + np.exp(-self._score(X)))
        return np.column_stack([1.0 - p, p])

    def act(self) -> None:
        """The hostile part; nothing for the healthy model."""


class ExitZero(Healthy):
    def act(self) -> None:
        os._exit(0)


class ExitOne(Healthy):
    def act(self) -> None:
        os._exit(1)


class Segfault(Healthy):
    def act(self) -> None:
        ctypes.string_at(0)


class SwallowingLoop(Healthy):
    """Sleeps forever in Python and swallows every exception a deadline could raise."""

    def act(self) -> None:
        while True:
            with contextlib.suppress(BaseException):
                time.sleep(1)


class BlockedInC(Healthy):
    """Blocks inside a C call (libc ``sleep``), where no Python signal handler runs."""

    def act(self) -> None:
        ctypes.CDLL(None).sleep(1000)


class MemoryBomb(Healthy):
    """Allocates 20 GB at once."""

    def act(self) -> None:
        np.ones(20 * 2**30 // 8)


class CpuBurner(Healthy):
    """Spins on the CPU until the CPU time limit stops it."""

    def act(self) -> None:
        while True:
            pass


class ForkBomb(Healthy):
    """Starts ``count`` processes that sleep."""

    def __init__(self, count: int = 1000) -> None:
        super().__init__()
        self.count = count

    def act(self) -> None:
        for _ in range(self.count):
            pid = os.fork()
            if pid == 0:  # never return into the worker's loop
                try:
                    time.sleep(600)
                finally:
                    os._exit(0)


class Connector(Healthy):
    """Connects to ``host:port`` and says hello."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__()
        self.host = host
        self.port = port

    def act(self) -> None:
        with socket.create_connection((self.host, self.port), timeout=5) as conn:
            conn.sendall(b"hello from the model")


class CanaryWriter(Healthy):
    """Writes a canary file at ``path`` (outside the worker's scratch folder)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def act(self) -> None:
        with open(self.path, "w") as f:
            f.write("the model was here")


class ScratchWriter(Healthy):
    """Writes ``size`` bytes into the scratch folder (``TMPDIR``)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def act(self) -> None:
        path = os.path.join(os.environ["TMPDIR"], "blob.bin")
        with open(path, "wb") as f:
            f.write(b"x" * self.size)


class DiesOnce(Healthy):
    """Exits with status 3 on its first prediction in a scratch folder, then behaves."""

    def act(self) -> None:
        marker = os.path.join(os.environ["TMPDIR"], "died-once")
        if not os.path.exists(marker):
            with open(marker, "w"):
                pass
            os._exit(3)


class Chatty(Healthy):
    """Prints to stdout and writes straight to fds 1 and 2, as careless native code does."""

    def act(self) -> None:
        print("predicting!")
        os.write(1, b"raw bytes on fd 1\n")
        os.write(2, b"raw bytes on fd 2\n")


class ChannelScribbler(Healthy):
    """Writes junk to every open descriptor above 2, the gate's channel among them."""

    def act(self) -> None:
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd > 2:
                with contextlib.suppress(OSError):
                    os.write(fd, b"DGW1\xff\xff\xff\xff junk")


class SignalsParent(Healthy):
    """Probes the gate process with signal 0 (sends nothing; only checks permission)."""

    def act(self) -> None:
        os.kill(os.getppid(), 0)


class SysExit(Healthy):
    def act(self) -> None:
        raise SystemExit(0)


class StartsAThread(Healthy):
    """Starts a thread of its own, as a model's runtime may after loading."""

    def __init__(self) -> None:
        import threading

        super().__init__()
        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()


class Raiser:
    """Raises a chosen exception from ``boom(kind, message)``."""

    def boom(self, kind: str, message: str) -> None:
        if kind == "NotFitted":
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(message)
        if kind == "Custom":
            raise CustomError(message)
        if kind == "KeyError":
            raise KeyError(message)
        if kind == "OSError":
            raise FileNotFoundError(2, "No such file or directory", message)
        if kind == "Schema":
            from deploy_gate.errors import SchemaError

            raise SchemaError(message)
        raise ValueError(message)


class CustomError(LookupError):
    """A project's own exception, unknown to the gate."""


class Echo:
    """Returns what it is given: a codec round trip through a real worker."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.calls = 0

    def echo(self, value: Any) -> Any:
        self.calls += 1
        return value

    def opaque(self) -> Any:
        """An object with no data encoding (kept in the worker, proxied here)."""
        return Echo(prefix="inner")

    def load_model(self) -> None:
        self.prefix = "loaded"


def forge() -> None:
    """A fake worker: answers ``hello`` as the real one does, then every request with a frame
    that carries a pickled object array, as a compromised worker might."""
    import pickle

    from deploy_gate.worker import codec

    reader = codec.FrameReader(0)
    payload = pickle.dumps(np.array([{"a": 1}, None], dtype=object))
    while True:
        try:
            header, _ = reader.read()
        except EOFError:
            return
        if header.get("op") == "hello":
            answer = {"protocol": codec.PROTOCOL_VERSION, "pid": os.getpid(), "protections": []}
            codec.write_frame(1, codec.pack_frame({"id": header["id"], "r": answer}))
        else:
            forged = {"$t": "nd", "d": "|O", "s": [2], "b": 0}
            reply = {"id": header["id"], "r": forged}
            codec.write_frame(1, codec.pack_frame(reply, [memoryview(payload)]))


#: Pids of the processes where ``prepare`` ran (a ``ModelWorker.launch`` step).
PREPARED: list[int] = []


def prepare() -> None:
    PREPARED.append(os.getpid())


def fails_to_prepare() -> None:
    raise LookupError("not ready")


class Prepared:
    """Tells where ``prepare`` ran in this worker."""

    def runs(self) -> list[int]:
        return list(PREPARED)
