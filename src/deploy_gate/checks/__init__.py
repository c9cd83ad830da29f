"""The built-in deployment checks, as plain functions of fixtures, and their catalogue.

Each check takes fixtures by name (``deployment``, ``deploy_gate_data``, ...), so a project that
overrides ``deployment`` in its conftest.py has every check run against its own wrapper. A check
passes by returning, fails by raising :class:`CheckFailure` with a message whose first line is
enough to act on, and skips with the reason when it cannot run. One module per category:
``smoke``, ``output``, ``errors``, ``version``, ``baseline`` (with the rollout), ``drift``,
``latency``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from deploy_gate.categories import CATEGORIES
from deploy_gate.errors import describe_exc

if TYPE_CHECKING:
    from deploy_gate.artifact import ModelProfile
    from deploy_gate.checks.baseline import BaselineRun
    from deploy_gate.options import Settings

__all__ = [
    "BUILTIN",
    "CATEGORIES",
    "BaselineRun",
    "Check",
    "builtin_checks",
    "check",
    "describe_exc",
    "iter_checks",
]


@dataclass(frozen=True)
class Check:
    """One entry of the catalogue: rendered as the item ``<category>[<case>]``."""

    category: str
    case: str
    func: Callable[..., None]
    #: Whether the check applies to a model; None profile means the artifact did not load.
    applies: Callable[[ModelProfile | None, Settings], bool] = field(
        default=lambda profile, settings: True
    )

    @property
    def name(self) -> str:
        return f"{self.category}[{self.case}]"

    @property
    def description(self) -> str:
        doc = (self.func.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else self.name


BUILTIN: list[Check] = []


def check(
    category: str,
    case: str,
    applies: Callable[[ModelProfile | None, Settings], bool] | None = None,
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def register(func: Callable[..., None]) -> Callable[..., None]:
        BUILTIN.append(Check(category, case, func, applies or (lambda p, s: True)))
        return func

    return register


def builtin_checks(profile: ModelProfile | None, settings: Settings) -> list[Check]:
    """The built-in checks that apply to a model with this profile."""
    from deploy_gate.checks import errors, output, smoke, version  # noqa: F401 - register
    from deploy_gate.checks.baseline import baseline_checks, rollout_checks
    from deploy_gate.checks.drift import drift_checks
    from deploy_gate.checks.latency import latency_checks

    # In category order (smoke first), whatever order the modules registered in.
    static = sorted(
        (c for c in BUILTIN if c.applies(profile, settings)),
        key=lambda c: CATEGORIES.index(c.category),
    )
    return (
        static
        + baseline_checks(profile, settings)
        + rollout_checks(settings)
        + drift_checks(profile, settings)
        + latency_checks(settings)
    )


def iter_checks(
    extra: Iterable[Iterable[Check]], profile: ModelProfile | None, settings: Settings
) -> list[Check]:
    """Flatten the hook results into one list of the checks whose ``applies`` says yes for this
    model, keeping the first of any duplicate name: a contributed check's ``applies`` counts
    like a built-in one's."""
    seen: set[str] = set()
    out: list[Check] = []
    for group in extra:
        for item in group or ():
            if item.name not in seen and item.applies(profile, settings):
                seen.add(item.name)
                out.append(item)
    return out
