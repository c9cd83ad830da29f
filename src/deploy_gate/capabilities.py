"""What a model is and what it can do, decided in one place.

The gate meets models in two shapes: bare estimators, called with ``predict`` and
``predict_proba`` and naming their labels in ``classes_``, and deployment-like objects, called
with ``batch_predict`` and ``batch_predict_proba`` and naming their labels in ``classes`` (their
``supports_proba`` may say that probabilities are not served). Whether a model is a classifier or
a regressor, and whether it serves class probabilities, is decided here for the model profile
(:mod:`deploy_gate.artifact`), the comparison (:mod:`deploy_gate.compare`), the rollout router
and the checks.

Two vocabularies name the task, both kept as they are public: a profile says ``"classifier"``,
``"regressor"`` or ``"unknown"`` (:data:`ModelTask`); the comparison and the rollout take
``task="classification"`` or ``task="regression"`` (:data:`Task`). :func:`comparison_task` maps
the first to the second.

No pytest here, and scikit-learn is imported only when a model is looked at.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from deploy_gate.errors import ConfigError

#: What a model profile says the model is.
ModelTask = Literal["classifier", "regressor", "unknown"]
#: What the comparison and the rollout router judge: the metrics and tests differ.
Task = Literal["classification", "regression"]

#: Every :data:`ModelTask` (what a profile may say).
MODEL_TASKS: Final[tuple[ModelTask, ...]] = ("classifier", "regressor", "unknown")
#: Every :data:`Task` (what ``task=`` accepts).
TASKS: Final[tuple[Task, ...]] = ("classification", "regression")

_COMPARISON_TASKS: Final[dict[ModelTask, Task | None]] = {
    "classifier": "classification",
    "regressor": "regression",
    "unknown": None,
}


def comparison_task(task: ModelTask) -> Task | None:
    """The comparison's name for a profile's task: ``"classification"`` for ``"classifier"``,
    ``"regression"`` for ``"regressor"``, None for ``"unknown"`` (and anything else)."""
    return _COMPARISON_TASKS.get(task)


def check_task(task: object, where: str = "task") -> Task | None:
    """``task`` as given to a public function (None: infer it), or a ``ConfigError`` naming
    the accepted values: a misspelt task used to surface as a bare ``KeyError`` from a metric
    table, or not at all."""
    if task is None:
        return None
    for known in TASKS:
        if task == known:
            return known
    raise ConfigError(f"{where} must be {' or '.join(map(repr, TASKS))}, got {task!r}")


def safe_getattr(obj: object, name: str) -> Any:
    """``getattr(obj, name, None)``, also None when a property raises something else than
    AttributeError (a deployment's NotLoadedError, a model's broken ``available_if``)."""
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def serves_batches(model: object) -> bool:
    """Whether ``model`` is called like a deployment (``batch_predict``) rather than like an
    estimator (``predict``)."""
    return callable(safe_getattr(model, "batch_predict"))


def model_classes(model: object) -> Any:
    """The class labels ``model`` names (``classes`` of a deployment-like object, ``classes_`` of
    an estimator), as it gives them; None when it names none."""
    return safe_getattr(model, "classes" if serves_batches(model) else "classes_")


def has_probabilities(model: object) -> bool:
    """Whether ``model`` serves class probabilities.

    A deployment-like object does when it has ``batch_predict_proba`` and its ``supports_proba``
    does not say otherwise (missing, None or raising says nothing); an estimator does when it has
    ``predict_proba`` (scikit-learn hides it with ``available_if`` where the final step has none).
    """
    if serves_batches(model):
        supports = safe_getattr(model, "supports_proba")
        return callable(safe_getattr(model, "batch_predict_proba")) and (
            supports is None or bool(supports)
        )
    return callable(safe_getattr(model, "predict_proba"))


def model_task(model: object) -> ModelTask:
    """What ``model`` says it is, strongest evidence first; ``"unknown"`` when it does not say.

    1. its scikit-learn type (``is_classifier``/``is_regressor``, which see through pipelines and
       meta-estimators), else its ``_estimator_type``;
    2. class labels or class probabilities (:func:`model_classes`, :func:`has_probabilities`)
       make a classifier;
    3. for a model that predicts (``batch_predict`` or ``predict``), the scikit-learn type of
       the model it wraps as ``.estimator``, ``.model`` or ``.model.estimator`` (a serving
       wrapper around a regressor names no classes).
    """
    declared = _declared_task(model)
    if declared is not None:
        return declared
    if model_classes(model) is not None or has_probabilities(model):
        return "classifier"
    if not (serves_batches(model) or callable(safe_getattr(model, "predict"))):
        return "unknown"
    inner = safe_getattr(model, "model")
    for wrapped in (safe_getattr(model, "estimator"), inner, safe_getattr(inner, "estimator")):
        declared = _declared_task(wrapped) if wrapped is not None else None
        if declared is not None:
            return declared
    return "unknown"


def profile_task(model: object) -> ModelTask:
    """The task a model profile records: :func:`model_task`, except that a model that says
    nothing but has ``predict`` is taken for a regressor (its outputs get the regressor checks)."""
    task = model_task(model)
    if task == "unknown" and callable(safe_getattr(model, "predict")):
        return "regressor"
    return task


def _declared_task(model: object) -> ModelTask | None:
    try:
        from sklearn.base import is_classifier, is_regressor

        if is_classifier(model):
            return "classifier"
        if is_regressor(model):
            return "regressor"
    except Exception:  # recent scikit-learn raises on objects that are not estimators
        pass
    estimator_type = safe_getattr(model, "_estimator_type")
    if estimator_type == "classifier":
        return "classifier"
    if estimator_type == "regressor":
        return "regressor"
    return None
