"""Parsers of the gate's setting values: durations, percentiles, sizes, budgets, stages, ...

Each takes the text of a command-line value or an ini line and returns the value, or raises a
``ConfigError`` that names what was expected; :mod:`deploy_gate.options` turns that into
pytest's usage error naming the flag or ini key. They load only when a setting is parsed, never
on a pytest run without ``--deploy-gate``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from deploy_gate.errors import ConfigError

_DURATION = re.compile(
    r"^\s*(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(?P<unit>ms|s|us|µs|μs|ns)?\s*$"
)
_UNIT_TO_MS = {None: 1.0, "ms": 1.0, "s": 1e3, "us": 1e-3, "µs": 1e-3, "μs": 1e-3, "ns": 1e-6}


def parse_duration_ms(text: str) -> float:
    """Milliseconds from a setting such as ``50ms``, ``0.2s``, ``250us`` or a bare ``50`` (ms).

    Budgets live in ini files and on the command line, so units are accepted; negative, NaN and
    infinite values are refused with a ``ConfigError`` naming the value.
    """
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None:
        raise ConfigError(
            f"invalid duration {text!r}: expected a non-negative number of milliseconds with an "
            "optional unit, e.g. 50ms, 0.2s, 250us"
        )
    value = float(match["number"]) * _UNIT_TO_MS[match["unit"]]
    if not math.isfinite(value):
        raise ConfigError(f"invalid duration {text!r}: the value is not finite")
    return value


_PERCENTILE = re.compile(r"^p(?P<q>\d+(?:\.\d+)?)$")


def parse_percentile(label: str) -> float:
    """The percentile in ``(0, 100]`` that a label such as ``p99`` or ``p99.9`` names."""
    match = _PERCENTILE.match(label) if isinstance(label, str) else None
    q = float(match["q"]) if match else math.nan
    if not 0.0 < q <= 100.0:
        raise ConfigError(f"invalid percentile {label!r}: expected e.g. p50, p95, p99 or p99.9")
    return q


def parse_threads(text: str) -> int | None:
    """Thread-pool limit from a setting: a positive integer, or ``auto`` (None: leave alone)."""
    value = text.strip().lower() if isinstance(text, str) else ""
    if value == "auto":
        return None
    if value.isdigit() and int(value) >= 1:
        return int(value)
    raise ConfigError(f"invalid thread count {text!r}: expected a positive integer or 'auto'")


def parse_range(text: str) -> tuple[float, float]:
    """``LOW,HIGH`` (or ``LOW:HIGH``) with LOW < HIGH."""
    parts = re.split(r"[,:]", str(text))
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"expected LOW,HIGH such as 0,100, got {text!r}") from None
    if not low < high:
        raise ConfigError(f"expected LOW < HIGH, got {text!r}")
    return low, high


def parse_positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"expected a positive number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"expected a positive number, got {text!r}")
    return value


def parse_seconds(text: str) -> float:
    """A timeout: ``60``, ``60s``, ``1.5s`` or ``500ms``; a bare number is seconds."""
    stripped = str(text).strip()
    value = parse_duration_ms(stripped + ("s" if _is_number(stripped) else "")) / 1000.0
    if value <= 0:
        raise ConfigError(f"expected a positive duration, got {text!r}")
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_fraction(text: str) -> float:
    """A number in (0, 1), such as 0.95; ``95%`` is accepted too."""
    stripped = str(text).strip()
    try:
        value = float(stripped[:-1]) / 100 if stripped.endswith("%") else float(stripped)
    except ValueError:
        raise ConfigError(f"expected a number between 0 and 1 such as 0.95, got {text!r}") from None
    if not 0 < value < 1:
        raise ConfigError(f"expected a number between 0 and 1 (exclusive), got {text!r}")
    return value


def parse_nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"expected a number >= 0, got {text!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise ConfigError(f"expected a number >= 0, got {text!r}")
    return value


def parse_positive_int(text: str) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ConfigError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise ConfigError(f"expected a whole number >= 1, got {text!r}")
    return value


def parse_int(text: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise ConfigError(f"expected a whole number, got {text!r}") from None


def parse_names(text: str) -> tuple[str, ...]:
    """Names separated by commas or spaces: ``accuracy, roc_auc``."""
    names = tuple(n for n in re.split(r"[,\s]+", str(text)) if n)
    if not names:
        raise ConfigError("expected at least one name")
    return names


def parse_scores(text: str) -> tuple[tuple[str, float], ...]:
    """``METRIC=VALUE`` pairs separated by commas or spaces: ``roc_auc=0.75, accuracy=0.8``,
    each metric one of the comparison's catalogue (``deploy_gate.compare.METRICS``), once."""
    from deploy_gate.compare import METRICS

    pairs: list[tuple[str, float]] = []
    for part in (p for p in re.split(r"[,\s]+", str(text)) if p):
        name, sep, value = part.partition("=")
        if not sep:
            raise ConfigError(f"expected METRIC=VALUE such as roc_auc=0.75, got {part!r}")
        if name not in METRICS:
            raise ConfigError(f"unknown metric {name!r}: expected one of {', '.join(METRICS)}")
        if name in dict(pairs):
            raise ConfigError(f"{name} is given twice")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise ConfigError(f"expected a number for {name}, got {value!r}")
        pairs.append((name, number))
    if not pairs:
        raise ConfigError("expected at least one METRIC=VALUE such as roc_auc=0.75")
    return tuple(pairs)


_SIZE = re.compile(r"^\s*(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[kmgt]i?b?|b)?\s*$", re.I)
_SIZE_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_size(text: str) -> int | None:
    """Bytes from ``4GiB``, ``512MiB``, ``2g`` or a bare number of bytes; ``none`` is no limit."""
    value = str(text).strip().lower()
    if value in ("none", "unlimited"):
        return None
    match = _SIZE.match(value)
    if match is None:
        raise ConfigError(f"expected a size such as 4GiB or 512MiB, or none, got {text!r}")
    unit = (match["unit"] or "")[:1].lower()
    size = int(float(match["number"]) * _SIZE_UNITS[unit])
    if size < 64 * 2**20:
        raise ConfigError(f"a model process needs at least 64MiB, got {text!r}")
    return size


def parse_stages(text: str) -> tuple[float, ...]:
    """Rollout stages as shares of traffic: ``5% 25% 50% 100%`` or ``0.05,0.25,0.5,1``."""
    shares = []
    for part in parse_names(text):
        try:
            share = float(part[:-1]) / 100 if part.endswith("%") else float(part)
        except ValueError:
            raise ConfigError(f"expected stages such as '5% 25% 50% 100%', got {text!r}") from None
        shares.append(share)
    if any(not 0 < s <= 1 for s in shares) or shares != sorted(set(shares)) or shares[-1] != 1:
        raise ConfigError(f"expected increasing stages in (0%, 100%] ending at 100%, got {text!r}")
    return tuple(shares)


_BUDGET = re.compile(r"^\s*(p[0-9.]+)(?:@([0-9]+))?\s*=\s*(\S+)\s*$")


def parse_budget(text: str) -> tuple[str, int, float | None]:
    """``p99=50ms`` (single rows), ``p95@32=200ms`` (batches of 32) or ``p99@1=none``."""
    match = _BUDGET.match(str(text))
    if not match:
        raise ConfigError(
            f"expected a budget such as p99=50ms or p95@32=200ms (percentile@batch=duration), "
            f"got {text!r}"
        )
    label, batch, value = match.groups()
    parse_percentile(label)
    size = int(batch) if batch else 1
    if size < 1:
        raise ConfigError(f"batch size must be at least 1 in {text!r}")
    return label, size, None if value.lower() == "none" else parse_duration_ms(value)


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    """Batch sizes such as ``1 32`` or ``1,32,256``."""
    sizes = []
    for part in parse_names(text):
        try:
            size = int(part)
        except ValueError:
            raise ConfigError(f"expected whole batch sizes such as '1 32', got {text!r}") from None
        if size < 1:
            raise ConfigError(f"batch sizes must be at least 1, got {text!r}")
        sizes.append(size)
    return tuple(dict.fromkeys(sizes))


def choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = str(text).strip().lower()
        if value not in allowed:
            raise ConfigError(f"expected one of {', '.join(allowed)}, got {text!r}")
        return value

    parse.__name__ = "choice"
    return parse


def parse_text(text: str) -> str:
    if not str(text).strip():
        raise ConfigError("expected a non-empty value")
    return str(text).strip()
