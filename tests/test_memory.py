"""latency[memory-steady]'s verdict logic, on injected readings, and the reading itself."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from deploy_gate.memory import SUSPECT_GROWTH, MemoryGrowth, MiB, resident_bytes


def test_a_growth_under_the_suspect_line_is_steady_without_a_second_look() -> None:
    growth = MemoryGrowth(200 * MiB, 200 * MiB + SUSPECT_GROWTH - 1, calls=3000)
    assert not growth.suspect
    assert not growth.leaking
    assert "steady" in growth.message()


def test_a_growth_that_goes_on_at_a_like_rate_is_a_leak() -> None:
    # 1 MiB per call over 800 calls, then 64 MiB over 128 calls more: half the rate.
    growth = MemoryGrowth(200 * MiB, 1000 * MiB, calls=800, more_calls=128, more_growth=64 * MiB)
    assert growth.suspect
    assert growth.leaking
    text = growth.message()
    assert "grew from 200.0 MiB to 1,000.0 MiB over 800 calls" in text, text
    assert "1,024.0 KiB per call" in text, text
    assert "runs its serving process out of memory" in text, text


def test_a_growth_that_stops_is_a_cache_filled_once_not_a_leak() -> None:
    growth = MemoryGrowth(200 * MiB, 400 * MiB, calls=1000, more_calls=1000, more_growth=MiB)
    assert growth.suspect
    assert not growth.leaking
    assert "it stopped growing" in growth.message()


def test_a_second_span_growing_a_little_is_not_a_leak_below_the_floor() -> None:
    # The rate predicts 3.2 MiB over 50 calls; 3 MiB is a like rate but under the 4 MiB floor.
    growth = MemoryGrowth(0, 64 * MiB, calls=1000, more_calls=50, more_growth=3 * MiB)
    assert not growth.leaking
    assert MemoryGrowth(0, 64 * MiB, 1000, 50, 5 * MiB).leaking


def test_a_suspect_growth_without_a_second_span_is_not_called_a_leak() -> None:
    assert not MemoryGrowth(0, 500 * MiB, calls=1000).leaking


def test_the_second_span_is_bounded_by_its_time_the_first_span_and_the_growth_it_predicts() -> None:
    fast = MemoryGrowth(0, 800 * MiB, calls=800)  # 1 MiB per call
    assert fast.calls_to_confirm(in_time=100_000) == 128  # 128 MiB predicted at most
    slow_leak = MemoryGrowth(0, 70 * MiB, calls=7000)  # about 10 KiB per call
    assert slow_leak.calls_to_confirm(in_time=100_000) == 7000  # no more than the first span
    assert slow_leak.calls_to_confirm(in_time=300) == 300
    assert slow_leak.calls_to_confirm(in_time=0) == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")
def test_resident_bytes_follows_memory_the_process_touches() -> None:
    before = resident_bytes(os.getpid())
    assert before is not None
    assert before > 10 * MiB
    block = np.ones(200 * MiB // 8)  # written, so resident
    after = resident_bytes(os.getpid())
    assert after is not None
    assert after - before >= 190 * MiB
    del block


def test_resident_bytes_of_no_process_is_none() -> None:
    assert resident_bytes(2**22 + 12345) is None
