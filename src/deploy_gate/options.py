"""Every setting of the gate: one spec gives the command-line option, the ini key and the parser.

Names follow one pattern, ``--deploy-gate-<name>`` and ``deploy_gate_<name>``; the command line
wins over the ini file, which wins over the default. A bad value is rejected while pytest parses
its configuration, naming the option and where the value came from.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploy_gate.errors import ConfigError

if TYPE_CHECKING:
    import pytest

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


@dataclass(frozen=True)
class Option:
    """One setting. ``kind`` is "value", "path" (relative to the ini file's folder when set
    there), "flag" (a switch) or "lines" (repeatable on the command line, a line list in ini)."""

    name: str
    help: str
    parse: Callable[[str], Any] = parse_text
    default: Any = None
    kind: str = "value"
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--deploy-gate-" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "deploy_gate_" + self.name


OPTIONS: tuple[Option, ...] = (
    Option(
        "data",
        "sample/holdout rows for the checks: CSV, Parquet or JSON lines (may hold the labels)",
        kind="path",
        metavar="PATH",
    ),
    Option(
        "target",
        "label column of the data: removed from the features and kept for metric checks",
        metavar="COLUMN",
    ),
    Option(
        "output_range",
        "allowed range of a regressor's outputs, LOW,HIGH "
        "(default: the target's observed range widened by its span on both sides)",
        parse=parse_range,
        metavar="LOW,HIGH",
    ),
    Option(
        "smoke_latency_ms",
        "budget of the smoke latency-sanity check: mean single-row latency (default 100ms)",
        parse=parse_duration_ms,
        default=100.0,
        metavar="DURATION",
    ),
    Option(
        "baseline",
        "the artifact in production now: enables the baseline comparison and rollout checks",
        kind="path",
        metavar="PATH",
    ),
    Option(
        "metrics",
        "metrics the candidate must keep relative to the baseline, e.g. accuracy,roc_auc "
        "(default by task: accuracy, balanced_accuracy, roc_auc, log_loss / mae, rmse, r2)",
        parse=parse_names,
        metavar="NAMES",
    ),
    Option(
        "min_relative",
        "share of the baseline's metric the candidate must reach (default 0.95; for "
        "lower-is-better metrics the candidate may not exceed baseline / 0.95)",
        parse=parse_fraction,
        default=0.95,
        metavar="FRACTION",
    ),
    Option(
        "max_error_ratio",
        "candidate error rate (raises or invalid output) allowed, as a multiple of the "
        "baseline's (default 2.0)",
        parse=parse_positive_float,
        default=2.0,
        metavar="RATIO",
    ),
    Option(
        "error_floor",
        "error rate that always passes, so 0 vs 0.001 is no failure by division (default 0.001)",
        parse=parse_nonnegative_float,
        default=0.001,
        metavar="RATE",
    ),
    Option(
        "max_shift",
        "PSI between candidate and baseline scores above which baseline[prediction-shift] "
        "fails when no labels judge quality (default 0.2)",
        parse=parse_positive_float,
        default=0.2,
        metavar="PSI",
    ),
    Option(
        "max_label_flips",
        "share of rows whose predicted label may change from the baseline's, judged when no "
        "labels judge quality (default 0.1)",
        parse=parse_nonnegative_float,
        default=0.1,
        metavar="FRACTION",
    ),
    Option(
        "rollout_stages",
        "stages of the simulated rollout (default '5% 25% 50% 100%')",
        parse=parse_stages,
        default=(0.05, 0.25, 0.5, 1.0),
        metavar="STAGES",
    ),
    Option(
        "rollout_confidence",
        "confidence of the one-sided test that rolls back a stage (default 0.95)",
        parse=parse_fraction,
        default=0.95,
        metavar="FRACTION",
    ),
    Option(
        "rollout_min_samples",
        "labelled requests each arm needs before a stage is judged (default 100)",
        parse=parse_positive_int,
        default=100,
        metavar="N",
    ),
    Option(
        "rollout_key",
        "column whose value routes a request (sticky per key); default: a hash of the row",
        metavar="COLUMN",
    ),
    Option(
        "rollout_order_by",
        "timestamp column the holdout is replayed in order of; default: file order",
        metavar="COLUMN",
    ),
    Option(
        "rollout_seed",
        "seed of the routing hash (default 0)",
        parse=parse_int,
        default=0,
        metavar="N",
    ),
    Option(
        "current",
        "recent production inputs (CSV, Parquet, JSON lines; read in chunks): enables the "
        "drift checks against --deploy-gate-data or --deploy-gate-profile",
        kind="path",
        metavar="PATH",
    ),
    Option(
        "profile",
        "a saved reference profile (JSON) that replaces the reference data for drift",
        kind="path",
        metavar="PATH",
    ),
    Option(
        "save_profile",
        "write the reference profile of --deploy-gate-data to this JSON file "
        "(item drift[save-profile])",
        kind="path",
        metavar="PATH",
    ),
    Option(
        "drift_psi",
        "PSI above which a feature has drifted (default 0.2)",
        parse=parse_positive_float,
        default=0.2,
        metavar="PSI",
    ),
    Option(
        "drift_pvalue",
        "p-value (KS numeric, chi-square categorical) below which a change is significant "
        "(default 0.01)",
        parse=parse_fraction,
        default=0.01,
        metavar="P",
    ),
    Option(
        "drift_effect_floor",
        "smallest KS D / Cramer's V that counts as drift when PSI stays under its threshold, so "
        "a million rows do not turn a negligible shift into a failure (default 0.1)",
        parse=parse_fraction,
        default=0.1,
        metavar="SIZE",
    ),
    Option(
        "html",
        "write a self-contained HTML report of the gate (verdict, checklist, latency, "
        "baseline, rollout, drift) to PATH",
        kind="path",
        metavar="PATH",
    ),
    Option(
        "record",
        "on a fully green run, append each artifact's version to the ledger",
        kind="flag",
        default=False,
    ),
    Option(
        "ledger",
        "the deployment ledger, JSON lines (default deployments.jsonl next to the config file)",
        kind="path",
        default="deployments.jsonl",
        metavar="PATH",
    ),
    Option(
        "record_partial",
        "record a run that did not run every applicable built-in check too (implies "
        "--deploy-gate-record), in a line marked partial that is never the deployed version",
        kind="flag",
        default=False,
    ),
    Option(
        "latency_budget",
        "latency budget, percentile@batch=duration: p99=50ms (single rows), p95@32=200ms, "
        "p99@1=none to only measure; repeatable, a line list in ini (default p99@1=50ms)",
        parse=parse_budget,
        kind="lines",
        metavar="BUDGET",
    ),
    Option(
        "latency_batch_sizes",
        "batch sizes whose p50/p95/p99 are measured (default '1 32')",
        parse=parse_batch_sizes,
        default=(1, 32),
        metavar="SIZES",
    ),
    Option(
        "latency_max_seconds",
        "time cap of one latency measurement; a verdict still undecided then is INCONCLUSIVE "
        "(default 10s; a bare number is seconds)",
        parse=parse_seconds,
        default=10.0,
        metavar="DURATION",
    ),
    Option(
        "latency_inconclusive",
        "what an INCONCLUSIVE latency verdict does: fail (default) or warn",
        parse=choice("fail", "warn"),
        default="fail",
        metavar="fail|warn",
    ),
    Option(
        "latency_gc",
        "garbage collector while latency is timed: on (as in production, default) or off",
        parse=choice("on", "off"),
        default="on",
        metavar="on|off",
    ),
    Option(
        "latency_max_ratio",
        "with a baseline: how much slower than the baseline the candidate may be (default 1.2)",
        parse=parse_positive_float,
        default=1.2,
        metavar="RATIO",
    ),
    Option(
        "latency_noise_floor",
        "with a baseline: differences below this never fail (default 0.05ms)",
        parse=parse_duration_ms,
        default=0.05,
        metavar="DURATION",
    ),
    Option(
        "latency_json",
        "also write the latency rounds as a pytest-benchmark JSON file, for "
        "pytest-benchmark compare across model versions",
        kind="path",
        metavar="PATH",
    ),
    Option(
        "latency_threads",
        "thread-pool size (BLAS, OpenMP) while latency is measured, through threadpoolctl: "
        "a number, or auto to leave pools alone (default 1)",
        parse=parse_threads,
        default=1,
        metavar="N|auto",
    ),
    Option(
        "trust",
        "module whose classes an artifact may import besides the built-in allowlist, "
        "e.g. your project's custom transformers (a line list in ini)",
        kind="lines",
        metavar="MODULE",
    ),
    Option(
        "pin",
        "file of pinned artifact hashes in sha256sum format; a listed artifact with another "
        "hash fails version[pinned-hash] and is not opened",
        kind="path",
        metavar="FILE",
    ),
    Option(
        "isolation",
        "where the model runs: sandbox (a child process with limits, no network and writes "
        "confined where the OS allows; default), process (a child process with limits), or "
        "none (inside pytest, for debugging: the verdict says so)",
        parse=choice("sandbox", "process", "none"),
        default="sandbox",
        metavar="sandbox|process|none",
    ),
    Option(
        "python",
        "interpreter the model process runs under, e.g. the serving image's virtualenv "
        "(default: the one running pytest); it needs pytest-deploy-gate and the model's "
        "libraries installed",
        kind="path",
        metavar="PYTHON",
    ),
    Option(
        "strict_versions",
        "fail smoke[load] when the artifact was saved with another version of a library than "
        "the model process loads it with (scikit-learn's InconsistentVersionWarning)",
        kind="flag",
        default=False,
    ),
    Option(
        "memory_limit",
        "address space the model process may use, e.g. 4GiB, or none (default: 4GiB or half "
        "the machine's memory, whichever is less)",
        parse=parse_size,
        default="auto",
        metavar="SIZE",
    ),
    Option(
        "artifact_timeout",
        "time all checks of one artifact may take together; after it, its remaining checks "
        "fail at once (default 600s; a bare number is seconds)",
        parse=parse_seconds,
        default=600.0,
        metavar="DURATION",
    ),
    Option(
        "check_timeout",
        "time one check may take before it fails as hung: 60, 60s or 500ms (a bare number "
        "is seconds; default 60s)",
        parse=parse_seconds,
        default=60.0,
        metavar="DURATION",
    ),
    Option(
        "latency_batch_slack",
        "how many times as long as N single-row calls a batch of N rows may take before "
        "latency[batch-vs-single-batch=N] fails (default 1.5)",
        parse=parse_positive_float,
        default=1.5,
        metavar="RATIO",
    ),
)


class Settings:
    """Resolved settings: ``settings.data``, ``settings.target``, ... (None when unset)."""

    def __init__(self, values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
        self._values = dict(values)
        self._sources = dict(sources)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def source(self, name: str) -> str:
        """Where a value came from: the flag, the ini file, or "default"."""
        return self._sources.get(name, "default")

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)


def _cli_type(option: Option) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return option.parse(text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: {exc}") from None

    convert.__name__ = option.name
    return convert


def add_options(parser: pytest.Parser, options: tuple[Option, ...] = OPTIONS) -> None:
    group = parser.getgroup("deploy-gate", "model deployment gate")
    group.addoption(
        "--deploy-gate",
        action="store_true",
        default=False,
        help="run the deployment checks on the artifacts named on the command line "
        "(pytest --deploy-gate model.joblib --deploy-gate-data holdout.parquet)",
    )
    for option in options:
        # argparse %-formats option help (``%(default)s``); ini help is printed as written.
        help_text = f"{option.help} [ini: {option.ini}]".replace("%", "%%")
        if option.kind == "flag":
            group.addoption(option.flag, action="store_true", default=None, help=help_text)
            parser.addini(option.ini, option.help, type="bool", default=None)
        elif option.kind == "lines":
            group.addoption(
                option.flag,
                action="append",
                type=_cli_type(option),
                default=None,
                metavar=option.metavar,
                help=help_text + " (repeatable)",
            )
            parser.addini(option.ini, option.help, type="linelist", default=[])
        else:
            group.addoption(
                option.flag,
                type=_cli_type(option),
                default=None,
                metavar=option.metavar,
                help=help_text,
            )
            parser.addini(option.ini, option.help, type="string", default="")


def resolve(config: pytest.Config, options: tuple[Option, ...] = OPTIONS) -> Settings:
    """Settings from the command line, then the ini file, then the defaults."""
    import pytest

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    inipath = config.inipath
    ini_name = inipath.name if inipath is not None else "the configuration file"
    for option in options:
        cli = config.getoption(option.ini)
        if cli is not None:
            values[option.name] = _finish(option, cli, Path.cwd())
            sources[option.name] = option.flag
            continue
        raw = config.getini(option.ini)
        base = inipath.parent if inipath is not None else config.rootpath
        if raw in (None, "", []):
            values[option.name] = _finish(option, option.default, base)
            continue
        try:
            if option.kind == "flag":
                parsed: Any = bool(raw)
            elif option.kind == "lines":
                parsed = [option.parse(line) for line in raw]
            else:
                parsed = option.parse(raw)
        except ConfigError as exc:
            raise pytest.UsageError(
                f"Invalid {option.ini} {raw!r} from {ini_name}: {exc}"
            ) from None
        values[option.name] = _finish(option, parsed, base)
        sources[option.name] = f"{option.ini} in {ini_name}"
    return Settings(values, sources)


def _finish(option: Option, value: Any, base: Path) -> Any:
    if option.kind == "path" and value is not None:
        path = Path(value)
        return path if path.is_absolute() else base / path
    return value
