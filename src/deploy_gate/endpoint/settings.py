"""Settings of the endpoint gate: the endpoints named on the command line and their latency
budgets. Cheap to import (the option table parses with it): no httpx, no numpy."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from deploy_gate.errors import ConfigError
from deploy_gate.parsers import parse_duration_ms, parse_percentile

_BUDGET = re.compile(r"^\s*(p\d+(?:\.\d+)?|max)(?:@(\d+))?\s*=\s*(\S+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class EndpointSpec:
    """One ``--deploy-gate-endpoint [NAME=]URL``."""

    url: str
    name: str | None = None

    def __str__(self) -> str:
        return f"{self.name}={self.url}" if self.name else self.url


def parse_endpoint(text: str) -> EndpointSpec:
    """``http://127.0.0.1:8080/v2/models/churn`` or ``churn=http://...``: an http(s) URL with a
    host, optionally named (the name is the node id: ``endpoint:churn``)."""
    raw = str(text).strip()
    name = None
    head, sep, rest = raw.partition("=")
    if sep and "://" not in head:
        name, raw = head.strip(), rest.strip()
        if not name or any(c in name for c in ":/[] "):
            raise ConfigError(f"expected NAME=URL with a plain name, got {text!r}")
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"expected an http(s) URL such as http://127.0.0.1:8080/v2/models/churn, got {text!r}"
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"the endpoint URL may not carry a query or fragment: {text!r}")
    return EndpointSpec(raw.rstrip("/"), name)


def parse_endpoint_budget(text: str) -> tuple[str, int | None, float | None]:
    """``p99=200ms`` (every concurrency), ``p99@32=1s`` (32 requests in flight), ``p95=none``."""
    match = _BUDGET.match(str(text))
    if not match:
        raise ConfigError(
            "expected a budget such as p99=200ms or p99@32=1s (percentile@concurrency=duration), "
            f"got {text!r}"
        )
    label, level, value = match.groups()
    parse_percentile(label)
    concurrency = int(level) if level else None
    if concurrency is not None and concurrency < 1:
        raise ConfigError(f"concurrency must be at least 1 in {text!r}")
    return label.lower(), concurrency, None if value.lower() == "none" else parse_duration_ms(value)
