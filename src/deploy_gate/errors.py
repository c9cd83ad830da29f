"""Every error the gate and its runtime library raise, in one place so users can catch them."""

from __future__ import annotations


class DeployGateError(Exception):
    """Base class of every error raised by pytest-deploy-gate."""


class ArtifactLoadError(DeployGateError):
    """The artifact file exists but could not be turned into a model."""


class UnsafeArtifactError(ArtifactLoadError):
    """The artifact would import or run something that is not on the allowlist."""


class DataError(DeployGateError, ValueError):
    """The sample, holdout or production data cannot be read or does not fit the model."""


class SchemaError(DeployGateError, KeyError):
    """Input rows name features the model does not know, or lack features it needs.

    A ``KeyError`` so that callers catching the usual pandas/dict error keep working; unlike a
    bare ``KeyError`` its message is readable (no extra quotes).
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class NotLoadedError(DeployGateError, ValueError):
    """A prediction was requested before ``load_model()``."""


class InvalidOutputError(DeployGateError, ValueError):
    """The model returned an output that is not a valid prediction (NaN, Inf, bad shape, ...)."""


class ConfigError(DeployGateError, ValueError):
    """A setting of the gate has a value it cannot use."""


class MetricUnavailableError(DataError):
    """A metric cannot be computed on these outputs or labels (no probabilities, one class).

    Its check is skipped with this message as the reason, not failed.
    """


class LedgerError(DeployGateError):
    """The deployment ledger cannot be read or written."""


class VersionCollisionError(LedgerError):
    """A version id is already recorded for other bytes; recording it would make it ambiguous."""


class LedgerWarning(UserWarning):
    """A ledger line could not be read (e.g. torn by a killed writer) and was skipped."""


class CheckFailure(AssertionError):
    """A deployment check found a fault. Its message is the whole report: no traceback."""


class LatencyInconclusiveWarning(UserWarning):
    """A latency verdict stayed undecided at its time cap, with
    ``deploy_gate_latency_inconclusive = warn``."""


def describe_exc(exc: BaseException, limit: int | None = None) -> str:
    """An exception in one line for a message: its type and the first line of its text,
    cut to ``limit`` characters."""
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0] if text else '(no message)'}"
    return line if limit is None or len(line) <= limit else line[: limit - 3] + "..."
