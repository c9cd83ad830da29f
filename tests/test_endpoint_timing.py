"""What the endpoint latency items time: the request and the answer, not turning rows into
requests. A load tool sends prepared bodies; timing pandas and JSON encoding per request made
the gate measure a service at one request in flight 1.2x slower than locust did."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

pytest.importorskip("httpx")

from deploy_gate.checks.endpoint import concurrent_measurement
from deploy_gate.endpoint.client import EndpointDeployment
from deploy_gate.endpoint.load import _InstantServer
from deploy_gate.endpoint.settings import parse_endpoint
from deploy_gate.endpoint.target import EndpointTarget
from deploy_gate.gate import Gate
from deploy_gate.options import OPTIONS, Settings


@pytest.fixture
def instant() -> Any:
    server = _InstantServer(b'{"predictions": [1]}')
    yield server
    server.close()


def _count_encodings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    encoded: list[int] = []
    real = EndpointDeployment.request_for

    def counting(self: EndpointDeployment, frame: pd.DataFrame, **kwargs: Any) -> Any:
        encoded.append(len(frame))
        return real(self, frame, **kwargs)

    monkeypatch.setattr(EndpointDeployment, "request_for", counting)
    return encoded


def test_a_prepared_single_row_request_is_encoded_once_and_sent_each_call(
    instant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded = _count_encodings(monkeypatch)
    deployment = EndpointDeployment(f"http://127.0.0.1:{instant.port}", protocol="json")
    try:
        send = deployment.prepared_single({"a": 1.0, "b": "x"})
        assert [send() for _ in range(5)] == [1] * 5
        assert deployment.predict_single({"a": 2.0, "b": "y"}) == 1
    finally:
        deployment.close()
    assert encoded == [1, 1]  # one encoding for five sends, one for the plain call


def test_endpoint_latency_encodes_each_input_row_once_however_many_requests_it_times(
    instant: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    holdout = tmp_path / "holdout.csv"
    pd.DataFrame({"a": [float(i) for i in range(8)], "b": list("abcdefgh")}).to_csv(
        holdout, index=False
    )
    spec = parse_endpoint(f"svc=http://127.0.0.1:{instant.port}")
    values: dict[str, Any] = {option.name: option.default for option in OPTIONS}
    values.update(
        data=holdout,
        endpoint=[spec],
        endpoint_protocol="json",
        endpoint_concurrency=(1, 4),
        latency_max_seconds=1.0,
    )
    gate = Gate(Settings.of(values, {}), [])
    target = EndpointTarget(gate, spec, "svc")
    assert target.error is None, target.error
    data = target.data()
    assert not isinstance(data, str), data
    encoded = _count_encodings(monkeypatch)
    try:
        for concurrency in (1, 4):
            encoded.clear()
            figures = concurrent_measurement(gate, target, data, concurrency).figures()
            assert figures["calls"] > 8  # far more timed requests than rows ...
            assert encoded == [1] * 8  # ... and each of the 8 rows encoded once, untimed
    finally:
        target.close()
