"""Which items of the ML Test Score rubric a gate run automated, and the score that gives.

The rubric is Breck, Cai, Nielsen, Salib and Sculley, "The ML Test Score: A Rubric for ML
Production Readiness and Technical Debt Reduction", IEEE Big Data 2017: 28 tests in four
sections of seven. A test earns half a point when it is run by hand with the results documented
and distributed, a full point when a system runs it automatically on a repeated basis; each
section's points are summed, and the final score is the *minimum* over the sections, because
every section matters.

The mapping is deliberately conservative: an item is credited only by checks of this run that
passed, and never while one of the checks behind it failed or was skipped, so the score never
claims "no NaN" for a model whose ``output[no-nan]`` failed. Items the gate cannot see (code
review, feature cost, privacy, ...) can be *declared* by the project, and are shown as declared,
never as verified.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from deploy_gate.categories import CATEGORIES

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
    """What one gate run established about one artifact, as the rubric mapping needs it.

    ``passed`` and ``failed`` hold the names (``"output[no-nan]"``) of the gate's checks that
    passed and that failed or errored; skipped and deselected checks are in neither.
    ``repeated`` says whether the gate runs automatically on a repeated basis (a required CI
    check: full points) or was run by hand (half points). ``declared`` maps rubric ids
    (``"Model 1"``) to how the project says it covers them itself.
    """

    passed: frozenset[str]
    failed: frozenset[str] = frozenset()
    ledger_has_previous: bool = False
    repeated: bool = True
    declared: Mapping[str, Credit] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "passed", frozenset(self.passed))
        object.__setattr__(self, "failed", frozenset(self.failed))
        unknown = sorted({_category(n) for n in self.passed | self.failed} - set(CATEGORIES))
        if unknown:
            raise ValueError(
                f"check names of unknown categories {unknown}; expected names such as "
                f"'output[no-nan]' of the categories {list(CATEGORIES)}"
            )
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
    def from_outcomes(
        cls,
        outcomes: Mapping[str, str],
        *,
        ledger_has_previous: bool = False,
        repeated: bool = True,
        declared: Mapping[str, Credit] | None = None,
    ) -> GateRun:
        """Build a run from ``{check name: outcome}`` (passed, failed, error, skipped).

        Names that are not gate checks (a project's own tests) are ignored.
        """
        gate = {n: o for n, o in outcomes.items() if _category(n) in CATEGORIES}
        return cls(
            passed=frozenset(n for n, o in gate.items() if o == "passed"),
            failed=frozenset(n for n, o in gate.items() if o in ("failed", "error")),
            ledger_has_previous=ledger_has_previous,
            repeated=repeated,
            declared=dict(declared or {}),
        )


def _category(name: str) -> str:
    return name.split("[", 1)[0] if name.endswith("]") else ""


def _case(name: str) -> str:
    return name.split("[", 1)[1][:-1] if name.endswith("]") and "[" in name else ""


@dataclass(frozen=True)
class _Rule:
    """An item is credited when some check ``select`` accepts passed, every one named in
    ``required`` passed, and none that ``select`` accepts failed (``ledger``: when the ledger
    holds a rollback target)."""

    select: Callable[[str], bool]
    evidence: str
    missing: str
    required: tuple[str, ...] = ()
    ledger: bool = False

    def judge(self, run: GateRun) -> tuple[bool, str]:
        """Whether the run earns the item, and the evidence or the gap."""
        if self.ledger:
            return (
                run.ledger_has_previous,
                self.evidence if run.ledger_has_previous else self.missing,
            )
        failed = sorted(n for n in run.failed if self.select(n))
        if failed:
            return False, f"{', '.join(failed)} failed"
        passed = sorted(n for n in run.passed if self.select(n))
        missing = [n for n in self.required if n not in run.passed]
        if not passed:
            return False, self.missing
        if missing:
            return False, f"{' and '.join(missing)} did not pass"
        shown = ", ".join(passed[:4]) + (f" and {len(passed) - 4} more" if len(passed) > 4 else "")
        return True, f"{self.evidence}: {shown} passed"


def _in(category: str, *, but: tuple[str, ...] = ()) -> Callable[[str], bool]:
    return lambda name: _category(name) == category and _case(name) not in but


def _is(*names: str) -> Callable[[str], bool]:
    return lambda name: name in names


def _vs_baseline(name: str) -> bool:
    return _category(name) == "latency" and "vs-baseline" in _case(name)


_RULES: dict[str, _Rule] = {
    "Infra 4": _Rule(
        _in("baseline", but=("prediction-shift",)),
        "baseline checks judged the candidate's metrics against the production model on "
        "labelled holdout data",
        "no baseline metric was compared (needs --deploy-gate-baseline and labelled data)",
    ),
    "Infra 6": _Rule(
        _in("rollout"),
        "the holdout was replayed through a staged rollout with rollback criteria (a simulated "
        "canary, not live traffic)",
        "no rollout simulation passed (needs --deploy-gate-baseline and labelled data)",
    ),
    "Infra 7": _Rule(
        lambda name: False,
        "the ledger names a version recorded by a full run, with other bytes, as rollback target",
        "the ledger holds no earlier version to roll back to (record with --deploy-gate-record)",
        ledger=True,
    ),
    "Monitor 2": _Rule(
        _in("drift", but=("prediction", "save-profile")),
        "recent production inputs matched the reference data, feature by feature (PSI with KS "
        "or chi-square)",
        "no production inputs were checked (needs --deploy-gate-current)",
    ),
    "Monitor 5": _Rule(
        _in("output"),
        "no NaN or Inf and valid shapes and ranges on every sample row and on edge rows",
        "no output validity check passed (they need --deploy-gate-data)",
        required=("output[no-nan]", "output[no-inf]"),
    ),
    "Monitor 6": _Rule(
        _vs_baseline,
        "latency was judged against the baseline measured interleaved in the same run",
        "latency was not compared with the baseline's in the same run (an absolute budget "
        "alone does not show a regression)",
    ),
    "Monitor 7": _Rule(
        _is("drift[prediction]"),
        "the model's predictions on recent production inputs matched those on the reference "
        "data (a label-free proxy)",
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
                r.item.id: {
                    "credit": r.credit,
                    "how": r.how,
                    "source": r.source,
                    "evidence": r.evidence,
                }
                for r in self.items
                if r.credit
            },
        }

    @property
    def gaps(self) -> tuple[ItemResult, ...]:
        """The items the gate can check but this run did not earn, with the reason."""
        return tuple(r for r in self.items if not r.credit and r.item.id in _RULES)

    def details(self) -> dict[str, str]:
        """The score explained, for the HTML report: its reading, what was covered and how,
        and what the gate can check but this run did not earn, and why."""
        sums = ", ".join(f"{s.section} {s.score:g}" for s in self.sections)
        found = {
            "ML Test Score": (
                f"{self.final:g} = min({sums}) (Breck et al. 2017). The score is the minimum "
                "over the four sections, so it stays 0 until the project covers the Data and "
                f"Model sections itself. The paper reads {self.final:g} as: "
                f"{interpretation(self.final)}"
            )
        }
        covered = [r for r in self.items if r.credit]
        if covered:
            found["ML Test Score: covered"] = "; ".join(
                f"{r.item.id} ({r.credit:g}, {r.how}, {r.source}) {r.item.text}: {r.evidence}"
                for r in covered
            )
        if self.gaps:
            found["ML Test Score: not covered"] = "; ".join(
                f"{r.item.id} {r.item.text}: {r.evidence}" for r in self.gaps
            )
        return found

    def summary_line(self) -> str:
        """One line for the terminal: the score, the section sums and the items covered (the
        evidence and the gaps belong in the HTML report and the ledger line)."""
        sums = ", ".join(f"{s.section} {s.score:g}" for s in self.sections)
        covered = [r.item.id for r in self.items if r.credit]
        how = {r.how for r in self.items if r.source == "gate"}
        tail = (
            "covered "
            + ", ".join(covered)
            + (" (by hand: half points)" if how == {"manual"} else "")
            if covered
            else "no rubric item covered by this run"
        )
        return f"ML Test Score {self.final:g} = min({sums}): {tail}"

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
            earned, text = rule.judge(run) if rule is not None else (False, "")
            declared = run.declared.get(item.id)
            # The gate's own evidence wins unless the project declares more (its own CI
            # repeats a check that this hand-run gate performed once).
            if earned and not (declared == "automated" and gate_how == "manual"):
                results.append(ItemResult(item, _CREDIT[gate_how], gate_how, "gate", text))
            elif declared is not None:
                text = f"declared {declared} by the project; not verified by the gate"
                results.append(ItemResult(item, _CREDIT[declared], declared, "declared", text))
            else:
                gap = text or _NOT_COVERED.get(item.id, "")
                results.append(ItemResult(item, 0.0, "none", "none", gap or "not checked"))
        sections.append(SectionResult(name, tuple(results)))
    return MLTestScore(tuple(sections))
