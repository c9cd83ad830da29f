"""Gadget chains: models that name only allowlisted classes but are wired to run a payload at
predict time. The loader's audit of fitted state refuses them, naming where each piece sits,
and still loads every healthy model."""

from __future__ import annotations

import builtins
import collections
import functools
import importlib
import operator
import os
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import StackingClassifier
from sklearn.feature_selection import SelectFromModel, SelectKBest, f_classif
from sklearn.gaussian_process import GaussianProcessClassifier
from sklearn.gaussian_process.kernels import RBF
from sklearn.linear_model import LogisticRegression
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.model_selection import FixedThresholdClassifier, GridSearchCV
from sklearn.multioutput import ClassifierChain
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils import Bunch

from deploy_gate import safeload
from deploy_gate.errors import UnsafeArtifactError
from deploy_gate.safeload import audit_fitted_state, load_model_file

sys.path.insert(0, str(Path(__file__).parent))
from malicious_corpus import (
    GADGET_COUNT,
    REEXPORT_MODULE,
    Gadget,
    build_gadgets,
    run_gadget_plainly,
)

# pandas 3 names its public API from the top (pandas.eval, pandas.DataFrame), pandas 2 from
# where it is defined (pandas.core.computation.eval.eval, pandas.core.frame.DataFrame).
PD_EVAL = f"{pd.eval.__module__}.eval"
PD_FRAME = pd.DataFrame.__module__

X = np.random.default_rng(0).normal(size=(60, 3))
Y = (X[:, 0] - X[:, 1] > 0).astype(int)


@pytest.fixture(scope="module")
def gadgets(tmp_path_factory: pytest.TempPathFactory) -> list[Gadget]:
    pytest.importorskip("skops.io", reason="skops is not installed")
    return build_gadgets(tmp_path_factory.mktemp("gadgets"))


@pytest.fixture
def on_path(gadgets: list[Gadget], monkeypatch: pytest.MonkeyPatch) -> None:
    # The trusted module a gadget re-exports from sits next to the files.
    monkeypatch.syspath_prepend(str(gadgets[0].path.parent))
    importlib.invalidate_caches()


def _fitted_pipeline(*steps: Any) -> Pipeline:
    return make_pipeline(*steps, LogisticRegression()).fit(np.abs(X), Y)


def _audit(model: object, trust: tuple[str, ...] = ()) -> list[str]:
    # What the loader sees: the model as unpickled, not the object that was saved.
    return audit_fitted_state(pickle.loads(pickle.dumps(model)), trust)


# --------------------------------------------------------------------------------------------
# The gadget corpus


def test_every_gadget_runs_its_payload_when_loaded_the_plain_way(
    gadgets: list[Gadget], on_path: None
) -> None:
    # Proves the refusals below mean something: unguarded, every chain writes its canary.
    assert len(gadgets) == GADGET_COUNT
    for gadget in gadgets:
        gadget.canary.unlink(missing_ok=True)
        run_gadget_plainly(gadget)
    # pandas 2's python engine does not run the method call in the re-exported eval's
    # expression, so that chain is live on pandas 3 only (and refused on both).
    not_live = {"reexported_frame_eval"} if int(pd.__version__.split(".")[0]) < 3 else set()
    assert [g.name for g in gadgets if not g.canary.exists() and g.name not in not_live] == []
    assert gadgets[0].canary.read_bytes() == b"attacker bytes\n"
    for gadget in gadgets:
        gadget.canary.unlink(missing_ok=gadget.name in not_live)


@pytest.mark.parametrize("index", range(GADGET_COUNT))
def test_the_loader_refuses_every_gadget_naming_where_each_piece_sits(
    index: int, gadgets: list[Gadget], on_path: None
) -> None:
    gadget = gadgets[index]
    gadget.canary.unlink(missing_ok=True)

    with pytest.raises(UnsafeArtifactError) as caught:
        load_model_file(gadget.path, trust=gadget.trust)

    message = str(caught.value)
    assert str(gadget.path) in message
    for finding in gadget.findings:
        # A tuple: the versions of a library refuse the gadget at one of these places.
        alternatives = finding if isinstance(finding, tuple) else (finding,)
        assert any(text in message for text in alternatives), (alternatives, message)
    assert not gadget.canary.exists()


def test_a_reexported_library_method_is_refused_by_the_state_audit_too(
    gadgets: list[Gadget], on_path: None
) -> None:
    # Two layers: the import rules refuse the alias; were it admitted, the audit refuses it.
    gadget = next(g for g in gadgets if g.name == "reexported_frame_eval")
    model = pickle.loads(gadget.path.read_bytes())

    assert audit_fitted_state(model, trust=(REEXPORT_MODULE,)) == [
        "steps[0][1].func: pandas.core.frame.DataFrame.eval is not an allowed callable"
    ]


def test_a_ufunc_told_to_write_into_the_model_is_refused(tmp_path: Path) -> None:
    # FunctionTransformer(np.positive, kw_args={"out": <the final model's coef_>}): after one
    # prediction the model is another model (a sleeper that passes the first checks).
    model = _fitted_pipeline(FunctionTransformer(np.positive))
    final = model.steps[-1][1]
    model.steps[0][1].kw_args = {"out": final.coef_}
    path = tmp_path / "sleeper.pkl"
    path.write_bytes(pickle.dumps(model))
    plain = pickle.loads(path.read_bytes())
    before = plain.steps[-1][1].coef_.copy()
    plain.predict(np.full((1, 3), 7.0))
    assert not np.array_equal(plain.steps[-1][1].coef_, before)  # live

    with pytest.raises(UnsafeArtifactError, match=r"steps\[0\]\[1\]\.kw_args\['out'\]"):
        load_model_file(path)


def test_a_gadget_is_refused_before_any_of_its_methods_runs(
    gadgets: list[Gadget], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(StackingClassifier, "transform", lambda self, X: calls.append("transform"))
    with pytest.raises(UnsafeArtifactError):
        load_model_file(gadgets[0].path)
    assert calls == []


# --------------------------------------------------------------------------------------------
# Callables held in fitted state


@pytest.mark.parametrize(
    ("func", "named"),
    [
        (pd.DataFrame.eval, "pandas.core.frame.DataFrame.eval is not an allowed callable"),
        (pd.eval, f"{PD_EVAL} is not an allowed callable"),
        (np.ndarray.tofile, "numpy.ndarray.tofile is not an allowed callable"),
        (np.array([1]).tofile, "tofile is a method bound to a numpy:ndarray object"),
        (pd.DataFrame({"a": [1]}).query, "DataFrame.query is a method bound to"),
        (np.save, "numpy.save is not an allowed callable"),
        (builtins.getattr, "builtins.getattr is not an allowed callable"),
        (builtins.eval, "builtins.eval is not an allowed callable"),
        (builtins.__import__, "builtins.__import__ is not an allowed callable"),
        (builtins.open, "io.open is not an allowed callable"),
        (os.system, "posix.system is not an allowed callable"),
        (functools.partial(np.add, 1), "a callable functools.partial object"),
        (operator.methodcaller("tofile", "x"), "a callable operator.methodcaller object"),
        (operator.attrgetter("tofile"), "a callable operator.attrgetter object"),
        (lambda X: X, "test_gadgets.<lambda> is not an allowed callable"),
        (pd.DataFrame, f"{PD_FRAME}.DataFrame is not an allowed callable (it is a class)"),
        (str, "builtins.str is not an allowed callable (it is a class)"),
    ],
)
def test_a_callable_off_the_allowlist_is_refused_naming_its_attribute_path(
    func: Callable[..., Any], named: str
) -> None:
    model = make_pipeline(FunctionTransformer(func), LogisticRegression())

    findings = audit_fitted_state(model)

    assert any(f.startswith("steps[0][1].func: ") and named in f for f in findings), findings


@pytest.mark.parametrize("func", [np.log1p, np.expm1, np.exp, np.log, np.sqrt, np.abs, None])
def test_numpy_ufuncs_and_identity_are_allowed_callables(func: Any) -> None:
    model = _fitted_pipeline(FunctionTransformer(func, inverse_func=np.expm1, check_inverse=False))
    assert _audit(model) == []


def test_scikit_learn_score_metric_and_kernel_functions_are_allowed() -> None:
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import SVC

    models = [
        _fitted_pipeline(SelectKBest(f_classif, k=2)),
        SVC(kernel=rbf_kernel).fit(X, Y),
        KNeighborsClassifier(metric="minkowski", metric_params={"w": np.ones(3)}).fit(X, Y),
    ]
    assert [_audit(model) for model in models] == [[], [], []]


def test_a_trusted_modules_own_function_is_allowed_but_not_what_it_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "audit_project.py").write_text(
        "import pandas\nframe_eval = pandas.DataFrame.eval\ndef double(X):\n    return X * 2\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    project = importlib.import_module("audit_project")

    own = make_pipeline(FunctionTransformer(project.double), LogisticRegression())
    borrowed = make_pipeline(FunctionTransformer(project.frame_eval), LogisticRegression())

    assert audit_fitted_state(own, trust=("audit_project",)) == []
    assert audit_fitted_state(own) == [
        "steps[0][1].func: audit_project.double is not an allowed callable"
    ]
    assert audit_fitted_state(borrowed, trust=("audit_project",)) == [
        "steps[0][1].func: pandas.core.frame.DataFrame.eval is not an allowed callable"
    ]
    sys.modules.pop("audit_project", None)


def test_callables_are_found_wherever_they_hide() -> None:
    model = LogisticRegression().fit(X, Y)
    model.table_ = np.array([1, np.ndarray.tofile], dtype=object)
    model.nested_ = {"a": [({"b": builtins.exec},)]}
    model.frame_ = pd.DataFrame({"f": [pd.eval]})
    model.cache_ = collections.defaultdict(builtins.print)

    findings = audit_fitted_state(model)

    assert "table_[1]: numpy.ndarray.tofile is not an allowed callable" in findings
    assert "nested_['a'][0][0]['b']: builtins.exec is not an allowed callable" in findings
    assert any(f.startswith("frame_.") and f"{PD_EVAL} is not" in f
               for f in findings)  # fmt: skip
    assert "cache_.default_factory: builtins.print is not an allowed callable" in findings


def test_callable_objects_other_than_selectors_scorers_and_kernels_are_refused() -> None:
    from sklearn.utils.parallel import Parallel

    model = LogisticRegression().fit(X, Y)
    model.runner_ = Parallel(n_jobs=1)

    assert audit_fitted_state(model) == [
        "runner_: a callable sklearn.utils.parallel.Parallel object (a model may hold no "
        "callable objects but scikit-learn's column selectors, scorers, kernels and losses)"
    ]


def test_column_selectors_scorers_and_kernels_are_walked_into_not_refused() -> None:
    frame = pd.DataFrame(np.abs(X), columns=["a", "b", "c"])
    selector = make_pipeline(
        ColumnTransformer([("n", StandardScaler(), make_column_selector(dtype_include="number"))]),
        LogisticRegression(),
    ).fit(frame, Y)
    search = GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, scoring="roc_auc", cv=2)
    search.fit(X, Y)
    process = GaussianProcessClassifier(RBF()).fit(X[:30], Y[:30])

    assert [_audit(m) for m in (selector, search, process)] == [[], [], []]

    search.scorer_._response_method = "__reduce__"
    assert audit_fitted_state(search) == [
        "scorer_._response_method: '__reduce__' is not a method a model may be told to call "
        "(allowed: auto, decision_function, predict, predict_log_proba, predict_proba, "
        "score_samples, transform)"
    ]


def test_a_class_held_as_a_value_must_be_a_data_type_or_allowlisted() -> None:
    lightgbm = pytest.importorskip("lightgbm", reason="lightgbm is not installed")
    model = LogisticRegression().fit(X, Y)
    model.dtype_ = np.float32
    model.kind_ = int
    model.index_class_ = pd.Index
    assert audit_fitted_state(model) == []

    model.opener_ = lightgbm.Booster  # Booster(model_file=...) reads files
    model.runner_ = collections.ChainMap
    assert audit_fitted_state(model) == [
        "opener_: the class lightgbm.basic.Booster as a value (fitted state may hold data "
        "types and allowlisted classes only)",
        "runner_: the class collections.ChainMap as a value (fitted state may hold data "
        "types and allowlisted classes only)",
    ]


# --------------------------------------------------------------------------------------------
# Method names, keyword arguments, shadowed methods, estimator slots


def test_attributes_that_name_a_method_to_call_are_checked_against_the_allowlist() -> None:
    stacked = StackingClassifier([("lr", LogisticRegression())], cv=2).fit(X, Y)
    chain = ClassifierChain(LogisticRegression()).fit(X, np.c_[Y, 1 - Y])
    fixed = FixedThresholdClassifier(LogisticRegression(), threshold=0.3).fit(X, Y)
    assert [_audit(m) for m in (stacked, chain, fixed)] == [[], [], []]

    stacked.stack_method_ = ["to_pickle"]
    chain.chain_method_ = "fit"
    fixed.response_method = ["predict_proba", "__setstate__"]

    assert audit_fitted_state(stacked)[0].startswith("stack_method_: 'to_pickle' is not a method")
    assert audit_fitted_state(chain)[0].startswith("chain_method_: 'fit' is not a method")
    assert audit_fitted_state(fixed)[0].startswith("response_method: '__setstate__' is not a")


def test_an_importance_getter_may_be_a_plain_attribute_path_only() -> None:
    honest = SelectFromModel(
        make_pipeline(StandardScaler(), LogisticRegression()),
        importance_getter="named_steps.logisticregression.coef_",
    ).fit(X, Y)
    assert _audit(honest) == []

    honest.importance_getter = "estimator_.__class__.__init__.__globals__"
    assert audit_fitted_state(honest) == [
        "importance_getter: 'estimator_.__class__.__init__.__globals__' is not a plain "
        "attribute path (no dunders)"
    ]


@pytest.mark.parametrize(
    ("kw_args", "finding"),
    [
        ({"where": False}, "kw_args['where']: the keyword argument 'where' would make a numpy"),
        ({"dtype": LogisticRegression()}, "kw_args['dtype']: a sklearn.linear_model."),
        ({"dtype": np.array([print], dtype=object)}, "kw_args['dtype']: a numpy:ndarray"),
        ({"__class__": 1}, "kw_args: '__class__' is not a plain keyword argument name"),
    ],
)
def test_keyword_arguments_must_be_plain_data_and_never_an_output_array(
    kw_args: dict[str, Any], finding: str
) -> None:
    model = make_pipeline(FunctionTransformer(np.log1p, kw_args=kw_args), LogisticRegression())
    assert any(f.startswith("steps[0][1].") and finding in f for f in audit_fitted_state(model))


def test_plain_keyword_arguments_pass() -> None:
    model = _fitted_pipeline(FunctionTransformer(np.log1p, kw_args={"dtype": np.float64}))
    assert _audit(model) == []


def test_an_instance_attribute_that_replaces_a_method_is_refused() -> None:
    model = LogisticRegression().fit(X, Y)
    model.predict = np.positive  # type: ignore[method-assign]
    plain = pickle.loads(pickle.dumps(model))
    assert plain.predict(X).shape == X.shape  # live: predict() is no longer the model's

    assert audit_fitted_state(plain) == [
        "predict: replaces the method sklearn.linear_model._logistic.LogisticRegression.predict "
        "(an instance attribute that shadows a method)"
    ]


def test_what_meta_estimators_hold_where_an_estimator_belongs_must_be_an_estimator() -> None:
    model = _fitted_pipeline(StandardScaler())
    model.steps.insert(1, ("fake", Bunch(transform=np.positive)))
    stacked = StackingClassifier([("lr", LogisticRegression())], cv=2).fit(X, Y)
    stacked.final_estimator_ = pd.DataFrame({"predict": [1]})

    assert audit_fitted_state(model) == [
        "steps[1][1]: a sklearn.utils._bunch:Bunch object where an estimator belongs"
    ]
    frame = pd.DataFrame.__module__  # pandas 3: pandas; pandas 2: pandas.core.frame
    assert audit_fitted_state(stacked) == [
        f"final_estimator_: a {frame}:DataFrame object where an estimator belongs"
    ]


# --------------------------------------------------------------------------------------------
# The walk's bounds


def test_a_self_referencing_model_is_walked_once() -> None:
    model = LogisticRegression().fit(X, Y)
    model.me_ = [model, {"again": model}]
    assert audit_fitted_state(model) == []


def test_state_nested_deeper_than_the_bound_is_refused_not_half_audited() -> None:
    model = LogisticRegression().fit(X, Y)
    deep: list[Any] = []
    model.deep_ = deep
    for _ in range(safeload.MAX_AUDITED_DEPTH + 5):
        deep.append([])
        deep = deep[0]

    findings = audit_fitted_state(model)

    assert len(findings) == 1
    assert f"nested more than {safeload.MAX_AUDITED_DEPTH} levels deep" in findings[0]


def test_state_larger_than_the_bound_is_refused_not_half_audited(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(safeload, "MAX_AUDITED_OBJECTS", 1_000)
    model = LogisticRegression().fit(X, Y)
    model.big_ = list(range(2_000))

    assert audit_fitted_state(model) == ["<the model>: holds more than 1,000 objects"]


def test_a_large_honest_model_is_audited_quickly(tmp_path: Path) -> None:
    import time

    from sklearn.ensemble import RandomForestClassifier

    model = RandomForestClassifier(100, max_depth=8, random_state=0).fit(
        np.tile(X, (20, 1)), np.tile(Y, 20)
    )
    path = tmp_path / "forest.joblib"
    joblib.dump(model, path)
    loaded = load_model_file(path).model

    started = time.perf_counter()
    assert audit_fitted_state(loaded) == []
    assert time.perf_counter() - started < 2.0


# --------------------------------------------------------------------------------------------
# The scikit-learn internals the audit relies on (one test each: an upgrade breaks one test)


def test_the_sklearn_attribute_names_the_audit_checks_still_exist() -> None:
    stacked = StackingClassifier([("lr", LogisticRegression())], cv=2).fit(X, Y)
    chain = ClassifierChain(LogisticRegression()).fit(X, np.c_[Y, 1 - Y])
    fixed = FixedThresholdClassifier(LogisticRegression()).fit(X, Y)
    search = GridSearchCV(LogisticRegression(), {"C": [1.0]}, scoring="accuracy", cv=2).fit(X, Y)
    transformer = FunctionTransformer(np.log1p)
    selector = SelectFromModel(LogisticRegression()).fit(X, Y)

    assert {"stack_method_", "estimators_", "final_estimator_"} <= set(vars(stacked))
    assert "chain_method_" in vars(chain)
    assert "response_method" in vars(fixed)
    assert {"_response_method", "_score_func", "_kwargs"} <= set(vars(search.scorer_))
    assert {"func", "inverse_func", "kw_args", "inv_kw_args"} <= set(vars(transformer))
    assert "importance_getter" in vars(selector)


def test_the_callable_classes_the_audit_admits_still_import() -> None:
    classes = safeload._callable_objects()
    # scipy >= 1.18 adds the numpy backend of its splines.
    backend = getattr(sys.modules["scipy.interpolate._bsplines"], "_BSpline", None)
    assert len(classes) == (9 if backend is not None else 8)
    assert all(isinstance(cls, type) for cls in classes)


def test_a_module_in_the_fitted_state_is_refused_and_numpys_array_namespace_is_not() -> None:
    import os

    from sklearn.preprocessing import SplineTransformer

    held = FunctionTransformer(kw_args={"where": os})
    assert "steps[0][1].kw_args['where']: holds the module os (a model keeps data)" in (
        audit_fitted_state(make_pipeline(held, LogisticRegression()))
    )
    # scipy >= 1.18's splines keep their array namespace (a module) after unpickling.
    splines = SplineTransformer().fit(np.random.default_rng(0).random((50, 2)))
    assert _audit(splines) == []
