"""Real model families and their data, shared by the model zoo and the verdict-quality suite."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest


def frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 90, n).astype(float),
            "income": rng.lognormal(10, 0.5, n),
            "visits": rng.poisson(3, n),
            "plan": rng.choice(["basic", "plus", "pro"], n),
        }
    )
    frame.loc[rng.random(n) < 0.05, "income"] = np.nan
    frame["label"] = ((frame.age > 50) ^ (frame.visits > 3)).astype(int)
    frame["amount"] = 3 * frame.visits + frame.age / 10 + rng.normal(0, 1, n)
    return frame


NUMERIC = ["age", "income", "visits"]


def pipeline(estimator: Any) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    # Scaled, as a real pipeline is: unscaled income leaves lbfgs short of convergence on
    # older scipy, and the warning (an error under filterwarnings) is not what the zoo tests.
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    prep = ColumnTransformer(
        [
            ("num", numeric, NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
        ]
    )
    return make_pipeline(prep, estimator)


def single_tensor_onnx(model: Any, n_features: int, classifier: bool) -> bytes:
    """The ONNX file skl2onnx writes by default: one float32 tensor input, no column names."""
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType

    options = {id(model.steps[-1][1]): {"zipmap": False}} if classifier else None
    onx = skl2onnx.to_onnx(
        model, initial_types=[("input", FloatTensorType([None, n_features]))], options=options
    )
    return bytes(onx.SerializeToString())


BY_NAME_WRAPPER = """
import pytest
from deploy_gate import ModelDeployment

class ByName(ModelDeployment):
    # LightGBM reads a DataFrame's columns by position: serve it the columns by name.
    def batch_predict(self, rows):
        return super().batch_predict(self._frame(rows)[list(self.feature_names)])

    def batch_predict_proba(self, rows):
        return super().batch_predict_proba(self._frame(rows)[list(self.feature_names)])

@pytest.fixture
def deployment_factory():
    return lambda path: ByName(path, on_invalid_output="record")
"""
