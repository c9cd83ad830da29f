"""Gating a running service: a serving endpoint (Open Inference Protocol V2, MLflow
``/invocations``, or a JSON API of one's own) as one more implementation of the deployment
protocol, so the built-in checks drive it over HTTP.

Usable without pytest: ``EndpointDeployment(url).load_model()`` then ``batch_predict(rows)``.
httpx is imported when the first request is sent (``pip install "pytest-deploy-gate[endpoint]"``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deploy_gate.endpoint.errors import (
    EndpointError,
    EndpointProtocolError,
    EndpointRejected,
    EndpointServerError,
    EndpointTimeout,
    EndpointUnreachable,
)
from deploy_gate.endpoint.settings import EndpointSpec, parse_endpoint

if TYPE_CHECKING:
    from deploy_gate.endpoint.client import EndpointDeployment

__all__ = [
    "EndpointDeployment",
    "EndpointError",
    "EndpointProtocolError",
    "EndpointRejected",
    "EndpointServerError",
    "EndpointSpec",
    "EndpointTimeout",
    "EndpointUnreachable",
    "parse_endpoint",
]


def __getattr__(name: str) -> Any:
    if name == "EndpointDeployment":
        from deploy_gate.endpoint.client import EndpointDeployment

        return EndpointDeployment
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
