"""Hostile and broken models for the model worker's end-to-end tests (issue 12).

Each class is a small fitted scikit-learn classifier that behaves well until the gate calls into
it, and then does the one thing its docstring names: exits, dies by a signal, hangs where no
Python exception can reach it, allocates far too much, forks, phones home, writes where it must
not, or hangs while it is being unpickled. The gate loads them with
``--deploy-gate-trust hostile_models``, so the child that loads them must be able to import
this module (the tests put its folder on ``PYTHONPATH``).

The payloads are harmless outside the machine that runs them: the network model only talks to
a listener the test opened on 127.0.0.1, the writer only writes a canary into the test's own
folder, forked children name themselves after a tag the test chose and exit on their own after
a few minutes.
"""

from __future__ import annotations

import collections
import ctypes
import os
import pickle
import signal
import socket
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

try:
    from sklearn.utils.validation import validate_data
except ImportError:  # scikit-learn < 1.6 has it as an estimator method

    def validate_data(estimator: Any, *args: Any, **kwargs: Any) -> Any:
        return estimator._validate_data(*args, **kwargs)


FEATURES = ("a", "b", "c", "d")

# prctl(2) option that names the calling thread (what /proc/<pid>/comm shows).
_PR_SET_NAME = 15


class Healthy(ClassifierMixin, BaseEstimator):
    """A well-behaved linear classifier: the control that every hostile model below extends.

    It reads columns by name and validates its input as scikit-learn estimators do, so it
    passes every check of the gate; subclasses override ``_attack`` only.
    """

    def fit(self, X: pd.DataFrame, y: Any) -> Healthy:
        X_checked, y_checked = validate_data(self, X, y)
        self.classes_ = np.unique(y_checked)
        design = np.column_stack([X_checked, np.ones(len(X_checked))])
        target = np.where(y_checked == self.classes_[-1], 1.0, -1.0)
        solution = np.linalg.lstsq(design, target, rcond=None)[0]
        self.coef_, self.intercept_ = solution[:-1], float(solution[-1])
        return self

    def _attack(self) -> None:
        """What the hostile subclass does whenever the gate calls into the model."""

    def _scores(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        self._attack()
        if isinstance(X, pd.DataFrame):
            X = X[list(self.feature_names_in_)]  # by name: a missing column is a KeyError
        X_checked = validate_data(self, X, reset=False)
        return np.asarray(X_checked @ self.coef_ + self.intercept_, dtype=float)

    def decision_function(self, X: Any) -> np.ndarray:
        return self._scores(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-4.0 * self._scores(X)))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.classes_[(self._scores(X) > 0).astype(int)])


# -- the model process ends ------------------------------------------------------------------


class ExitsWithStatusZero(Healthy):
    """Ends its process with status 0, as if everything had gone well."""

    def _attack(self) -> None:
        os._exit(0)


class ExitsWithStatusOne(Healthy):
    """Ends its process with status 1."""

    def _attack(self) -> None:
        os._exit(1)


class Segfaults(Healthy):
    """Reads address 0: SIGSEGV."""

    def _attack(self) -> None:
        ctypes.string_at(0)


# -- the model never returns -----------------------------------------------------------------


class SleepsSwallowingEverything(Healthy):
    """Sleeps in Python forever and swallows every exception a timeout could raise."""

    def _attack(self) -> None:
        while True:
            try:  # noqa: SIM105 (spelled out: this is the idiom that defeats timeouts)
                time.sleep(0.1)
            except BaseException:
                pass


class BlocksInC(Healthy):
    """Blocks every signal, then sleeps inside libc: only SIGKILL ends it.

    A plain ``libc.sleep`` would return early when SIGALRM arrives; with the signals blocked
    the alarm stays pending and the call runs on, like a long loop in a C extension.
    """

    def _attack(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        libc = ctypes.CDLL(None)
        while True:
            libc.sleep(1000)


class LoopsWhileUnpickled(Healthy):
    """Never finishes loading: its ``__setstate__`` sleeps forever, swallowing exceptions.

    It sleeps rather than spins so that a run that does not kill it does not also take a core
    of a shared machine.
    """

    def __setstate__(self, state: dict[str, Any]) -> None:
        while True:
            try:  # noqa: SIM105 (spelled out: this is the idiom that defeats timeouts)
                time.sleep(0.05)
            except BaseException:
                pass


class _DequeOfRange:
    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return collections.deque, (range(10**15), 0)


def deque_bomb() -> bytes:
    """A pickle of about 70 bytes that builds ``deque(range(10**15), 0)``.

    Both names are on the loader's allowlist; the deque consumes the range in one C loop that
    no signal interrupts, so only a kill from outside ends the load.
    """
    return pickle.dumps(_DequeOfRange(), protocol=2)


# -- the model takes resources -----------------------------------------------------------------


class AllocatesTooMuch(Healthy):
    """Allocates (and touches) ``gib`` GiB of memory on every call."""

    def __init__(self, gib: int = 20) -> None:
        self.gib = gib

    def _attack(self) -> None:
        block = np.ones(self.gib * 2**30 // 8)
        block[-1] = 0.0


# Processes that already forked (a model forks once per process, not on every call).
_FORKED_IN: set[int] = set()


class ForksMany(Healthy):
    """Forks ``count`` children on every call until, once in each process, all forks succeed.

    Each child leaves the process group (``setsid``), ignores SIGTERM and SIGHUP, names itself
    ``tag`` (so a test can find it in /proc wherever it ends up) and sleeps ``linger`` seconds.
    A failed fork is not caught: under a process limit the call fails with it. When every fork
    succeeds the model predicts as usual.
    """

    def __init__(self, tag: str = "hostilefork", count: int = 500, linger: float = 300.0) -> None:
        self.tag = tag
        self.count = count
        self.linger = linger

    def _attack(self) -> None:
        if os.getpid() in _FORKED_IN:
            return
        name = self.tag.encode()[:15]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Python 3.12+ warns about fork with threads
            for _ in range(self.count):
                if os.fork() == 0:
                    _linger(name, self.linger)
        _FORKED_IN.add(os.getpid())


def _linger(name: bytes, seconds: float) -> None:
    try:
        os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        ctypes.CDLL(None).prctl(_PR_SET_NAME, name, 0, 0, 0)
        time.sleep(seconds)
    finally:
        os._exit(0)


# -- the model reaches outside -------------------------------------------------------------------


class PhonesHome(Healthy):
    """Connects to ``host:port`` and sends a few bytes on every call; a refused connection
    is not caught, so a blocked network fails the call."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9) -> None:
        self.host = host
        self.port = port

    def _attack(self) -> None:
        with socket.create_connection((self.host, self.port), timeout=2.0) as conn:
            conn.sendall(b"hostile model was here\n")


class WritesCanary(Healthy):
    """Writes a canary file at ``path`` on every call; a refused write is not caught."""

    def __init__(self, path: str = "canary.txt") -> None:
        self.path = path

    def _attack(self) -> None:
        Path(self.path).write_text("written by a hostile model\n")


# -- allowlisted classes, corrupted state ----------------------------------------------------------


def corrupt_sparse_logistic(X: pd.DataFrame, y: Any) -> LogisticRegression:
    """A fitted LogisticRegression whose sparse ``coef_`` points far outside the input.

    scipy does not check the indices of a matrix it did not build, so ``predict`` reads about
    16 GB past the end of its input: SIGSEGV (or heap corruption, then SIGABRT).
    """
    model = LogisticRegression().fit(X, y)
    model.sparsify()
    model.coef_.indices[:] = 2_000_000_000
    return model
