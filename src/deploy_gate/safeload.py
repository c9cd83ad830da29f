"""Load untrusted model artifacts without running code from them.

A pickled model is an opaque binary in a pull request: ``joblib.load`` runs whatever its author
put in it. This module identifies an artifact's format from its bytes, unpickles pickle and
joblib files through joblib's own unpickler restricted to an allowlist of globals (anything else
is replaced by an inert stand-in, so every offending import can be listed and none of them
runs), loads ``.skops`` files through skops with the gate's own trusted types and ``.onnx``
files through onnxruntime, and checks artifacts against pinned hashes.

Allowlisted classes can still be wired into code execution (a meta-estimator told to call
``tofile`` on an array it holds), so a loaded pickle or skops model's fitted state is audited
before any of its methods runs: callables, classes, method names and keyword arguments it
holds are checked against explicit allowlists (``audit_fitted_state``).
"""

from __future__ import annotations

import bz2
import codecs
import collections
import contextlib
import dataclasses
import functools
import importlib
import io
import lzma
import mmap
import pickle
import pickletools
import re
import sys
import types
import weakref
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import joblib
import numpy as np

from deploy_gate.errors import ArtifactLoadError, ConfigError, UnsafeArtifactError
from deploy_gate.internals import (
    COMPAT_IMPORT_MAPPING,
    COMPAT_NAME_MAPPING,
    PICKLE_LOAD_BUILD,
    JoblibUnpickler,
    NumpyArrayWrapper,
    copyreg_reconstructor,
    open_joblib_stream,
)

__all__ = [
    "ALLOWED_METHOD_NAMES",
    "MAX_AUDITED_DEPTH",
    "MAX_AUDITED_OBJECTS",
    "ArtifactFormat",
    "ImportDecision",
    "ImportPolicy",
    "LoadResult",
    "audit_fitted_state",
    "check_pin",
    "find_pin",
    "load_model_file",
    "read_pins",
    "sniff_format",
    "unsafe_state_message",
    "validate_trust",
]

#: joblib before 1.6 let an object-dtype array bypass a restricted unpickler.
MIN_JOBLIB_VERSION: Final = (1, 6)

# --------------------------------------------------------------------------------------------
# Format identification


@dataclass(frozen=True)
class ArtifactFormat:
    """What an artifact's bytes say it is.

    ``name`` is one of ``"pickle"``, ``"joblib"``, ``"skops"``, ``"onnx"``; ``compression`` the
    joblib compressor (``"zlib"``, ``"gzip"``, ``"bz2"``, ``"xz"``, ``"lzma"``, ``"lz4"``) or
    ``None``; ``pickle_protocol`` the protocol of an uncompressed pickle stream when known.
    """

    name: str
    compression: str | None = None
    pickle_protocol: int | None = None

    def __str__(self) -> str:
        return self.name if self.compression is None else f"{self.name}+{self.compression}"


_HEAD_BYTES: Final = 4096
_ZIP_MAGIC: Final = b"PK\x03\x04"
_NPY_MAGIC: Final = b"\x93NUMPY"
_LEGACY_JOBLIB_MAGIC: Final = b"ZF0x"
_JOBLIB_ARRAY_MARKER: Final = b"NumpyArrayWrapper"
_XZ_MAGIC: Final = b"\xfd7zXZ\x00"
_LZ4_MAGIC: Final = b"\x04\x22\x4d\x18"
_GZIP_MAGIC: Final = b"\x1f\x8b"

# Opcodes a protocol 0/1 pickle plausibly starts with (a model is a global, a container or a
# MARK); text files that happen to start with an opcode byte rarely parse for long.
_PROTO01_STARTERS: Final = frozenset(
    {"MARK", "GLOBAL", "INST", "EMPTY_LIST", "EMPTY_DICT", "EMPTY_TUPLE", "NONE"}
)
_PROTO01_MIN_OPCODES: Final = 8


def sniff_format(path: Path | str) -> ArtifactFormat:
    """Identify an artifact's format from its bytes, never from its extension.

    Raises ``FileNotFoundError`` for a missing path, ``UnsafeArtifactError`` for the legacy
    joblib container and NumPy ``.npy`` (``NDArrayWrapper`` sidecar) files, and
    ``ArtifactLoadError`` for empty files and anything that is not a model format.
    """
    path = _existing_file(path)
    with path.open("rb") as handle:
        size = path.stat().st_size
        if size == 0:
            raise ArtifactLoadError(f"{path}: the file is empty (0 bytes), not a model artifact")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _sniff(data, path)


def _existing_file(path: Path | str) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, f"model artifact not found: {path}", str(path))
    if not path.is_file():
        raise ArtifactLoadError(f"{path}: not a regular file, cannot be a model artifact")
    return path


def _sniff(data: mmap.mmap | bytes, path: Path) -> ArtifactFormat:
    head = bytes(data[:_HEAD_BYTES])
    if head.startswith(_LEGACY_JOBLIB_MAGIC):
        raise UnsafeArtifactError(
            f"{path}: legacy joblib container (joblib < 0.10 'ZF' format) refused: it cannot be "
            "loaded through a restricted unpickler; re-save the model with joblib >= 1.6"
        )
    if head.startswith(_NPY_MAGIC):
        raise UnsafeArtifactError(
            f"{path}: NumPy .npy file refused: it is not a model, and as a sidecar of a legacy "
            "joblib dump (NDArrayWrapper) it may hold a pickle; re-save the model with "
            "joblib >= 1.6"
        )
    if head.startswith(_ZIP_MAGIC):
        return _sniff_zip(path)
    protocol = _pickle_protocol(head)
    if protocol is not None:
        joblib_arrays = data.find(_JOBLIB_ARRAY_MARKER) != -1
        return ArtifactFormat("joblib" if joblib_arrays else "pickle", None, protocol)
    compression = _compression(head)
    if compression is not None:
        inner = _peek_decompressed(compression, head, path)
        if inner and _pickle_protocol(inner) is None:
            raise ArtifactLoadError(
                f"{path}: {compression}-compressed data that is not a pickle, not a model artifact"
            )
        return ArtifactFormat("joblib", compression, None)
    from deploy_gate.adapters import looks_like_onnx

    if looks_like_onnx(data):
        return ArtifactFormat("onnx")
    raise ArtifactLoadError(
        f"{path}: not a model artifact: its bytes match none of the supported formats "
        "(pickle, joblib, skops, onnx)"
    )


def _sniff_zip(path: Path) -> ArtifactFormat:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except zipfile.BadZipFile as exc:
        raise ArtifactLoadError(f"{path}: truncated or corrupt zip archive ({exc})") from None
    if "schema.json" in names:
        return ArtifactFormat("skops")
    raise ArtifactLoadError(
        f"{path}: a zip archive without skops' schema.json, not a model artifact"
    )


def _pickle_protocol(head: bytes) -> int | None:
    """The protocol of a pickle stream starting with ``head``, or None when it is not one."""
    if len(head) >= 2 and head[0] == pickle.PROTO[0]:
        return head[1] if 2 <= head[1] <= pickle.HIGHEST_PROTOCOL else None
    # Protocols 0 and 1 have no header: parse the first opcodes instead.
    count = 0
    highest = 0
    try:
        for opcode, _arg, _pos in pickletools.genops(io.BytesIO(head)):
            if count == 0 and opcode.name not in _PROTO01_STARTERS:
                return None
            count += 1
            highest = max(highest, opcode.proto)
            if opcode.name == "STOP" or count >= _PROTO01_MIN_OPCODES:
                return highest if highest <= 1 else None
    except (ValueError, UnicodeDecodeError, EOFError):
        return None
    return None


def _compression(head: bytes) -> str | None:
    if len(head) >= 2 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
        return "zlib"
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if re.match(rb"BZh[1-9]1AY&SY", head):
        return "bz2"
    if head.startswith(_XZ_MAGIC):
        return "xz"
    if head.startswith(b"\x5d\x00\x00"):
        return "lzma"
    if head.startswith(_LZ4_MAGIC):
        return "lz4"
    return None


def _peek_decompressed(compression: str, head: bytes, path: Path) -> bytes:
    """The first decompressed bytes (possibly none yet), to check a pickle is inside."""
    try:
        if compression == "zlib":
            return zlib.decompressobj().decompress(head, 64)
        if compression == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 64)
        if compression == "bz2":
            return bz2.BZ2Decompressor().decompress(head, 64)
        if compression in ("xz", "lzma"):
            fmt = lzma.FORMAT_XZ if compression == "xz" else lzma.FORMAT_ALONE
            return lzma.LZMADecompressor(format=fmt).decompress(head, 64)
        try:
            import lz4.frame  # type: ignore[import-untyped]
        except ImportError:
            return b""  # the load says that lz4 is needed
        inner: bytes = lz4.frame.LZ4FrameDecompressor().decompress(head, 64)
        return inner
    except (zlib.error, OSError, EOFError, lzma.LZMAError, RuntimeError) as exc:
        raise ArtifactLoadError(
            f"{path}: corrupt {compression} stream, not a loadable joblib file ({exc})"
        ) from None


# --------------------------------------------------------------------------------------------
# The allowlist


# Modules (and their submodules) whose objects are never admitted, even when a trusted module
# re-exports them or a rule's prefix would cover them: they reach code execution, files,
# processes, imports or attribute walks.
_NEVER_MODULES: Final = tuple(
    """
    os posix nt subprocess sys importlib runpy marshal pickle _pickle pickletools shelve dbm
    shutil socket ssl ctypes _ctypes code codeop pty pydoc pkgutil zipimport multiprocessing
    concurrent asyncio threading _thread signal webbrowser tempfile io _io pathlib glob
    fileinput urllib http ftplib smtplib inspect types functools _functools operator _operator
    timeit trace pdb bdb cProfile profile doctest unittest site sysconfig platform gc
    cloudpickle dill numpy.testing numpy.f2py numpy.distutils numpy.ctypeslib
    numpy._pytesttester numpy.lib._datasource numpy.lib.npyio numpy.lib._npyio_impl
    numpy.lib.format numpy.lib._format_impl pandas.io pandas.testing pandas._testing
    pandas.core.computation sklearn.utils._testing sklearn.utils.estimator_checks
    sklearn.utils.discovery sklearn.datasets sklearn.externals joblib.numpy_pickle_compat
    joblib.parallel joblib.memory
    """.split()  # noqa: SIM905 (a table reads better as words)
)

# Single callables never admitted, named by the requested ``module:name`` or by the resolved
# object's ``__module__:__qualname__`` (so an alias in a trusted module is caught too).
_NEVER_NAMES: Final = frozenset(
    """
    builtins:getattr builtins:setattr builtins:delattr builtins:eval builtins:exec
    builtins:compile builtins:__import__ builtins:open builtins:input builtins:breakpoint
    builtins:globals builtins:locals builtins:vars builtins:exit builtins:quit builtins:help
    builtins:type builtins:super builtins:classmethod builtins:staticmethod builtins:property
    builtins:memoryview builtins:print operator:attrgetter operator:itemgetter
    operator:methodcaller operator:call functools:partial functools:partialmethod
    functools:reduce pkgutil:resolve_name pydoc:locate importlib:import_module
    types:FunctionType types:CodeType types:MethodType types:LambdaType codecs:open
    codecs:lookup copyreg:__newobj__ copyreg:__newobj_ex__ numpy:load numpy:loadtxt
    numpy:genfromtxt numpy:fromfile numpy:memmap numpy:save numpy:savez numpy:savez_compressed
    numpy:savetxt numpy:fromregex numpy:DataSource pandas:eval pandas:read_pickle
    pandas:to_pickle pandas:HDFStore joblib:load joblib:dump joblib:Parallel joblib:Memory
    joblib:delayed joblib.numpy_pickle:load joblib.numpy_pickle:dump
    """.split()  # noqa: SIM905 (a table reads better as words)
)

_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MODULE_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


def _under(module: str, prefixes: Sequence[str]) -> str | None:
    for prefix in prefixes:
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    return None


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _latin1_encode(obj: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol <= 2 pickles use it for bytes, restricted to latin-1.

    Other codec names are looked up in a registry that imports modules by name.
    """
    if encoding not in ("latin1", "latin-1") or errors != "strict":
        raise _CallRefusedError(f"_codecs:encode with codec {encoding!r}")
    return codecs.encode(obj, "latin1")


_SAFE_RECONSTRUCTOR_BASES: Final = (object, dict, list, set, frozenset, tuple, int, float, str)


def _safe_reconstructor(cls: type, base: type, state: object) -> object:
    """``copyreg._reconstructor`` limited to plain builtin bases (protocol 0/1 instances)."""
    if base not in _SAFE_RECONSTRUCTOR_BASES or not isinstance(cls, type):
        raise _CallRefusedError(f"copyreg:_reconstructor with base {_describe(base)}")
    return copyreg_reconstructor(cls, base, state)


class _CallRefusedError(Exception):
    """A substitute for an admitted helper refused its arguments."""


# Functions that scikit-learn's fitted models hold inside a ``functools.partial`` with plain
# keyword arguments: HistGradientBoosting with native categorical features keeps
# ``FunctionTransformer(partial(check_array, dtype=[float64], ensure_all_finite=False))`` for its
# numeric columns. They validate data and nothing else; an artifact may name them only to hold
# them (never call them while it loads), and a partial may wrap nothing else.
_PARTIAL_TARGETS: Final = frozenset({"sklearn.utils.validation:check_array"})


@functools.cache
def _partial_target_objects() -> Mapping[int, object]:
    found: dict[int, object] = {}
    for label in _PARTIAL_TARGETS:
        module, _, name = label.partition(":")
        try:
            obj = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):  # another scikit-learn version
            continue
        found[id(obj)] = obj
    return found


def _partial_problem(func: object, args: object, keywords: object) -> str | None:
    """Why ``functools.partial(func, *args, **keywords)`` may not be held, or None."""
    if id(func) not in _partial_target_objects():
        return (
            f"functools:partial of {_describe(func)} (a partial may wrap only "
            + ", ".join(sorted(_PARTIAL_TARGETS))
            + ")"
        )
    if not isinstance(args, tuple) or not _plain_data(args):
        return "functools:partial with positional arguments that are not plain data"
    if not isinstance(keywords, dict) or not _plain_data(keywords):
        return "functools:partial with keyword arguments that are not plain data"
    if keywords.keys() & _WRITING_KWARGS:
        return "functools:partial with a keyword argument that writes into an array"
    return None


def _partial_state_problem(state: object) -> str | None:
    """Why a pickled partial's state ``(func, args, keywords, dict)`` may not be set, or None:
    BUILD would otherwise swap the function that :func:`_restricted_partial` checked."""
    if not isinstance(state, tuple) or len(state) != 4:
        return "functools:partial with a malformed state"
    func, args, keywords, attributes = state
    if attributes:
        return "functools:partial with instance attributes"
    return _partial_problem(func, args, {} if keywords is None else keywords)


def _restricted_partial(
    func: Callable[..., object], /, *args: object, **keywords: object
) -> functools.partial[object]:
    """``functools.partial`` limited to :data:`_PARTIAL_TARGETS` with plain-data arguments."""
    problem = _partial_problem(func, args, keywords)
    if problem is not None:
        raise _CallRefusedError(problem)
    return functools.partial(func, *args, **keywords)


# Exact ``module:name`` entries.
_EXACT: Final = frozenset(
    """
    builtins:set builtins:frozenset builtins:slice builtins:complex builtins:bytes
    builtins:bytearray builtins:list builtins:dict builtins:tuple builtins:int builtins:float
    builtins:str builtins:bool builtins:range builtins:object collections:OrderedDict
    collections:defaultdict collections:Counter collections:deque datetime:date datetime:time
    datetime:datetime datetime:timedelta datetime:timezone numpy:ndarray numpy:matrix
    numpy._core.multiarray:_reconstruct numpy._core.multiarray:scalar
    numpy._core.numeric:_frombuffer numpy.ma.core:_mareconstruct numpy.ma:MaskedArray
    numpy.ma.core:MaskedArray numpy.random._pickle:__randomstate_ctor
    numpy.random._pickle:__generator_ctor numpy.random._pickle:__bit_generator_ctor
    pandas._libs.internals:_unpickle_block pandas.core.internals.blocks:new_block
    pandas.core.indexes.base:_new_Index pandas.core.indexes.datetimes:_new_DatetimeIndex
    pandas.core.indexes.period:_new_PeriodIndex
    pandas._libs.tslibs.timestamps:_unpickle_timestamp
    pandas._libs.tslibs.timedeltas:_timedelta_unpickle pandas._libs.tslibs.nattype:_nat_unpickle
    pandas._libs.tslibs.nattype:__nat_unpickle pandas:NA pandas:NaT pandas._libs.missing:NA
    pyarrow.lib:_restore_array pyarrow.lib:py_buffer pyarrow.lib:type_for_alias
    scipy.interpolate._bsplines:BSpline scipy.interpolate._bsplines:_BSpline
    scipy._lib.array_api_compat.numpy._aliases:asarray
    """.split()  # noqa: SIM905 (a table reads better as words)
)
# pandas' default string dtype is backed by pyarrow, hence the three pyarrow helpers.

# Admitted helpers replaced by restricted versions. They are decided before the never-admitted
# names: ``functools:partial`` itself stays never admitted (a trusted module's re-export of it
# is refused), only its restricted version is.
_SUBSTITUTES: Final[Mapping[str, Callable[..., object]]] = {
    "copyreg:_reconstructor": _safe_reconstructor,
    "_codecs:encode": _latin1_encode,
    "functools:partial": _restricted_partial,
}
# Substitutes that are gadgets in their own right: when a call to one is skipped because its
# arguments hold a refused object, the substitute is named among the refusals too.
_NAMED_WHEN_TAINTED: Final = frozenset({"functools:partial"})

# sklearn functions that fitted models hold by reference (score functions, metrics, kernels).
_SKLEARN_FUNCTION_MODULES: Final = frozenset(
    {
        "sklearn.feature_selection._univariate_selection",
        "sklearn.feature_selection._mutual_info",
        "sklearn.metrics._classification",
        "sklearn.metrics._regression",
        "sklearn.metrics._ranking",
        "sklearn.metrics.pairwise",
        "sklearn.metrics.cluster._supervised",
        "sklearn.metrics.cluster._unsupervised",
    }
)
# Module-level helpers that Cython classes name in their ``__reduce__``.
_CYTHON_HELPER: Final = re.compile(r"(newObj|__pyx_unpickle_\w+)\Z")

_GRADIENT_BOOSTING_LIBRARIES: Final = ("lightgbm", "xgboost")
_BOOSTERS: Final = frozenset({"lightgbm.basic:Booster", "xgboost.core:Booster"})
_TEST_MODULE_PARTS: Final = frozenset({"tests", "testing", "_testing", "conftest"})
_JOBLIB_ARRAY_WRAPPER: Final = "joblib.numpy_pickle:NumpyArrayWrapper"

# Objects that BUILD must never update: classes, modules and functions (no class patching).
_NOT_INSTANCES: Final = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.MethodWrapperType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.ClassMethodDescriptorType,
    types.GetSetDescriptorType,
    types.MemberDescriptorType,
    np.ufunc,
)


# Modules that may never be trusted, and why. The standard library is refused as a whole (see
# ``_untrustable``): trusting any of it admits objects that reach files, processes or imports.
_UNTRUSTABLE: Final[Mapping[str, str]] = {
    "__main__": "it is the running program's entry module, not your project's code",
    "pip": "it is a package installer: its objects download, build and import code",
    "setuptools": "it is a packaging tool: its objects build, install and import code",
    "pkg_resources": "it is a packaging tool: its objects import code by name",
    "_distutils_hack": "it is a packaging tool: its objects import code by name",
    "pytest": "it is the test runner the gate runs in: its objects run and import code",
    "_pytest": "it is the test runner the gate runs in: its objects run and import code",
    "pluggy": "it is the test runner's plugin system: its objects call hooks by name",
    "deploy_gate": "it is the gate itself: an artifact must not reach the code that judges it",
}


def _untrustable(name: str) -> str | None:
    """Why module ``name`` may never be trusted, or None when it may be."""
    root = name.split(".")[0]
    if root in _UNTRUSTABLE:
        return _UNTRUSTABLE[root]
    if root in sys.stdlib_module_names:
        return (
            "it is part of Python's standard library (builtins, files, processes, imports, "
            "pickling), which an artifact may only use through the allowlist"
        )
    return None


def validate_trust(trust: Sequence[str] | str) -> tuple[str, ...]:
    """Check trusted module names (``--deploy-gate-trust``) and return them as a tuple.

    Trust is for a project's own modules. Raises ``ConfigError`` naming the bad entry and why:
    not a dotted module name; the standard library (``sys.stdlib_module_names``, ``builtins``
    included), packaging tools (pip, setuptools, pkg_resources), pytest, pluggy or the gate
    itself; or a module whose objects are never admitted (``numpy.testing``, ...).
    """
    names = (trust,) if isinstance(trust, str) else tuple(trust)
    for name in names:
        if not isinstance(name, str) or not _MODULE_NAME.match(name):
            raise ConfigError(
                f"Invalid trust entry {name!r}: expected a dotted module name such as "
                "'my_project.transformers'"
            )
        why = _untrustable(name)
        if why is not None:
            raise ConfigError(
                f"Invalid trust entry {name!r}: {name.split('.')[0]!r} cannot be trusted: {why}. "
                "Trust names your project's own modules (e.g. 'my_project.transformers')"
            )
        never = _under(name, _NEVER_MODULES)
        if never is not None:
            raise ConfigError(
                f"Invalid trust entry {name!r}: objects from {never!r} are never admitted, "
                "whatever the trust setting"
            )
    return names


@dataclass(frozen=True)
class ImportPolicy:
    """Decides which ``module:name`` globals an artifact may import.

    Admitted: the exact entries and narrow rules of issue 4 (sklearn classes, numpy arrays,
    dtypes, scalars and ufuncs, scipy sparse matrices, pandas frames, joblib's array wrapper,
    lightgbm/xgboost scikit-learn API estimators and Boosters) plus everything in the ``trust``
    modules, except the callables and modules that are never admitted.
    """

    trust: tuple[str, ...] = ()
    joblib_arrays: bool = False
    _cache: dict[tuple[str, str], ImportDecision] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def decide(self, module: str, name: str) -> ImportDecision:
        """Admit or refuse one global; imports only modules whose objects may be admitted."""
        key = (module, name)
        decision = self._cache.get(key)
        if decision is None:
            decision = self._decide(module, name)
            self._cache[key] = decision
        return decision

    def _decide(self, module: str, name: str) -> ImportDecision:
        label = f"{module}:{name}"
        substitute = _SUBSTITUTES.get(label)
        if substitute is not None:
            return ImportDecision(label, substitute)
        if label in _NEVER_NAMES or _under(module, _NEVER_MODULES):
            return _refuse(label, "never admitted")
        if not _MODULE_NAME.match(module):
            return _refuse(label, "not a module name")
        if "." in name:
            return _refuse(label, "dotted name (an attribute walk)")
        if not _IDENTIFIER.match(name):
            return _refuse(label, "not an identifier")
        if _is_dunder(name) or any(_is_dunder(part) for part in module.split(".")):
            return _refuse(label, "dunder name")
        if label in _PARTIAL_TARGETS:
            decision = self._resolve(label, module, name, admit=_admit_listed)
            return dataclasses.replace(decision, hold_only=decision.obj is not None)
        if label in _EXACT:
            return self._resolve(label, module, name, admit=_admit_listed)
        if label == _JOBLIB_ARRAY_WRAPPER:
            if self.joblib_arrays:
                return ImportDecision(label, NumpyArrayWrapper)
            return _refuse(label, "joblib's array wrapper in a file that is not a joblib dump")
        root = module.split(".")[0]
        if _under(module, self.trust):
            return self._resolve(label, module, name, admit=self._admit_trusted)
        rule = _RULES.get(root)
        if rule is not None:
            if _TEST_MODULE_PARTS.intersection(module.split(".")):
                # test suites are no place for model classes, and importing them runs code
                return _refuse(label, "a test module")
            return self._resolve(label, module, name, admit=rule)
        if root in sys.stdlib_module_names:
            return _refuse(label, "not on the allowlist")
        return ImportDecision(label, None, reason="module not allowlisted", untrusted_root=root)

    def _resolve(
        self, label: str, module: str, name: str, admit: Callable[[object], str | None]
    ) -> ImportDecision:
        if module.startswith("numpy._core.") and not _numpy_has_core(module):
            module = "numpy.core." + module[len("numpy._core.") :]  # numpy 1.x
        try:
            __import__(module)
        except Exception as exc:  # a trusted module may fail to import in any way
            why = f"{type(exc).__name__}: {exc}"
            return ImportDecision(label, None, missing=f"cannot import module {module!r} ({why})")
        try:
            obj = getattr(sys.modules[module], name)
        except Exception:  # AttributeError, or a module __getattr__'s warning turned error
            why = f"module {module!r} has no attribute {name!r}"
            return ImportDecision(label, None, missing=why)
        if isinstance(obj, types.ModuleType):
            return _refuse(label, "a module object")
        qualified = f"{getattr(obj, '__module__', None)}:{getattr(obj, '__qualname__', None)}"
        if qualified in _NEVER_NAMES or _under(str(getattr(obj, "__module__", "")), _NEVER_MODULES):
            return _refuse(label, f"never admitted (it is {qualified})")
        reason = admit(obj)
        if reason is not None:
            return _refuse(label, reason)
        construct_only = (
            isinstance(obj, type)
            and _under(str(obj.__module__), _GRADIENT_BOOSTING_LIBRARIES) is not None
        )
        return ImportDecision(label, obj, construct_only=construct_only)

    def _admit_trusted(self, obj: object) -> str | None:
        # Trust covers what the trusted modules define. A class or function they import from
        # elsewhere is judged where it is defined: trusting a module that does
        # ``evaluate = pandas.DataFrame.eval`` must not admit DataFrame.eval. (Honest pickles
        # never name a re-export: pickle writes the defining module.)
        if not callable(obj):
            return None
        defined = getattr(obj, "__module__", None)
        if not isinstance(defined, str) or _under(defined, self.trust):
            return None
        qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
        if not isinstance(qualname, str):
            return f"a callable {_describe(obj)} defined outside the trusted modules"
        if self.decide(defined, qualname).obj is obj:
            return None
        return f"re-exported from {defined}:{qualname}, which the allowlist does not admit"


@dataclass(frozen=True)
class ImportDecision:
    """The verdict on one ``module:name`` global.

    ``obj`` is the admitted object, or None with ``reason`` (refused: unsafe) or ``missing``
    (an admissible module or attribute that cannot be imported: a load error).
    """

    label: str
    obj: object | None
    reason: str | None = None
    missing: str | None = None
    # Classes that may be created (NEWOBJ, copyreg) but not called with arguments: their
    # constructors read files (lightgbm/xgboost Booster(model_file=...)).
    construct_only: bool = False
    # Functions an artifact may hold (in a ``functools.partial``) but not call while it loads.
    hold_only: bool = False
    # The top-level package of a module that is merely not allowlisted (a trust candidate).
    untrusted_root: str | None = None


def _refuse(label: str, reason: str) -> ImportDecision:
    return ImportDecision(label, None, reason=reason)


def _admit_listed(obj: object) -> str | None:
    return None


def _defined_in(obj: object, root: str) -> bool:
    module = str(getattr(obj, "__module__", ""))
    if module == "_loss":
        module = "sklearn._loss._loss"
    return _under(module, (root,)) is not None


def _admit_sklearn(obj: object) -> str | None:
    if isinstance(obj, type) and _defined_in(obj, "sklearn"):
        return None
    if callable(obj) and _defined_in(obj, "sklearn"):
        module = str(getattr(obj, "__module__", ""))
        if module in _SKLEARN_FUNCTION_MODULES or _CYTHON_HELPER.match(
            str(getattr(obj, "__name__", ""))
        ):
            return None
    return "not a class defined in sklearn nor one of the admitted sklearn functions"


def _admit_numpy(obj: object) -> str | None:
    if isinstance(obj, np.ufunc):
        return None
    if isinstance(obj, type) and issubclass(obj, np.generic | np.dtype):
        return None
    if isinstance(obj, type) and _defined_in(obj, "numpy.random"):
        return None
    if callable(obj) and _CYTHON_HELPER.match(str(getattr(obj, "__name__", ""))):
        return None
    return "not a numpy array, dtype, scalar type, ufunc or pickling helper"


def _admit_scipy(obj: object) -> str | None:
    from scipy.sparse import sparray, spmatrix

    if isinstance(obj, type) and issubclass(obj, sparray | spmatrix):
        return None
    return "not a scipy sparse matrix or array class"


def _admit_pandas(obj: object) -> str | None:
    import pandas as pd
    from pandas.api.extensions import ExtensionArray, ExtensionDtype
    from pandas.core.generic import NDFrame
    from pandas.core.internals.managers import (  # type: ignore[import-not-found]
        BlockManager,
        SingleBlockManager,
    )
    from pandas.tseries.offsets import BaseOffset

    bases = (
        NDFrame,
        pd.Index,
        ExtensionArray,
        ExtensionDtype,
        BlockManager,
        SingleBlockManager,
        BaseOffset,
        pd.Timestamp,
        pd.Timedelta,
        pd.Period,
        pd.Interval,
    )
    if isinstance(obj, type) and issubclass(obj, bases):
        return None
    if callable(obj) and _CYTHON_HELPER.match(str(getattr(obj, "__name__", ""))):
        return None
    return "not a pandas frame, index, array, dtype or pickling helper"


def _admit_boosting(obj: object) -> str | None:
    # Only what their scikit-learn API models pickle: the estimators and the Booster.
    # Dataset/DMatrix objects hold raw C handles that __del__ frees, whatever the state set.
    if isinstance(obj, type) and (
        obj.__module__ in ("lightgbm.sklearn", "xgboost.sklearn")
        or f"{obj.__module__}:{obj.__qualname__}" in _BOOSTERS
    ):
        return None
    return "not a scikit-learn API estimator or Booster class"


_RULES: Final[Mapping[str, Callable[[object], str | None]]] = {
    "sklearn": _admit_sklearn,
    "numpy": _admit_numpy,
    "scipy": _admit_scipy,
    "pandas": _admit_pandas,
    "lightgbm": _admit_boosting,
    "xgboost": _admit_boosting,
}


# --------------------------------------------------------------------------------------------
# The guarded unpickler


class _Refused:
    """Inert stand-in pushed where a refused global or its results would have gone.

    It absorbs the container opcodes so the stream can be read on to list every refusal.
    """

    __slots__ = ()

    def append(self, item: object) -> None:
        pass

    def extend(self, items: object) -> None:
        pass

    def add(self, item: object) -> None:
        pass

    def __setitem__(self, key: object, value: object) -> None:
        pass

    def __repr__(self) -> str:
        return "<refused>"


_REFUSED: Final = _Refused()


def _tainted(obj: object, depth: int = 0) -> bool:
    """Whether ``obj`` holds a stand-in (then an admitted callable must not see it)."""
    if type(obj) is _Refused:
        return True
    if depth > 20:
        return True  # too deep to tell: treat as tainted (the load fails anyway)
    if isinstance(obj, tuple | list | set | frozenset):
        return any(_tainted(item, depth + 1) for item in obj)
    if isinstance(obj, dict):
        return any(_tainted(k, depth + 1) or _tainted(v, depth + 1) for k, v in obj.items())
    return False


def _describe(obj: object) -> str:
    if isinstance(obj, type | types.FunctionType | types.BuiltinFunctionType):
        return f"{obj.__module__}:{obj.__qualname__}"
    return f"a {type(obj).__module__}:{type(obj).__qualname__} object"


@dataclass
class _Findings:
    """What one load found; shared with the unpicklers of nested streams."""

    refused: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    roots: list[str] = field(default_factory=list)
    poisoned: bool = False

    def refuse(self, entry: str) -> None:
        self.poisoned = True
        if entry not in self.refused:
            self.refused.append(entry)

    def miss(self, entry: str) -> None:
        self.poisoned = True
        if entry not in self.missing:
            self.missing.append(entry)


class _GuardedUnpickler(JoblibUnpickler):  # type: ignore[misc]
    """joblib's unpickler (so arrays read identically) restricted to an ``ImportPolicy``.

    A refused global becomes an inert stand-in and is recorded; every call that would involve a
    stand-in is skipped. Only admitted globals are ever called, and only they, directly: REDUCE,
    NEWOBJ, OBJ and INST on anything not imported by name are refused, as is BUILD on classes,
    modules and functions.
    """

    dispatch = JoblibUnpickler.dispatch.copy()

    def __init__(
        self,
        filename: str,
        file_handle: IO[bytes],
        policy: ImportPolicy,
        findings: _Findings,
    ) -> None:
        super().__init__(filename, file_handle, ensure_native_byte_order=True)
        self._policy = policy
        self._findings = findings
        self._admitted: dict[int, ImportDecision] = {}

    # -- imports

    def find_class(self, module: str, name: str) -> object:
        if self.proto < 3:
            # Python 2 names, as pickle's own find_class maps them.
            if (module, name) in COMPAT_NAME_MAPPING:
                module, name = COMPAT_NAME_MAPPING[(module, name)]
            elif module in COMPAT_IMPORT_MAPPING:
                module = COMPAT_IMPORT_MAPPING[module]
        if module == "_loss":  # scikit-learn 1.5-1.8 Cython classes
            module = "sklearn._loss._loss"
        if module.startswith("numpy.core."):
            # Pickles written by numpy 1.x; numpy 2 moved the module to numpy._core.
            module = "numpy._core." + module[len("numpy.core.") :]
        decision = self._policy.decide(module, name)
        if decision.obj is None:
            if decision.missing is not None:
                self._findings.miss(f"{decision.label}: {decision.missing}")
            else:
                self._findings.refuse(f"{decision.label} ({decision.reason})")
                if decision.untrusted_root and decision.untrusted_root not in self._findings.roots:
                    self._findings.roots.append(decision.untrusted_root)
            return _REFUSED
        self._admitted[id(decision.obj)] = decision
        return decision.obj

    def persistent_load(self, pid: object) -> object:
        self._findings.refuse(f"persistent id {pid!r} (PERSID opcode)")
        return _REFUSED

    # -- calls

    def _callable(self, func: object, args: object, opcode: str, need_type: bool) -> bool:
        """Whether ``func`` may be called with ``args``; records a refusal when not."""
        if self._findings.poisoned and (type(func) is _Refused or _tainted(args)):
            named = self._admitted.get(id(func))
            if named is not None and named.obj is func and named.label in _NAMED_WHEN_TAINTED:
                self._findings.refuse(f"{named.label} (of a refused object)")
            return False
        decision = self._admitted.get(id(func))
        if decision is None or decision.obj is not func:
            self._findings.refuse(f"{opcode} on {_describe(func)}, which was not imported by name")
            return False
        if need_type and not isinstance(func, type):
            self._findings.refuse(f"{opcode} on {decision.label}, which is not a class")
            return False
        if decision.hold_only:
            self._findings.refuse(
                f"{opcode} on {decision.label}, which a model may hold but not call while loading"
            )
            return False
        if decision.construct_only and opcode != "NEWOBJ" and args:
            self._findings.refuse(
                f"{decision.label} called with arguments ({opcode}); its constructor reads files"
            )
            return False
        return True

    def load_reduce(self) -> None:
        stack = self.stack
        args = stack.pop()
        func = stack[-1]
        stack[-1] = func(*args) if self._callable(func, args, "REDUCE", False) else _REFUSED

    def load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        ok = self._callable(cls, args, "NEWOBJ", True)
        self.append(cls.__new__(cls, *args) if ok else _REFUSED)

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        ok = self._callable(cls, (args, kwargs), "NEWOBJ", True)
        self.append(cls.__new__(cls, *args, **kwargs) if ok else _REFUSED)

    def _instantiate(self, klass: Any, args: list[object]) -> None:
        if not self._callable(klass, args, "OBJ/INST", False):
            self.append(_REFUSED)
        elif args or not isinstance(klass, type) or hasattr(klass, "__getinitargs__"):
            self.append(klass(*args))
        else:
            cls: Any = klass
            self.append(cls.__new__(cls))

    # -- state

    def load_build(self) -> None:
        stack = self.stack
        inst = stack[-2]
        if self._findings.poisoned and (type(inst) is _Refused or _tainted(stack[-1])):
            stack.pop()
            stack[-1] = _REFUSED
            return
        if isinstance(inst, _NOT_INSTANCES):
            self._findings.refuse(f"BUILD on {_describe(inst)} (patching a class or function)")
            stack.pop()
            stack[-1] = _REFUSED
            return
        if type(inst) is functools.partial:
            problem = _partial_state_problem(stack[-1])
            if problem is not None:
                self._findings.refuse(problem)
                stack.pop()
                stack[-1] = _REFUSED
                return
        PICKLE_LOAD_BUILD(self)
        if type(stack[-1]) is NumpyArrayWrapper:
            stack[-1] = self._read_array(stack[-1])

    def _read_array(self, wrapper: NumpyArrayWrapper) -> object:
        dtype = getattr(wrapper, "dtype", None)
        shape = getattr(wrapper, "shape", None)
        if (
            not isinstance(dtype, np.dtype)
            or not isinstance(shape, tuple)
            or not all(isinstance(n, int | np.integer) and n >= 0 for n in shape)
            or getattr(wrapper, "order", None) not in ("C", "F")
        ):
            raise pickle.UnpicklingError("corrupt joblib array header")
        if dtype.hasobject:
            # joblib reads the nested pickle of an object array with a plain Unpickler that
            # only borrows find_class; read it with a guarded one instead.
            inner = _GuardedUnpickler(
                self.filename, self.file_handle, ImportPolicy(self._policy.trust), self._findings
            )
            return inner.load()
        return wrapper.read(self, self.ensure_native_byte_order)

    dispatch[pickle.REDUCE[0]] = load_reduce
    dispatch[pickle.NEWOBJ[0]] = load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex
    dispatch[pickle.BUILD[0]] = load_build


# --------------------------------------------------------------------------------------------
# The fitted-state audit

# The allowlist decides which classes a file may name, not how it wires them together: a
# pickle of allowlisted classes only can still make a meta-estimator call a method named in its
# state on an object it holds (StackingClassifier.stack_method_ = ["tofile"]), or make a
# FunctionTransformer call an admitted callable with keyword arguments that write into arrays.
# So once the object is built, and before any of its methods runs, its whole state is walked.

#: Method names that fitted state may ask a model to call on an estimator it holds.
ALLOWED_METHOD_NAMES: Final = frozenset(
    {
        "predict",
        "predict_proba",
        "predict_log_proba",
        "decision_function",
        "transform",
        "score_samples",
        "auto",
    }
)
# Attributes (of any object) whose string values name a method that is looked up and called.
_METHOD_NAME_ATTRIBUTES: Final = frozenset(
    """
    response_method _response_method stack_method stack_method_ chain_method chain_method_
    predict_method _predict_method prediction_method _prediction_method
    """.split()  # noqa: SIM905 (a table reads better as words)
)
# Attributes whose string values are attribute paths read with operator.attrgetter.
_ATTRIBUTE_PATH_ATTRIBUTES: Final = frozenset({"importance_getter"})
# Attributes holding keyword arguments that a model passes to a callable.
_KWARGS_ATTRIBUTES: Final = frozenset(
    """
    kw_args inv_kw_args _kwargs metric_params effective_metric_params_ kernel_params
    pairwise_kernels_kwargs
    """.split()  # noqa: SIM905 (a table reads better as words)
)
# Keyword arguments that make a numpy function write into an array it is given.
_WRITING_KWARGS: Final = frozenset({"out", "where"})
# Attributes a model calls: a class there would be constructed with the model's input.
_CALL_SLOTS: Final = frozenset(
    """
    func inverse_func score_func _score_func metric kernel affinity weights strategy analyzer
    tokenizer preprocessor feature_names_out importance_getter default_factory
    """.split()  # noqa: SIM905 (a table reads better as words)
)
# Attributes of scikit-learn meta-estimators that hold estimators (or "drop"/"passthrough").
_ESTIMATOR_SLOTS: Final = frozenset(
    """
    estimator estimator_ estimators estimators_ base_estimator base_estimator_ final_estimator
    final_estimator_ best_estimator_ regressor regressor_ transformer transformer_ steps
    transformers transformers_ transformer_list named_estimators named_estimators_ calibrators
    calibrated_classifiers_
    """.split()  # noqa: SIM905 (a table reads better as words)
)
_ESTIMATOR_METHODS: Final = ("fit", "predict", "predict_proba", "decision_function", "transform")
_DATA_LIBRARIES: Final = ("numpy", "pandas", "scipy", "pyarrow", "builtins")
# sklearn functions that fitted models hold by reference are also the only functions they may
# hold; these few are admitted by module but do not compute anything from data.
_NOT_DATA_FUNCTIONS: Final = frozenset({"get_scorer", "make_scorer", "check_scoring"})

#: Bounds of the walk: a model whose state is bigger or deeper is refused, not half-audited.
MAX_AUDITED_OBJECTS: Final = 20_000_000
MAX_AUDITED_DEPTH: Final = 1_000
_MAX_REPORTED: Final = 20

_ATOMIC: Final = frozenset(
    {type(None), bool, int, float, complex, str, bytes, range, type(Ellipsis)}
    | {t for t in np.sctypeDict.values() if t not in (np.object_, np.void)}
)
_DATA_TYPES: Final = frozenset({bool, int, float, complex, str, bytes, object})
_CONTAINER_TYPES: Final = frozenset(
    {dict, list, set, tuple, collections.OrderedDict, collections.Counter, collections.deque}
)
_FUNCTION_TYPES: Final = (
    np.ufunc,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.ClassMethodDescriptorType,
    types.MethodWrapperType,
    staticmethod,
    classmethod,
)
_LEAF_CALLABLES: Final = (type, types.MethodType, *_FUNCTION_TYPES)


def audit_fitted_state(model: object, trust: Sequence[str] = ()) -> list[str]:
    """What ``model``'s state holds that a model must not call, one entry per finding.

    Each entry names the attribute path and the reason, e.g. ``steps[1][1].func:
    pandas.core.frame.DataFrame.eval is not an allowed callable``. Checked: every callable
    held anywhere (numpy's public ufuncs, scikit-learn's metric, kernel and score functions
    and the ``trust`` modules' own callables are allowed; scorers, column selectors and
    Gaussian-process kernels are walked into), classes held as values (data types only),
    attributes that name a method to call (``response_method``, ``stack_method_``, ...),
    keyword arguments passed to callables (plain data, no ``out=``), instance attributes
    that replace a method of their class, and what scikit-learn meta-estimators hold where an
    estimator belongs. None of the model's methods is called; only the pickling support
    (``__reduce_ex__``) of scikit-learn's compiled classes runs, to read their state.
    """
    auditor = _StateAuditor(tuple(trust))
    auditor.run(model)
    return auditor.findings


def _is_trusted(obj: object, trust: tuple[str, ...]) -> bool:
    module = getattr(obj, "__module__", None)
    return bool(trust) and isinstance(module, str) and _under(module, trust) is not None


def _qualified(obj: object) -> str:
    module = getattr(obj, "__module__", None)
    if module is None:  # method descriptors: numpy.ndarray.tofile
        module = getattr(getattr(obj, "__objclass__", None), "__module__", None)
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    return f"{module or '?'}.{name or type(obj).__qualname__}"


@functools.cache
def _safe_functions() -> Mapping[int, object]:
    """Callables fitted state may hold: numpy's public ufuncs, sklearn's data functions."""
    found: dict[int, object] = {}
    for name in dir(np):
        obj = getattr(np, name, None)
        if isinstance(obj, np.ufunc) and not name.startswith("_"):
            found[id(obj)] = obj
    for module_name in sorted(_SKLEARN_FUNCTION_MODULES):
        module = importlib.import_module(module_name)
        for name, obj in vars(module).items():
            if (
                isinstance(obj, types.FunctionType)
                and obj.__module__ == module_name
                and not name.startswith("_")
                and name not in _NOT_DATA_FUNCTIONS
            ):
                found[id(obj)] = obj
    # SplineTransformer's scipy BSplines hold the array namespace's asarray (scipy >= 1.15).
    try:
        from scipy._lib.array_api_compat.numpy import _aliases
    except ImportError:
        pass
    else:
        found[id(_aliases.asarray)] = _aliases.asarray
    return found


@functools.cache
def _callable_objects() -> tuple[type, ...]:
    """Classes whose instances may be held although they are callable (their state is
    walked like any other): column selectors, scorers, Gaussian-process kernels and the loss
    objects of gradient boosting."""
    from scipy.interpolate import BSpline, interp1d
    from sklearn._loss.loss import BaseLoss
    from sklearn.compose import make_column_selector
    from sklearn.gaussian_process.kernels import Kernel
    from sklearn.metrics._scorer import _BaseScorer, _MultimetricScorer, _PassthroughScorer

    # scipy >= 1.18: a BSpline delegates to its numpy backend, a _BSpline (knots, coefficients).
    backend = getattr(sys.modules.get("scipy.interpolate._bsplines"), "_BSpline", None)
    return (
        make_column_selector,
        _BaseScorer,
        _MultimetricScorer,
        _PassthroughScorer,
        Kernel,
        BaseLoss,
        interp1d,  # built by IsotonicRegression.__setstate__ (the import rules refuse it)
        BSpline,  # SplineTransformer.bsplines_
        *((backend,) if isinstance(backend, type) else ()),
    )


def _is_function_like(obj: object) -> bool:
    """A callable that names itself like a function (numpy's array-function dispatchers, Cython
    functions) rather than an instance of a callable class."""
    return isinstance(getattr(obj, "__qualname__", None), str) and not isinstance(obj, type)


def _class_attribute(kind: type, name: str) -> object:
    for klass in kind.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return None


def _is_method_like(attribute: object) -> bool:
    """Whether a class attribute is a method (which an instance attribute would replace)."""
    if attribute is None or isinstance(attribute, functools.cached_property | property | type):
        return False
    if isinstance(attribute, _FUNCTION_TYPES):
        return True
    kind = type(attribute)
    return hasattr(kind, "__get__") and not (
        hasattr(kind, "__set__") or hasattr(kind, "__delete__")
    )


def _is_estimator(value: object) -> bool:
    kind = type(value)
    if isinstance(value, type) or _under(str(kind.__module__), _DATA_LIBRARIES):
        return False
    return any(callable(_class_attribute(kind, name)) for name in _ESTIMATOR_METHODS)


def _pandas_parts(obj: object) -> list[tuple[str, object]]:
    """What a pandas object holds that its ``__dict__`` does not show (its data lives in
    compiled block managers): columns, index, levels, categories, as object arrays."""
    import pandas as pd
    from pandas.api.extensions import ExtensionArray

    def values(data: pd.Series[Any] | pd.Index) -> list[tuple[str, object]]:
        dtype = data.dtype
        if isinstance(dtype, np.dtype) and not dtype.hasobject:
            return []
        return [(".values", data.to_numpy(dtype=object))]

    if isinstance(obj, pd.DataFrame):
        columns = [(f"[{name!r}]", column) for name, column in obj.items()]
        return [*columns, (".index", obj.index), (".columns", obj.columns)]
    if isinstance(obj, pd.Series):
        return [*values(obj), (".index", obj.index)]
    if isinstance(obj, pd.MultiIndex):
        return [(f".levels[{level}]", index) for level, index in enumerate(obj.levels)]
    if isinstance(obj, pd.Index):
        return values(obj)
    if isinstance(obj, ExtensionArray):
        return [(".values", np.asarray(obj, dtype=object))]
    if isinstance(obj, pd.CategoricalDtype):
        return [(".categories", obj.categories)]
    blocks = getattr(obj, "blocks", None)  # a bare BlockManager
    if isinstance(blocks, tuple):
        return [(f".blocks[{i}]", getattr(block, "values", None)) for i, block in enumerate(blocks)]
    return []


def _slot_names(klass: type) -> tuple[str, ...]:
    names = klass.__dict__.get("__slots__", ())
    if isinstance(names, str):
        return (names,)
    return tuple(name for name in names if isinstance(name, str))


def _plain_data(value: object, depth: int = 0) -> bool:
    """Numbers, strings, None, data types, numeric arrays, and lists, tuples and dicts of
    those."""
    if type(value) in _ATOMIC or isinstance(value, np.generic | np.dtype):
        return not (isinstance(value, np.void) and value.dtype.hasobject)
    if isinstance(value, type):
        return value in _DATA_TYPES or issubclass(value, np.generic)
    if isinstance(value, np.ndarray):
        return not value.dtype.hasobject
    if depth > 8:
        return False
    if isinstance(value, list | tuple):
        return all(_plain_data(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return all(
            isinstance(key, str) and _plain_data(item, depth + 1) for key, item in dict.items(value)
        )
    return False


#: Array API namespaces: scipy >= 1.18's BSpline keeps the one of its arrays (a module),
#: chosen by its own ``__setstate__`` from the arrays' type, not named by the file.
_ARRAY_NAMESPACES: Final = (
    "numpy",
    "scipy._external.array_api_compat.numpy",
    "scipy._lib.array_api_compat.numpy",
    "array_api_compat.numpy",
)


def _is_array_namespace(module: types.ModuleType) -> bool:
    """Whether ``module`` is numpy's array API namespace (held by scipy's splines), which
    the audit does not walk: its public functions are numpy's, not the model's state."""
    return module.__name__ in _ARRAY_NAMESPACES and sys.modules.get(module.__name__) is module


class _StateAuditor:
    """One walk over a loaded model's object graph (iterative, bounded, each object once)."""

    def __init__(self, trust: tuple[str, ...]) -> None:
        self.trust = trust
        self.findings: list[str] = []
        self._seen: dict[int, object] = {}  # keeps temporaries alive so ids stay unique
        self._stack: list[tuple[object, str, str | None, int]] = []
        self._children: list[tuple[object, str, str | None, int]] = []
        self._budget = MAX_AUDITED_OBJECTS
        self._safe = _safe_functions()
        self._callable_objects = _callable_objects()
        self._policy = ImportPolicy(trust)

    def run(self, root: object) -> None:
        self._push(root, "", None, 0)
        while self._children or self._stack:
            # depth first, each object's children in their own order
            self._stack.extend(reversed(self._children))
            self._children.clear()
            obj, path, slot, depth = self._stack.pop()
            if depth > MAX_AUDITED_DEPTH:
                self._find(path, f"nested more than {MAX_AUDITED_DEPTH} levels deep")
                return
            self._visit(obj, path, slot, depth)
            if self._budget < 0:
                self._find("", f"holds more than {MAX_AUDITED_OBJECTS:,} objects")
                return

    def _find(self, path: str, problem: str) -> None:
        entry = f"{path.lstrip('.') or '<the model>'}: {problem}"
        if entry not in self.findings:
            self.findings.append(entry)

    def _push(self, value: object, path: str, slot: str | None, depth: int) -> None:
        self._budget -= 1
        if type(value) in _ATOMIC:
            return
        if isinstance(value, _LEAF_CALLABLES):
            # No children, and the verdict depends on where it sits (a class is fine as a
            # dtype, not as FunctionTransformer.func): judged at every place it appears.
            self._visit(value, path, slot, depth)
            return
        if id(value) in self._seen:
            return
        self._seen[id(value)] = value
        self._children.append((value, path, slot, depth))

    def _push_items(self, items: Sequence[object], path: str, depth: int) -> None:
        self._budget -= len(items)
        for index, item in enumerate(items):
            if type(item) not in _ATOMIC:  # most items are: no path string for them
                self._push(item, f"{path}[{index}]", None, depth + 1)

    # -- one object

    def _visit(self, obj: object, path: str, slot: str | None, depth: int) -> None:
        if isinstance(obj, type):
            self._check_class(obj, path, slot)
        elif isinstance(obj, _FUNCTION_TYPES):
            self._check_function(obj, path)
        elif isinstance(obj, types.MethodType):
            self._check_bound_method(obj, path)
        elif isinstance(obj, np.ndarray):
            if obj.dtype.hasobject:
                self._push_items(obj.ravel(order="K").tolist(), path, depth)
        elif isinstance(obj, np.void):  # a structured scalar: its fields may be objects
            self._push_items(list(obj.tolist()), path, depth)
        elif isinstance(obj, np.generic | np.dtype | slice):
            pass
        elif isinstance(obj, weakref.ref):
            pass  # pandas' Flags point back at their frame; a file cannot make one
        elif isinstance(obj, types.ModuleType):
            if not _is_array_namespace(obj):
                self._find(path, f"holds the module {obj.__name__} (a model keeps data)")
        elif callable(obj) and _is_function_like(obj):
            self._check_function(obj, path)  # numpy's dispatchers, Cython functions
        elif callable(obj) and not self._callable_object_allowed(obj):
            self._find(
                path,
                f"a callable {_qualified(type(obj))} object (a model may hold no callable "
                "objects but scikit-learn's column selectors, scorers, kernels and losses)",
            )
        else:
            if _under(str(type(obj).__module__), ("pandas",)):
                for suffix, part in _pandas_parts(obj):
                    self._push(part, f"{path}{suffix}", None, depth + 1)
            if isinstance(obj, dict):
                self._visit_dict(obj, path, depth)
            elif isinstance(obj, list | tuple):
                self._push_items(obj, path, depth)
            elif isinstance(obj, set | frozenset | collections.deque):
                self._push_items(list(obj), path, depth)
            self._visit_instance(obj, path, depth)

    def _visit_dict(self, obj: dict[Any, Any], path: str, depth: int) -> None:
        self._budget -= 2 * len(obj)
        for key, value in dict.items(obj):
            if type(key) not in _ATOMIC:
                self._push(key, f"{path} key {key!r}", None, depth + 1)
            if type(value) not in _ATOMIC:
                self._push(value, f"{path}[{key!r}]", None, depth + 1)
        if isinstance(obj, collections.defaultdict) and obj.default_factory is not None:
            self._push(obj.default_factory, f"{path}.default_factory", "default_factory",
                       depth + 1)  # fmt: skip

    def _visit_instance(self, obj: object, path: str, depth: int) -> None:
        kind = type(obj)
        try:
            state = vars(obj)
        except TypeError:
            state = None
        slots = [
            name
            for klass in kind.__mro__[:-1]  # not object
            for name in _slot_names(klass)
            if name not in ("__dict__", "__weakref__")
        ]
        if isinstance(state, dict):
            owner_in_sklearn = _under(str(kind.__module__), ("sklearn",)) is not None
            self._budget -= len(state)
            for key, value in dict.items(state):
                if not isinstance(key, str):
                    self._find(path, f"an attribute named by {_describe(key)}")
                    continue
                where = f"{path}.{key}"
                if _is_method_like(_class_attribute(kind, key)):
                    self._find(
                        where,
                        f"replaces the method {kind.__module__}.{kind.__qualname__}.{key} "
                        "(an instance attribute that shadows a method)",
                    )
                self._check_named_attribute(key, value, where, owner_in_sklearn)
                if isinstance(value, types.FunctionType) and (
                    _class_attribute(kind, value.__name__) is value
                ):
                    # a method of the object's own class, put there by that class's code
                    # (interp1d._call): a file cannot name it (dotted names are refused)
                    continue
                self._push(value, where, key, depth + 1)
        for name in slots:
            try:
                value = getattr(obj, name)
            except AttributeError:
                continue
            self._push(value, f"{path}.{name}", name, depth + 1)
        if state is None and not slots and _under(str(kind.__module__), ("sklearn",)):
            # scikit-learn's compiled classes (trees, neighbour trees, distance metrics, loss
            # functions) keep their state in C; their pickling support hands it out.
            try:
                reduced = obj.__reduce_ex__(4)
            except Exception as exc:  # whatever a compiled class raises
                self._find(
                    path, f"the state of {_describe(obj)} cannot be read to audit it ({exc})"
                )
                return
            if isinstance(reduced, tuple):
                self._push(reduced[1:3], f"{path}<reduced>", None, depth + 1)

    # -- callables

    def _check_function(self, obj: object, path: str) -> None:
        if id(obj) in self._safe or _is_trusted(obj, self.trust):
            return
        owner = getattr(obj, "__self__", None)
        if isinstance(obj, types.BuiltinFunctionType | types.MethodWrapperType) and not (
            owner is None or isinstance(owner, types.ModuleType)
        ):
            self._find(path, f"{_qualified(obj)} is a method bound to {_describe(owner)}")
            return
        self._find(path, f"{_qualified(obj)} is not an allowed callable")

    def _check_bound_method(self, method: types.MethodType, path: str) -> None:
        owner = method.__self__
        name = method.__func__.__name__
        genuine = (
            not isinstance(owner, type)
            and not _is_dunder(name)
            and _class_attribute(type(owner), name) is method.__func__
        )
        if genuine and (_is_estimator(owner) or _is_trusted(type(owner), self.trust)):
            return
        self._find(path, f"{_qualified(method.__func__)} is a method bound to {_describe(owner)}")

    def _callable_object_allowed(self, obj: object) -> bool:
        if type(obj) is functools.partial:
            # Its function, arguments and attributes are judged here; nothing else of it is
            # walked (a partial keeps them in C slots).
            return not vars(obj) and _partial_problem(obj.func, obj.args, obj.keywords) is None
        return isinstance(obj, self._callable_objects) or _is_trusted(type(obj), self.trust)

    def _check_class(self, cls: type, path: str, slot: str | None) -> None:
        if _is_trusted(cls, self.trust):
            return
        if slot == "default_factory" and cls in _CONTAINER_TYPES:
            return  # defaultdict(list), lightgbm's defaultdict(OrderedDict)
        if slot in _CALL_SLOTS:
            self._find(path, f"{_qualified(cls)} is not an allowed callable (it is a class)")
            return
        if cls in _DATA_TYPES or issubclass(cls, np.generic | np.dtype):
            return
        # Elsewhere a class is data (pandas caches its index classes), as long as a file could
        # have named it: the allowlist admits it, and constructing it reads no files.
        decision = self._policy.decide(str(cls.__module__), cls.__qualname__)
        if decision.obj is not cls or decision.construct_only:
            self._find(
                path,
                f"the class {_qualified(cls)} as a value (fitted state may hold data types and "
                "allowlisted classes only)",
            )

    # -- attributes with a meaning

    def _check_named_attribute(
        self, key: str, value: object, where: str, owner_in_sklearn: bool
    ) -> None:
        if key in _METHOD_NAME_ATTRIBUTES:
            names = value if isinstance(value, list | tuple) else [value]
            for name in names:
                if isinstance(name, str) and name not in ALLOWED_METHOD_NAMES:
                    self._find(
                        where,
                        f"{name!r} is not a method a model may be told to call (allowed: "
                        + ", ".join(sorted(ALLOWED_METHOD_NAMES)) + ")",
                    )  # fmt: skip
        elif key in _ATTRIBUTE_PATH_ATTRIBUTES and isinstance(value, str):
            parts = value.split(".")
            if value != "auto" and not all(
                _IDENTIFIER.match(part) and not part.startswith("__") for part in parts
            ):
                self._find(where, f"{value!r} is not a plain attribute path (no dunders)")
        elif key in _KWARGS_ATTRIBUTES and value is not None:
            self._check_kwargs(value, where)
        if owner_in_sklearn and key in _ESTIMATOR_SLOTS:
            self._check_estimator_slot(value, where)

    def _check_kwargs(self, value: object, where: str) -> None:
        if not isinstance(value, dict):
            self._find(where, f"keyword arguments must be a dict, not {_describe(value)}")
            return
        for key, item in dict.items(value):
            if not isinstance(key, str) or not _IDENTIFIER.match(key) or _is_dunder(key):
                self._find(where, f"{key!r} is not a plain keyword argument name")
            elif key in _WRITING_KWARGS:
                self._find(
                    f"{where}[{key!r}]",
                    f"the keyword argument {key!r} would make a numpy function write into an array",
                )
            elif not _plain_data(item):
                self._find(f"{where}[{key!r}]", f"{_describe(item)} is not plain data")

    def _check_estimator_slot(self, value: object, where: str) -> None:
        def ok(item: object) -> bool:
            return item is None or (isinstance(item, str) and item in ("drop", "passthrough")) \
                or _is_estimator(item)  # fmt: skip

        if ok(value):
            return
        entries: list[tuple[object, object]]
        if isinstance(value, dict):
            entries = list(dict.items(value))
        elif isinstance(value, np.ndarray) and value.dtype.hasobject:
            entries = list(enumerate(value.ravel().tolist()))
        elif isinstance(value, list | tuple):
            entries = list(enumerate(value))
        else:
            self._find(where, f"{_describe(value)} where an estimator belongs")
            return
        for index, item in entries:
            # (name, estimator) pairs and (name, transformer, columns) triples
            named = isinstance(item, tuple) and len(item) in (2, 3) and isinstance(item[0], str)
            candidate = item[1] if named else item  # type: ignore[index]
            if not ok(candidate):
                at = f"{where}[{index!r}]" + ("[1]" if named else "")
                self._find(at, f"{_describe(candidate)} where an estimator belongs")


# --------------------------------------------------------------------------------------------
# Loading


@dataclass(frozen=True)
class LoadResult:
    """A loaded artifact: the model object, its format and the loader that read it.

    ``loader`` reads like ``"joblib+zlib"``, ``"pickle(protocol 4)"``, ``"skops"`` or
    ``"onnxruntime"``.
    """

    model: object
    format: str
    loader: str


def load_model_file(
    path: Path | str, *, trust: Sequence[str] = (), require_predict: bool = True
) -> LoadResult:
    """Load a model artifact without running anything from it that is not allowlisted.

    Raises ``FileNotFoundError`` for a missing path, ``UnsafeArtifactError`` listing every
    refused import (nothing from the file ran) or, for a model built from allowlisted classes
    only, everything its fitted state would make it call that is not allowed (see
    ``audit_fitted_state``; none of its methods ran), and ``ArtifactLoadError`` for empty, truncated
    or corrupt files, non-model formats, classes whose module cannot be imported and (with
    ``require_predict``) objects without a ``predict`` method. ``trust`` names modules (and
    their submodules) whose objects are admitted, e.g. a project's custom transformers.
    """
    trusted = validate_trust(trust)
    path = _existing_file(path)
    fmt = sniff_format(path)
    if fmt.name in ("pickle", "joblib"):
        _require_joblib()
        model = _load_pickle(path, fmt, trusted)
        protocol = fmt.pickle_protocol
        loader = f"pickle(protocol {protocol})" if fmt.name == "pickle" else str(fmt)
    elif fmt.name == "skops":
        model = _load_skops(path, ImportPolicy(trusted))
        loader = "skops"
    else:
        from deploy_gate.adapters import load_onnx

        model = load_onnx(path)
        loader = "onnxruntime"
    if fmt.name != "onnx":
        findings = audit_fitted_state(model, trusted)
        if findings:
            raise UnsafeArtifactError(unsafe_state_message(path, findings))
    if require_predict and not callable(getattr(model, "predict", None)):
        raise ArtifactLoadError(
            f"{path}: holds {_describe(model)}, not a model: it has no predict() method"
        )
    return LoadResult(model=model, format=fmt.name, loader=loader)


def _require_joblib() -> None:
    found = tuple(int(part) for part in re.findall(r"\d+", joblib.__version__)[:2])
    if found < MIN_JOBLIB_VERSION:
        raise ArtifactLoadError(
            f"joblib {joblib.__version__} is installed; loading pickle and joblib artifacts "
            "safely needs joblib >= 1.6 (earlier versions let object arrays bypass the "
            "restricted unpickler)"
        )


def _load_pickle(path: Path, fmt: ArtifactFormat, trust: tuple[str, ...]) -> object:
    policy = ImportPolicy(trust, joblib_arrays=fmt.name == "joblib")
    findings = _Findings()
    failure: Exception | None = None
    obj: object = None
    with path.open("rb") as raw:
        try:
            with open_joblib_stream(raw, str(path)) as (handle, _mmap_mode):
                try:
                    obj = _GuardedUnpickler(str(path), handle, policy, findings).load()
                    if fmt.compression is not None:
                        _check_stream_end(handle)
                finally:
                    if handle is not raw and hasattr(handle, "close"):
                        # joblib leaves its decompressing reader open; closed by the garbage
                        # collector after ``raw``, lz4's flushed the closed file, and Python
                        # 3.13 reported that as an unraisable ValueError. Closing a corrupt
                        # stream may raise too: the load's own error is the one to report.
                        with contextlib.suppress(Exception):
                            handle.close()
        except _CallRefusedError as exc:
            findings.refuse(str(exc))
        except Exception as exc:  # whatever the file makes the unpickler raise
            failure = exc
    if findings.refused:
        raise UnsafeArtifactError(unsafe_message(path, findings.refused, findings.roots))
    if findings.missing:
        raise ArtifactLoadError(
            f"{path}: cannot load: " + "; ".join(findings.missing)
            + " (saved with other library versions, or a trusted module is missing?)"
        )  # fmt: skip
    if failure is not None:
        raise ArtifactLoadError(f"{path}: {_explain(fmt, failure)}") from failure
    return obj


def _load_skops(path: Path, policy: ImportPolicy) -> object:
    """Load a ``.skops`` file, trusting only the types the gate's ``policy`` admits.

    skops lists the types it does not trust by default; each one is judged by the same
    allowlist as pickles (never trusted because the file names it), and bound methods
    (``numpy.ndarray.tofile`` of an array in the file) are refused. Any refused type raises
    ``UnsafeArtifactError`` listing all of them before skops builds a single object. skops'
    defaults admit every scikit-learn estimator, so what they are wired into is judged after
    loading, like a pickle's (``safeload.audit_fitted_state``).
    """
    try:
        import skops.io as sio
    except ImportError:
        raise ArtifactLoadError(
            f"{path}: a skops artifact; install the 'skops' extra "
            "(pip install pytest-deploy-gate[skops]) to load it"
        ) from None
    try:
        listed: list[str] = sio.get_untrusted_types(file=path)
    except Exception as exc:  # whatever a corrupt archive makes skops raise
        raise ArtifactLoadError(
            f"{path}: corrupt skops file ({type(exc).__name__}: {exc})"
        ) from exc
    admitted: list[str] = []
    refused: list[str] = []
    missing: list[str] = []
    roots: list[str] = []
    for qualified in listed:
        module, _, name = qualified.rpartition(".")
        decision = policy.decide(module, name)
        if decision.obj is not None:
            admitted.append(qualified)
        elif decision.missing is not None and (method := _bound_method(qualified, policy)):
            refused.append(method)
        elif decision.missing is not None:
            missing.append(f"{qualified}: {decision.missing}")
        else:
            refused.append(f"{decision.label} ({decision.reason})")
            if decision.untrusted_root and decision.untrusted_root not in roots:
                roots.append(decision.untrusted_root)
    if refused:
        raise UnsafeArtifactError(unsafe_message(path, refused, roots))
    if missing:
        raise ArtifactLoadError(f"{path}: cannot load: " + "; ".join(missing))
    try:
        return sio.load(path, trusted=admitted)
    except Exception as exc:  # whatever a corrupt archive makes skops raise
        raise ArtifactLoadError(
            f"{path}: the skops file failed to load: {type(exc).__name__}: {exc}"
        ) from exc


def _bound_method(qualified: str, policy: ImportPolicy) -> str | None:
    """The refusal of ``module.Class.method``: a bound method (skops' MethodNode), which skops
    builds by looking the method up by name on an object of the file's making."""
    owner, _, method = qualified.rpartition(".")
    module, _, cls = owner.rpartition(".")
    if not module or not isinstance(policy.decide(module, cls).obj, type):
        return None
    return (
        f"{module}:{cls}.{method} (a bound method of {cls} objects, looked up by name: "
        "never admitted)"
    )


def _check_stream_end(handle: IO[bytes]) -> None:
    """Fail a compressed stream cut after the pickle's STOP but before its end marker.

    joblib's zlib/gzip reader stops at end of file without checking that the compressed
    stream ended (the bz2, xz and lz4 readers raise EOFError themselves).
    """
    while handle.read(1 << 20):
        pass
    decompressor = getattr(getattr(handle, "raw", None), "_decompressor", None)
    if decompressor is not None and not getattr(decompressor, "eof", True):
        raise EOFError("the compressed stream ends before its end-of-stream marker")


def unsafe_message(path: Path, refused: Sequence[str], roots: Sequence[str] = ()) -> str:
    """The ``UnsafeArtifactError`` message: every refusal, and how to trust project code."""
    count = len(refused)
    message = (
        f"{path}: refused to load: it imports or calls {count} "
        f"{'thing' if count == 1 else 'things'} the allowlist does not admit: "
        + "; ".join(refused)
        + ". Nothing from the file was run."
    )
    if roots:
        names = ", ".join(roots)
        message += (
            f" If {names} {'is' if len(roots) == 1 else 'are'} your project's own code, add "
            "it to the trusted modules (--deploy-gate-trust / ini deploy_gate_trust)."
        )
    return message


def unsafe_state_message(path: Path, findings: Sequence[str]) -> str:
    """The ``UnsafeArtifactError`` message for a model whose fitted state was refused."""
    count = len(findings)
    shown = list(findings[:_MAX_REPORTED])
    if count > len(shown):
        shown.append(f"... and {count - len(shown)} more")
    return (
        f"{path}: refused to load: its fitted state holds {count} "
        f"{'thing' if count == 1 else 'things'} a model may not call or keep: "
        + "; ".join(shown)
        + ". The file names allowlisted classes only, but wires them into calls the "
        "allowlist does not admit; the model was built and none of its methods ran."
    )


def _explain(fmt: ArtifactFormat, exc: Exception) -> str:
    if isinstance(exc, EOFError) or (isinstance(exc, ValueError) and str(exc).startswith("EOF")):
        # joblib reports array data cut short as ValueError("EOF: reading array data, ...")
        detail = str(exc) or "the data ends before the pickle's STOP opcode"
        return f"truncated {fmt} file: {detail}"
    if isinstance(exc, ValueError) and "LZ4" in str(exc):
        return "lz4-compressed joblib file; install lz4 to load it"
    if isinstance(exc, pickle.UnpicklingError | zlib.error | lzma.LZMAError | OSError):
        return f"truncated or corrupt {fmt} file ({type(exc).__name__}: {exc})"
    return f"the {fmt} file failed to unpickle: {type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------------------------
# Pinned hashes

_PIN_LINE: Final = re.compile(r"(?P<hash>[0-9a-fA-F]{64}) (?P<mode>[ *])(?P<path>.+)\Z")


def read_pins(path: Path | str) -> dict[str, str]:
    """Read a ``sha256sum``-format pin file: ``<sha256>  <path>`` or ``<sha256> *<path>``.

    Returns ``{path as written: lower-case sha256}``. Blank lines and ``#`` comments are
    skipped; any other malformed line, or a path pinned twice with different hashes, raises
    ``ConfigError`` naming the file and line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(2, f"pin file not found: {path}", str(path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: pin file is not UTF-8 text ({exc})") from None
    pins: dict[str, str] = {}
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        escaped = line.startswith("\\")
        match = _PIN_LINE.match(line[1:] if escaped else line)
        if match is None:
            raise ConfigError(
                f"{path}:{number}: expected '<64 hex digits>  <path>' (sha256sum format), "
                f"got {line!r}"
            )
        name = match["path"]
        if escaped:
            # sha256sum escapes backslashes and newlines in names and marks the line with '\'.
            name = re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], name)
        digest = match["hash"].lower()
        if name in pins and pins[name] != digest:
            raise ConfigError(
                f"{path}:{number}: {name!r} is pinned again with another hash "
                f"(first at line {lines[name]})"
            )
        pins[name] = digest
        lines.setdefault(name, number)
    return pins


def find_pin(
    artifact_path: Path | str, pins: Mapping[str, str], pin_file_dir: Path | str
) -> str | None:
    """The pinned sha256 of an artifact, or None when the pin file does not list it.

    Paths in the pin file are relative to the pin file's directory (or absolute).
    """
    target = Path(artifact_path).resolve()
    base = Path(pin_file_dir)
    for name, digest in pins.items():
        if (base / name).resolve() == target:
            return digest
    return None


def check_pin(
    artifact_path: Path | str, sha256: str, pins: Mapping[str, str], pin_file_dir: Path | str
) -> str | None:
    """A failure message when the artifact is pinned to another hash, else None.

    An artifact the pin file does not list passes (use ``find_pin`` to tell that case apart).
    """
    pinned = find_pin(artifact_path, pins, pin_file_dir)
    if pinned is None or pinned == sha256.lower():
        return None
    return (
        f"{artifact_path} has sha256 {sha256.lower()} but the pin file pins {pinned}: "
        "the artifact is not the one that was pinned"
    )


def _numpy_has_core(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False
