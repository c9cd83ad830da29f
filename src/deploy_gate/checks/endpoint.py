"""Checks of a live serving endpoint (``--deploy-gate-endpoint``), and which built-in checks run
against it.

An endpoint is one more implementation of the deployment protocol, so the smoke and output checks
and ``errors[reordered-columns]`` run against it unchanged. What only makes sense over HTTP is
here: readiness, metadata, how the server answers bad requests (a 4xx with a message, never a
5xx, a hang or a silent prediction), latency seen by clients under concurrency, and whether it
serves the approved artifact. Checks about an artifact file (load, missing file, predict before
load, version id, pinned hash) and those that compare artifacts (baseline, rollout, drift) do not
apply to a server; neither do ``errors[unknown-feature]`` (a JSON API may ignore extra fields)
and ``errors[input-mutation]`` (a request is a copy).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from deploy_gate import validation as v
from deploy_gate.checks import Check, applicable
from deploy_gate.checks.common import (
    first_row,
    numeric_feature,
    output_tolerance,
    same_outputs,
    show,
)
from deploy_gate.errors import CheckFailure, ConfigError, describe_exc

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

    from deploy_gate.artifact import ModelProfile
    from deploy_gate.data import GateData
    from deploy_gate.deployment import Deployment, ProbabilisticDeployment
    from deploy_gate.endpoint import protocols as wire
    from deploy_gate.endpoint.client import EndpointDeployment
    from deploy_gate.endpoint.errors import EndpointRejected
    from deploy_gate.endpoint.target import EndpointModel, EndpointTarget
    from deploy_gate.gate import Gate
    from deploy_gate.latency import LatencyMeasurement, LatencySettings
    from deploy_gate.ledger import LedgerEntry
    from deploy_gate.options import Settings

#: Built-in checks that run against an endpoint as they are.
SHARED = (
    "smoke[inference-single]",
    "smoke[output-valid]",
    "smoke[batch]",
    "smoke[batch-consistency]",
    "smoke[deterministic]",
    "smoke[latency-sanity]",
    "errors[reordered-columns]",
)
PERCENTILES = ("p50", "p95", "p99")
#: Rows per request of version[matches-artifact].
CHUNK = 1000
#: Rows version[matches-artifact] sends at most.
MAX_MATCH_ROWS = 20_000
DEFAULT_BUDGET_MS = 500.0
_PLURAL = {"prediction": "predictions", "probability": "probabilities"}
_VERSION_ID = re.compile(r"^v_\d{8}T\d{6}Z_([0-9a-f]{8})$")

NOT_A_NUMBER = "deploy-gate-not-a-number"


def endpoint_budgets(settings: Settings, concurrency: int) -> dict[str, float | None]:
    """Budgets per percentile at ``concurrency``: p99 500 ms unless configured; a budget with
    ``@N`` beats one without."""
    budgets: dict[str, float | None] = {"p99": DEFAULT_BUDGET_MS}
    given = list(settings.endpoint_latency_budget or ())
    for label, level, value in given:
        if level is None:
            budgets[label] = value
    for label, level, value in given:
        if level == concurrency:
            budgets[label] = value
    return budgets


def endpoint_latency_sanity(
    deployment: Deployment,
    deploy_gate_data: GateData,
    deploy_gate_settings: Settings,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """Mean single-row latency is under a generous budget: deploy_gate_smoke_latency_ms if
    set, else the larger of its default and the endpoint's p99 budget of single requests."""
    from deploy_gate.checks.smoke import smoke_latency_sanity

    settings = deploy_gate_settings
    if settings.source("smoke_latency_ms") == "default":
        # Every request crosses a network and a server: a model's 100 ms for one row in
        # process would block a service its own latency budget (500 ms) approves.
        p99 = endpoint_budgets(settings, 1).get("p99")
        budget = max(float(settings.smoke_latency_ms), p99 or 0.0)
        settings = dataclasses.replace(settings, smoke_latency_ms=budget)
    smoke_latency_sanity(deployment, deploy_gate_data, settings, deploy_gate_property)


# -- the catalogue --------------------------------------------------------------------------
def endpoint_checks(
    profile: ModelProfile | None, settings: Settings, *, with_artifact: bool
) -> list[Check]:
    """The checks of one endpoint, ``profile`` being the model it serves (None: unusable)."""
    from deploy_gate.checks import output, smoke

    checks = [Check("smoke", "ready", endpoint_ready)]
    shared = {c.name: c for c in applicable(smoke.checks(profile, settings), profile, settings)}
    if "smoke[latency-sanity]" in shared:
        shared["smoke[latency-sanity]"] = Check("smoke", "latency-sanity", endpoint_latency_sanity)
    checks += [shared[name] for name in SHARED if name.startswith("smoke") and name in shared]
    checks += applicable(output.checks(profile, settings), profile, settings)
    for level in settings.endpoint_concurrency or ():
        labels = dict.fromkeys([*PERCENTILES, *endpoint_budgets(settings, level)])
        checks += [
            Check("latency", f"{label}-c={level}", _latency_check(label, level)) for label in labels
        ]
    checks += [
        Check("errors", "missing-feature", errors_missing_feature),
        Check("errors", "wrong-dtype", errors_wrong_dtype),
        Check("errors", "nan-input", errors_nan_input),
        Check("errors", "empty-batch", errors_empty_batch),
        Check("errors", "malformed-body", errors_malformed_body),
    ]
    if "errors[reordered-columns]" in shared:
        checks.append(shared["errors[reordered-columns]"])
    checks.append(Check("version", "metadata", endpoint_metadata))
    if with_artifact:
        checks.append(Check("version", "matches-artifact", endpoint_matches_artifact))
    return checks


def bind(check: Check, target: EndpointTarget) -> Callable[..., None]:
    """``check`` as an item's function for ``target``: ``deployment`` is the endpoint,
    ``deploy_gate_data`` its rows, ``model_artifact`` the model it is meant to serve;
    every other fixture comes from pytest as usual."""
    names = list(inspect.signature(check.func).parameters)

    def run(request: pytest.FixtureRequest) -> None:
        kwargs: dict[str, Any] = {}
        for name in names:
            if name == "endpoint_target":
                kwargs[name] = target
            elif name == "deployment":
                kwargs[name] = _usable(target)
            elif name == "deploy_gate_data":
                kwargs[name] = _data(target)
            elif name == "model_artifact":
                from deploy_gate.endpoint.target import EndpointModel

                _usable(target)
                profile = target.profile
                assert profile is not None  # usable endpoints have one
                kwargs[name] = EndpointModel(profile)
            else:
                kwargs[name] = request.getfixturevalue(name)
        check.func(**kwargs)

    run.__name__ = check.func.__name__
    run.__doc__ = check.func.__doc__
    run.__module__ = check.func.__module__
    return run


def _usable(target: EndpointTarget) -> EndpointDeployment:
    if target.error is not None:
        pytest.skip(
            f"{target.spec.url} is not usable ({describe_exc(target.error)}); see smoke[ready]"
        )
    return target.deployment


def _data(target: EndpointTarget) -> GateData:
    from deploy_gate.errors import DataError

    _usable(target)
    try:
        data = target.data()
    except DataError as exc:
        pytest.fail(str(exc), pytrace=False)
    if isinstance(data, str):
        pytest.skip(data)
    return data


# -- readiness and metadata -----------------------------------------------------------------
def endpoint_ready(
    endpoint_target: EndpointTarget, deploy_gate_property: Callable[[str, object], None]
) -> None:
    """The server is reachable, speaks its protocol and says the model is ready."""
    deploy_gate_property("url", endpoint_target.spec.url)
    error = endpoint_target.error
    if error is not None:
        from deploy_gate.endpoint.errors import EndpointError

        if isinstance(error, (EndpointError, ConfigError)):
            raise CheckFailure(str(error))
        raise CheckFailure(f"{endpoint_target.spec.url}: {describe_exc(error)}")
    deploy_gate_property("protocol", endpoint_target.deployment.protocol)


def endpoint_metadata(
    endpoint_target: EndpointTarget,
    deployment: EndpointDeployment,
    deploy_gate_data: GateData,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """The server's metadata (inputs, outputs, version) agrees with the model it must serve."""
    meta = deployment.fetch_metadata()
    for key in ("name", "version", "sha256", "platform"):
        value = getattr(meta, key)
        if value:
            deploy_gate_property(f"server_{key}", value)
    if meta.outputs:
        deploy_gate_property("server_outputs", ", ".join(meta.outputs))
    if deployment.protocol == "mlflow":
        deploy_gate_property("note", "MLflow's scoring server serves no model metadata")
        return
    problems = []
    if meta.features is not None:
        deploy_gate_property("server_inputs", ", ".join(meta.features))
        expected = [str(c) for c in deploy_gate_data.features.columns]
        missing = [n for n in expected if n not in meta.features]
        extra = [n for n in meta.features if n not in expected]
        if missing or extra:
            problems.append(
                "inputs differ from the model's features: "
                + "; ".join(
                    part
                    for part in (
                        f"not declared {', '.join(map(repr, missing))}" if missing else "",
                        f"unknown {', '.join(map(repr, extra))}" if extra else "",
                    )
                    if part
                )
            )
    artifact = endpoint_target.artifact
    theirs = artifact.profile.classes if artifact is not None else None
    if (
        meta.classes is not None
        and theirs is not None
        and [str(c) for c in meta.classes] != [str(c) for c in theirs]
    ):
        problems.append(
            f"classes {list(meta.classes)!r} differ from the artifact's {list(theirs)!r}"
        )
    if problems:
        raise CheckFailure(f"{deployment.url} metadata: " + "; ".join(problems))


# -- served equals approved -----------------------------------------------------------------
def endpoint_matches_artifact(
    endpoint_target: EndpointTarget,
    deployment: EndpointDeployment,
    deploy_gate_data: GateData,
    deploy_gate: Gate,
    deploy_gate_factory: Callable[[Path], Deployment],
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """The endpoint serves the approved artifact: same outputs on the holdout rows (within the
    tolerance of their dtype), and the same sha256 / version where the server states one."""
    import numpy as np

    artifact = endpoint_target.artifact
    if artifact is None:
        pytest.skip("no artifact in this run to compare the endpoint with")

    approved = deploy_gate.loaded(deploy_gate_factory, artifact.path)
    rows = deploy_gate_data.features.iloc[:MAX_MATCH_ROWS]
    deploy_gate_property("rows_compared", len(rows))
    deploy_gate_property("artifact_sha256", artifact.sha256)
    problems: list[str] = []
    problems += _identity_problems(deploy_gate, deployment, artifact.sha256, artifact.version_id)
    for name, value in _identity(deployment).items():
        deploy_gate_property(f"server_{name}", value)

    from deploy_gate.checks.common import has_proba

    # The artifact's probabilities, when both the server and the artifact's deployment give them.
    prober: ProbabilisticDeployment | None = (
        approved if deployment.supports_proba and has_proba(approved) else None
    )
    use_proba = prober is not None
    served_pred, served_proba = [], []
    for start in range(0, len(rows), CHUNK):
        chunk = rows.iloc[start : start + CHUNK]
        answer = deployment._predict(deployment._frame(chunk), proba=use_proba, kind="batch")
        problem = v.length_problem(answer.predictions, len(chunk))
        if problem is not None:
            raise CheckFailure(
                f"{deployment.url} answered rows {start}-{start + len(chunk) - 1}: {problem} "
                "(see smoke[batch])"
            )
        served_pred.append(answer.predictions)
        if answer.proba is not None:
            served_proba.append(answer.proba)
    pairs: list[tuple[str, np.ndarray, np.ndarray]] = [
        ("prediction", np.concatenate(served_pred), v.as_array(approved.batch_predict(rows)))
    ]
    if prober is not None and len(served_proba) == len(served_pred):
        pairs.append(
            (
                "probability",
                np.concatenate(served_proba),
                v.as_array(prober.batch_predict_proba(rows)),
            )
        )
    for what, served, expected in pairs:
        if served.shape != expected.shape:
            problems.append(
                f"{what} shape {served.shape} differs from the artifact's {expected.shape}"
            )
            continue
        tolerance = output_tolerance(served, expected)
        deploy_gate_property(f"{what}_tolerance", str(tolerance))
        differ = [int(i) for i in np.flatnonzero(~same_outputs(served, expected, tolerance))]
        if differ:
            lines = "\n".join(
                f"  row {i}: served {show(served[i])}, artifact {show(expected[i])}"
                for i in differ[:10]
            )
            problems.append(
                f"{_PLURAL[what]} differ on {v.describe_rows(differ, len(rows))} "
                f"({tolerance})\n{lines}"
            )
    if problems:
        head, *rest = problems
        first, _, detail = head.partition("\n")
        more = [p.partition("\n")[0] for p in rest]
        raise CheckFailure(
            f"{deployment.url} does not serve {artifact.path.name}: {first}"
            + "".join(f"\n  also: {m}" for m in more)
            + (f"\n{detail}" if detail else "")
        )


def _identity(deployment: EndpointDeployment) -> dict[str, str]:
    meta = deployment.metadata
    found = {}
    if meta is not None and meta.sha256:
        found["sha256"] = meta.sha256
    version = deployment.last_version or (meta.version if meta is not None else None)
    if version:
        found["version"] = version
    return found


def _identity_problems(
    gate: Gate, deployment: EndpointDeployment, sha256: str, version_id: str
) -> list[str]:
    """What the server says about its model that contradicts the artifact: another sha256, or
    a gate version id of other bytes (naming the ledger's version when that is what it serves)."""
    stated = _identity(deployment)
    current = _ledger_current(gate)
    problems = []
    sha = stated.get("sha256", "").lower()
    if sha and sha != sha256:
        problems.append(
            f"it reports sha256 {sha[:12]}..., the artifact's is {sha256[:12]}..."
            + _ledger_note(current, sha)
        )
    version = stated.get("version", "")
    match = _VERSION_ID.match(version)
    if match and not sha256.startswith(match.group(1)):
        problems.append(
            f"it reports version {version}, whose hash is not the artifact's ({version_id})"
            + _ledger_note(current, None, version)
        )
    return problems


def _ledger_current(gate: Gate) -> LedgerEntry | None:
    from deploy_gate.errors import LedgerError
    from deploy_gate.ledger import Ledger

    ledger = Ledger(gate.settings.ledger)
    try:
        return ledger.current() if ledger.exists() else None
    except (LedgerError, OSError):
        return None


def _ledger_note(current: LedgerEntry | None, sha: str | None, version: str | None = None) -> str:
    if current is None:
        return ""
    if (sha and current.sha256 == sha) or (version and current.version == version):
        return f" (the ledger's current version {current.version}: the old model is still served)"
    return ""


# -- bad requests ---------------------------------------------------------------------------
def _refused(what: str, send: Callable[[], object]) -> EndpointRejected:
    """Send a request the server must refuse: return the refusal, or fail saying what came back
    instead (a prediction, a 5xx, a hang)."""
    from deploy_gate.endpoint.errors import EndpointError, EndpointRejected

    try:
        result = send()
    except EndpointRejected as exc:
        if not exc.detail:
            raise CheckFailure(
                f"{what} got HTTP {exc.status} without a message: a client cannot tell what "
                "was wrong"
            ) from None
        return exc
    except EndpointError as exc:
        raise CheckFailure(f"{what}: {exc}; expected a 4xx with a message") from None
    raise CheckFailure(
        f"{what} was accepted silently: the server returned {show(result)}; "
        "expected a 4xx with a message"
    )


def errors_missing_feature(
    deployment: EndpointDeployment,
    deploy_gate_data: GateData,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """A row without one of the features gets a 4xx with a message, not a prediction."""
    row = first_row(deploy_gate_data)
    name = list(row)[-1]
    del row[name]
    refusal = _refused(f"a row without feature {name!r}", lambda: deployment.predict_single(row))
    deploy_gate_property("status", refusal.status)
    deploy_gate_property("names_feature", name in refusal.detail)


def errors_wrong_dtype(
    deployment: EndpointDeployment,
    deploy_gate_data: GateData,
    deploy_gate_property: Callable[[str, object], None],
) -> None:
    """A string in a numeric feature gets a 4xx with a message, not a prediction."""
    column = numeric_feature(deploy_gate_data)
    row = {**first_row(deploy_gate_data), str(column): NOT_A_NUMBER}
    refusal = _refused(
        f"a string ({NOT_A_NUMBER!r}) in numeric feature {column!r}",
        lambda: deployment.predict_single(row),
    )
    deploy_gate_property("status", refusal.status)


def errors_nan_input(
    deployment: EndpointDeployment,
    deploy_gate_data: GateData,
    model_artifact: EndpointModel,
) -> None:
    """A missing value (JSON null) in any feature gets a valid prediction or a 4xx with a
    message, never a 5xx, a hang or an invalid output."""
    from deploy_gate.endpoint.errors import EndpointError, EndpointRejected, EndpointTimeout

    features = deploy_gate_data.features
    base = first_row(deploy_gate_data)
    classes = deployment.classes or model_artifact.profile.classes
    failures: list[str] = []
    for column in features.columns:
        row = {**base, str(column): None}
        try:
            answer = deployment.predict_both(deployment._frame([row]))
        except EndpointRejected as exc:
            if not exc.detail:
                failures.append(f"  {column}=null: HTTP {exc.status} without a message")
            continue
        except EndpointTimeout as exc:
            failures.append(f"  {column}=null: {exc}")
            break  # a hung server would take the timeout once per feature
        except EndpointError as exc:
            failures.append(f"  {column}=null: {exc}")
            continue
        problems = v.find_problems(
            answer.predictions, n_rows=1, proba=answer.proba, classes=classes
        )
        if problems:
            failures.append(
                f"  {column}=null: invalid output {show(answer.predictions)} "
                f"({'; '.join(map(str, problems))})"
            )
    if failures:
        raise CheckFailure(
            f"a missing value was mishandled for {len(failures)} of {len(features.columns)} "
            "features (expected a valid prediction or a 4xx with a message)\n" + "\n".join(failures)
        )


def errors_empty_batch(deployment: EndpointDeployment, deploy_gate_data: GateData) -> None:
    """An empty batch gets an empty result or a 4xx with a message."""
    from deploy_gate.endpoint.errors import EndpointError, EndpointRejected

    empty = deploy_gate_data.features.iloc[:0]
    try:
        out = deployment.batch_predict(empty)
    except EndpointRejected as exc:
        if not exc.detail:
            raise CheckFailure(f"an empty batch got HTTP {exc.status} without a message") from None
        return
    except EndpointError as exc:
        raise CheckFailure(
            f"an empty batch: {exc}; expected an empty result or a 4xx with a message"
        ) from None
    if out.ndim == 0 or len(out) != 0:
        raise CheckFailure(f"an empty batch returned {show(out)}, expected an empty result")


def errors_malformed_body(
    deployment: EndpointDeployment, deploy_gate_property: Callable[[str, object], None]
) -> None:
    """A body that is not JSON, and JSON of the wrong shape, get a 4xx with a message."""
    from deploy_gate.endpoint.client import raise_for_status
    from deploy_gate.endpoint.protocols import malformed_requests

    for what, request, raw in malformed_requests(deployment.protocol, deployment.url):

        def send(request: wire.Request = request, raw: bytes | None = raw) -> str:
            exchange = deployment.send(request, raw)
            raise_for_status(request, exchange)
            return exchange.text[:200]

        refusal = _refused(f"{what} sent to {request.url}", send)
        deploy_gate_property(f"status ({what})", refusal.status)


# -- latency under concurrency --------------------------------------------------------------
def _latency_check(label: str, concurrency: int) -> Callable[..., None]:
    def latency(
        endpoint_target: EndpointTarget,
        deployment: EndpointDeployment,
        deploy_gate_data: GateData,
        deploy_gate: Gate,
        deploy_gate_property: Callable[[str, object], None],
    ) -> None:
        from deploy_gate.checks.latency import judge_latency

        measurement = concurrent_measurement(
            deploy_gate, endpoint_target, deploy_gate_data, concurrency
        )
        verdict = measurement.verdict(label)
        rounds = [round(float(x), 6) for x in measurement.round_values_ms(label)]
        deploy_gate_property("round_values_ms", json.dumps(rounds))
        deploy_gate_property("concurrency", concurrency)
        figures = measurement.figures()
        seconds = float(figures.get("seconds", 0.0)) or 1.0
        deploy_gate_property("requests_per_s", round(int(figures.get("calls", 0)) / seconds, 1))
        overhead = client_overhead_ms(deploy_gate, endpoint_target, deploy_gate_data)
        deploy_gate_property("client_overhead_p50_ms", round(overhead, 4))
        note = (
            f"{concurrency} request(s) in flight, timed by the client, whose own overhead is "
            f"{overhead:.3f} ms per request (p50 against a server that answers at once)"
        )
        verdict = dataclasses.replace(
            verdict, message=verdict.message.replace("threads=auto", note)
        )
        judge_latency(verdict, deploy_gate.settings, deploy_gate_property)

    latency.__doc__ = (
        f"{label} latency of single-row requests with {concurrency} in flight is within its "
        "budget (deploy_gate_endpoint_latency_budget)."
    )
    latency.__module__ = __name__
    return latency


def concurrent_latency_settings(max_seconds: float, concurrency: int) -> LatencySettings:
    """How requests at ``concurrency`` are measured: no thread limits (the client's threads are
    not the model's), and rounds of at least four waves of requests.

    Concurrent requests queue at the server, so a round needs every level's calls, and never
    fewer than four waves of them, even when a slow service makes the cap cut rounds short:
    rounds smaller than the concurrency never had all requests in flight, and a slow service
    under load measured fast (0.6x what locust saw at 32 in flight).
    """
    from deploy_gate.latency import FLOOR_CALLS_PER_ROUND, LatencySettings

    return LatencySettings(
        threads=None,
        max_seconds=max_seconds,
        min_calls_per_round=max(100, 4 * concurrency),
        floor_calls_per_round=max(FLOOR_CALLS_PER_ROUND, 4 * concurrency),
    )


def concurrent_measurement(
    gate: Gate, target: EndpointTarget, data: GateData, concurrency: int
) -> LatencyMeasurement[Any]:
    from deploy_gate.checks.common import records
    from deploy_gate.checks.latency import LATENCY_INPUTS
    from deploy_gate.endpoint.load import ConcurrentTimer
    from deploy_gate.latency import LatencyMeasurement

    def compute() -> LatencyMeasurement[Any]:
        settings = gate.settings
        # Requests are encoded before the clock starts, as a load tool sends prepared bodies:
        # the figures are the service's and the wire's, plus only httpx and reading answers.
        deployment = target.deployment
        rows = [
            deployment.prepared_single(row) for row in records(data.features.iloc[:LATENCY_INPUTS])
        ]
        fn = _send
        timer = ConcurrentTimer(fn, rows, concurrency)
        try:
            budgets = endpoint_budgets(settings, concurrency)
            labels = dict.fromkeys([*PERCENTILES, *budgets])
            measurement = LatencyMeasurement(
                fn,
                rows,
                {label: budgets.get(label) for label in labels},
                batch_size=1,
                settings=concurrent_latency_settings(settings.latency_max_seconds, concurrency),
                timer=timer,
            )
            measurement.verdicts()
        finally:
            timer.close()
        return measurement

    return gate.endpoint_latency.get((target.name, concurrency), compute)


def _send(prepared: Callable[[], object]) -> object:
    return prepared()


def client_overhead_ms(gate: Gate, target: EndpointTarget, data: GateData) -> float:
    """Median ms of one request of this endpoint's protocol against a loopback server that
    answers a real answer of the endpoint at once (measured once per endpoint)."""
    import numpy as np

    def compute() -> float:
        from urllib.parse import urlsplit, urlunsplit

        from deploy_gate.endpoint.client import EndpointDeployment
        from deploy_gate.endpoint.load import client_overhead_ns

        real = target.deployment
        row = first_row(data)
        request = real.request_for(real._frame([row]))
        answer = real.send(request).text.encode()
        clones: dict[str, EndpointDeployment] = {}
        prepared: dict[str, Callable[[], object]] = {}

        def call(base: str) -> object:
            # What the latency items time: a request encoded beforehand, sent, its answer read.
            send = prepared.get(base)
            if send is None:
                parts = urlsplit(real.url)
                new = urlsplit(base)
                url = urlunsplit((new.scheme, new.netloc, parts.path, "", ""))
                clone = clones[base] = EndpointDeployment(
                    url, protocol=real.protocol, timeout=real.timeout, max_connections=1
                )
                clone.metadata = real.metadata
                send = prepared[base] = clone.prepared_single(row)
            return send()

        try:
            return float(np.median(client_overhead_ns(call, answer))) / 1e6
        finally:
            for clone in clones.values():
                clone.close()

    return gate.endpoint_overhead.get(target.name, compute)
