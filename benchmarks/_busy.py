"""A bounded busy loop that keeps one core saturated, for the latency benchmark.

    python benchmarks/_busy.py SECONDS

It stops by itself after SECONDS (default 60), so a crashed benchmark never leaves it behind.
"""

from __future__ import annotations

import sys
import time


def spin(seconds: float) -> None:
    """Burn one core until ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    x = 0
    while time.monotonic() < deadline:
        for _ in range(10_000):
            x = (x * 31 + 7) % 1_000_003


if __name__ == "__main__":
    spin(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0)
