"""One endpoint of a gate run: its deployment, the approved artifact it is compared with, the
rows to send it, and what it can do (its profile), worked out once per process."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deploy_gate.endpoint.client import EndpointDeployment
from deploy_gate.endpoint.protocols import default_name
from deploy_gate.endpoint.settings import EndpointSpec

if TYPE_CHECKING:
    from deploy_gate.artifact import LoadedArtifact, ModelProfile
    from deploy_gate.data import GateData
    from deploy_gate.gate import Gate


@dataclass(frozen=True)
class EndpointModel:
    """What the output checks ask of ``model_artifact`` when the deployment is an endpoint: the
    profile (task, classes, feature names) of the model it is meant to serve."""

    profile: ModelProfile


class EndpointTarget:
    """An endpoint named with ``--deploy-gate-endpoint``, and what the gate knows about it."""

    def __init__(self, gate: Gate, spec: EndpointSpec, name: str) -> None:
        settings = gate.settings
        self.gate = gate
        self.spec = spec
        self.name = name
        self.artifact = self._approved_artifact()
        profile = self.artifact.profile if self.artifact is not None else None
        self.deployment = EndpointDeployment(
            spec.url,
            protocol=str(settings.endpoint_protocol or "auto"),
            timeout=float(settings.endpoint_timeout),
            feature_names=gate.feature_names(self.artifact) if self.artifact is not None else None,
            classes=profile.classes if profile is not None else None,
            has_proba=profile.has_proba if profile is not None else None,
            max_connections=max((*tuple(settings.endpoint_concurrency or ()), 1)),
        )
        #: Why the endpoint is not usable (unreachable, not ready, unknown protocol), or None.
        self.error: BaseException | None = None
        try:
            self.deployment.load_model()
        except Exception as exc:
            self.error = exc

    @property
    def nodeid_name(self) -> str:
        return f"endpoint:{self.name}"

    def _approved_artifact(self) -> LoadedArtifact | None:
        """The artifact of this run the endpoint must serve: the first one named (None when the
        run gates no artifact or it did not load)."""
        for path in self.gate.artifact_paths:
            loaded = self.gate.artifact_or_error(path)
            return None if isinstance(loaded, BaseException) else loaded
        return None

    @property
    def profile(self) -> ModelProfile | None:
        """The served model's profile: the approved artifact's, else what the server's metadata
        says; None when the endpoint is not usable."""
        from deploy_gate.artifact import ModelProfile
        from deploy_gate.capabilities import has_probabilities, model_task

        if self.error is not None:
            return None
        if self.artifact is not None:
            return self.artifact.profile
        meta = self.deployment.metadata
        classes = self.deployment.classes
        names = self.deployment.feature_names
        return ModelProfile(
            task=model_task(self.deployment),
            has_proba=has_probabilities(self.deployment),
            classes=classes,
            feature_names=names,
            n_features=len(names) if names is not None else None,
            model_type=f"endpoint ({self.deployment.protocol}"
            + (f", {meta.platform})" if meta is not None and meta.platform else ")"),
        )

    def data(self) -> GateData | str:
        """Rows to send: the artifact's rows, or --deploy-gate-data restricted to the features
        the server names, or the reason there are none."""
        from deploy_gate.data import synthetic_data

        if self.artifact is not None:
            return self.gate.data_for(self.artifact)
        real = self.gate.data()
        names = self.deployment.feature_names
        if real is not None:
            return real.restrict(names) if names is not None else real
        if names is not None:
            return synthetic_data(names)
        return (
            f"{self.spec.url} does not say which features it takes: pass --deploy-gate-data "
            "with sample rows"
        )

    def close(self) -> None:
        self.deployment.close()


#: Each gate's endpoints, built once per process and closed with the gate.
_TARGETS: weakref.WeakKeyDictionary[Gate, list[EndpointTarget]] = weakref.WeakKeyDictionary()


def endpoint_targets(gate: Gate) -> list[EndpointTarget]:
    """The run's endpoints, each probed once per process (names made unique)."""
    targets = _TARGETS.get(gate)
    if targets is None:
        targets = _TARGETS[gate] = _build_targets(gate)
        gate.at_close(lambda: _close_targets(gate))
    return targets


def _close_targets(gate: Gate) -> None:
    for target in _TARGETS.pop(gate, ()):
        target.close()


def _build_targets(gate: Gate) -> list[EndpointTarget]:
    specs: list[EndpointSpec] = list(gate.settings.endpoint or ())
    targets: list[EndpointTarget] = []
    seen: set[str] = set()
    for spec in specs:
        base = spec.name or default_name(spec.url, None)
        name, n = base, 2
        while name in seen:
            name, n = f"{base}-{n}", n + 1
        seen.add(name)
        targets.append(EndpointTarget(gate, spec, name))
    return targets


def describe(target: EndpointTarget) -> dict[str, Any]:
    return target.deployment.get_model_metadata()
