"""``deploy_gate.concurrency``: answers one at a time against answers from threads at once."""

from __future__ import annotations

import sys
import threading
from typing import Any

import pytest

from deploy_gate.concurrency import SWITCH_INTERVAL, answer_concurrently


class KeepsTheInputOnItself:
    """Right one call at a time; another call's input when two overlap: the input is stored
    on the object, and read back a method call later."""

    def __call__(self, x: int) -> int:
        self.current = x
        self._check()
        return self.current * 10

    def _check(self) -> None:
        if not isinstance(self.current, int):
            raise TypeError("not an int")


class Safe:
    def __call__(self, x: int) -> int:
        current = x
        self._check(current)
        return current * 10

    def _check(self, value: int) -> None:
        if not isinstance(value, int):
            raise TypeError("not an int")


def _wrong(out: Any) -> int:
    return sum(a != b for answers in out.threads for a, b in zip(answers, out.alone, strict=True))


def test_a_model_that_keeps_the_request_on_itself_answers_wrong_from_threads() -> None:
    out = answer_concurrently(KeepsTheInputOnItself(), list(range(8)), 4)
    assert out.alone == [x * 10 for x in range(8)]
    assert len(out.threads) == 4
    # The threads switch at each call of this module's code, so most calls see another's input.
    assert _wrong(out) > 0
    assert out.errors == []


def test_a_safe_model_answers_the_same_from_every_thread() -> None:
    out = answer_concurrently(Safe(), list(range(8)), 4)
    assert out.threads == [[x * 10 for x in range(8)]] * 4
    assert out.errors == []


def test_each_thread_starts_at_its_own_input() -> None:
    seen: list[tuple[str, int]] = []

    def record(x: int) -> int:
        seen.append((threading.current_thread().name, x))
        return x

    answer_concurrently(record, list(range(8)), 4)
    firsts = {}
    for name, x in seen[8:]:  # after the one-at-a-time pass
        firsts.setdefault(name, x)
    assert sorted(firsts.values()) == [0, 2, 4, 6]


def test_a_failure_only_under_threads_is_recorded_with_its_thread_and_input() -> None:
    second_in = threading.Event()

    def refuses_company(x: int) -> int:
        name = threading.current_thread().name
        if name.endswith("-1"):
            second_in.set()
            raise RuntimeError("not reentrant")
        if name.endswith("-0"):
            second_in.wait(10)  # the first thread's calls go on until the second comes in
        return x

    out = answer_concurrently(refuses_company, list(range(8)), 2)
    assert len(out.errors) == 8  # every call of the second thread
    thread, index, message = out.errors[0]
    assert (thread, index) == (1, 0)
    assert message == "RuntimeError: not reentrant"
    assert out.threads[1] == [None] * 8
    assert out.threads[0] == list(range(8))


def test_a_failure_one_at_a_time_raises() -> None:
    def broken(x: int) -> int:
        raise ValueError(f"bad {x}")

    with pytest.raises(ValueError, match="bad 0"):
        answer_concurrently(broken, [0, 1], 2)


def test_the_switch_interval_and_the_profile_function_come_back() -> None:
    before = sys.getswitchinterval()
    seen: list[float] = []

    def during(x: int) -> int:
        seen.append(sys.getswitchinterval())
        return x

    answer_concurrently(during, [1, 2], 2)
    assert seen[-1] == pytest.approx(SWITCH_INTERVAL)
    assert sys.getswitchinterval() == before
    assert threading.getprofile() is None


@pytest.mark.parametrize(
    ("inputs", "threads", "error"),
    [([], 2, "inputs must not be empty"), ([1], 1, "threads must be at least 2")],
)
def test_needs_inputs_and_two_threads(inputs: list[int], threads: int, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        answer_concurrently(lambda x: x, inputs, threads)
