"""The built-in deployment checks, as plain functions of fixtures, and their catalogue.

Each check takes fixtures by name (``deployment``, ``deploy_gate_data``, ...), so a project that
overrides ``deployment`` in its conftest.py has every check run against its own wrapper. A check
passes by returning, fails by raising :class:`CheckFailure` with a message whose first line is
enough to act on, and skips with the reason when it cannot run. One module per category
(``smoke``, ``output``, ``errors``, ``version``, ``baseline``, ``rollout``, ``drift``,
``latency``), each with the same function, ``checks(profile, settings)``: its checks for a
model with that profile, every one a :class:`Check` whose ``applies`` is honoured.
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
    "CATEGORIES",
    "RUN_ORDER",
    "BaselineRun",
    "Check",
    "applicable",
    "builtin_checks",
    "check",
    "declared",
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


#: The category modules of ``deploy_gate.checks``, in the order their items run: the latency
#: measurements last, after every other check of the artifact (and its baseline) has run.
RUN_ORDER = ("smoke", "output", "errors", "version", "baseline", "rollout", "drift", "latency")

_DECLARED = "_deploy_gate_check"


def check(
    category: str,
    case: str,
    applies: Callable[[ModelProfile | None, Settings], bool] | None = None,
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Declare a function of a category module a check; the module's ``checks`` lists it.
    Nothing is registered anywhere: importing a module has no side effect."""

    def declare(func: Callable[..., None]) -> Callable[..., None]:
        setattr(func, _DECLARED, Check(category, case, func, applies or (lambda p, s: True)))
        return func

    return declare


def declared(module: str) -> list[Check]:
    """The checks that module ``module`` declared with ``@check``, in the order it defines them."""
    import sys

    found = (getattr(obj, _DECLARED, None) for obj in vars(sys.modules[module]).values())
    return [c for c in found if isinstance(c, Check)]


def applicable(
    checks: Iterable[Check], profile: ModelProfile | None, settings: Settings
) -> list[Check]:
    return [c for c in checks if c.applies(profile, settings)]


def builtin_checks(profile: ModelProfile | None, settings: Settings) -> list[Check]:
    """The built-in checks that apply to a model with this profile: each category module's
    ``checks(profile, settings)``, in ``RUN_ORDER``."""
    import importlib

    out: list[Check] = []
    for category in RUN_ORDER:
        module = importlib.import_module(f"deploy_gate.checks.{category}")
        out += applicable(module.checks(profile, settings), profile, settings)
    return out


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
