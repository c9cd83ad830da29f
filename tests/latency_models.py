"""Models with a latency fault, for the latency items of the gate (pickled by the tests)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from faulty_models import ThresholdClassifier


class SlowEveryBatch(ThresholdClassifier):
    """Fast on one row, but sleeps ``seconds`` on every batch of more than one row (a batch
    path that, say, calls a remote feature store once per batch and waits for it)."""

    def __init__(self, seconds: float = 0.15) -> None:
        super().__init__()
        self.seconds = seconds

    def predict(self, X: Any) -> np.ndarray:
        if len(X) > 1:
            time.sleep(self.seconds)
        return super().predict(X)


def busy(units: int) -> int:
    """CPU work in pure Python, ``units`` loop steps: slowed by a busy machine like a real model,
    unlike a sleep."""
    total = 0
    for step in range(units):
        total += step
    return total


class BusyClassifier(ThresholdClassifier):
    """Healthy labels, after ``units`` steps of CPU work per call plus ``per_row`` per row: the
    speed of a model, set by a number."""

    def __init__(self, units: int = 20_000, per_row: int = 0) -> None:
        super().__init__()
        self.units = units
        self.per_row = per_row

    def predict(self, X: Any) -> np.ndarray:
        busy(self.units + self.per_row * len(X))
        return super().predict(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        busy(self.units + self.per_row * len(X))
        return super().predict_proba(X)
