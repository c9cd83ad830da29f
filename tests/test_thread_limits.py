"""Thread-pool limits in pytest's own process (``--deploy-gate-isolation none``): one scan of the
loaded libraries, reused by every check, and a new scan once modules were imported."""

from __future__ import annotations

import sys
import types

import numpy as np  # noqa: F401 - loads a BLAS whose pool the limits reach
import pytest
from threadpoolctl import threadpool_info

from deploy_gate.session import ThreadLimits


def _pools() -> dict[str, int]:
    return {str(p["filepath"]): int(p["num_threads"]) for p in threadpool_info()}


def test_a_check_runs_with_its_pools_limited_and_they_are_restored_after() -> None:
    before = _pools()
    if not before:
        pytest.skip("no thread pool (BLAS, OpenMP) loaded in this interpreter")
    limits = ThreadLimits(1)
    with limits.limited():
        assert set(_pools().values()) == {1}
    assert _pools() == before


def test_the_scan_of_loaded_libraries_is_reused_until_a_module_is_imported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limits = ThreadLimits(1)
    with limits.limited():
        pass
    first = limits._controller
    with limits.limited():
        pass
    assert limits._controller is first
    monkeypatch.setitem(sys.modules, "a_model_runtime", types.ModuleType("a_model_runtime"))
    with limits.limited():
        pass
    assert limits._controller is not first
