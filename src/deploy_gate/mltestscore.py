"""Which items of the ML Test Score rubric a gate run automated, and the score that gives.

The rubric is Breck, Cai, Nielsen, Salib and Sculley, "The ML Test Score: A Rubric for ML
Production Readiness and Technical Debt Reduction", IEEE Big Data 2017: 28 tests in four
sections of seven. A test earns half a point when it is run by hand with the results documented
and distributed, a full point when a system runs it automatically on a repeated basis; each
section's points are summed, and the final score is the *minimum* over the sections, because
every section matters.

The mapping is deliberately conservative: an item counts only when the run really performed
the check the rubric asks for. A check that ran and failed still counts (the rubric credits the
test being in place; the gate's verdict is separate), a skipped one does not. Items the gate
cannot see (code review, feature cost, privacy, ...) can be *declared* by the project, and are
shown as declared, never as verified.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "CATEGORIES",
    "RUBRIC",
    "SECTIONS",
    "GateRun",
    "ItemResult",
    "MLTestScore",
    "RubricItem",
    "SectionResult",
    "interpretation",
    "score",
]

Section = Literal["Data", "Model", "Infrastructure", "Monitoring"]
Credit = Literal["automated", "manual"]

#: The rubric's four sections, in the paper's order.
SECTIONS: tuple[Section, ...] = ("Data", "Model", "Infrastructure", "Monitoring")
#: The gate's check categories (DESIGN.md section 4).
CATEGORIES = ("smoke", "output", "latency", "errors", "version", "baseline", "rollout", "drift")

_PREFIX: dict[Section, str] = {
    "Data": "Data",
    "Model": "Model",
    "Infrastructure": "Infra",
    "Monitoring": "Monitor",
}


@dataclass(frozen=True)
class RubricItem:
    """One of the 28 tests, with the wording of the paper's tables I-IV."""

    section: Section
    number: int
    text: str

    @property
    def id(self) -> str:
        """The paper's short name, e.g. ``"Infra 4"``."""
        return f"{_PREFIX[self.section]} {self.number}"


def _section(section: Section, *texts: str) -> tuple[RubricItem, ...]:
    return tuple(RubricItem(section, n, text) for n, text in enumerate(texts, start=1))


#: The rubric, section by section (Breck et al. 2017, tables I-IV).
RUBRIC: tuple[RubricItem, ...] = (
    *_section(
        "Data",
        "Feature expectations are captured in a schema",
        "All features are beneficial",
        "No feature's cost is too much",
        "Features adhere to meta-level requirements",
        "The data pipeline has appropriate privacy controls",
        "New features can be added quickly",
        "All input feature code is tested",
    ),
    *_section(
        "Model",
        "Model specs are reviewed and submitted",
        "Offline and online metrics correlate",
        "All hyperparameters have been tuned",
        "The impact of model staleness is known",
        "A simpler model is not better",
        "Model quality is sufficient on important data slices",
        "The model is tested for considerations of inclusion",
    ),
    *_section(
        "Infrastructure",
        "Training is reproducible",
        "Model specs are unit tested",
        "The ML pipeline is integration tested",
        "Model quality is validated before serving",
        "The model is debuggable",
        "Models are canaried before serving",
        "Serving models can be rolled back",
    ),
    *_section(
        "Monitoring",
        "Dependency changes result in notification",
        "Data invariants hold for inputs",
        "Training and serving are not skewed",
        "Models are not too stale",
        "Models are numerically stable",
        "Computing performance has not regressed",
        "Prediction quality has not regressed",
    ),
)
_BY_ID = {item.id: item for item in RUBRIC}


@dataclass(frozen=True)
class GateRun:
    """What one gate run checked, as the rubric mapping needs it.

    ``checked`` holds the categories in which at least one item reached a verdict (passed or
    failed; skipped items do not count). ``repeated`` says whether the gate runs automatically on
    a repeated basis (a required CI check: full points) or was run by hand (half points).
    ``declared`` maps rubric ids (``"Model 1"``) to how the project says it covers them itself.
    """

    checked: frozenset[str]
    ledger_has_previous: bool = False
    latency_vs_baseline: bool = False
    prediction_drift: bool = False
    repeated: bool = True
    declared: Mapping[str, Credit] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.checked) - set(CATEGORIES))
        if unknown:
            raise ValueError(
                f"checked names unknown categories {unknown}; expected some of {list(CATEGORIES)}"
            )
        object.__setattr__(self, "checked", frozenset(self.checked))
        for item_id, credit in self.declared.items():
            if item_id not in _BY_ID:
                raise ValueError(
                    f"declared names unknown rubric item {item_id!r}; expected e.g. 'Model 1'"
                )
            if credit not in ("automated", "manual"):
                raise ValueError(
                    f"declared[{item_id!r}] must be 'automated' or 'manual', got {credit!r}"
                )

    @classmethod
    def from_counts(
        cls,
        counts: Mapping[str, Mapping[str, int]],
        *,
        ledger_has_previous: bool = False,
        latency_vs_baseline: bool = False,
        prediction_drift: bool = False,
        repeated: bool = True,
        declared: Mapping[str, Credit] | None = None,
    ) -> GateRun:
        """Build a run from per-category ``{"passed": n, "failed": n, "skipped": n}`` counts.

        Names that are not gate categories (a project's own test files) are ignored.
        """
        checked = frozenset(
            name
            for name, n in counts.items()
            if name in CATEGORIES and n.get("passed", 0) + n.get("failed", 0) > 0
        )
        return cls(
            checked=checked,
            ledger_has_previous=ledger_has_previous,
            latency_vs_baseline=latency_vs_baseline,
            prediction_drift=prediction_drift,
            repeated=repeated,
            declared=dict(declared or {}),
        )


@dataclass(frozen=True)
class _Rule:
    # evidence(run) says what the run checked for the item, or None when it did not.
    evidence: Callable[[GateRun], str | None]
    missing: str


def _when(condition: Callable[[GateRun], bool], text: str) -> Callable[[GateRun], str | None]:
    return lambda run: text if condition(run) else None


_RULES: dict[str, _Rule] = {
    "Infra 4": _Rule(
        _when(
            lambda r: "baseline" in r.checked,
            "baseline checks judged the candidate's metrics against the production model "
            "on labelled holdout data",
        ),
        "no baseline comparison ran (needs --deploy-gate-baseline and labelled data)",
    ),
    "Infra 6": _Rule(
        _when(
            lambda r: "rollout" in r.checked,
            "rollout checks replayed the holdout through a staged 5/25/50/100% rollout with "
            "rollback criteria (a simulated canary, not live traffic)",
        ),
        "no rollout simulation ran (needs --deploy-gate-baseline and labelled data)",
    ),
    "Infra 7": _Rule(
        _when(
            lambda r: r.ledger_has_previous,
            "the ledger names a recorded earlier version with other bytes as rollback target",
        ),
        "the ledger holds no earlier version to roll back to (record with --deploy-gate-record)",
    ),
    "Monitor 2": _Rule(
        _when(
            lambda r: "drift" in r.checked,
            "drift checks compared recent production inputs with the reference data, "
            "feature by feature (PSI with KS or chi-square)",
        ),
        "no production inputs were checked (needs --deploy-gate-current)",
    ),
    "Monitor 5": _Rule(
        _when(
            lambda r: "output" in r.checked,
            "output checks found no NaN or Inf and valid shapes and ranges on every sample "
            "row and on edge rows",
        ),
        "no output validity checks ran",
    ),
    "Monitor 6": _Rule(
        _when(
            lambda r: "latency" in r.checked and r.latency_vs_baseline,
            "latency checks judged the candidate against the baseline measured interleaved "
            "in the same run",
        ),
        "latency was not compared with the baseline's in the same run (an absolute budget "
        "alone does not show a regression)",
    ),
    "Monitor 7": _Rule(
        _when(
            lambda r: "drift" in r.checked and r.prediction_drift,
            "prediction drift compared the model's predictions on recent production inputs "
            "with those on the reference data (a label-free proxy)",
        ),
        "the model's predictions on production inputs were not checked",
    ),
}

# Items a reader might expect the gate to cover, and why it does not.
_NOT_COVERED: dict[str, str] = {
    "Data 1": "the gate enforces the model's feature names, not recorded value expectations",
    "Model 5": "the baseline is the production model, not a deliberately simpler one",
    "Model 6": "metrics are not computed per data slice",
    "Infra 1": "the gate does not retrain the model",
    "Infra 3": "the gate exercises the serving path only, not the pipeline from raw data",
    "Monitor 3": "drift compares distributions; the rubric asks that the same example's "
    "features are identical at training and serving",
}


@dataclass(frozen=True)
class ItemResult:
    """The credit one rubric item earned, where it came from, and the evidence or the gap."""

    item: RubricItem
    credit: float
    how: Literal["automated", "manual", "none"]
    source: Literal["gate", "declared", "none"]
    evidence: str


@dataclass(frozen=True)
class SectionResult:
    """The seven items of one section and their sum."""

    section: Section
    items: tuple[ItemResult, ...]

    @property
    def score(self) -> float:
        """Sum of the section's credits (0 to 7)."""
        return sum(r.credit for r in self.items)


_CREDIT: dict[Credit, float] = {"automated": 1.0, "manual": 0.5}

# Table V of the paper, as (upper bound inclusive, reading).
_BANDS: tuple[tuple[float, str], ...] = (
    (0.0, "More of a research project than a productionized system."),
    (
        1.0,
        "Not totally untested, but it is worth considering the possibility of serious holes "
        "in reliability.",
    ),
    (
        2.0,
        "There's been first pass at basic productionization, but additional investment may "
        "be needed.",
    ),
    (
        3.0,
        "Reasonably tested, but it's possible that more of those tests and procedures may be "
        "automated.",
    ),
    (
        5.0,
        "Strong levels of automated testing and monitoring, appropriate for mission-critical "
        "systems.",
    ),
)


def interpretation(final: float) -> str:
    """The paper's reading (table V) of a final score."""
    for upper, text in _BANDS:
        if final <= upper:
            return text
    return "Exceptional levels of automated testing and monitoring."


@dataclass(frozen=True)
class MLTestScore:
    """The rubric scored for one run: items, section sums and the final minimum."""

    sections: tuple[SectionResult, ...]

    @property
    def final(self) -> float:
        """The ML Test Score: the minimum of the section scores."""
        return min(s.score for s in self.sections)

    @property
    def items(self) -> tuple[ItemResult, ...]:
        """All 28 item results in rubric order."""
        return tuple(r for s in self.sections for r in s.items)

    @property
    def automated_by_gate(self) -> tuple[str, ...]:
        """Ids of the items this gate run itself checked, e.g. ``("Infra 4", "Monitor 5")``."""
        return tuple(r.item.id for r in self.items if r.source == "gate")

    def section(self, name: Section) -> SectionResult:
        """The result of one section by name."""
        return next(s for s in self.sections if s.section == name)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the ledger line: final, section scores, and the credited items."""
        return {
            "rubric": "Breck et al. 2017, The ML Test Score",
            "final": self.final,
            "sections": {s.section: s.score for s in self.sections},
            "items": {
                r.item.id: {"credit": r.credit, "how": r.how, "source": r.source}
                for r in self.items
                if r.credit
            },
        }

    def render_lines(self) -> list[str]:
        """Terminal lines: the final score and its reading, section sums, credited items."""
        sums = ", ".join(f"{s.section} {s.score:g}" for s in self.sections)
        lines = [
            f"ML Test Score (Breck et al. 2017): {self.final:g} = min({sums})",
            f"  {interpretation(self.final)}",
        ]
        credited = [r for r in self.items if r.credit]
        if not credited:
            lines.append("  no rubric item was covered by this run")
        for r in credited:
            lines.append(
                f"  {r.item.id:<10} {r.credit:<4g}{r.how} ({r.source}): {r.item.text} - "
                f"{r.evidence}"
            )
        return lines


def score(run: GateRun) -> MLTestScore:
    """Score the rubric for ``run``: gate-checked items first, then the project's declarations."""
    gate_how: Credit = "automated" if run.repeated else "manual"
    sections = []
    for name in SECTIONS:
        results = []
        for item in RUBRIC:
            if item.section != name:
                continue
            rule = _RULES.get(item.id)
            evidence = rule.evidence(run) if rule is not None else None
            declared = run.declared.get(item.id)
            # The gate's own evidence wins unless the project declares more (its own CI
            # repeats a check that this hand-run gate performed once).
            if evidence is not None and not (declared == "automated" and gate_how == "manual"):
                results.append(ItemResult(item, _CREDIT[gate_how], gate_how, "gate", evidence))
            elif declared is not None:
                text = f"declared {declared} by the project; not verified by the gate"
                results.append(ItemResult(item, _CREDIT[declared], declared, "declared", text))
            else:
                gap = rule.missing if rule is not None else _NOT_COVERED.get(item.id, "")
                results.append(ItemResult(item, 0.0, "none", "none", gap or "not checked"))
        sections.append(SectionResult(name, tuple(results)))
    return MLTestScore(tuple(sections))
