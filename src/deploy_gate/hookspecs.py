"""Hooks other plugins and conftest.py files implement to extend the gate."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deploy_gate.artifact import ModelProfile
    from deploy_gate.checks import Check
    from deploy_gate.options import Settings


def pytest_deploy_gate_checks(
    profile: ModelProfile | None, settings: Settings
) -> Iterable[Check] | None:
    """Return checks to collect for an artifact (every implementation contributes).

    ``profile`` says what the model can do (None when the artifact did not load). A check is a
    function of fixtures that raises ``CheckFailure`` to fail, for example in a conftest.py::

        from deploy_gate import Check, CheckFailure

        def no_negative_prices(deployment, deploy_gate_data):
            if (deployment.batch_predict(deploy_gate_data.features) < 0).any():
                raise CheckFailure("negative price predicted")

        def pytest_deploy_gate_checks(profile, settings):
            return [Check("output", "no-negative-prices", no_negative_prices)]
    """
    return None
