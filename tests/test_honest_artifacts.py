"""Honest scikit-learn artifacts load through the guarded loader with no trust configuration
and predict exactly as the original objects do."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    StackingClassifier,
)
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.feature_selection import SelectKBest, f_classif
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

from deploy_gate.safeload import load_model_file


@dataclass(frozen=True)
class Fitted:
    model: Any
    X: Any


def _numeric() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(160, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] - X[:, 2] > 0).astype(int)
    return X, y


def _frame() -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    X, y = _numeric()
    frame = pd.DataFrame(
        {
            "age": X[:, 0] * 10 + 40,
            "income": X[:, 1] * 1000 + 5000,
            "city": np.where(X[:, 2] > 0, "paris", np.where(X[:, 3] > 0, "lyon", "nice")),
        }
    )
    frame.loc[::11, "age"] = np.nan
    return frame, y


def _texts() -> tuple[list[str], np.ndarray[Any, Any]]:
    words = ["good", "great", "fine", "bad", "awful", "poor", "plot", "cast", "film"]
    rng = np.random.default_rng(3)
    texts = [" ".join(rng.choice(words, size=5)) for _ in range(120)]
    labels = np.array([sum(w in t for w in ("good", "great", "fine")) >= 2 for t in texts], int)
    return texts, labels


def _fit(make: Callable[[], Any], data: str = "numeric") -> Fitted:
    X: Any
    y: Any
    if data == "frame":
        X, y = _frame()
    elif data == "text":
        X, y = _texts()
    elif data == "positive":
        X, y = _numeric()
        X = np.abs(X)
    else:
        X, y = _numeric()
    return Fitted(make().fit(X, y), X)


MODELS: dict[str, Callable[[], Fitted]] = {
    "linear": lambda: _fit(LogisticRegression),
    "ridge": lambda: _fit(Ridge),
    "tree": lambda: _fit(lambda: DecisionTreeClassifier(max_depth=5, random_state=0)),
    "forest": lambda: _fit(
        lambda: RandomForestClassifier(n_estimators=10, random_state=np.random.RandomState(0))
    ),
    "gradient-boosting": lambda: _fit(
        lambda: GradientBoostingClassifier(n_estimators=10, random_state=0)
    ),
    "hist-gradient-boosting": lambda: _fit(
        lambda: HistGradientBoostingClassifier(max_iter=10, random_state=0)
    ),
    "hist-gradient-boosting-poisson": lambda: _fit(
        lambda: make_pipeline(
            FunctionTransformer(np.abs), HistGradientBoostingRegressor(max_iter=10, loss="poisson")
        ),
        "positive",
    ),
    "svc": lambda: _fit(SVC),
    "knn-pca": lambda: _fit(lambda: make_pipeline(PCA(n_components=2), KNeighborsClassifier())),
    "column-transformer": lambda: _fit(
        lambda: Pipeline(
            [
                (
                    "prepare",
                    ColumnTransformer(
                        [
                            ("numeric", SimpleImputer(strategy="median"), ["age", "income"]),
                            ("city", OneHotEncoder(handle_unknown="ignore"), ["city"]),
                        ]
                    ),
                ),
                ("model", LogisticRegression(max_iter=500)),
            ]
        ),
        "frame",
    ),
    "log1p": lambda: _fit(
        lambda: make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()), "positive"
    ),
    "tfidf-sgd": lambda: _fit(
        lambda: make_pipeline(TfidfVectorizer(), SGDClassifier(random_state=0)), "text"
    ),
    "calibrated": lambda: _fit(lambda: CalibratedClassifierCV(LogisticRegression(), cv=3)),
    "stacked": lambda: _fit(
        lambda: StackingClassifier(
            [("linear", LogisticRegression()), ("tree", DecisionTreeClassifier(max_depth=3))],
            cv=3,
        )
    ),
    "select-k-best": lambda: _fit(
        lambda: make_pipeline(SelectKBest(f_classif, k=2), StandardScaler(), LogisticRegression())
    ),
}

SAVERS: dict[str, tuple[Callable[[Any, Path], object], str]] = {
    "joblib": (lambda m, p: joblib.dump(m, p), "joblib"),
    "joblib-zlib": (lambda m, p: joblib.dump(m, p, compress=3), "joblib+zlib"),
    "pickle-2": (lambda m, p: p.write_bytes(pickle.dumps(m, protocol=2)), "pickle(protocol 2)"),
    "pickle-4": (lambda m, p: p.write_bytes(pickle.dumps(m, protocol=4)), "pickle(protocol 4)"),
}


@pytest.fixture(scope="module")
def fitted() -> dict[str, Fitted]:
    # One thread: OpenMP fits on a shared 2-core machine are otherwise many times slower.
    with threadpool_limits(1):
        return {name: make() for name, make in MODELS.items()}


def _assert_same_predictions(original: Any, loaded: Any, X: Any) -> None:
    with threadpool_limits(1):
        np.testing.assert_array_equal(loaded.predict(X), original.predict(X))
        if hasattr(original, "predict_proba"):
            np.testing.assert_array_equal(loaded.predict_proba(X), original.predict_proba(X))


@pytest.mark.parametrize("saver", sorted(SAVERS))
@pytest.mark.parametrize("name", sorted(MODELS))
def test_honest_artifact_loads_without_trust_and_predicts_like_the_original(
    name: str, saver: str, fitted: dict[str, Fitted], tmp_path: Path
) -> None:
    case = fitted[name]
    save, loader = SAVERS[saver]
    path = tmp_path / "model.bin"  # the extension says nothing: formats come from the bytes
    save(case.model, path)

    result = load_model_file(path)

    assert result.loader == loader
    assert type(result.model) is type(case.model)
    _assert_same_predictions(case.model, result.model, case.X)


@pytest.mark.parametrize("compression", ["gzip", "bz2", "xz", "lzma", "lz4"])
def test_every_joblib_compression_of_an_honest_pipeline_loads(
    compression: str, fitted: dict[str, Fitted], tmp_path: Path
) -> None:
    if compression == "lz4":
        pytest.importorskip("lz4", reason="lz4 compression needs the lz4 package")
    case = fitted["column-transformer"]
    path = tmp_path / "model.joblib"
    joblib.dump(case.model, path, compress=(compression, 3))

    result = load_model_file(path)

    assert result.loader == f"joblib+{compression}"
    _assert_same_predictions(case.model, result.model, case.X)


def test_pickles_of_protocol_zero_and_five_load(fitted: dict[str, Fitted], tmp_path: Path) -> None:
    case = fitted["forest"]
    for protocol in (0, 5):
        path = tmp_path / f"model-{protocol}.pkl"
        path.write_bytes(pickle.dumps(case.model, protocol=protocol))
        result = load_model_file(path)
        assert result.loader == f"pickle(protocol {protocol})"
        _assert_same_predictions(case.model, result.model, case.X)


def test_lightgbm_model_loads_and_predicts_like_the_original(tmp_path: Path) -> None:
    lightgbm = pytest.importorskip("lightgbm", reason="lightgbm is not installed")
    X, y = _numeric()
    model = lightgbm.LGBMClassifier(n_estimators=10, verbose=-1, n_jobs=1).fit(X, y)
    for path in (tmp_path / "lgbm.joblib", tmp_path / "lgbm.pkl"):
        if path.suffix == ".joblib":
            joblib.dump(model, path, compress=3)
        else:
            path.write_bytes(pickle.dumps(model, protocol=4))
        _assert_same_predictions(model, load_model_file(path).model, X)


def test_xgboost_model_loads_and_predicts_like_the_original(tmp_path: Path) -> None:
    xgboost = pytest.importorskip("xgboost", reason="xgboost is not installed")
    X, y = _numeric()
    model = xgboost.XGBClassifier(n_estimators=10, max_depth=3, n_jobs=1).fit(X, y)
    path = tmp_path / "xgb.joblib"
    joblib.dump(model, path)
    _assert_same_predictions(model, load_model_file(path).model, X)


def test_a_model_holding_a_dataframe_and_a_random_state_loads(tmp_path: Path) -> None:
    # Attributes users attach to models: the training frame's head, a RandomState.
    X, y = _numeric()
    model = LogisticRegression().fit(X, y)
    frame, _ = _frame()
    model.sample_ = frame.head()
    model.rng_ = np.random.RandomState(1)
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)

    loaded: Any = load_model_file(path).model

    pd.testing.assert_frame_equal(loaded.sample_, frame.head())
    assert loaded.rng_.randint(1000) == np.random.RandomState(1).randint(1000)
