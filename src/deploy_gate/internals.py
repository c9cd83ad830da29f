"""The private internals of other libraries that the guarded loader (``safeload``) relies on.

Nothing public does what they do: the guarded unpickler must read arrays exactly as joblib does
(so it subclasses joblib's own unpickler, which is the pure-Python ``pickle._Unpickler``), open
compressed joblib files as joblib does, map Python 2 names as ``pickle`` does, and rebuild
protocol 0/1 instances as ``copyreg`` does. Each name below has a test of its own in
``tests/test_internals.py``, so a library upgrade that moves or changes one fails one clear test
instead of the loader failing somewhere inside a pickle.
"""

from __future__ import annotations

import _compat_pickle
import copyreg
import pickle
from collections.abc import Callable, Mapping
from typing import Any, Final

# joblib: undocumented. NumpyUnpickler(filename, file_handle, ensure_native_byte_order) reads
# NumpyArrayWrapper records (attributes dtype, shape, order; read(unpickler, native_order)).
from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler

# joblib: private. A context manager that yields (decompressed stream, mmap mode) for a file.
from joblib.numpy_pickle_utils import _validate_fileobject_and_memmap

__all__ = [
    "COMPAT_IMPORT_MAPPING",
    "COMPAT_NAME_MAPPING",
    "PICKLE_LOAD_BUILD",
    "JoblibUnpickler",
    "NumpyArrayWrapper",
    "copyreg_reconstructor",
    "open_joblib_stream",
]

#: joblib's unpickler: a subclass of ``pickle._Unpickler`` whose ``dispatch`` table, ``stack``,
#: ``append`` and ``proto`` the guarded unpickler uses.
JoblibUnpickler: Final[Any] = NumpyUnpickler
open_joblib_stream: Final[Callable[..., Any]] = _validate_fileobject_and_memmap
#: The pure-Python unpickler's BUILD (``__setstate__`` or the instance ``__dict__``).
PICKLE_LOAD_BUILD: Final[Callable[[Any], None]] = pickle._Unpickler.load_build  # type: ignore[attr-defined]
#: Python 2 names to Python 3 ones, as ``pickle.Unpickler.find_class`` maps them below protocol 3.
COMPAT_NAME_MAPPING: Final[Mapping[tuple[str, str], tuple[str, str]]] = {
    key: value for key, value in _compat_pickle.NAME_MAPPING.items() if isinstance(key, tuple)
}
COMPAT_IMPORT_MAPPING: Final[Mapping[str, str]] = _compat_pickle.IMPORT_MAPPING
#: What protocol 0/1 pickles of instances call: ``copyreg._reconstructor(cls, base, state)``.
copyreg_reconstructor: Final[Callable[[type, type, object], object]] = copyreg._reconstructor  # type: ignore[attr-defined]
