"""Artifacts on disk: hashing, version ids, loading and what the loaded model can do."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from deploy_gate.capabilities import MODEL_TASKS, ModelTask, has_probabilities, profile_task
from deploy_gate.errors import ArtifactLoadError
from deploy_gate.identity import environment_versions, sha256_file, version_id
from deploy_gate.validation import plain

#: Suffixes the gate claims when such a path is named on the command line.
ARTIFACT_SUFFIXES = (".joblib", ".pkl", ".pickle", ".skops", ".onnx")


@dataclass(frozen=True)
class ModelProfile:
    """What the gate learnt about a model by looking at it, used to choose the checks."""

    task: ModelTask
    has_proba: bool
    classes: tuple[Any, ...] | None
    feature_names: tuple[str, ...] | None
    n_features: int | None
    model_type: str

    @classmethod
    def of(cls, model: object) -> ModelProfile:
        classes_attr = getattr(model, "classes_", None)
        classes = tuple(plain(c) for c in classes_attr) if classes_attr is not None else None
        names = getattr(model, "feature_names_in_", None)
        n_features = getattr(model, "n_features_in_", None)
        return cls(
            task=profile_task(model),
            has_proba=has_probabilities(model),
            classes=classes,
            feature_names=tuple(str(n) for n in names) if names is not None else None,
            n_features=len(names) if names is not None else _as_int(n_features),
            model_type=f"{type(model).__module__}.{type(model).__qualname__}",
        )

    @classmethod
    def from_data(cls, data: object) -> ModelProfile:
        """A profile sent by a model worker, checked field by field: the worker is untrusted,
        so anything but the plain types the gate expects is refused."""
        from deploy_gate.errors import ArtifactLoadError

        def fail(field: str) -> ArtifactLoadError:
            return ArtifactLoadError(f"the model process described its model with a bad {field}")

        if not isinstance(data, dict):
            raise fail("profile")
        task = data.get("task")
        if task not in MODEL_TASKS:
            raise fail("task")
        classes = data.get("classes")
        if classes is not None:
            if not isinstance(classes, (tuple, list)) or not all(
                isinstance(c, (str, int, float, bool)) for c in classes
            ):
                raise fail("classes")
            classes = tuple(classes)
        names = data.get("feature_names")
        if names is not None:
            if not isinstance(names, (tuple, list)) or not all(isinstance(n, str) for n in names):
                raise fail("feature_names")
            names = tuple(names)
        n_features = data.get("n_features")
        if n_features is not None and (
            isinstance(n_features, bool) or not isinstance(n_features, int)
        ):
            raise fail("n_features")
        has_proba, model_type = data.get("has_proba"), data.get("model_type")
        if not isinstance(has_proba, bool):
            raise fail("has_proba")
        if not isinstance(model_type, str):
            raise fail("model_type")
        return cls(task, has_proba, classes, names, n_features, model_type)


@dataclass(frozen=True)
class LoadedArtifact:
    """An artifact that loaded: the ``model_artifact`` fixture hands this to tests."""

    path: Path
    sha256: str
    size: int
    version_id: str
    loader: str
    model: Any
    profile: ModelProfile
    load_warnings: tuple[str, ...] = ()
    libraries: dict[str, str] = field(default_factory=environment_versions)

    def metadata(self) -> dict[str, Any]:
        return {
            "version_id": self.version_id,
            "sha256": self.sha256,
            "size": self.size,
            "path": str(self.path),
            "loader": self.loader,
            "model_type": self.profile.model_type,
            "task": self.profile.task,
            **{f"version.{k}": v for k, v in self.libraries.items()},
        }


def load_artifact(
    path: Path, *, trust: Sequence[str] = (), started: datetime | None = None
) -> LoadedArtifact:
    """Hash and load ``path`` through the guarded loader (nothing off the allowlist runs).

    Raises FileNotFoundError for a missing file, UnsafeArtifactError for a file that would
    import or call something not allowed, and ArtifactLoadError for anything else that cannot
    be turned into a model. Warnings raised while loading (such as scikit-learn's version
    mismatch) are kept on the artifact rather than raised.
    """
    from deploy_gate.safeload import load_model_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model artifact not found: {path}")
    sha = sha256_file(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = load_model_file(path, trust=trust)
    if sha256_file(path) != sha:
        raise ArtifactLoadError(f"{path} changed while it was being loaded")
    return LoadedArtifact(
        path=path,
        sha256=sha,
        size=path.stat().st_size,
        version_id=version_id(sha, started or datetime.now(timezone.utc)),
        loader=result.loader,
        model=result.model,
        profile=ModelProfile.of(result.model),
        load_warnings=tuple(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught)),
    )


def _as_int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload,no-any-return]
    except (TypeError, ValueError):
        return None
