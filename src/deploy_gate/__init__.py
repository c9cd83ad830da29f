"""pytest-deploy-gate: model deployment checks as a pytest suite, and their runtime library.

The names below load on first use, so importing the package (as pytest does for the plugin)
stays cheap: numpy, pandas and scikit-learn load only when a piece that needs them is used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

_EXPORTS = {
    "Check": "deploy_gate.checks",
    "CheckFailure": "deploy_gate.errors",
    "DeployGateError": "deploy_gate.errors",
    "ArtifactLoadError": "deploy_gate.errors",
    "UnsafeArtifactError": "deploy_gate.errors",
    "DataError": "deploy_gate.errors",
    "SchemaError": "deploy_gate.errors",
    "NotLoadedError": "deploy_gate.errors",
    "InvalidOutputError": "deploy_gate.errors",
    "ConfigError": "deploy_gate.errors",
    "Deployment": "deploy_gate.deployment",
    "ModelDeployment": "deploy_gate.deployment",
    "LatencyTracker": "deploy_gate.latency",
    "LoadedArtifact": "deploy_gate.artifact",
    "load_artifact": "deploy_gate.artifact",
    "find_problems": "deploy_gate.validation",
    "Rollout": "deploy_gate.rollout",
    "simulate_rollout": "deploy_gate.rollout",
    "compare_models": "deploy_gate.compare",
    "Monitor": "deploy_gate.monitor",
    "Profile": "deploy_gate.drift",
    "build_profile": "deploy_gate.drift",
    "detect_drift": "deploy_gate.drift",
    "drift_against_profile": "deploy_gate.drift",
    "Ledger": "deploy_gate.ledger",
    "LedgerEntry": "deploy_gate.ledger",
}

__all__ = [
    "ArtifactLoadError",
    "Check",
    "CheckFailure",
    "ConfigError",
    "DataError",
    "DeployGateError",
    "Deployment",
    "InvalidOutputError",
    "LatencyTracker",
    "Ledger",
    "LedgerEntry",
    "LoadedArtifact",
    "ModelDeployment",
    "Monitor",
    "NotLoadedError",
    "Profile",
    "Rollout",
    "SchemaError",
    "UnsafeArtifactError",
    "build_profile",
    "compare_models",
    "detect_drift",
    "drift_against_profile",
    "find_problems",
    "load_artifact",
    "simulate_rollout",
]

if TYPE_CHECKING:
    from deploy_gate.artifact import LoadedArtifact, load_artifact
    from deploy_gate.checks import Check
    from deploy_gate.compare import compare_models
    from deploy_gate.deployment import Deployment, ModelDeployment
    from deploy_gate.drift import Profile, build_profile, detect_drift, drift_against_profile
    from deploy_gate.errors import (
        ArtifactLoadError,
        CheckFailure,
        ConfigError,
        DataError,
        DeployGateError,
        InvalidOutputError,
        NotLoadedError,
        SchemaError,
        UnsafeArtifactError,
    )
    from deploy_gate.latency import LatencyTracker
    from deploy_gate.ledger import Ledger, LedgerEntry
    from deploy_gate.monitor import Monitor
    from deploy_gate.rollout import Rollout, simulate_rollout
    from deploy_gate.validation import find_problems


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'deploy_gate' has no attribute {name!r}")
    return getattr(import_module(module), name)
