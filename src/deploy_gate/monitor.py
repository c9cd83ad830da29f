"""Runtime monitoring of a deployment: latency, invalid outputs, errors and input drift.

:class:`Monitor` wraps any deployment-like object (``predict_single(mapping)``,
``batch_predict(rows)``) and is used in its place. Every call feeds a latency tracker, output
validation counters and a window of inputs that is judged against a saved reference
:class:`~deploy_gate.drift.Profile`. Alert rules call hooks once when a breach starts and once
when it ends, never once per request. With the ``prometheus`` extra the same figures are
exported as Prometheus metrics.

The rows the monitor sees also make a profile of current data counted against the reference
(:meth:`Monitor.current_profile`, :meth:`Monitor.dump_profile`), in the format the gate and
``deploy-gate profile build`` read: serving processes feed the gate's drift checks without
copying their traffic anywhere.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np
import pandas as pd

from deploy_gate.drift import (
    DriftThresholds,
    FeatureDrift,
    Profile,
    drift_against_profile,
    prediction_drift_against_profile,
)
from deploy_gate.errors import ConfigError, DeployGateError
from deploy_gate.latency import LatencyTracker
from deploy_gate.profiles import CurrentProfileBuilder, merge
from deploy_gate.validation import as_array, numeric_view

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from deploy_gate.deployment import Deployment

logger = logging.getLogger("deploy_gate.monitor")

Rule: TypeAlias = Literal["latency", "error_rate", "drift"]
CallKind: TypeAlias = Literal["single", "batch"]

#: Latency histogram buckets in seconds (sub-millisecond models up to slow batch calls).
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


@dataclass(frozen=True)
class Alert:
    """A breach of an alert rule starting (``firing``) or ending (``firing=False``).

    ``subject`` is the call kind for latency (``single``/``batch``), ``all`` for the error rate
    and the feature name for drift; ``figures`` holds every number behind the verdict.
    """

    rule: Rule
    subject: str
    firing: bool
    value: float
    threshold: float
    message: str
    figures: Mapping[str, float] = field(default_factory=dict)
    at: float = 0.0


AlertHook: TypeAlias = Callable[[Alert], None]


def log_alert(alert: Alert) -> None:
    """The default hook: a warning when a breach starts, an info line when it ends."""
    level = logging.WARNING if alert.firing else logging.INFO
    logger.log(level, "%s", alert.message)


@dataclass(frozen=True)
class MonitorSnapshot:
    """The monitor's figures at one moment, for dashboards, health endpoints and tests."""

    calls: int
    failed_calls: int
    invalid_calls: int
    nan_outputs: int
    inf_outputs: int
    out_of_range_outputs: int
    error_rate: float
    latency: Mapping[str, Mapping[str, float]]
    drift: tuple[FeatureDrift, ...]
    drift_windows: int
    firing: tuple[str, ...]


class Monitor:
    """Wrap a deployment so that every call is measured, validated and checked for drift.

    ``latency_budget_ms`` is a p99 budget for every call kind, or a mapping such as
    ``{"single": 20, "batch": 500}``; ``max_error_rate`` bounds the share of calls that raised
    or returned NaN, Inf or out-of-range outputs. Both are judged over the last ``window`` calls
    once ``min_calls`` were seen, every ``check_every`` calls and on :meth:`check`. Drift is
    judged on tumbling windows of ``drift_window`` input rows against ``profile`` (PSI threshold
    ``drift_psi``, p-value ``drift_pvalue``); prediction drift too when ``score`` maps an output
    to the scores the profile was built with (see :func:`~deploy_gate.drift.prediction_scores`).

    ``hooks`` default to ``[log_alert]``; passing a list replaces it (include ``log_alert`` to
    keep logging). Hooks run outside the monitor's lock; one that raises is logged and does not
    disturb serving. ``prometheus=True`` exports metrics on a private ``CollectorRegistry``
    (``.registry``); pass a registry to use yours. ``clock`` (seconds) is injectable for tests.
    """

    def __init__(
        self,
        deployment: Deployment,
        profile: Profile | None = None,
        *,
        latency_budget_ms: float | Mapping[str, float] | None = None,
        max_error_rate: float | None = None,
        drift_psi: float = 0.2,
        drift_pvalue: float = 0.01,
        drift_thresholds: DriftThresholds | None = None,
        output_range: tuple[float, float] | None = None,
        score: Callable[[Any], ArrayLike] | None = None,
        window: int = 10_000,
        drift_window: int = 10_000,
        min_calls: int = 100,
        check_every: int = 100,
        hooks: Sequence[AlertHook] | None = None,
        prometheus: bool | Any = False,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        for name, value in (
            ("window", window),
            ("drift_window", drift_window),
            ("min_calls", min_calls),
            ("check_every", check_every),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if max_error_rate is not None and not 0 <= max_error_rate < 1:
            raise ConfigError(f"max_error_rate must be in [0, 1), got {max_error_rate!r}")
        if output_range is not None and not output_range[0] <= output_range[1]:
            raise ConfigError(f"output_range must be (low, high) with low <= high: {output_range}")
        self.deployment = deployment
        self.profile = profile
        self.budgets = self._budgets(latency_budget_ms)
        self.max_error_rate = max_error_rate
        self.thresholds = drift_thresholds or DriftThresholds(
            psi_threshold=drift_psi, pvalue=drift_pvalue
        )
        self.output_range = output_range
        self.score = score
        self.window = window
        self.drift_window = drift_window
        self.min_calls = min_calls
        self.check_every = check_every
        self.hooks: list[AlertHook] = list(hooks) if hooks is not None else [log_alert]
        self._clock = clock
        self._lock = threading.Lock()
        self._trackers: dict[str, LatencyTracker] = {
            "single": LatencyTracker(window=window),
            "batch": LatencyTracker(window=window),
        }
        self._bad: deque[bool] = deque(maxlen=window)
        self._bad_in_window = 0
        self._calls = 0
        self._failed = 0
        self._invalid = 0
        self._nan = 0
        self._inf = 0
        self._out_of_range = 0
        self._since_check = 0
        self._firing: dict[tuple[Rule, str], bool] = {}
        self._rows: list[Mapping[str, Any]] = []
        self._frames: list[pd.DataFrame] = []
        self._scores: list[np.ndarray] = []
        self._buffered = 0
        self._drift: tuple[FeatureDrift, ...] = ()
        self._drift_windows = 0
        self._profile_lock = threading.Lock()
        self._profile_builder: CurrentProfileBuilder | None = None
        # Rows of the open window already in a dumped profile (not to be counted again).
        self._profiled_open = 0
        self.registry: Any = None
        self._metrics: _Metrics | None = None
        if prometheus is not False and prometheus is not None:
            self._metrics = _Metrics(None if prometheus is True else prometheus)
            self.registry = self._metrics.registry

    @staticmethod
    def _budgets(budget: float | Mapping[str, float] | None) -> dict[str, float]:
        if budget is None:
            return {}
        items = (
            budget.items()
            if isinstance(budget, Mapping)
            else [("single", budget), ("batch", budget)]
        )
        out = {}
        for kind, ms in items:
            if kind not in ("single", "batch"):
                raise ConfigError(f"latency_budget_ms: unknown call kind {kind!r}")
            if not ms > 0:
                raise ConfigError(f"latency_budget_ms[{kind!r}] must be > 0, got {ms!r}")
            out[kind] = float(ms)
        return out

    # -- the deployment interface ----------------------------------------------------------

    def load_model(self) -> None:
        """Load the wrapped deployment's model."""
        self.deployment.load_model()

    @property
    def model_version(self) -> str:
        """The wrapped deployment's model version."""
        return str(self.deployment.model_version)

    def get_model_metadata(self) -> dict[str, Any]:
        """The wrapped deployment's metadata."""
        meta: dict[str, Any] = self.deployment.get_model_metadata()
        return meta

    def get_latency_stats(self) -> dict[str, dict[str, float]]:
        """Latency figures per call kind as measured by the monitor (count, mean, p50..max)."""
        return {kind: tracker.stats() for kind, tracker in self._trackers.items()}

    def predict_single(self, features: Mapping[str, Any]) -> Any:
        """Predict one row through the deployment, measuring and validating the call."""
        out = self._call("single", self.deployment.predict_single, features, 1)
        if self.profile is not None:
            self._buffer(rows=[dict(features)], frame=None, output=out, single=True)
        return out

    def batch_predict(self, rows: Any) -> Any:
        """Predict many rows through the deployment, measuring and validating the call."""
        n = len(rows)
        out = self._call("batch", self.deployment.batch_predict, rows, n)
        if self.profile is not None:
            if isinstance(rows, pd.DataFrame):
                self._buffer(rows=None, frame=rows, output=out, single=False)
            else:
                self._buffer(rows=[dict(r) for r in rows], frame=None, output=out, single=False)
        return out

    def __getattr__(self, name: str) -> Any:
        # Anything else (batch_predict_proba, feature_names, ...) is the deployment's, unmonitored.
        if name.startswith("_") or name == "deployment":
            raise AttributeError(name)
        return getattr(self.deployment, name)

    # -- measuring ---------------------------------------------------------------------------

    def _call(self, kind: CallKind, fn: Callable[[Any], Any], arg: Any, n_rows: int) -> Any:
        start = self._clock()
        try:
            out = fn(arg)
        except Exception:
            self._record(kind, self._clock() - start, None, failed=True)
            raise
        self._record(kind, self._clock() - start, out, failed=False)
        return out

    def _record(self, kind: CallKind, seconds: float, output: Any, *, failed: bool) -> None:
        nan = inf = out_of_range = 0
        if output is not None:
            values = numeric_view(as_array(output))
            if values is not None:
                finite = np.isfinite(values)
                nan = int(np.count_nonzero(np.isnan(values)))
                inf = int(values.size - np.count_nonzero(finite)) - nan
                if self.output_range is not None:
                    lo, hi = self.output_range
                    with np.errstate(invalid="ignore"):
                        out_of_range = int(
                            np.count_nonzero(finite & ((values < lo) | (values > hi)))
                        )
        invalid = bool(nan or inf or out_of_range)
        self._trackers[kind].record(seconds)
        with self._lock:
            self._calls += 1
            self._failed += failed
            self._invalid += invalid
            self._nan += nan
            self._inf += inf
            self._out_of_range += out_of_range
            bad = failed or invalid
            if len(self._bad) == self._bad.maxlen:
                self._bad_in_window -= self._bad[0]
            self._bad.append(bad)
            self._bad_in_window += bad
            self._since_check += 1
            due = self._since_check >= self.check_every
        if self._metrics is not None:
            self._metrics.observe_call(kind, seconds, failed, nan, inf, out_of_range)
        if due:
            self.check()

    def _buffer(
        self,
        *,
        rows: list[Mapping[str, Any]] | None,
        frame: pd.DataFrame | None,
        output: Any,
        single: bool,
    ) -> None:
        scores = None
        if (
            self.score is not None
            and self.profile is not None
            and self.profile.prediction is not None
        ):
            try:
                raw = self.score([output] if single else output)
                scores = np.asarray(raw, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                # Monitoring must never break serving: this call's scores are skipped.
                logger.exception("score() failed on an output; prediction drift skips it")
        with self._lock:
            if rows is not None:
                self._rows.extend(rows)
                self._buffered += len(rows)
            if frame is not None:
                self._frames.append(frame)
                self._buffered += len(frame)
            if scores is not None:
                self._scores.append(scores)
            due = self._buffered >= self.drift_window
        if due:
            try:
                self.check_drift()
            except DeployGateError:
                # Bad inputs (e.g. text in a numeric feature) must not fail the request that
                # happened to close the window; check_drift() called directly still raises.
                logger.exception("drift check on the last window failed")

    # -- rules -------------------------------------------------------------------------------

    def check(self) -> list[Alert]:
        """Judge the latency and error-rate rules now; returns the alerts it raised."""
        with self._lock:
            self._since_check = 0
            calls_in_window = len(self._bad)
            rate = self._bad_in_window / calls_in_window if calls_in_window else 0.0
            failed, invalid = self._failed, self._invalid
        stats = self.get_latency_stats()
        alerts: list[Alert] = []
        for kind, budget in self.budgets.items():
            s = stats[kind]
            n = min(int(s["count"]), self.window)
            if n < self.min_calls:
                continue
            p99 = s["p99_ms"]
            figures = {k: float(v) for k, v in s.items()}
            figures["budget_ms"] = budget
            if p99 > budget:
                msg = (
                    f"latency p99 of {kind} calls {p99:.1f} ms exceeds budget {budget:.1f} ms "
                    f"(n={n} calls in window, max {s['max_ms']:.1f} ms)"
                )
            else:
                msg = f"latency p99 of {kind} calls back to {p99:.1f} ms, within {budget:.1f} ms"
            alerts += self._transition("latency", kind, p99 > budget, p99, budget, msg, figures)
        if self.max_error_rate is not None and calls_in_window >= self.min_calls:
            limit = self.max_error_rate
            figures = {
                "error_rate": rate,
                "calls_in_window": float(calls_in_window),
                "failed_calls": float(failed),
                "invalid_calls": float(invalid),
            }
            if rate > limit:
                msg = (
                    f"error rate {rate:.1%} exceeds {limit:.1%} over the last {calls_in_window} "
                    f"calls ({failed} raised, {invalid} gave NaN/Inf/out-of-range outputs so far)"
                )
            else:
                msg = f"error rate back to {rate:.1%}, within {limit:.1%}"
            alerts += self._transition("error_rate", "all", rate > limit, rate, limit, msg, figures)
        if self._metrics is not None:
            self._metrics.set_window(stats, rate)
        self._dispatch(alerts)
        return alerts

    def check_drift(self) -> list[Alert]:
        """Judge the buffered input rows against the profile now (ends the current window)."""
        if self.profile is None:
            return []
        with self._lock:
            rows, frames, scores = self._rows, self._frames, self._scores
            self._rows, self._frames, self._scores, self._buffered = [], [], [], 0
        parts = ([pd.DataFrame(rows)] if rows else []) + frames
        if not parts:
            return []
        frame = self._window_frame(parts)
        self._feed_profile(frame, scores)
        results = drift_against_profile(self.profile, frame, thresholds=self.thresholds)
        if scores and self.profile.prediction is not None:
            results.append(
                prediction_drift_against_profile(
                    self.profile, np.concatenate(scores), thresholds=self.thresholds
                )
            )
        with self._lock:
            self._drift = tuple(results)
            self._drift_windows += 1
        alerts: list[Alert] = []
        for r in results:
            figures = {
                "psi": r.psi,
                "statistic": r.statistic,
                "pvalue": r.pvalue,
                "effect": r.effect,
                "n_reference": float(r.n_reference),
                "n_current": float(r.n_current),
            }
            msg = r.message if not r.passed else f"drift in {r.feature!r} recovered: {r.message}"
            alerts += self._transition(
                "drift", r.feature, not r.passed, r.psi, r.psi_threshold, msg, figures
            )
        if self._metrics is not None:
            self._metrics.set_drift(results)
        self._dispatch(alerts)
        return alerts

    def _window_frame(self, parts: list[pd.DataFrame]) -> pd.DataFrame:
        assert self.profile is not None
        frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        # A feature absent from the requests is all missing, which is drift worth reporting.
        return frame.reindex(columns=list(self.profile.feature_names))

    def _feed_profile(self, frame: pd.DataFrame, scores: list[np.ndarray]) -> None:
        assert self.profile is not None
        with self._profile_lock:
            if self._profile_builder is None:
                self._profile_builder = CurrentProfileBuilder(self.profile)
            builder = self._profile_builder
            skip, self._profiled_open = self._profiled_open, 0
            try:
                builder.add(frame.iloc[skip:], what="the monitored requests")
                if scores and self.profile.prediction is not None:
                    builder.add_scores(np.concatenate(scores)[skip:])
            except DeployGateError:
                # Rows the drift check refuses (text in a numeric feature) poison the profile
                # too: start it again rather than dump counts of half a window.
                self._profile_builder = None
                raise

    def current_profile(self, *, reset: bool = False) -> Profile:
        """The profile of every input row seen since the last reset (closed drift windows and
        the open one), counted against the reference profile, with a sample of rows.

        ``reset=True`` starts the next profile empty. A ``ConfigError`` without a reference.
        """
        if self.profile is None:
            raise ConfigError("a current profile is counted against a reference: pass profile=")
        with self._lock, self._profile_lock:
            rows, frames, scores = list(self._rows), list(self._frames), list(self._scores)
            builder = self._profile_builder
            skip = self._profiled_open
            if reset:
                self._profile_builder = None
                self._profiled_open = len(rows) + sum(len(f) for f in frames)
        closed = (builder or CurrentProfileBuilder(self.profile)).finish()
        parts = ([pd.DataFrame(rows)] if rows else []) + frames
        if not parts:
            return closed
        open_window = CurrentProfileBuilder(self.profile)
        open_window.add(self._window_frame(parts).iloc[skip:], what="the monitored requests")
        if scores and self.profile.prediction is not None:
            open_window.add_scores(np.concatenate(scores)[skip:])
        return merge(closed, open_window.finish())

    def dump_profile(self, path: str | os.PathLike[str], *, reset: bool = True) -> Profile:
        """Write :meth:`current_profile` to ``path`` (JSON) and, by default, start a new one.

        Merge the dumps of many serving processes with ``deploy-gate profile build DUMPS...
        --reference REF.json -o current.json`` and gate on it with ``--deploy-gate-current``.
        """
        profile = self.current_profile(reset=reset)
        profile.save(path)
        return profile

    def _transition(
        self,
        rule: Rule,
        subject: str,
        breached: bool,
        value: float,
        threshold: float,
        message: str,
        figures: Mapping[str, float],
    ) -> list[Alert]:
        with self._lock:
            was = self._firing.get((rule, subject), False)
            if was == breached:
                return []
            self._firing[(rule, subject)] = breached
        return [Alert(rule, subject, breached, value, threshold, message, figures, time.time())]

    def _dispatch(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            if self._metrics is not None and alert.firing:
                self._metrics.count_alert(alert.rule)
            for hook in list(self.hooks):
                try:
                    hook(alert)
                except Exception:
                    logger.exception("alert hook %r failed on: %s", hook, alert.message)

    # -- reading -----------------------------------------------------------------------------

    def add_hook(self, hook: AlertHook) -> None:
        """Register another alert hook (called with each :class:`Alert`)."""
        self.hooks.append(hook)

    def snapshot(self) -> MonitorSnapshot:
        """All figures now."""
        latency = self.get_latency_stats()
        with self._lock:
            n = len(self._bad)
            return MonitorSnapshot(
                calls=self._calls,
                failed_calls=self._failed,
                invalid_calls=self._invalid,
                nan_outputs=self._nan,
                inf_outputs=self._inf,
                out_of_range_outputs=self._out_of_range,
                error_rate=self._bad_in_window / n if n else 0.0,
                latency=latency,
                drift=self._drift,
                drift_windows=self._drift_windows,
                firing=tuple(f"{r}:{s}" for (r, s), on in self._firing.items() if on),
            )

    def metrics_text(self) -> str:
        """The Prometheus exposition text of this monitor's registry."""
        if self._metrics is None:
            raise ConfigError("Prometheus export is off: create the Monitor with prometheus=True")
        return self._metrics.exposition()


class _Metrics:
    """The Prometheus side; prometheus_client is imported only when export is asked for."""

    def __init__(self, registry: Any) -> None:
        try:
            import prometheus_client as prom
        except ImportError as exc:
            raise ConfigError(
                "Prometheus export needs prometheus_client: "
                "pip install 'pytest-deploy-gate[prometheus]'"
            ) from exc
        self._prom = prom
        self.registry = registry if registry is not None else prom.CollectorRegistry()
        r = self.registry
        self.latency = prom.Histogram(
            "deploy_gate_request_duration_seconds",
            "Duration of prediction calls through the monitored deployment.",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = prom.Counter(
            "deploy_gate_requests", "Prediction calls.", ["kind"], registry=r
        )
        self.errors = prom.Counter(
            "deploy_gate_request_errors", "Prediction calls that raised.", ["kind"], registry=r
        )
        self.invalid = prom.Counter(
            "deploy_gate_invalid_outputs",
            "Output values that are NaN, Inf or outside the configured range.",
            ["reason"],
            registry=r,
        )
        self.window_latency = prom.Gauge(
            "deploy_gate_latency_window_seconds",
            "Latency percentiles over the monitor's window of recent calls.",
            ["kind", "quantile"],
            registry=r,
        )
        self.error_rate = prom.Gauge(
            "deploy_gate_error_rate",
            "Share of recent calls that raised or gave invalid outputs.",
            registry=r,
        )
        self.psi = prom.Gauge(
            "deploy_gate_drift_psi", "PSI of the last drift window.", ["feature"], registry=r
        )
        self.pvalue = prom.Gauge(
            "deploy_gate_drift_pvalue",
            "p-value (KS or chi-square) of the last drift window.",
            ["feature"],
            registry=r,
        )
        self.effect = prom.Gauge(
            "deploy_gate_drift_effect",
            "Effect size (KS D or Cramer's V) of the last drift window.",
            ["feature"],
            registry=r,
        )
        self.drifted = prom.Gauge(
            "deploy_gate_drift_detected",
            "1 when the feature drifted in the last window, else 0.",
            ["feature"],
            registry=r,
        )
        self.alerts = prom.Counter(
            "deploy_gate_alerts", "Alerts fired (breaches started).", ["rule"], registry=r
        )

    def observe_call(
        self, kind: str, seconds: float, failed: bool, nan: int, inf: int, out_of_range: int
    ) -> None:
        self.latency.labels(kind).observe(seconds)
        self.requests.labels(kind).inc()
        if failed:
            self.errors.labels(kind).inc()
        for reason, n in (("nan", nan), ("inf", inf), ("out_of_range", out_of_range)):
            if n:
                self.invalid.labels(reason).inc(n)

    def set_window(self, stats: Mapping[str, Mapping[str, float]], rate: float) -> None:
        for kind, s in stats.items():
            if not s["count"]:
                continue
            for label, key in (("0.5", "p50_ms"), ("0.95", "p95_ms"), ("0.99", "p99_ms")):
                self.window_latency.labels(kind, label).set(s[key] / 1e3)
            self.window_latency.labels(kind, "1").set(s["max_ms"] / 1e3)
        self.error_rate.set(rate)

    def set_drift(self, results: Sequence[FeatureDrift]) -> None:
        for r in results:
            self.psi.labels(r.feature).set(r.psi)
            self.pvalue.labels(r.feature).set(r.pvalue)
            self.effect.labels(r.feature).set(r.effect)
            self.drifted.labels(r.feature).set(0 if r.passed else 1)

    def count_alert(self, rule: str) -> None:
        self.alerts.labels(rule).inc()

    def exposition(self) -> str:
        text: bytes = self._prom.generate_latest(self.registry)
        return text.decode("utf-8")


__all__ = ["LATENCY_BUCKETS", "Alert", "AlertHook", "Monitor", "MonitorSnapshot", "log_alert"]
