"""What a live endpoint can do wrong, one class each, so a check can tell a rejection (4xx) from a
crash (5xx), a hang and an answer it cannot read."""

from __future__ import annotations

from deploy_gate.errors import DeployGateError


class EndpointError(DeployGateError):
    """Base class of every failure to get a prediction from a serving endpoint."""


class EndpointRejected(EndpointError, ValueError):
    """The server refused the request with a 4xx status: a clear error, as a ``ValueError`` is
    in process (so the output checks count a refused edge row as rejected, not crashed)."""

    def __init__(self, message: str, *, status: int, detail: str) -> None:
        super().__init__(message)
        self.status = status
        #: The server's own message ("" when its answer had no body).
        self.detail = detail


class EndpointServerError(EndpointError):
    """The server answered 5xx: it crashed on the request instead of refusing it."""

    def __init__(self, message: str, *, status: int, detail: str) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


class EndpointTimeout(EndpointError):
    """No answer within ``deploy_gate_endpoint_timeout``: the server hangs or is far too slow."""


class EndpointUnreachable(EndpointError):
    """No connection could be opened (after the bounded retries of connection setup)."""


class EndpointProtocolError(EndpointError):
    """The server answered 2xx with a body that is not a prediction in its protocol's shape."""
