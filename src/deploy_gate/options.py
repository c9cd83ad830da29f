"""Every setting of the gate: one spec gives the command-line option, the ini key and the parser.

Names follow one pattern, ``--deploy-gate-<name>`` and ``deploy_gate_<name>``; the command line
wins over the ini file, which wins over the default. A bad value is rejected while pytest parses
its configuration, naming the option and where the value came from.

Every pytest run imports this module to register the options, so it holds the specs and little
else: the parsers (:mod:`deploy_gate.parsers`) load when a value is parsed.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pytest

    from deploy_gate.endpoint.settings import EndpointSpec

    # Their home is deploy_gate.parsers; importable from here too, as they always were.
    from deploy_gate.parsers import choice as choice
    from deploy_gate.parsers import parse_batch_sizes as parse_batch_sizes
    from deploy_gate.parsers import parse_budget as parse_budget
    from deploy_gate.parsers import parse_duration_ms as parse_duration_ms
    from deploy_gate.parsers import parse_fraction as parse_fraction
    from deploy_gate.parsers import parse_int as parse_int
    from deploy_gate.parsers import parse_names as parse_names
    from deploy_gate.parsers import parse_nonnegative_float as parse_nonnegative_float
    from deploy_gate.parsers import parse_percentile as parse_percentile
    from deploy_gate.parsers import parse_positive_float as parse_positive_float
    from deploy_gate.parsers import parse_positive_int as parse_positive_int
    from deploy_gate.parsers import parse_range as parse_range
    from deploy_gate.parsers import parse_seconds as parse_seconds
    from deploy_gate.parsers import parse_size as parse_size
    from deploy_gate.parsers import parse_stages as parse_stages
    from deploy_gate.parsers import parse_text as parse_text
    from deploy_gate.parsers import parse_threads as parse_threads


def __getattr__(name: str) -> Any:
    if name == "choice" or name.startswith("parse_"):
        from deploy_gate import parsers

        return getattr(parsers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _parser(name: str, *args: str) -> Callable[[str], Any]:
    """The parser ``name`` of :mod:`deploy_gate.parsers`, or ``module:name`` of another module
    (``choice`` takes ``args``), imported when a value is first parsed."""
    module, _, attribute = name.rpartition(":")
    module = module or "deploy_gate.parsers"

    def parse(text: str) -> Any:
        import importlib

        found = getattr(importlib.import_module(module), attribute)
        return (found(*args) if args else found)(text)

    parse.__name__ = attribute
    parse.__module__ = module  # where the parser lives (a test checks that it exists)
    return parse


_PARSE_TEXT = _parser("parse_text")


@dataclass(frozen=True)
class Option:
    """One setting. ``kind`` is "value", "path" (relative to the ini file's folder when set
    there), "flag" (a switch) or "lines" (repeatable on the command line, a line list in ini)."""

    name: str
    help: str
    parse: Callable[[str], Any] = _PARSE_TEXT
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
        parse=_parser("parse_range"),
        metavar="LOW,HIGH",
    ),
    Option(
        "min_scores",
        "scores the model must reach on the labelled data, e.g. roc_auc=0.75,accuracy=0.8; "
        "for lower-is-better metrics (log_loss, mae, rmse) the value is a ceiling",
        parse=_parser("parse_scores"),
        metavar="METRIC=VALUE,...",
    ),
    Option(
        "smoke_latency_ms",
        "budget of the smoke latency-sanity check: mean single-row latency (default 100ms)",
        parse=_parser("parse_duration_ms"),
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
        parse=_parser("parse_names"),
        metavar="NAMES",
    ),
    Option(
        "min_relative",
        "share of the baseline's metric the candidate must reach (default 0.95; for "
        "lower-is-better metrics the candidate may not exceed baseline / 0.95)",
        parse=_parser("parse_fraction"),
        default=0.95,
        metavar="FRACTION",
    ),
    Option(
        "max_error_ratio",
        "candidate error rate (raises or invalid output) allowed, as a multiple of the "
        "baseline's (default 2.0)",
        parse=_parser("parse_positive_float"),
        default=2.0,
        metavar="RATIO",
    ),
    Option(
        "error_floor",
        "error rate that always passes, so 0 vs 0.001 is no failure by division (default 0.001)",
        parse=_parser("parse_nonnegative_float"),
        default=0.001,
        metavar="RATE",
    ),
    Option(
        "max_shift",
        "PSI between candidate and baseline scores above which baseline[prediction-shift] "
        "fails when no labels judge quality (default 0.2)",
        parse=_parser("parse_positive_float"),
        default=0.2,
        metavar="PSI",
    ),
    Option(
        "max_label_flips",
        "share of rows whose predicted label may change from the baseline's, judged when no "
        "labels judge quality (default 0.1)",
        parse=_parser("parse_nonnegative_float"),
        default=0.1,
        metavar="FRACTION",
    ),
    Option(
        "rollout_stages",
        "stages of the simulated rollout (default '5% 25% 50% 100%')",
        parse=_parser("parse_stages"),
        default=(0.05, 0.25, 0.5, 1.0),
        metavar="STAGES",
    ),
    Option(
        "rollout_confidence",
        "confidence of the one-sided test that rolls back a stage (default 0.95)",
        parse=_parser("parse_fraction"),
        default=0.95,
        metavar="FRACTION",
    ),
    Option(
        "rollout_min_samples",
        "labelled requests each arm needs before a stage is judged (default 100)",
        parse=_parser("parse_positive_int"),
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
        parse=_parser("parse_int"),
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
        parse=_parser("parse_positive_float"),
        default=0.2,
        metavar="PSI",
    ),
    Option(
        "drift_pvalue",
        "p-value (KS numeric, chi-square categorical) below which a change is significant "
        "(default 0.01)",
        parse=_parser("parse_fraction"),
        default=0.01,
        metavar="P",
    ),
    Option(
        "drift_effect_floor",
        "smallest KS D / Cramer's V that counts as drift when PSI stays under its threshold, so "
        "a million rows do not turn a negligible shift into a failure (default 0.1)",
        parse=_parser("parse_fraction"),
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
        parse=_parser("parse_budget"),
        kind="lines",
        metavar="BUDGET",
    ),
    Option(
        "latency_batch_sizes",
        "batch sizes whose p50/p95/p99 are measured (default '1 32')",
        parse=_parser("parse_batch_sizes"),
        default=(1, 32),
        metavar="SIZES",
    ),
    Option(
        "latency_max_seconds",
        "time cap of one latency measurement; a verdict still undecided then is INCONCLUSIVE "
        "(default 10s; a bare number is seconds)",
        parse=_parser("parse_seconds"),
        default=10.0,
        metavar="DURATION",
    ),
    Option(
        "latency_inconclusive",
        "what an INCONCLUSIVE latency verdict does: fail (default) or warn",
        parse=_parser("choice", "fail", "warn"),
        default="fail",
        metavar="fail|warn",
    ),
    Option(
        "latency_gc",
        "garbage collector while latency is timed: on (as in production, default) or off",
        parse=_parser("choice", "on", "off"),
        default="on",
        metavar="on|off",
    ),
    Option(
        "latency_max_ratio",
        "with a baseline: how much slower than the baseline the candidate may be (default 1.2)",
        parse=_parser("parse_positive_float"),
        default=1.2,
        metavar="RATIO",
    ),
    Option(
        "latency_noise_floor",
        "with a baseline: differences below this never fail (default 0.05ms)",
        parse=_parser("parse_duration_ms"),
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
        parse=_parser("parse_threads"),
        default=1,
        metavar="N|auto",
    ),
    Option(
        "serving_threads",
        "threads the serving process answers requests from at once: smoke[concurrent-calls] "
        "calls the model from that many (default 4; 1 if it answers one request at a time, "
        "which skips that check)",
        parse=_parser("parse_positive_int"),
        default=4,
        metavar="N",
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
        parse=_parser("choice", "sandbox", "process", "none"),
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
        parse=_parser("parse_size"),
        default="auto",
        metavar="SIZE",
    ),
    Option(
        "artifact_timeout",
        "time all checks of one artifact may take together; after it, its remaining checks "
        "fail at once (default 600s; a bare number is seconds)",
        parse=_parser("parse_seconds"),
        default=600.0,
        metavar="DURATION",
    ),
    Option(
        "check_timeout",
        "time one check may take before it fails as hung: 60, 60s or 500ms (a bare number "
        "is seconds; default 60s)",
        parse=_parser("parse_seconds"),
        default=60.0,
        metavar="DURATION",
    ),
    Option(
        "latency_batch_slack",
        "how many times as long as N single-row calls a batch of N rows may take before "
        "latency[batch-vs-single-batch=N] fails (default 1.5)",
        parse=_parser("parse_positive_float"),
        default=1.5,
        metavar="RATIO",
    ),
    # Gating a running service (issue 16): deploy_gate.endpoint, deploy_gate.checks.endpoint.
    Option(
        "endpoint",
        "a serving endpoint to gate, [NAME=]URL: a V2 model URL (.../v2/models/NAME), an "
        "MLflow scoring server (.../invocations) or a JSON service of your own; its checks "
        "collect as endpoint:NAME::... (repeatable, a line list in ini)",
        parse=_parser("deploy_gate.endpoint.settings:parse_endpoint"),
        kind="lines",
        metavar="[NAME=]URL",
    ),
    Option(
        "endpoint_protocol",
        "protocol of the endpoints: v2 (Open Inference Protocol), mlflow, json, or auto to "
        "tell from the URL and the server's routes (default auto)",
        parse=_parser("choice", "auto", "v2", "mlflow", "json"),
        default="auto",
        metavar="auto|v2|mlflow|json",
    ),
    Option(
        "endpoint_timeout",
        "time limit of every request to an endpoint (connect, send, each wait for the answer; "
        "default 10s; a bare number is seconds)",
        parse=_parser("parse_seconds"),
        default=10.0,
        metavar="DURATION",
    ),
    Option(
        "endpoint_concurrency",
        "requests in flight while an endpoint's latency is measured, one measurement per "
        "level (default '1 8')",
        parse=_parser("parse_batch_sizes"),
        default=(1, 8),
        metavar="LEVELS",
    ),
    Option(
        "endpoint_latency_budget",
        "endpoint latency budget, percentile[@concurrency]=duration: p99=200ms (every level), "
        "p99@32=1s, p95=none; repeatable, a line list in ini (default p99=500ms)",
        parse=_parser("deploy_gate.endpoint.settings:parse_endpoint_budget"),
        kind="lines",
        metavar="BUDGET",
    ),
)


@dataclass(frozen=True)
class Settings:
    """Resolved settings: ``settings.data``, ``settings.target``, ... (None when unset).

    Every option of ``OPTIONS`` is a field, typed below as its parser returns it (a test keeps
    the declarations and the table in step), so mypy checks each use across the seam between
    the plugin and the library; reading a name that is no option is a type error. Frozen: a
    check cannot change what the next one sees. Built by ``resolve`` or ``Settings.of``.
    """

    data: Path | None
    target: str | None
    output_range: tuple[float, float] | None
    min_scores: tuple[tuple[str, float], ...] | None
    smoke_latency_ms: float
    baseline: Path | None
    metrics: tuple[str, ...] | None
    min_relative: float
    max_error_ratio: float
    error_floor: float
    max_shift: float
    max_label_flips: float
    rollout_stages: tuple[float, ...]
    rollout_confidence: float
    rollout_min_samples: int
    rollout_key: str | None
    rollout_order_by: str | None
    rollout_seed: int
    current: Path | None
    profile: Path | None
    save_profile: Path | None
    drift_psi: float
    drift_pvalue: float
    drift_effect_floor: float
    html: Path | None
    record: bool
    ledger: Path
    record_partial: bool
    latency_budget: list[tuple[str, int, float | None]] | None
    latency_batch_sizes: tuple[int, ...]
    latency_max_seconds: float
    latency_inconclusive: Literal["fail", "warn"]
    latency_gc: Literal["on", "off"]
    latency_max_ratio: float
    latency_noise_floor: float
    latency_json: Path | None
    latency_threads: int | None
    serving_threads: int
    trust: list[str] | None
    pin: Path | None
    isolation: Literal["sandbox", "process", "none"]
    python: Path | None
    strict_versions: bool
    memory_limit: int | Literal["auto"] | None
    artifact_timeout: float
    check_timeout: float
    latency_batch_slack: float
    endpoint: list[EndpointSpec] | None
    endpoint_protocol: Literal["auto", "v2", "mlflow", "json"]
    endpoint_timeout: float
    endpoint_concurrency: tuple[int, ...]
    endpoint_latency_budget: list[tuple[str, int | None, float | None]] | None

    #: Where each value came from (option name -> the flag or the ini file); "default" if absent.
    _sources: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, values: Mapping[str, Any], sources: Mapping[str, str] | None = None) -> Settings:
        """Settings from values by option name (an option not given takes the table's
        default; an unknown name is a ``TypeError``), and where they came from."""
        given = {option.name: option.default for option in OPTIONS}
        given.update(values)
        return cls(**given, _sources=dict(sources or {}))

    def path(self, name: str) -> Path:
        """The path option ``name``, for code that runs only when it is set (a ``ConfigError``
        naming the flag if it is not)."""
        value = getattr(self, name, None)
        if not isinstance(value, Path):
            from deploy_gate.errors import ConfigError

            raise ConfigError(f"{Option(name, '').flag} is not set")
        return value

    def source(self, name: str) -> str:
        """Where a value came from: the flag, the ini file, or "default"."""
        return self._sources.get(name, "default")

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_sources"}


class _NotGiven:
    """The default of a valued flag: its parsed value may be None."""

    def __repr__(self) -> str:
        return "not given"


NOT_GIVEN: Any = _NotGiven()


def _cli_type(option: Option) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return option.parse(text)
        except ValueError as exc:  # ConfigError, by class not identity: a test run may reimport
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
                default=NOT_GIVEN,
                metavar=option.metavar,
                help=help_text,
            )
            parser.addini(option.ini, option.help, type="string", default="")


def resolve(config: pytest.Config, options: tuple[Option, ...] = OPTIONS) -> Settings:
    """Settings from the command line, then the ini file, then the defaults."""
    import pytest

    from deploy_gate.errors import ConfigError

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    inipath = config.inipath
    ini_name = inipath.name if inipath is not None else "the configuration file"
    for option in options:
        cli = config.getoption(option.ini)
        # A value may parse to None (``auto`` threads, ``none`` memory limit): only a flag that
        # was not given at all falls through to the ini file.
        given = cli is not None if option.kind in ("flag", "lines") else cli is not NOT_GIVEN
        if given:
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
    return Settings.of(values, sources)


def _finish(option: Option, value: Any, base: Path) -> Any:
    if option.kind == "path" and value is not None:
        path = Path(value)
        return path if path.is_absolute() else base / path
    return value
