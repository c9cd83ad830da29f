"""The project's own deployment tests: they run beside the gate's checks, once per artifact, and
count in its verdict (pytest --deploy-gate models/candidate.joblib ... tests/)."""

from __future__ import annotations

from typing import Any

import pytest

LOYAL = {
    "tenure_months": 60,
    "monthly_charges": 40.0,
    "support_calls": 0,
    "age": 45,
    "contract": "two-year",
    "payment_method": "bank",
    "region": "north",
}


def test_a_loyal_customer_is_not_high_risk(deployment: Any) -> None:
    assert deployment.churn_risk(LOYAL)["high_risk"] is False


def test_a_new_customer_who_keeps_calling_support_is_high_risk(deployment: Any) -> None:
    unhappy = {**LOYAL, "tenure_months": 3, "contract": "month-to-month", "support_calls": 6}
    assert deployment.churn_risk(unhappy)["high_risk"] is True


def test_support_calls_raise_the_risk(deployment: Any) -> None:
    calm = deployment.churn_risk({**LOYAL, "contract": "month-to-month", "support_calls": 0})
    busy = deployment.churn_risk({**LOYAL, "contract": "month-to-month", "support_calls": 6})
    assert busy["probability"] > calm["probability"]


def test_an_unseen_region_is_served(deployment: Any) -> None:
    answer = deployment.churn_risk({**LOYAL, "region": "mars"})
    assert 0.0 <= answer["probability"] <= 1.0


def test_the_service_reports_the_gated_artifact(deployment: Any, model_artifact: Any) -> None:
    # Version ids are v_<load time>_<sha256[:8]>: the same file gives the same suffix.
    assert deployment.churn_risk(LOYAL)["model_version"].endswith(model_artifact.sha256[:8])


def test_holdout_accuracy_beats_the_majority_class(deployment: Any, deploy_gate_data: Any) -> None:
    if deploy_gate_data.target is None:
        pytest.skip("pass --deploy-gate-target churned to judge accuracy")
    predictions = deployment.batch_predict(deploy_gate_data.features)
    accuracy = (predictions == deploy_gate_data.target.to_numpy()).mean()
    majority = max(deploy_gate_data.target.mean(), 1 - deploy_gate_data.target.mean())
    assert accuracy > majority, f"accuracy {accuracy:.3f} <= majority class {majority:.3f}"
