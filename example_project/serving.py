"""The example project's serving code: what its prediction service runs in production.

It builds on the gate's ModelDeployment (schema validation, guarded loading, output validation,
latency tracking) and adds what this service promises its callers: a churn risk label.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deploy_gate import ModelDeployment

#: Customers above this churn probability are routed to the retention team.
HIGH_RISK = 0.6


class ChurnService(ModelDeployment):
    """Serves the churn model; the gate's conftest.py makes every check drive this class."""

    def __init__(self, path: str | Path) -> None:
        # In production an invalid output must never reach a caller: raise instead.
        super().__init__(path, on_invalid_output="raise")

    def churn_risk(self, customer: Mapping[str, Any]) -> dict[str, Any]:
        """The answer the service's API returns for one customer."""
        probability = float(self.predict_proba_single(customer)[1])
        return {
            "probability": round(probability, 4),
            "high_risk": probability >= HIGH_RISK,
            "model_version": self.model_version,
        }
