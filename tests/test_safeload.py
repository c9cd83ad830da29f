"""The safe loader: format sniffing, the guarded unpickler, trust, broken files, pins, skops
and ONNX."""

from __future__ import annotations

import importlib
import pickle
import sys
import zipfile
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from deploy_gate.errors import (
    ArtifactLoadError,
    ConfigError,
    SchemaError,
    UnsafeArtifactError,
)
from deploy_gate.safeload import (
    ArtifactFormat,
    check_pin,
    find_pin,
    load_model_file,
    read_pins,
    sniff_format,
    validate_trust,
)

sys.path.insert(0, str(Path(__file__).parent))
from malicious_corpus import CORPUS_SIZE, Specimen, build_corpus, run_with_plain_loader

X_NUM = np.random.default_rng(0).normal(size=(60, 3))
Y_NUM = (X_NUM[:, 0] - X_NUM[:, 1] > 0).astype(int)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Specimen]:
    return build_corpus(tmp_path_factory.mktemp("corpus"))


def _p4(body: bytes) -> bytes:
    return b"\x80\x04" + body + b"."


def _global(module: str, name: str) -> bytes:
    data = module.encode(), name.encode()
    return b"".join(b"\x8c" + bytes([len(d)]) + d for d in data) + b"\x93"


# --------------------------------------------------------------------------------------------
# The malicious corpus


def test_the_corpus_has_at_least_thirty_files_with_distinct_techniques(
    corpus: list[Specimen],
) -> None:
    assert len(corpus) == CORPUS_SIZE >= 30
    assert len({s.technique for s in corpus}) == len(corpus)


# joblib.load leaves its lz4 reader open; under Python 3.13 the garbage collector closes it after
# the file, and lz4 reports the flush of a closed file (the gate's own loader closes it first).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_every_corpus_payload_is_live_when_loaded_the_plain_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Proves the corpus tests mean something: unguarded, every payload creates its marker.
    specimens = build_corpus(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # for the module whose import is the payload
    monkeypatch.delitem(sys.modules, "corpus_evil_module", raising=False)
    for specimen in specimens:
        run_with_plain_loader(specimen)
    assert [s.name for s in specimens if not s.marker.exists()] == []
    sys.modules.pop("corpus_evil_module", None)


@pytest.mark.parametrize("index", range(CORPUS_SIZE))
def test_the_guarded_loader_blocks_every_corpus_file_and_names_its_imports(
    index: int, corpus: list[Specimen], monkeypatch: pytest.MonkeyPatch
) -> None:
    specimen = corpus[index]
    monkeypatch.syspath_prepend(str(specimen.path.parent))

    with pytest.raises(UnsafeArtifactError) as caught:
        load_model_file(specimen.path)

    message = str(caught.value)
    assert str(specimen.path) in message
    for offender in specimen.offenders:
        assert offender in message
    assert not specimen.marker.exists()
    assert "corpus_evil_module" not in sys.modules


def test_every_refused_import_is_listed_not_only_the_first(tmp_path: Path) -> None:
    model = LogisticRegression().fit(X_NUM, Y_NUM)
    path = tmp_path / "model.pkl"
    body = pickle.dumps(model, protocol=4)[:-1]  # drop STOP, add three refused globals
    extra = b"".join(
        _global(m, n) + b"0" for m, n in [("os", "system"), ("builtins", "eval"), ("pty", "spawn")]
    )
    path.write_bytes(body + extra + b".")

    with pytest.raises(UnsafeArtifactError) as caught:
        load_model_file(path)

    assert "3 things" in str(caught.value)
    for name in ("os:system", "builtins:eval", "pty:spawn"):
        assert name in str(caught.value)


# --------------------------------------------------------------------------------------------
# Hardening beyond find_class


def test_build_on_a_class_is_refused_and_the_class_is_not_patched(tmp_path: Path) -> None:
    original = LogisticRegression.predict
    state = b"N" + b"}" + b"\x8c\x07predict" + _global("numpy", "log1p") + b"s" + b"\x86"
    path = tmp_path / "patch.pkl"
    path.write_bytes(_p4(_global("sklearn.linear_model", "LogisticRegression") + state + b"b"))

    with pytest.raises(UnsafeArtifactError, match=r"BUILD on sklearn\.linear_model"):
        load_model_file(path)

    assert LogisticRegression.predict is original


def test_reduce_on_an_object_that_was_not_imported_by_name_is_refused(tmp_path: Path) -> None:
    # dict() is admitted; calling the dict it returns is not.
    call_dict = _global("builtins", "dict") + b")R"
    path = tmp_path / "gadget.pkl"
    path.write_bytes(_p4(call_dict + b")R"))

    with pytest.raises(UnsafeArtifactError, match="REDUCE on a builtins:dict object"):
        load_model_file(path)


def test_newobj_on_an_admitted_function_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newobj.pkl"
    path.write_bytes(_p4(_global("numpy._core.multiarray", "_reconstruct") + b")\x81"))

    with pytest.raises(UnsafeArtifactError, match="not a class"):
        load_model_file(path)


def test_codecs_encode_is_admitted_only_with_the_latin1_codec(tmp_path: Path) -> None:
    path = tmp_path / "codec.pkl"
    args = b"\x8c\x01x\x8c\x04zlib\x86"
    path.write_bytes(_p4(_global("_codecs", "encode") + args + b"R"))

    with pytest.raises(UnsafeArtifactError, match="_codecs:encode with codec 'zlib'"):
        load_model_file(path)


def test_copyreg_reconstructor_with_a_non_builtin_base_is_refused(tmp_path: Path) -> None:
    reconstruct = _global("copyreg", "_reconstructor")
    args = _global("sklearn.linear_model", "LinearRegression") + _global(
        "sklearn.linear_model", "LogisticRegression"
    )
    path = tmp_path / "reconstructor.pkl"
    path.write_bytes(_p4(reconstruct + b"(" + args + b"Nt" + b"R"))

    with pytest.raises(UnsafeArtifactError, match="_reconstructor with base"):
        load_model_file(path)


def test_persistent_ids_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "persid.pkl"
    path.write_bytes(_p4(b"\x8c\x03anyQ"))  # BINPERSID

    with pytest.raises(UnsafeArtifactError, match="persistent id"):
        load_model_file(path)


def test_lightgbm_booster_may_not_be_called_with_arguments(tmp_path: Path) -> None:
    pytest.importorskip("lightgbm", reason="lightgbm is not installed")
    secret = tmp_path / "secret.txt"
    secret.write_text("not a model")
    booster = _global("lightgbm.basic", "Booster")
    kwargs = b"}\x8c\nmodel_file\x8c" + bytes([len(str(secret))]) + str(secret).encode() + b"s"
    path = tmp_path / "booster.pkl"
    path.write_bytes(_p4(_global("builtins", "dict") + b")R0" + booster + b"N" + kwargs + b"\x86R"))

    with pytest.raises(UnsafeArtifactError, match="its constructor reads files"):
        load_model_file(path)


def test_xgboost_dmatrix_with_a_forged_handle_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("xgboost", reason="xgboost is not installed")
    # DMatrix.__del__ frees whatever its handle attribute points to.
    state = b"}\x8c\x06handleJ\x39\x30\x00\x00s"
    path = tmp_path / "dmatrix.pkl"
    path.write_bytes(_p4(_global("xgboost.core", "DMatrix") + b")\x81" + state + b"b"))

    with pytest.raises(UnsafeArtifactError, match=r"xgboost\.core:DMatrix"):
        load_model_file(path)


# --------------------------------------------------------------------------------------------
# Trust


def _write_custom_module(directory: Path, name: str) -> None:
    package = directory / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "transformers.py").write_text(
        "import os\n"
        "from os import system as run\n"
        "from sklearn.base import BaseEstimator, TransformerMixin\n\n"
        "class Clip(TransformerMixin, BaseEstimator):\n"
        "    def __init__(self, high=1.0):\n"
        "        self.high = high\n"
        "    def fit(self, X, y=None):\n"
        "        return self\n"
        "    def transform(self, X):\n"
        "        return X.clip(max=self.high)\n\n"
        "def double(X):\n"
        "    return X * 2\n"
    )


@pytest.fixture
def custom_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Any]:
    name = f"project_{tmp_path.name.replace('-', '_')}"
    _write_custom_module(tmp_path, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = __import__(f"{name}.transformers", fromlist=["Clip"])
    model = make_pipeline(
        module.Clip(), FunctionTransformer(module.double), LogisticRegression()
    ).fit(X_NUM, Y_NUM)
    path = tmp_path / "custom.joblib"
    joblib.dump(model, path)
    return path, model


def test_a_custom_transformer_is_refused_until_its_module_is_trusted(
    custom_model: tuple[Path, Any],
) -> None:
    path, model = custom_model
    package = type(model.steps[0][1]).__module__.split(".")[0]

    with pytest.raises(UnsafeArtifactError) as caught:
        load_model_file(path)
    assert f"{package}.transformers:Clip" in str(caught.value)
    assert f"{package}.transformers:double" in str(caught.value)
    assert f"If {package} is your project's own code" in str(caught.value)

    for trusted in (package, f"{package}.transformers"):
        loaded: Any = load_model_file(path, trust=[trusted]).model
        np.testing.assert_array_equal(loaded.predict(X_NUM), model.predict(X_NUM))


def test_trust_never_admits_dangerous_callables_or_modules_reexported_by_trusted_code(
    custom_model: tuple[Path, Any], tmp_path: Path
) -> None:
    _path, model = custom_model
    module = type(model.steps[0][1]).__module__
    alias = tmp_path / "alias.pkl"
    alias.write_bytes(_p4(_global(module, "run") + b"\x8c\x04true\x85R"))
    module_object = tmp_path / "module.pkl"
    module_object.write_bytes(_p4(_global(module, "os")))
    package = module.split(".")[0]

    with pytest.raises(UnsafeArtifactError, match=r"it is posix:system"):
        load_model_file(alias, trust=[package])
    with pytest.raises(UnsafeArtifactError, match="a module object"):
        load_model_file(module_object, trust=[package])


@pytest.mark.parametrize("entry", ["os", "subprocess.run", "numpy.testing", "a b", "", "1x"])
def test_bad_trust_entries_are_a_config_error_naming_the_entry(entry: str) -> None:
    with pytest.raises(ConfigError, match=repr(entry)):
        validate_trust([entry])


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("json", "part of Python's standard library"),
        ("os.path", "part of Python's standard library"),
        ("builtins", "part of Python's standard library"),
        ("collections.abc", "part of Python's standard library"),
        ("pip", "package installer"),
        ("pip._internal.cli", "package installer"),
        ("setuptools", "packaging tool"),
        ("pkg_resources", "packaging tool"),
        ("pytest", "the test runner"),
        ("_pytest.python", "the test runner"),
        ("pluggy", "plugin system"),
        ("deploy_gate", "the gate itself"),
        ("deploy_gate.safeload", "the gate itself"),
        ("__main__", "entry module"),
    ],
)
def test_trust_refuses_the_standard_library_tools_and_the_gate_naming_the_module_and_why(
    entry: str, why: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_trust([entry])

    message = str(caught.value)
    assert message.startswith(f"Invalid trust entry {entry!r}: {entry.split('.')[0]!r} cannot")
    assert why in message


@pytest.mark.parametrize("entry", ["my_project", "my_project.models", "faulty_models", "pandas_x"])
def test_a_projects_own_modules_may_be_trusted(entry: str) -> None:
    assert validate_trust([entry]) == (entry,)


def test_trust_covers_what_a_module_defines_not_what_it_imports(
    custom_model: tuple[Path, Any], tmp_path: Path
) -> None:
    _path, model = custom_model
    module = type(model.steps[0][1]).__module__
    package = module.split(".")[0]
    importlib.import_module(module).frame_eval = pd.DataFrame.eval  # type: ignore[attr-defined]
    importlib.import_module(module).scaler = StandardScaler  # type: ignore[attr-defined]
    alias = tmp_path / "alias.pkl"
    alias.write_bytes(_p4(_global(module, "frame_eval")))
    admitted = tmp_path / "admitted.pkl"
    admitted.write_bytes(_p4(_global(module, "scaler") + b")\x81"))

    with pytest.raises(UnsafeArtifactError) as caught:
        load_model_file(alias, trust=[package], require_predict=False)
    assert f"{module}:frame_eval (re-exported from pandas.core.frame:DataFrame.eval" in str(
        caught.value
    )
    loaded = load_model_file(admitted, trust=[package], require_predict=False).model
    assert type(loaded) is StandardScaler


def test_a_trusted_module_that_cannot_be_imported_is_a_load_error_naming_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(_p4(_global("no_such_project.models", "Net") + b")\x81"))

    with pytest.raises(ArtifactLoadError, match=r"cannot import module 'no_such_project\.models'"):
        load_model_file(path, trust=["no_such_project"])


# --------------------------------------------------------------------------------------------
# Format sniffing


def test_formats_are_identified_from_bytes_not_extensions(tmp_path: Path) -> None:
    model = LogisticRegression().fit(X_NUM, Y_NUM)
    cases = {
        "a.onnx": lambda p: p.write_bytes(pickle.dumps(model, protocol=2)),
        "b.pkl": lambda p: joblib.dump(model, p),
        "c.skops": lambda p: joblib.dump(model, p, compress=("gzip", 3)),
        "d.joblib": lambda p: p.write_bytes(pickle.dumps({"plain": 1}, protocol=0)),
    }
    for name, write in cases.items():
        write(tmp_path / name)

    assert sniff_format(tmp_path / "a.onnx") == ArtifactFormat("pickle", None, 2)
    assert sniff_format(tmp_path / "b.pkl") == ArtifactFormat("joblib", None, 4)
    assert sniff_format(tmp_path / "c.skops") == ArtifactFormat("joblib", "gzip")
    assert sniff_format(tmp_path / "d.joblib") == ArtifactFormat("pickle", None, 0)
    assert str(sniff_format(tmp_path / "c.skops")) == "joblib+gzip"


def test_arrays_pickled_by_numpy_1_load_under_numpy_2(tmp_path: Path) -> None:
    # numpy 1.x wrote numpy.core.multiarray; numpy 2 moved it to numpy._core.
    data = pickle.dumps(np.arange(5.0), protocol=2).replace(b"numpy._core", b"numpy.core")
    assert b"numpy.core.multiarray" in data
    path = tmp_path / "array.pkl"
    path.write_bytes(data)

    loaded: Any = load_model_file(path, require_predict=False).model

    np.testing.assert_array_equal(loaded, np.arange(5.0))


@pytest.mark.parametrize(
    "content",
    [b"age,income\n1,2\n", b'{"coef": [1, 2]}', b"\x00\x01\x02garbage" * 10, b"x" * 64],
    ids=["csv", "json", "binary", "text-starting-like-zlib"],
)
def test_files_in_no_model_format_are_a_load_error_naming_the_file(
    content: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "model.joblib"
    path.write_bytes(content)

    with pytest.raises(ArtifactLoadError, match=r"model\.joblib: not a model artifact"):
        sniff_format(path)


def test_a_zip_that_is_not_a_skops_file_is_a_load_error(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("weights.npy", b"123")

    with pytest.raises(ArtifactLoadError, match=r"without skops' schema\.json"):
        load_model_file(path)


# --------------------------------------------------------------------------------------------
# Broken models


def test_a_missing_file_is_file_not_found_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere\.joblib"):
        load_model_file(tmp_path / "nowhere.joblib")


def test_an_empty_file_is_a_load_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.joblib"
    path.touch()
    with pytest.raises(ArtifactLoadError, match=r"empty\.joblib: the file is empty"):
        load_model_file(path)


def test_a_directory_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactLoadError, match="not a regular file"):
        load_model_file(tmp_path)


@pytest.mark.parametrize("compression", ["raw", "zlib", "gzip", "bz2", "xz", "lzma"])
@pytest.mark.parametrize("cut", [0.5, 0.1, 0.01])
def test_a_truncated_file_is_a_load_error_not_a_crash(
    compression: str, cut: float, tmp_path: Path
) -> None:
    path = tmp_path / "model.joblib"
    compress = 0 if compression == "raw" else (compression, 3)
    joblib.dump(LogisticRegression().fit(X_NUM, Y_NUM), path, compress=compress)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - max(1, int(len(data) * cut))])

    with pytest.raises(ArtifactLoadError, match=r"truncated") as caught:
        load_model_file(path)
    assert not isinstance(caught.value, UnsafeArtifactError)


def test_a_pickle_that_is_not_a_model_is_a_load_error(tmp_path: Path) -> None:
    path = tmp_path / "weights.pkl"
    path.write_bytes(pickle.dumps({"coef": [1.0, 2.0]}))

    with pytest.raises(ArtifactLoadError, match=r"holds a builtins:dict object, not a model"):
        load_model_file(path)
    assert load_model_file(path, require_predict=False).model == {"coef": [1.0, 2.0]}


def test_a_class_whose_module_cannot_be_imported_names_the_module(tmp_path: Path) -> None:
    # scikit-learn < 0.22 kept forests in sklearn.ensemble.forest
    path = tmp_path / "old.pkl"
    path.write_bytes(_p4(_global("sklearn.ensemble.forest", "RandomForestClassifier") + b")\x81"))

    expected = r"cannot import module 'sklearn\.ensemble\.forest'"
    with pytest.raises(ArtifactLoadError, match=expected):
        load_model_file(path)


def test_a_class_missing_from_its_module_names_both(tmp_path: Path) -> None:
    path = tmp_path / "renamed.pkl"
    path.write_bytes(_p4(_global("sklearn.linear_model", "LogisticRegresion") + b")\x81"))

    with pytest.raises(ArtifactLoadError, match="has no attribute 'LogisticRegresion'"):
        load_model_file(path)


def test_an_old_joblib_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(LogisticRegression().fit(X_NUM, Y_NUM), path)
    monkeypatch.setattr(joblib, "__version__", "1.5.2")

    with pytest.raises(ArtifactLoadError, match=r"needs joblib >= 1\.6"):
        load_model_file(path)


# --------------------------------------------------------------------------------------------
# Pins

HASH_A = "a" * 64
HASH_B = "B" * 64


def test_read_pins_parses_sha256sum_text_and_binary_lines(tmp_path: Path) -> None:
    pins = tmp_path / "pins.sha256"
    pins.write_text(
        f"# pinned by release tooling\n\n{HASH_A}  models/model.joblib\n{HASH_B} *other.onnx\n"
        f"\\{HASH_A}  odd\\\\name.pkl\n"
    )

    assert read_pins(pins) == {
        "models/model.joblib": HASH_A,
        "other.onnx": HASH_B.lower(),
        "odd\\name.pkl": HASH_A,
    }


@pytest.mark.parametrize(
    "line",
    [f"{HASH_A} model.joblib", "abc  model.joblib", f"{HASH_A}\tmodel.joblib", "model.joblib"],
)
def test_a_bad_pin_line_is_a_config_error_naming_file_and_line(line: str, tmp_path: Path) -> None:
    pins = tmp_path / "pins.sha256"
    pins.write_text(f"{HASH_A}  ok.joblib\n{line}\n")

    with pytest.raises(ConfigError, match=r"pins\.sha256:2: expected"):
        read_pins(pins)


def test_a_path_pinned_twice_with_different_hashes_is_a_config_error(tmp_path: Path) -> None:
    pins = tmp_path / "pins.sha256"
    pins.write_text(f"{HASH_A}  m.joblib\n{HASH_B}  m.joblib\n")

    with pytest.raises(ConfigError, match=r"pins\.sha256:2: 'm\.joblib' is pinned again"):
        read_pins(pins)


def test_a_missing_pin_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"pins\.sha256"):
        read_pins(tmp_path / "pins.sha256")


def test_check_pin_fails_an_artifact_listed_with_another_hash(tmp_path: Path) -> None:
    (tmp_path / "ci").mkdir()
    artifact = tmp_path / "models" / "model.joblib"
    pins = {"../models/model.joblib": HASH_A}

    message = check_pin(artifact, HASH_B, pins, tmp_path / "ci")

    assert message is not None
    assert HASH_A in message
    assert HASH_B.lower() in message
    assert "model.joblib" in message


def test_check_pin_passes_matching_and_unlisted_artifacts(tmp_path: Path) -> None:
    artifact = tmp_path / "model.joblib"
    pins = {"model.joblib": HASH_A}

    assert check_pin(artifact, HASH_A.upper(), pins, tmp_path) is None
    assert check_pin(tmp_path / "other.joblib", HASH_B, pins, tmp_path) is None
    assert find_pin(artifact, pins, tmp_path) == HASH_A
    assert find_pin(tmp_path / "other.joblib", pins, tmp_path) is None


def test_pin_paths_are_relative_to_the_pin_file_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")

    assert check_pin(tmp_path / "m.joblib", HASH_B, {"m.joblib": HASH_A}, tmp_path) is not None
    assert check_pin(Path("m.joblib"), HASH_B, {"m.joblib": HASH_A}, tmp_path) is None


# --------------------------------------------------------------------------------------------
# skops


def test_a_skops_pipeline_loads_with_the_gates_own_trusted_types(tmp_path: Path) -> None:
    sio = pytest.importorskip("skops.io", reason="skops is not installed")
    X = np.abs(X_NUM)
    model = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()).fit(X, Y_NUM)
    path = tmp_path / "model.bin"
    sio.dump(model, path)

    result = load_model_file(path)

    assert (result.format, result.loader) == ("skops", "skops")
    np.testing.assert_array_equal(result.model.predict(X), model.predict(X))  # type: ignore[attr-defined]


def test_a_skops_file_with_a_dangerous_type_is_refused_before_loading(tmp_path: Path) -> None:
    sio = pytest.importorskip("skops.io", reason="skops is not installed")
    import os

    path = tmp_path / "model.skops"
    sio.dump(make_pipeline(FunctionTransformer(os.system), LogisticRegression()), path)

    with pytest.raises(UnsafeArtifactError, match=r"posix:system \(never admitted\)"):
        load_model_file(path)


def test_a_corrupt_skops_file_is_a_load_error(tmp_path: Path) -> None:
    pytest.importorskip("skops.io", reason="skops is not installed")
    path = tmp_path / "model.skops"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("schema.json", "{not json")

    with pytest.raises(ArtifactLoadError, match="skops"):
        load_model_file(path)


# --------------------------------------------------------------------------------------------
# ONNX


@pytest.fixture(scope="module")
def skl2onnx() -> Any:
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    return pytest.importorskip("skl2onnx", reason="skl2onnx is needed to build ONNX test models")


def _onnx(path: Path, model: Any, **kwargs: Any) -> Path:
    from skl2onnx import to_onnx

    path.write_bytes(to_onnx(model, **kwargs).SerializeToString())
    return path


def test_an_onnx_classifier_gets_the_sklearn_surface(skl2onnx: Any, tmp_path: Path) -> None:
    X = X_NUM.astype(np.float32)
    labels = np.array(["no", "yes"])[Y_NUM]
    original = LogisticRegression().fit(X, labels)
    path = _onnx(tmp_path / "model.bin", original, X=X[:1])

    result = load_model_file(path)
    model: Any = result.model

    assert (result.format, result.loader) == ("onnx", "onnxruntime")
    np.testing.assert_array_equal(model.predict(X), original.predict(X))
    np.testing.assert_allclose(model.predict_proba(X), original.predict_proba(X), atol=1e-5)
    assert list(model.classes_) == ["no", "yes"]
    assert model.n_features_in_ == 3
    assert not hasattr(model, "feature_names_in_")


def test_an_onnx_classifier_without_zipmap_gives_tensor_probabilities(
    skl2onnx: Any, tmp_path: Path
) -> None:
    X = X_NUM.astype(np.float32)
    original = LogisticRegression().fit(X, Y_NUM)
    path = _onnx(tmp_path / "model.onnx", original, X=X[:1], options={"zipmap": False})

    model: Any = load_model_file(path).model

    np.testing.assert_allclose(model.predict_proba(X), original.predict_proba(X), atol=1e-5)
    np.testing.assert_array_equal(model.classes_, [0, 1])


def test_an_onnx_regressor_has_no_predict_proba(skl2onnx: Any, tmp_path: Path) -> None:
    X = X_NUM.astype(np.float32)
    original = LinearRegression().fit(X, X_NUM[:, 0] * 3)
    path = _onnx(tmp_path / "model.onnx", original, X=X[:1])

    model: Any = load_model_file(path).model

    assert not hasattr(model, "predict_proba")
    assert not hasattr(model, "classes_")
    np.testing.assert_allclose(model.predict(X), original.predict(X), rtol=1e-4, atol=1e-4)
    assert model.predict(X).shape == (len(X),)


def test_an_onnx_dataframe_pipeline_takes_named_columns(skl2onnx: Any, tmp_path: Path) -> None:
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = pd.DataFrame(
        {
            "a": X_NUM[:, 0],
            "b": X_NUM[:, 1],
            "c": np.where(X_NUM[:, 2] > 0, "x", "y"),
        }
    )
    original = Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        ("n", SimpleImputer(), ["a", "b"]),
                        ("c", OneHotEncoder(handle_unknown="ignore"), ["c"]),
                    ]
                ),
            ),
            ("model", LogisticRegression()),
        ]
    ).fit(frame, Y_NUM)
    types = [
        ("a", FloatTensorType([None, 1])),
        ("b", FloatTensorType([None, 1])),
        ("c", StringTensorType([None, 1])),
    ]
    path = _onnx(tmp_path / "model.onnx", original, initial_types=types)

    model: Any = load_model_file(path).model

    assert list(model.feature_names_in_) == ["a", "b", "c"]
    assert model.n_features_in_ == 3
    reordered = frame[["c", "a", "b"]]
    np.testing.assert_array_equal(model.predict(reordered), original.predict(frame))
    with pytest.raises(SchemaError, match=r"missing \['b'\]"):
        model.predict(frame.drop(columns="b"))


def test_an_onnx_model_with_external_data_is_refused(skl2onnx: Any, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx", reason="the onnx package builds this test model")
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.ones((3, 1), np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])],
        [weights],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    path = tmp_path / "model.onnx"
    onnx.save_model(proto, path, save_as_external_data=True, location="w.bin", size_threshold=0)

    with pytest.raises(UnsafeArtifactError, match=r"external files \(W\)"):
        load_model_file(path)


def _external(tensor: Any) -> Any:
    """Mark a TensorProto as kept in an external file (what onnx.save_model does)."""
    from onnx import TensorProto

    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "weights.bin"
    return tensor


def _onnx_with_external_data(where: str) -> tuple[Any, str]:
    """A model with one external tensor at ``where``, and how the refusal names it."""
    from onnx import TensorProto, helper, numpy_helper

    def ones(name: str, shape: tuple[int, ...] = (3,)) -> Any:
        return numpy_helper.from_array(np.ones(shape, np.float32), name)

    def sparse(name: str) -> Any:
        values = _external(numpy_helper.from_array(np.ones(1, np.float32), name))
        return helper.make_sparse_tensor(
            values, numpy_helper.from_array(np.zeros(1, np.int64)), [3]
        )

    def const(output: str, **value: Any) -> Any:
        return helper.make_node("Constant", [], [output], **value)

    def vec(name: str, kind: int = TensorProto.FLOAT, shape: list[Any] | None = None) -> Any:
        return helper.make_tensor_value_info(name, kind, [3] if shape is None else shape)

    nodes: list[Any] = []
    extra: dict[str, Any] = {}
    if where == "sparse initializer":
        extra["sparse_initializer"] = [sparse("S")]
        nodes = [helper.make_node("Add", ["X", "S"], ["Y"])]
        named = "S (sparse initializer, values)"
    elif where == "tensor attribute":
        nodes = [const("C", value=_external(ones("C"))), helper.make_node("Add", ["X", "C"], ["Y"])]
        named = "C (Constant node, attribute 'value')"
    elif where == "sparse tensor attribute":
        nodes = [const("C", sparse_value=sparse("SV")), helper.make_node("Add", ["X", "C"], ["Y"])]
        named = "SV (Constant node, attribute 'sparse_value', sparse tensor, values)"
    elif where == "If branch":
        then = helper.make_graph([const("T", value=_external(ones("T")))], "then", [], [vec("T")])
        other = helper.make_graph([const("E", value=ones("E"))], "else", [], [vec("E")])
        condition = numpy_helper.from_array(np.array(True))
        nodes = [
            const("cond", value=condition),
            helper.make_node("If", ["cond"], ["B"], then_branch=then, else_branch=other),
            helper.make_node("Add", ["X", "B"], ["Y"]),
        ]
        named = "T (If node, attribute 'then_branch', graph 'then', Constant node"
    elif where == "Loop body":
        body = helper.make_graph(
            [
                helper.make_node("Identity", ["c_in"], ["c_out"]),
                helper.make_node("Add", ["v_in", "LW"], ["v_out"]),
            ],
            "body",
            [vec("i", TensorProto.INT64, []), vec("c_in", TensorProto.BOOL, []), vec("v_in")],
            [vec("c_out", TensorProto.BOOL, []), vec("v_out")],
            [_external(ones("LW"))],
        )
        trip = numpy_helper.from_array(np.array(1, np.int64))
        nodes = [
            const("n", value=trip),
            const("c", value=numpy_helper.from_array(np.array(True))),
            helper.make_node("Loop", ["n", "c", "X"], ["Y"], body=body, name="loop"),
        ]
        named = "LW (Loop node 'loop', attribute 'body', graph 'body')"
    elif where == "function":
        function = helper.make_function(
            "custom",
            "AddW",
            ["x"],
            ["y"],
            [const("w", value=_external(ones("FW"))), helper.make_node("Add", ["x", "w"], ["y"])],
            [helper.make_opsetid("", 17)],
        )
        extra["functions"] = [function]
        nodes = [helper.make_node("AddW", ["X"], ["Y"], domain="custom")]
        named = "FW (function 'AddW', Constant node, attribute 'value')"
    else:
        raise AssertionError(where)
    sparse_initializer = extra.pop("sparse_initializer", [])
    graph = helper.make_graph(
        nodes, "main", [vec("X", shape=[None, 3])], [vec("Y", shape=[None, 3])],
        sparse_initializer=sparse_initializer,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], **extra)
    if where == "function":
        model.opset_import.append(helper.make_opsetid("custom", 1))
    model.ir_version = 8
    return model, named


@pytest.mark.parametrize(
    "where",
    [
        "sparse initializer",
        "tensor attribute",
        "sparse tensor attribute",
        "If branch",
        "Loop body",
        "function",
    ],
)
def test_onnx_external_data_is_refused_wherever_it_appears(where: str, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    pytest.importorskip("onnx", reason="the onnx package builds this test model")
    model, named = _onnx_with_external_data(where)
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())

    with pytest.raises(UnsafeArtifactError, match="keeps tensors in external files") as caught:
        load_model_file(path)

    assert named in str(caught.value)


def test_an_onnx_model_with_subgraphs_and_no_external_data_loads(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    pytest.importorskip("onnx", reason="the onnx package builds this test model")
    from onnx import numpy_helper

    model, _ = _onnx_with_external_data("Loop body")
    body = model.graph.node[2].attribute[0].g
    body.initializer[0].CopyFrom(numpy_helper.from_array(np.ones(3, np.float32), "LW"))
    path = tmp_path / "loop.onnx"
    path.write_bytes(model.SerializeToString())

    loaded: Any = load_model_file(path).model

    np.testing.assert_allclose(loaded.predict(np.zeros((2, 3), np.float32)), np.ones((2, 3)))


def test_a_truncated_onnx_file_is_a_load_error(skl2onnx: Any, tmp_path: Path) -> None:
    X = X_NUM.astype(np.float32)
    path = _onnx(tmp_path / "model.onnx", LogisticRegression().fit(X, Y_NUM), X=X[:1])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])

    with pytest.raises(ArtifactLoadError):
        load_model_file(path)
