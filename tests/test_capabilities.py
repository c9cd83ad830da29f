"""What a model is and what it can do has one home, deploy_gate.capabilities: its answers on real
scikit-learn models, and proof that the profile, the comparison, the rollout router, the checks
and the endpoint profile all give those same answers."""

from __future__ import annotations

import typing
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from deploy_gate import capabilities, compare
from deploy_gate.artifact import ModelProfile
from deploy_gate.capabilities import (
    MODEL_TASKS,
    TASKS,
    ModelTask,
    Task,
    comparison_task,
    has_probabilities,
    model_task,
    profile_task,
)
from deploy_gate.checks.baseline import ColumnSelector
from deploy_gate.checks.baseline import checks as baseline_checks
from deploy_gate.checks.common import has_proba
from deploy_gate.compare import adapt_model, default_metrics, infer_task, predict_outputs
from deploy_gate.deployment import ModelDeployment
from deploy_gate.endpoint.client import EndpointDeployment
from deploy_gate.endpoint.target import EndpointTarget
from deploy_gate.errors import ConfigError
from deploy_gate.rollout import Rollout, simulate_rollout

COLUMNS = ["a", "b", "c"]


def _classification() -> tuple[pd.DataFrame, np.ndarray]:
    x, y = make_classification(
        200, n_features=3, n_informative=2, n_redundant=0, class_sep=2.0, random_state=0
    )
    return pd.DataFrame(x, columns=COLUMNS), y


def _regression() -> tuple[pd.DataFrame, np.ndarray]:
    x, y = make_regression(200, n_features=3, noise=1.0, random_state=0)
    return pd.DataFrame(x, columns=COLUMNS), y


#: name: (estimator, data, expected profile task, expected probabilities)
MODELS: dict[str, tuple[Any, Any, ModelTask, bool]] = {
    "classifier": (LogisticRegression, _classification, "classifier", True),
    "regressor": (LinearRegression, _regression, "regressor", False),
    "classifier pipeline": (
        lambda: make_pipeline(StandardScaler(), LogisticRegression()),
        _classification,
        "classifier",
        True,
    ),
    "regressor pipeline": (
        lambda: make_pipeline(StandardScaler(), LinearRegression()),
        _regression,
        "regressor",
        False,
    ),
    "classifier without predict_proba": (LinearSVC, _classification, "classifier", False),
    "pipeline ending in a classifier without predict_proba": (
        lambda: make_pipeline(StandardScaler(), LinearSVC()),
        _classification,
        "classifier",
        False,
    ),
}


@pytest.fixture(scope="module", params=list(MODELS))
def fitted(request: pytest.FixtureRequest) -> tuple[Any, pd.DataFrame, np.ndarray, str, bool]:
    build, data, task, proba = MODELS[request.param]
    rows, y = data()
    return build().fit(rows, y), rows, y, task, proba


class Neither:
    """Neither a classifier nor a regressor: no predict, no classes, no probabilities."""

    weights = (1.0, 2.0)


class PredictsOnly:
    """Predicts, and says nothing else about itself."""

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        return np.zeros(len(rows))


class Serving:
    """A serving wrapper around an estimator, as ``.model``, that names no classes."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def batch_predict(self, rows: pd.DataFrame) -> np.ndarray:
        out: np.ndarray = self.model.predict(rows)
        return out


# --------------------------------------------------------------------------------------------
# The two task vocabularies
# --------------------------------------------------------------------------------------------


def test_the_profile_task_maps_to_the_comparison_task() -> None:
    assert comparison_task("classifier") == "classification"
    assert comparison_task("regressor") == "regression"
    assert comparison_task("unknown") is None
    assert tuple(t for t in map(comparison_task, MODEL_TASKS) if t is not None) == TASKS


def test_the_literals_list_every_accepted_value_and_compare_task_is_the_same_type() -> None:
    assert typing.get_args(ModelTask) == MODEL_TASKS == ("classifier", "regressor", "unknown")
    assert typing.get_args(Task) == TASKS == ("classification", "regression")
    assert compare.Task is capabilities.Task


def test_rollout_still_refuses_a_task_outside_the_comparison_vocabulary() -> None:
    rows, y = _classification()
    model = LogisticRegression().fit(rows, y)
    with pytest.raises(ConfigError, match="task must be 'classification' or 'regression'"):
        Rollout(model, model, task="classifier")  # type: ignore[arg-type]
    assert Rollout(model, model, task="regression").task == "regression"


@pytest.mark.parametrize(
    "call",
    [
        lambda model, rows, y: compare.compare_models(model, model, rows, y, task="clasification"),
        lambda model, rows, y: compare.predict_outputs(model, rows, task="clasification"),
        lambda model, rows, y: compare.error_rate(model, rows, task="clasification"),
        lambda model, rows, y: simulate_rollout(model, model, rows, y, task="clasification"),
    ],
    ids=["compare_models", "predict_outputs", "error_rate", "simulate_rollout"],
)
def test_a_misspelt_task_is_a_config_error_naming_the_accepted_values(call: Any) -> None:
    # It used to be a bare KeyError from the metric table, or went unnoticed.
    rows, y = _classification()
    model = LogisticRegression().fit(rows, y)
    with pytest.raises(
        ConfigError, match="task must be 'classification' or 'regression', got 'clasification'"
    ):
        call(model, rows, y)


# --------------------------------------------------------------------------------------------
# What a model is and what it can do
# --------------------------------------------------------------------------------------------


def test_task_and_probabilities_of_scikit_learn_models(
    fitted: tuple[Any, pd.DataFrame, np.ndarray, str, bool],
) -> None:
    model, _, _, task, proba = fitted
    assert model_task(model) == task
    assert profile_task(model) == task
    assert has_probabilities(model) is proba


def test_an_object_that_is_neither_has_no_task_and_no_probabilities() -> None:
    assert model_task(Neither()) == "unknown"
    assert profile_task(Neither()) == "unknown"
    assert not has_probabilities(Neither())
    profile = ModelProfile.of(Neither())
    assert (profile.task, profile.has_proba) == ("unknown", False)
    with pytest.raises(ConfigError, match="cannot be compared"):
        infer_task(Neither())


def test_a_model_that_only_predicts_is_a_regressor_to_the_profile_and_unknown_to_compare() -> None:
    assert model_task(PredictsOnly()) == "unknown"
    assert profile_task(PredictsOnly()) == "regressor"
    assert ModelProfile.of(PredictsOnly()).task == "regressor"
    with pytest.raises(ConfigError, match="pass task='classification' or task='regression'"):
        infer_task(PredictsOnly())
    assert infer_task(PredictsOnly(), np.array([0.5, 1.5])) == "regression"
    assert infer_task(PredictsOnly(), np.array(["cat", "dog"])) == "classification"


def test_a_wrapper_takes_the_task_of_the_model_it_wraps() -> None:
    rows, y = _regression()
    wrapper = Serving(LinearRegression().fit(rows, y))
    assert model_task(wrapper) == "regressor"
    assert infer_task(wrapper) == "regression"
    assert not has_probabilities(wrapper)


def test_a_deployment_like_object_serves_probabilities_unless_it_says_it_does_not() -> None:
    class Deployed:
        classes = None

        def batch_predict(self, rows: pd.DataFrame) -> np.ndarray:
            return np.zeros(len(rows))

        def batch_predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
            return np.full((len(rows), 2), 0.5)

    class Declines(Deployed):
        supports_proba = False

    class Accepts(Deployed):
        supports_proba = True

    class NoMethod:
        supports_proba = True

        def batch_predict(self, rows: pd.DataFrame) -> np.ndarray:
            return np.zeros(len(rows))

    for deployed, serves in ((Deployed(), True), (Accepts(), True), (Declines(), False)):
        assert has_probabilities(deployed) is serves
        assert has_proba(deployed) is serves  # the checks' name for the same decision
    assert has_probabilities(NoMethod()) is False
    assert has_proba(NoMethod()) is False
    # Probabilities make a classifier, for the comparison as for the capability.
    assert model_task(Deployed()) == "classifier"
    assert infer_task(Deployed()) == "classification"
    assert model_task(Declines()) == "unknown"


# --------------------------------------------------------------------------------------------
# Every path gives the same answer
# --------------------------------------------------------------------------------------------


def test_profile_comparison_rollout_and_checks_agree(
    fitted: tuple[Any, pd.DataFrame, np.ndarray, str, bool], tmp_path: Path
) -> None:
    model, rows, y, task, proba = fitted
    expected = comparison_task(model_task(model))
    assert expected is not None

    profile = ModelProfile.of(model)
    assert (profile.task, profile.has_proba) == (task, proba)

    # compare.py: inference, the adapter and whether probabilities are asked for.
    assert infer_task(model) == expected
    assert adapt_model(model).has_proba is proba
    outputs = predict_outputs(model, rows.iloc[:20])
    assert outputs.task == expected
    assert (outputs.proba is not None) is proba

    # rollout.py infers through compare.
    assert Rollout(model, model).task == expected

    # The checks: a deployment of the pickled model, and the baseline's column selector.
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    deployment = ModelDeployment(path)
    deployment.load_model()
    assert deployment.artifact.profile == profile
    assert has_proba(deployment) is proba
    assert deployment.supports_proba is proba
    assert infer_task(deployment) == expected
    selector = ColumnSelector(deployment, None)
    assert selector.supports_proba is proba
    assert adapt_model(selector).has_proba is proba
    assert infer_task(selector, y) == expected

    # checks/baseline.py: the default metrics follow the profile's task and probabilities.
    settings: Any = SimpleNamespace(baseline=tmp_path / "baseline.joblib", metrics=None)
    cases = [c.case for c in baseline_checks(profile, settings)]
    assert cases == [*default_metrics(expected, has_proba=proba), "error-rate", "prediction-shift"]


@pytest.mark.parametrize(
    ("protocol", "classes", "given_proba", "task", "proba"),
    [
        ("v2", (0, 1), True, "classifier", True),
        ("v2", None, True, "classifier", True),
        ("v2", (0, 1), False, "classifier", False),
        ("v2", None, False, "unknown", False),
        ("mlflow", None, True, "unknown", False),  # MLflow's scoring server has no probabilities
    ],
)
def test_an_endpoint_without_an_artifact_is_profiled_by_the_same_rules(
    protocol: str, classes: tuple[int, ...] | None, given_proba: bool, task: str, proba: bool
) -> None:
    deployment = EndpointDeployment(
        "http://127.0.0.1:9", protocol=protocol, classes=classes, has_proba=given_proba
    )
    target = EndpointTarget.__new__(EndpointTarget)  # the profile needs no gate nor server
    target.error, target.artifact, target.deployment = None, None, deployment
    profile = target.profile
    assert profile is not None
    assert (profile.task, profile.has_proba) == (task, proba)
    assert (model_task(deployment), has_probabilities(deployment)) == (task, proba)
