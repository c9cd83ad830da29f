"""The model worker: the model under test runs in a sandboxed child process, out of reach.

``ModelWorker`` (in ``client``) starts and drives the child, ``serve`` is the child's main,
``codec`` the data-only encoding between them (never pickle), ``sandbox`` the limits and
isolation the child applies to itself, ``errors`` what can go wrong.

The names below load on first use: the child imports this package before it has sandboxed
itself, so importing it must not import numpy (which starts threads) or anything else heavy.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ModelWorker": "deploy_gate.worker.client",
    "Remote": "deploy_gate.worker.client",
    "RemoteObject": "deploy_gate.worker.client",
    "TimedCalls": "deploy_gate.worker.client",
    "TimedPairs": "deploy_gate.worker.client",
    "WorkerConfig": "deploy_gate.worker.client",
    "WorkerInfo": "deploy_gate.worker.client",
    "worker_environment": "deploy_gate.worker.client",
    "WorkerLimits": "deploy_gate.worker.sandbox",
    "default_memory_limit": "deploy_gate.worker.sandbox",
    "remote": "deploy_gate.worker.client",
    "one_cpu": "deploy_gate.worker.client",
    "on_cpus": "deploy_gate.worker.client",
    "RemoteError": "deploy_gate.worker.errors",
    "WorkerDied": "deploy_gate.worker.errors",
    "WorkerError": "deploy_gate.worker.errors",
    "WorkerProtocolError": "deploy_gate.worker.errors",
    "WorkerTimeout": "deploy_gate.worker.errors",
}

__all__ = [
    "ModelWorker",
    "Remote",
    "RemoteError",
    "RemoteObject",
    "TimedCalls",
    "TimedPairs",
    "WorkerConfig",
    "WorkerDied",
    "WorkerError",
    "WorkerInfo",
    "WorkerLimits",
    "WorkerProtocolError",
    "WorkerTimeout",
    "default_memory_limit",
    "on_cpus",
    "one_cpu",
    "remote",
    "worker_environment",
]

if TYPE_CHECKING:
    from deploy_gate.worker.client import (
        ModelWorker,
        Remote,
        RemoteObject,
        TimedCalls,
        TimedPairs,
        WorkerConfig,
        WorkerInfo,
        on_cpus,
        one_cpu,
        remote,
        worker_environment,
    )
    from deploy_gate.worker.errors import (
        RemoteError,
        WorkerDied,
        WorkerError,
        WorkerProtocolError,
        WorkerTimeout,
    )
    from deploy_gate.worker.sandbox import WorkerLimits, default_memory_limit


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'deploy_gate.worker' has no attribute {name!r}")
    return getattr(import_module(module), name)
