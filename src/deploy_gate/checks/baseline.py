"""Candidate versus production: metric comparison and the simulated staged rollout."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from deploy_gate.checks import Check
from deploy_gate.checks.common import (
    has_proba,
    require_real_rows,
)
from deploy_gate.errors import CheckFailure

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from deploy_gate.artifact import LoadedArtifact, ModelProfile
    from deploy_gate.compare import BaselineComparison
    from deploy_gate.data import GateData
    from deploy_gate.deployment import Deployment, ProbabilisticDeployment
    from deploy_gate.gate import Gate
    from deploy_gate.options import Settings


class ColumnSelector:
    """Hands a deployment only the columns its model takes, so a candidate and a baseline with
    different features can be fed the same table."""

    def __init__(self, deployment: Deployment, names: Sequence[str] | None) -> None:
        self.deployment = deployment
        self.names = list(names) if names is not None else None
        self.classes = getattr(deployment, "classes", None)
        self._proba: ProbabilisticDeployment | None = deployment if has_proba(deployment) else None
        self.supports_proba = self._proba is not None

    def _rows(self, rows: pd.DataFrame) -> pd.DataFrame:
        return rows if self.names is None else rows[self.names]

    def batch_predict(self, rows: pd.DataFrame) -> Any:
        return self.deployment.batch_predict(self._rows(rows))

    def batch_predict_proba(self, rows: pd.DataFrame) -> Any:
        # Asked only where supports_proba says so (deploy_gate.capabilities.has_probabilities).
        if self._proba is None:
            raise AttributeError(f"{type(self.deployment).__name__} serves no probabilities")
        return self._proba.batch_predict_proba(self._rows(rows))


@dataclass(frozen=True)
class BaselineRun:
    """The baseline's deployment and the table both models are fed (the ``deploy_gate_baseline``
    fixture)."""

    artifact: LoadedArtifact
    deployment: Deployment
    feature_names: tuple[str, ...] | None


def served_baseline(
    gate: Gate, factory: Callable[[Path], Deployment], loaded: LoadedArtifact
) -> BaselineRun:
    """The loaded baseline served by ``factory``, once per gate (the ``deploy_gate_baseline``
    fixture, and the latency items that measure the candidate beside it)."""
    return BaselineRun(loaded, gate.loaded(factory, loaded.path), gate.feature_names(loaded))


def with_baseline(profile: ModelProfile | None, settings: Settings) -> bool:
    return settings.baseline is not None


def checks(profile: ModelProfile | None, settings: Settings) -> list[Check]:
    """``baseline[<metric>]`` per metric, then ``baseline[error-rate]`` and
    ``baseline[prediction-shift]``; none without --deploy-gate-baseline."""
    from deploy_gate.capabilities import comparison_task
    from deploy_gate.compare import default_metrics

    if settings.baseline is None:
        return []
    names: tuple[str, ...] = ()
    task = comparison_task(profile.task) if profile is not None else None
    if settings.metrics is not None:
        names = tuple(settings.metrics)
    elif profile is not None and task is not None:
        names = default_metrics(task, has_proba=profile.has_proba)
    return [Check("baseline", name, _metric_check(name), with_baseline) for name in names] + [
        Check("baseline", "error-rate", baseline_error_rate, with_baseline),
        Check("baseline", "prediction-shift", baseline_prediction_shift, with_baseline),
    ]


def comparison(
    gate: Gate,
    artifact: LoadedArtifact,
    deployment: Deployment,
    baseline: BaselineRun,
    data: GateData,
) -> BaselineComparison:
    """compare_models() for this candidate against the baseline, computed once per artifact."""
    from deploy_gate.capabilities import comparison_task
    from deploy_gate.compare import compare_models

    def compute() -> BaselineComparison:
        settings = gate.settings
        return compare_models(
            *pair(deployment, baseline, data),
            data.table,
            data.target,
            # The task the items were collected for (the artifact's profile): inferred again
            # from a deployment proxy it is unknown, and an integer-valued target (counts)
            # would then make a regressor's comparison a classification.
            task=comparison_task(artifact.profile.task),
            metrics=settings.metrics,
            min_relative=settings.min_relative,
            max_error_ratio=settings.max_error_ratio,
            error_floor=settings.error_floor,
            max_psi=settings.max_shift,
            max_label_flips=settings.max_label_flips,
        )

    return gate.comparisons.get(artifact.path.resolve(), compute)


def pair(
    deployment: Deployment, baseline: BaselineRun, data: GateData
) -> tuple[ColumnSelector, ColumnSelector]:
    """Candidate and baseline, each fed the columns its model takes from the same table."""
    return (
        ColumnSelector(deployment, tuple(data.features.columns)),
        ColumnSelector(baseline.deployment, baseline.feature_names),
    )


def record_baseline(baseline: BaselineRun, record: Callable[[str, object], None]) -> None:
    record("baseline_version", baseline.artifact.version_id)
    record("baseline_sha256", baseline.artifact.sha256)


def _metric_check(metric: str) -> Callable[..., None]:
    def baseline_metric(
        deploy_gate: Gate,
        model_artifact: LoadedArtifact,
        deployment: Deployment,
        deploy_gate_baseline: BaselineRun,
        deploy_gate_data: GateData,
        deploy_gate_property: Callable[[str, object], None],
    ) -> None:
        require_real_rows(deploy_gate_data)
        result = comparison(
            deploy_gate, model_artifact, deployment, deploy_gate_baseline, deploy_gate_data
        )
        record_baseline(deploy_gate_baseline, deploy_gate_property)
        if result.unlabelled:
            deploy_gate_property("unlabelled_rows", result.unlabelled)
        skipped = dict(result.skipped)
        if metric in skipped:
            pytest.skip(f"{metric}: {skipped[metric]}")
        found = [m for m in result.metrics if m.metric == metric]
        if not found:
            pytest.skip(f"{metric} was not computed")
        m = found[0]
        deploy_gate_property("metric", metric)
        for name in ("candidate", "baseline", "ratio", "threshold", "n"):
            deploy_gate_property(name, getattr(m, name))
        if not m.passed:
            raise CheckFailure(m.message)

    baseline_metric.__doc__ = (
        f"The candidate's {metric} reaches the floor relative to the baseline."
    )
    return baseline_metric


def baseline_error_rate(
    deploy_gate: Gate,
    model_artifact: LoadedArtifact,
    deployment: Deployment,
    deploy_gate_baseline: BaselineRun,
    deploy_gate_data: GateData,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """The candidate's error rate is at most deploy_gate_max_error_ratio x the baseline's."""
    require_real_rows(deploy_gate_data)
    result = comparison(
        deploy_gate, model_artifact, deployment, deploy_gate_baseline, deploy_gate_data
    ).error_rate
    record_baseline(deploy_gate_baseline, deploy_gate_property)
    deploy_gate_property("candidate_error_rate", result.candidate.rate)
    deploy_gate_property("baseline_error_rate", result.baseline.rate)
    deploy_gate_property("limit", result.limit)
    if not result.passed:
        raise CheckFailure(result.message)


def baseline_prediction_shift(
    deploy_gate: Gate,
    model_artifact: LoadedArtifact,
    deployment: Deployment,
    deploy_gate_baseline: BaselineRun,
    deploy_gate_data: GateData,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """Without labels, PSI of the scores and share of changed labels stay under
    deploy_gate_max_shift and deploy_gate_max_label_flips; with labels, they are shown.

    Two model families score on different scales, so with labelled rows the metric checks judge
    quality and the shift is measured and recorded, not failed; without labels it is the only
    evidence of change, and its limits apply.
    """
    require_real_rows(deploy_gate_data)
    shift = comparison(
        deploy_gate, model_artifact, deployment, deploy_gate_baseline, deploy_gate_data
    ).shift
    record_baseline(deploy_gate_baseline, deploy_gate_property)
    if shift is None:
        pytest.skip("no outputs to compare: both models failed on every row")
    deploy_gate_property("psi", shift.psi)
    if shift.label_flips is not None:
        deploy_gate_property("label_flips", shift.label_flips)
    deploy_gate_property("judged_by", "limits" if shift.judged else "metrics")
    deploy_gate_property("shift", shift.message.splitlines()[0])
    if not shift.passed:
        raise CheckFailure(shift.message)
