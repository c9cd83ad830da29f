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
