from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest

from deploy_gate.drift import build_profile
from deploy_gate.errors import ConfigError
from deploy_gate.monitor import Alert, Monitor


class Clock:
    """A fake clock that the fake deployment advances by the latency it is told to have."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeDeployment:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.latency_s = 0.010
        self.output: Any = 1.0
        self.fail = False
        self.loaded = False
        self.model_version = "v_test"

    def load_model(self) -> None:
        self.loaded = True

    def get_model_metadata(self) -> dict[str, Any]:
        return {"name": "fake"}

    def get_latency_stats(self) -> dict[str, Any]:
        return {}

    def predict_single(self, features: Mapping[str, Any]) -> Any:
        self.clock.now += self.latency_s
        if self.fail:
            raise RuntimeError("model exploded")
        return self.output

    def batch_predict(self, rows: pd.DataFrame) -> np.ndarray:
        self.clock.now += self.latency_s
        if self.fail:
            raise RuntimeError("model exploded")
        return np.full(len(rows), self.output, dtype=float)

    def batch_predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        return np.full((len(rows), 2), 0.5)


def reference(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(40 + shift, 10, n),
            "plan": np.array(["free", "pro"], dtype=object)[rng.integers(0, 2, n)],
        }
    )


@pytest.fixture
def setup():
    clock = Clock()
    deployment = FakeDeployment(clock)
    alerts: list[Alert] = []
    return clock, deployment, alerts


def make_monitor(deployment, clock, alerts, **kwargs) -> Monitor:
    defaults: dict[str, Any] = {
        "window": 100,
        "min_calls": 20,
        "check_every": 1,
        "hooks": [alerts.append],
        "clock": clock,
    }
    return Monitor(deployment, **{**defaults, **kwargs})


def test_latency_over_budget_fires_one_alert_per_breach_and_again_only_after_recovery(setup):
    clock, deployment, alerts = setup
    monitor = make_monitor(deployment, clock, alerts, latency_budget_ms=50)

    for _ in range(150):
        monitor.predict_single({"age": 30})
    assert alerts == []

    deployment.latency_s = 0.200
    for _ in range(150):
        monitor.predict_single({"age": 30})
    assert [(a.rule, a.subject, a.firing) for a in alerts] == [("latency", "single", True)]
    assert alerts[0].message.startswith("latency p99 of single calls 200.0 ms exceeds budget 50.0")
    assert alerts[0].figures["p99_ms"] == pytest.approx(200.0)

    deployment.latency_s = 0.010
    for _ in range(150):
        monitor.predict_single({"age": 30})
    assert [a.firing for a in alerts] == [True, False]

    deployment.latency_s = 0.200
    for _ in range(150):
        monitor.predict_single({"age": 30})
    assert [a.firing for a in alerts] == [True, False, True]


def test_error_rate_counts_raised_calls_and_invalid_outputs(setup):
    clock, deployment, alerts = setup
    monitor = make_monitor(deployment, clock, alerts, max_error_rate=0.05, output_range=(0, 10))

    for i in range(100):
        deployment.fail = i % 10 == 0
        deployment.output = float("nan") if i % 10 == 5 else 1.0
        with contextlib.suppress(RuntimeError):
            monitor.predict_single({"age": 30})

    snap = monitor.snapshot()
    counts = (snap.calls, snap.failed_calls, snap.invalid_calls, snap.nan_outputs)
    assert counts == (100, 10, 10, 10)
    assert snap.error_rate == pytest.approx(0.2)
    assert [(a.rule, a.firing) for a in alerts] == [("error_rate", True)]
    assert "error rate 20.0% exceeds 5.0% over the last" in alerts[0].message

    deployment.fail, deployment.output = False, 1.0
    for _ in range(100):
        monitor.predict_single({"age": 30})
    assert [(a.rule, a.firing) for a in alerts] == [("error_rate", True), ("error_rate", False)]


def test_output_counters_separate_nan_inf_and_out_of_range_values(setup):
    clock, deployment, alerts = setup
    monitor = make_monitor(deployment, clock, alerts, output_range=(0, 1))
    rows = pd.DataFrame({"age": [1, 2, 3]})

    for value in (float("nan"), float("inf"), 3.0, 0.5):
        deployment.output = value
        monitor.batch_predict(rows)

    snap = monitor.snapshot()
    assert (snap.nan_outputs, snap.inf_outputs, snap.out_of_range_outputs) == (3, 3, 3)
    assert snap.invalid_calls == 3


def test_drift_alerts_once_per_drifted_window_for_that_feature_and_recovers(setup):
    clock, deployment, alerts = setup
    profile = build_profile(reference(5000, 1))
    monitor = make_monitor(deployment, clock, alerts, profile=profile, drift_window=1000)

    monitor.batch_predict(reference(1000, 2))
    assert alerts == []

    monitor.batch_predict(reference(1000, 3, shift=8.0))
    monitor.batch_predict(reference(1000, 4, shift=8.0))
    assert [(a.rule, a.subject, a.firing) for a in alerts] == [("drift", "age", True)]
    assert alerts[0].message.startswith("drift in 'age': PSI ")

    for row in reference(1000, 5).to_dict("records"):
        monitor.predict_single(row)
    assert [(a.subject, a.firing) for a in alerts] == [("age", True), ("age", False)]
    assert monitor.snapshot().drift_windows == 4


def test_prediction_drift_is_watched_when_the_monitor_knows_the_score(setup):
    clock, deployment, alerts = setup
    ref = reference(5000, 1)
    profile = build_profile(ref, predict=lambda d: np.full(len(d), 1.0) + d["age"].to_numpy() * 0)
    monitor = make_monitor(
        deployment, clock, alerts, profile=profile, drift_window=500, score=np.asarray
    )

    deployment.output = 3.0
    monitor.batch_predict(reference(500, 2))

    assert [(a.subject, a.firing) for a in alerts] == [("prediction", True)]


def test_the_default_hook_logs_and_a_failing_hook_does_not_break_serving(setup, caplog):
    clock, deployment, _ = setup

    def broken(alert: Alert) -> None:
        raise ValueError("pager is down")

    monitor = Monitor(
        deployment,
        latency_budget_ms=1,
        min_calls=1,
        check_every=1,
        clock=clock,
    )
    monitor.add_hook(broken)
    with caplog.at_level(logging.INFO, logger="deploy_gate.monitor"):
        assert monitor.predict_single({"age": 1}) == 1.0

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert next(r.getMessage() for r in warnings).startswith("latency p99 of single calls 10.0 ms")
    assert any("alert hook" in r.getMessage() and r.exc_info for r in caplog.records)


def test_the_monitor_stands_in_for_the_deployment(setup):
    clock, deployment, alerts = setup
    monitor = make_monitor(deployment, clock, alerts)

    monitor.load_model()
    monitor.batch_predict(pd.DataFrame({"age": [1, 2]}))

    assert deployment.loaded
    assert monitor.model_version == "v_test"
    assert monitor.get_model_metadata() == {"name": "fake"}
    assert monitor.get_latency_stats()["batch"]["count"] == 1
    assert monitor.get_latency_stats()["batch"]["p50_ms"] == pytest.approx(10.0)
    assert monitor.batch_predict_proba(pd.DataFrame({"age": [1]})).shape == (1, 2)


def test_bad_settings_are_config_errors_naming_the_setting(setup):
    _clock, deployment, _ = setup
    with pytest.raises(ConfigError, match="max_error_rate must be in"):
        Monitor(deployment, max_error_rate=1.5)
    with pytest.raises(ConfigError, match="latency_budget_ms: unknown call kind 'stream'"):
        Monitor(deployment, latency_budget_ms={"stream": 5})
    with pytest.raises(ConfigError, match="window must be a positive integer"):
        Monitor(deployment, window=0)


def test_prometheus_exposition_parses_and_carries_the_figures(setup):
    parser = pytest.importorskip("prometheus_client.parser")
    clock, deployment, alerts = setup
    profile = build_profile(reference(3000, 1))
    monitor = make_monitor(
        deployment,
        clock,
        alerts,
        profile=profile,
        drift_window=500,
        latency_budget_ms=50,
        prometheus=True,
    )
    for i in range(30):
        deployment.fail = i == 0
        with contextlib.suppress(RuntimeError):
            monitor.predict_single({"age": 40.0, "plan": "free"})
    deployment.fail = False
    monitor.batch_predict(reference(500, 2, shift=9.0))

    families = {f.name: f for f in parser.text_string_to_metric_families(monitor.metrics_text())}

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert families["deploy_gate_request_duration_seconds"].type == "histogram"
    assert samples[("deploy_gate_request_duration_seconds_count", (("kind", "single"),))] == 30
    assert samples[("deploy_gate_requests_total", (("kind", "single"),))] == 30
    assert samples[("deploy_gate_request_errors_total", (("kind", "single"),))] == 1
    assert samples[("deploy_gate_drift_detected", (("feature", "age"),))] == 1
    assert samples[("deploy_gate_drift_detected", (("feature", "plan"),))] == 0
    assert samples[("deploy_gate_drift_psi", (("feature", "age"),))] > 0.2
    assert samples[("deploy_gate_alerts_total", (("rule", "drift"),))] == 1
    quantile = (("kind", "single"), ("quantile", "0.99"))
    assert samples[("deploy_gate_latency_window_seconds", quantile)] == pytest.approx(0.01)


def test_prometheus_metrics_go_to_a_registry_the_caller_supplies(setup):
    prometheus_client = pytest.importorskip("prometheus_client")
    clock, deployment, alerts = setup
    registry = prometheus_client.CollectorRegistry()

    monitor = make_monitor(deployment, clock, alerts, prometheus=registry)
    monitor.predict_single({"age": 1})

    assert monitor.registry is registry
    assert registry.get_sample_value("deploy_gate_requests_total", {"kind": "single"}) == 1


def test_a_window_that_cannot_be_judged_is_logged_without_failing_the_request(setup, caplog):
    clock, deployment, alerts = setup
    profile = build_profile(reference(1000, 1))
    monitor = make_monitor(deployment, clock, alerts, profile=profile, drift_window=2)

    monitor.predict_single({"age": 30.0, "plan": "free"})
    with caplog.at_level(logging.ERROR, logger="deploy_gate.monitor"):
        assert monitor.predict_single({"age": "thirty", "plan": "free"}) == 1.0

    assert "drift check on the last window failed" in caplog.text
    assert "feature 'age' is numeric" in caplog.text
    assert alerts == []
