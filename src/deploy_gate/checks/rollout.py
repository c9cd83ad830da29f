"""The simulated staged rollout against the production model: ``rollout[5%]`` ... ``[100%]``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from deploy_gate.checks import Check
from deploy_gate.checks.baseline import BaselineRun, pair, record_baseline, with_baseline
from deploy_gate.checks.common import require_real_rows
from deploy_gate.errors import CheckFailure

if TYPE_CHECKING:
    from deploy_gate.artifact import LoadedArtifact, ModelProfile
    from deploy_gate.data import GateData
    from deploy_gate.deployment import Deployment
    from deploy_gate.gate import Gate
    from deploy_gate.options import Settings
    from deploy_gate.rollout import StageResult


def checks(profile: ModelProfile | None, settings: Settings) -> list[Check]:
    """``rollout[5%]`` ... ``rollout[100%]``; none without --deploy-gate-baseline."""
    from deploy_gate.rollout import StageResult

    if settings.baseline is None:
        return []
    labels = [StageResult(share, "advanced", "").label for share in settings.rollout_stages]
    return [
        Check("rollout", label, _stage_check(index, label), with_baseline)
        for index, label in enumerate(labels)
    ]


def rollout_results(
    gate: Gate,
    artifact: LoadedArtifact,
    deployment: Deployment,
    baseline: BaselineRun,
    data: GateData,
) -> list[StageResult]:
    """The simulated rollout of this candidate, replayed once per artifact."""
    from deploy_gate.capabilities import comparison_task
    from deploy_gate.rollout import simulate_rollout

    def compute() -> list[StageResult]:
        settings = gate.settings
        # The replay judges on labels: rows without one are left out (the stages say how many).
        labelled = data.labelled()
        assert labelled.target is not None  # the stage checks skip without labels
        return simulate_rollout(
            *pair(deployment, baseline, labelled),
            labelled.table,
            labelled.target,
            task=comparison_task(artifact.profile.task),
            stages=settings.rollout_stages,
            key=settings.rollout_key,
            order_by=settings.rollout_order_by,
            confidence=settings.rollout_confidence,
            min_samples=settings.rollout_min_samples,
            seed=settings.rollout_seed,
            min_relative=settings.min_relative,
            max_error_ratio=settings.max_error_ratio,
            error_floor=settings.error_floor,
        )

    return gate.rollouts.get(artifact.path.resolve(), compute)


def _stage_check(index: int, label: str) -> Callable[..., None]:
    def rollout_stage(
        deploy_gate: Gate,
        model_artifact: LoadedArtifact,
        deployment: Deployment,
        deploy_gate_baseline: BaselineRun,
        deploy_gate_data: GateData,
        deploy_gate_property: Callable[[str, object], None],
    ) -> None:
        require_real_rows(deploy_gate_data)
        if deploy_gate_data.target is None:
            pytest.skip("the rollout is judged on labels: pass --deploy-gate-target")
        unlabelled = deploy_gate_data.n_unlabelled
        if unlabelled == deploy_gate_data.n_rows:
            pytest.skip(f"the rollout is judged on labels: none of the {unlabelled} rows has one")
        if unlabelled:
            deploy_gate_property("unlabelled_rows", unlabelled)
        results = rollout_results(
            deploy_gate, model_artifact, deployment, deploy_gate_baseline, deploy_gate_data
        )
        stage = results[index]
        record_baseline(deploy_gate_baseline, deploy_gate_property)
        deploy_gate_property("stage", label)
        deploy_gate_property("status", stage.status)
        deploy_gate_property("rows", stage.rows)
        deploy_gate_property("candidate_requests", stage.candidate_requests)
        if stage.outcome == "skipped":
            pytest.skip(stage.message)
        if stage.outcome == "failed":
            raise CheckFailure(stage.message)

    rollout_stage.__doc__ = f"The simulated rollout passes the {label} stage without rollback."
    return rollout_stage
