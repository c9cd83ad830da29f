"""One test per private internal of another library that the guarded loader relies on
(``deploy_gate.internals``): an upgrade that moves or changes one fails here, by name."""

from __future__ import annotations

import inspect
import pickle
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from deploy_gate import internals


class _Point:
    def __init__(self) -> None:
        self.x = 1


def test_joblib_unpickler_is_the_pure_python_unpickler_with_its_dispatch_table() -> None:
    assert issubclass(internals.JoblibUnpickler, pickle._Unpickler)  # type: ignore[attr-defined]
    table = internals.JoblibUnpickler.dispatch
    for opcode in (pickle.REDUCE, pickle.NEWOBJ, pickle.NEWOBJ_EX, pickle.BUILD):
        assert opcode[0] in table
    parameters = inspect.signature(internals.JoblibUnpickler.__init__).parameters
    assert list(parameters)[1:4] == ["filename", "file_handle", "ensure_native_byte_order"]


def _read(path: Path, unpickler: type[Any]) -> Any:
    with path.open("rb") as raw, internals.open_joblib_stream(raw, str(path)) as (handle, _):
        return unpickler(str(path), handle, ensure_native_byte_order=True).load()


@pytest.mark.parametrize("compress", [0, 3])
def test_open_joblib_stream_yields_the_decompressed_pickle(tmp_path: Path, compress: int) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump({"a": [1, 2]}, path, compress=compress)
    assert _read(path, internals.JoblibUnpickler) == {"a": [1, 2]}


def test_an_unpickler_that_overrides_build_reads_arrays_and_state_as_joblib_does(
    tmp_path: Path,
) -> None:
    # What the guarded unpickler does: its own BUILD calls pickle's, then reads a joblib array
    # record (NumpyArrayWrapper: dtype, shape, order, read()) from the stack.
    seen: list[tuple[Any, Any, Any]] = []

    class Unpickler(internals.JoblibUnpickler):  # type: ignore[misc]
        dispatch = internals.JoblibUnpickler.dispatch.copy()

        def load_build(self) -> None:
            stack = self.stack
            internals.PICKLE_LOAD_BUILD(self)
            if type(stack[-1]) is internals.NumpyArrayWrapper:
                wrapper = stack[-1]
                seen.append((wrapper.dtype, wrapper.shape, wrapper.order))
                stack[-1] = wrapper.read(self, self.ensure_native_byte_order)

        dispatch[pickle.BUILD[0]] = load_build

    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    path = tmp_path / "model.joblib"
    joblib.dump({"array": array, "point": _Point()}, path)
    loaded = _read(path, Unpickler)
    np.testing.assert_array_equal(loaded["array"], array)
    assert loaded["point"].x == 1
    assert seen == [(np.dtype(np.float32), (2, 3), "C")]


def test_python_2_names_map_as_pickle_maps_them() -> None:
    assert internals.COMPAT_NAME_MAPPING[("__builtin__", "xrange")] == ("builtins", "range")
    assert internals.COMPAT_IMPORT_MAPPING["copy_reg"] == "copyreg"
    assert all(isinstance(key, tuple) for key in internals.COMPAT_NAME_MAPPING)


def test_copyreg_reconstructor_rebuilds_a_protocol_0_instance() -> None:
    made = internals.copyreg_reconstructor(_Point, object, None)
    assert type(made) is _Point
    # What a protocol 0 pickle of an instance calls, by name.
    assert b"copy_reg\n_reconstructor" in pickle.dumps(_Point(), protocol=0)
