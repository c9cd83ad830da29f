"""A live serving endpoint as a :class:`~deploy_gate.deployment.Deployment`: the built-in checks
drive it over HTTP as they drive a model in process.

One ``httpx.Client`` per endpoint keeps its connections alive between requests. Every request
has a timeout (connect, send and each wait for the answer: ``timeout`` seconds). Opening a
connection is retried a bounded number of times; a prediction is never retried, so a server
that fails a request is seen failing it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from deploy_gate.endpoint import protocols as wire
from deploy_gate.endpoint.errors import (
    EndpointError,
    EndpointProtocolError,
    EndpointRejected,
    EndpointServerError,
    EndpointTimeout,
    EndpointUnreachable,
)
from deploy_gate.errors import ConfigError
from deploy_gate.validation import plain

if TYPE_CHECKING:
    import httpx
    import numpy as np
    import pandas as pd

    from deploy_gate.latency import LatencyTracker

#: Attempts to open a connection (httpx retries only ConnectError and ConnectTimeout).
CONNECT_RETRIES = 2


@dataclass(frozen=True)
class Exchange:
    """One request and its answer, as the checks report them."""

    status: int
    body: Any
    text: str
    seconds: float


class EndpointDeployment:
    """A model served at ``url`` in ``protocol`` (``v2``, ``mlflow``, ``json``, or ``auto`` to
    detect it from the server's routes).

    ``feature_names`` (the approved artifact's, or the data's) orders the columns of a request;
    ``classes`` and ``has_proba`` describe what the server should answer when its metadata does
    not say (MLflow has no model metadata).
    """

    def __init__(
        self,
        url: str,
        *,
        protocol: str = "auto",
        timeout: float = 10.0,
        feature_names: Sequence[str] | None = None,
        classes: Sequence[Any] | None = None,
        has_proba: bool | None = None,
        max_connections: int = 64,
        latency_window: int = 10_000,
    ) -> None:
        from deploy_gate.latency import LatencyTracker

        if protocol not in (*wire.PROTOCOLS, "auto"):
            raise ConfigError(
                f"unknown endpoint protocol {protocol!r}: expected v2, mlflow or json"
            )
        self.url = url.rstrip("/")
        self.timeout = float(timeout)
        self._protocol = None if protocol == "auto" else protocol
        self._given_names = tuple(feature_names) if feature_names is not None else None
        self._given_classes = tuple(classes) if classes is not None else None
        self._given_proba = has_proba
        self._max_connections = max_connections
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        #: Requests in flight per client (a retired client is closed when it has none).
        self._busy: dict[httpx.Client, int] = {}
        self.metadata: wire.Metadata | None = None
        self.last_version: str | None = None
        self._latency: dict[str, LatencyTracker] = {
            "single": LatencyTracker(latency_window),
            "batch": LatencyTracker(latency_window),
        }
        #: Client-side time per request spent encoding the body and decoding the answer, ns.

    # -- the HTTP client -------------------------------------------------------------------
    def _current(self) -> httpx.Client:
        """The client new requests use (made on first use); call with ``_lock`` held."""
        if self._client is None:
            try:
                import httpx
            except ImportError:
                raise ConfigError(
                    '--deploy-gate-endpoint needs httpx: pip install "pytest-deploy-gate[endpoint]"'
                ) from None

            limits = httpx.Limits(
                max_connections=self._max_connections,
                max_keepalive_connections=self._max_connections,
            )
            self._client = httpx.Client(
                timeout=httpx.Timeout(self.timeout),
                limits=limits,
                transport=httpx.HTTPTransport(retries=CONNECT_RETRIES, limits=limits),
                headers={"user-agent": "pytest-deploy-gate"},
            )
        return self._client

    def _acquire(self) -> httpx.Client:
        with self._lock:
            client = self._current()
            self._busy[client] = self._busy.get(client, 0) + 1
            return client

    def _release(self, client: httpx.Client, *, retire: bool) -> None:
        """One request on ``client`` ended; ``retire`` gives the next requests a new client.
        A retired client is closed once its last request in flight has ended: closing it under
        the others (concurrent latency measurements) broke their transfers mid-way."""
        with self._lock:
            left = self._busy[client] - 1
            if left:
                self._busy[client] = left
            else:
                del self._busy[client]
            if retire and self._client is client:
                self._client = None
            idle = not left and self._client is not client
        if idle:
            client.close()

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def send(self, request: wire.Request, raw: bytes | None = None) -> Exchange:
        """Send one request and return its answer whatever the status; a timeout, a refused
        connection or a broken transfer raise an :class:`EndpointError`."""
        import httpx

        content = raw
        if content is None and request.body is not None:
            content = json.dumps(request.body, allow_nan=False).encode()
        headers = {"content-type": "application/json"} if content is not None else {}
        start = time.perf_counter()
        client = self._acquire()
        retire = True
        try:
            response = client.request(request.method, request.url, content=content, headers=headers)
            # A server that crashed on a request may drop its kept-alive connection without
            # saying so (uvicorn does): the next request must not be sent down a dead one.
            retire = response.status_code >= 500
        except httpx.TimeoutException:
            raise EndpointTimeout(
                f"no answer from {request.method} {request.url} within {self.timeout:g} s "
                "(deploy_gate_endpoint_timeout): the server hangs or is far too slow"
            ) from None
        except httpx.ConnectError as exc:
            raise EndpointUnreachable(
                f"cannot connect to {request.url} ({exc}; {CONNECT_RETRIES + 1} attempts): is "
                "the server running and listening there?"
            ) from None
        except httpx.TransportError as exc:
            raise EndpointError(
                f"{request.method} {request.url} failed: {type(exc).__name__}: {exc}"
            ) from None
        finally:
            self._release(client, retire=retire)
        seconds = time.perf_counter() - start
        text = response.text
        try:
            body = json.loads(text) if text.strip() else None
        except ValueError:
            body = None
        return Exchange(response.status_code, body, text, seconds)

    def get(self, url: str) -> Exchange:
        return self.send(wire.Request("GET", url))

    # -- protocol and metadata -------------------------------------------------------------
    @property
    def protocol(self) -> str:
        if self._protocol is None:
            self._protocol = detect_protocol(self)
        return self._protocol

    def ready_requests(self) -> list[wire.Request]:
        """The readiness routes of the protocol, all of which must answer 200."""
        root = wire.root_of(self.url)
        if self.protocol == "v2":
            return [
                wire.Request("GET", f"{(wire.v2_model(self.url) or (root,))[0]}/v2/health/ready"),
                wire.Request("GET", f"{self.url}/ready"),
            ]
        if self.protocol == "mlflow":
            return [wire.Request("GET", f"{root}/ping")]
        return [wire.Request("GET", f"{self.url}/health")]

    def fetch_metadata(self) -> wire.Metadata:
        """The server's model metadata (empty for MLflow, which serves none)."""
        if self.protocol == "mlflow":
            self.metadata = wire.Metadata()
            return self.metadata
        url = self.url if self.protocol == "v2" else f"{self.url}/metadata"
        exchange = self.get(url)
        if exchange.status != 200:
            raise EndpointProtocolError(
                f"GET {url} answered {exchange.status}: "
                f"{wire.error_detail(exchange.body, exchange.text) or '(no message)'}"
            )
        self.metadata = wire.read_metadata(self.protocol, exchange.body)
        return self.metadata

    def load_model(self) -> None:
        """Nothing to load: the server has. Checks that it is ready and reads its metadata."""
        for request in self.ready_requests():
            exchange = self.send(request)
            if exchange.status != 200:
                raise EndpointError(
                    f"{request.url} answered {exchange.status}, not 200: the model is not ready "
                    f"({wire.error_detail(exchange.body, exchange.text) or 'no message'})"
                )
        self.fetch_metadata()

    @property
    def feature_names(self) -> tuple[str, ...] | None:
        if self._given_names is not None:
            return self._given_names
        return self.metadata.features if self.metadata is not None else None

    @property
    def classes(self) -> tuple[Any, ...] | None:
        if self._given_classes is not None:
            return self._given_classes
        return self.metadata.classes if self.metadata is not None else None

    @property
    def supports_proba(self) -> bool:
        """Whether the server answers probabilities (MLflow's scoring server does not)."""
        if self.protocol == "mlflow":
            return False
        if self.metadata is not None and self.metadata.has_proba:
            return True
        return bool(self._given_proba)

    @property
    def model_version(self) -> str:
        meta = self.metadata
        return self.last_version or (meta.version if meta and meta.version else "unknown")

    def get_model_metadata(self) -> dict[str, Any]:
        meta = self.metadata
        return {
            "url": self.url,
            "protocol": self.protocol,
            "name": meta.name if meta else None,
            "version": self.model_version,
            "sha256": meta.sha256 if meta else None,
            "feature_names": list(self.feature_names or ()),
        }

    def get_latency_stats(self) -> dict[str, Any]:
        return {kind: tracker.stats() for kind, tracker in self._latency.items()}

    # -- predictions -----------------------------------------------------------------------
    def predict_single(self, features: Mapping[str, Any]) -> Any:
        if not isinstance(features, Mapping):
            raise TypeError(
                f"predict_single takes a mapping of feature name to value, "
                f"got {type(features).__name__}"
            )
        return self.prepared_single(features)()

    def prepared_single(self, features: Mapping[str, Any]) -> Callable[[], Any]:
        """``predict_single(features)`` with its request encoded now: calling it only sends the
        request and reads the answer. Latency measurements time these, as a load tool sends
        prepared bodies: turning a row into a request (pandas, the protocol's JSON) is the
        client's work, not the service's, and timed per request it added 1-4 ms at one request
        in flight on a busy 2-core machine (``benchmarks/endpoint.py``)."""
        send = self._prepare(self._frame([features]), proba=False, kind="single")

        def call() -> Any:
            answer = send()
            if len(answer.predictions) != 1:
                raise EndpointProtocolError(
                    f"asked for 1 prediction, the server answered {len(answer.predictions)}"
                )
            return plain(answer.predictions[0])

        return call

    def batch_predict(self, rows: pd.DataFrame | Sequence[Mapping[str, Any]]) -> np.ndarray:
        return self._predict(self._frame(rows), proba=False, kind="batch").predictions

    def batch_predict_proba(self, rows: pd.DataFrame | Sequence[Mapping[str, Any]]) -> np.ndarray:
        if not self.supports_proba:
            raise AttributeError(f"{self.url} serves no probabilities")
        answer = self._predict(self._frame(rows), proba=True, kind="batch")
        if answer.proba is None:
            raise EndpointProtocolError(f"asked {self.url} for probabilities, none came back")
        return answer.proba

    def predict_both(self, rows: pd.DataFrame) -> wire.Answer:
        """Predictions and (when served) probabilities of ``rows`` in one request."""
        return self._predict(self._frame(rows), proba=self.supports_proba, kind="batch")

    def _frame(self, rows: pd.DataFrame | Sequence[Mapping[str, Any]]) -> pd.DataFrame:
        import pandas as pd

        return rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))

    def request_for(self, frame: pd.DataFrame, *, proba: bool = False) -> wire.Request:
        tensor = self.metadata.tensor_input if self.metadata is not None else None
        return wire.predict_request(
            self.protocol, self.url, frame, proba=proba, tensor_input=tensor
        )

    def _predict(self, frame: pd.DataFrame, *, proba: bool, kind: str) -> wire.Answer:
        return self._prepare(frame, proba=proba, kind=kind)()

    def _prepare(self, frame: pd.DataFrame, *, proba: bool, kind: str) -> Callable[[], wire.Answer]:
        """The request for ``frame``, encoded once; each call sends it and reads the answer."""
        request = self.request_for(frame, proba=proba)
        content = json.dumps(request.body, allow_nan=False).encode()
        rows = len(frame)

        def send() -> wire.Answer:
            exchange = self.send(request, content)
            self._latency[kind].record(exchange.seconds)
            raise_for_status(request, exchange)
            answer = wire.read_answer(self.protocol, exchange.body, rows)
            if answer.model_version is not None:
                self.last_version = answer.model_version
            return answer

        return send

    def __repr__(self) -> str:
        return f"EndpointDeployment({self.url!r}, protocol={self._protocol or 'auto'!r})"


def raise_for_status(request: wire.Request, exchange: Exchange) -> None:
    """4xx is a refusal (:class:`EndpointRejected`, a ``ValueError``), 5xx a crash, and a 2xx
    without a JSON body an answer the protocol cannot hold."""
    status = exchange.status
    where = f"{request.method} {request.url}"
    if 200 <= status < 300:
        if exchange.body is None:
            raise EndpointProtocolError(
                f"{where} answered {status} without a JSON body: {exchange.text[:200]!r}"
            )
        return
    detail = wire.error_detail(exchange.body, exchange.text)
    message = f"HTTP {status} from {where}: {detail or '(no message)'}"
    if 400 <= status < 500:
        raise EndpointRejected(message, status=status, detail=detail)
    if status >= 500:
        raise EndpointServerError(message, status=status, detail=detail)
    raise EndpointProtocolError(message)


def detect_protocol(endpoint: EndpointDeployment) -> str:
    """The protocol ``endpoint.url`` speaks, from its path and its metadata routes."""
    url = endpoint.url
    if wire.v2_model(url) is not None:
        return "v2"
    path = urlsplit(url).path.rstrip("/")
    if path.endswith("/invocations"):
        return "mlflow"
    tried: list[str] = []
    meta = _probe(endpoint, f"{url}/metadata", tried)
    if (
        meta is not None
        and meta.status == 200
        and isinstance(meta.body, Mapping)
        and ("features" in meta.body or "version" in meta.body)
    ):
        return "json"
    ping = _probe(endpoint, f"{wire.root_of(url)}/ping", tried)
    if ping is not None and ping.status == 200:
        return "mlflow"
    raise ConfigError(
        f"cannot tell which protocol {url} speaks (tried {', '.join(tried)}): give a V2 model "
        "URL (.../v2/models/NAME), an MLflow URL (.../invocations), or set "
        "--deploy-gate-endpoint-protocol v2|mlflow|json"
    )


def _probe(endpoint: EndpointDeployment, url: str, tried: list[str]) -> Exchange | None:
    tried.append(f"GET {url}")
    try:
        return endpoint.get(url)
    except EndpointError:
        return None
