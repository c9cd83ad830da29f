"""The gate's verdict and checklist, built from test reports (so it works on the xdist controller),
and its renderings: terminal summary, GitHub step summary and annotations, JUnit touch-ups.

A run may pass without running every applicable built-in check (``-k``, ``-m``, ``--lf``, node
ids, a project that skips checks); the checklist then says which categories it did not run, and
such a partial run is never recorded as the deployed version (DESIGN 8b).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Re-exported: html.py and record.py take the categories from here with the other names.
from deploy_gate.categories import CATEGORIES as CATEGORIES

if TYPE_CHECKING:
    import pytest

    from deploy_gate.mltestscore import MLTestScore

PROJECT = "project"  # a project's own tests that use the gate's fixtures
OTHER = "other"  # tests run beside the gate that do not use its fixtures
APPROVED = "APPROVED FOR DEPLOYMENT"
#: Skips raised from here are the gate's own, stated reasons (no labels, no data, ...).
_PACKAGE = Path(__file__).resolve().parent


@dataclass
class Outcome:
    nodeid: str
    category: str
    artifact: str | None
    outcome: str = "passed"  # passed, failed, error, skipped
    message: str = ""
    properties: list[tuple[str, Any]] = field(default_factory=list)
    #: A skip (or xfail) that did not come from the gate's code: a skip marker, a project's
    #: fixture or conftest. The check could not run, so the run did not earn an approval.
    skipped_elsewhere: bool = False

    @property
    def failed(self) -> bool:
        return self.outcome in ("failed", "error")

    @property
    def name(self) -> str:
        """The check's name without the artifact, e.g. ``output[no-nan]``."""
        return self.nodeid.split("::")[-1]


@dataclass(frozen=True)
class NotRun:
    """The applicable built-in checks of one category that a run did not run: deselected
    (``-k``, ``-m``, ``--lf``, node ids) or skipped by something other than the gate."""

    category: str
    deselected: int = 0
    skipped: int = 0
    reasons: tuple[str, ...] = ()

    def __str__(self) -> str:
        parts = []
        if self.deselected:
            parts.append(f"{self.deselected} deselected")
        if self.skipped:
            why = f": {'; '.join(self.reasons)}" if self.reasons else ""
            parts.append(f"{self.skipped} skipped{why}")
        return f"{self.category} ({', '.join(parts)})"

    def counts(self) -> dict[str, int]:
        return {"deselected": self.deselected, "skipped": self.skipped}


class GateReport:
    """Outcomes of every test of the run, merged over setup, call and teardown."""

    def __init__(self) -> None:
        self.outcomes: dict[str, Outcome] = {}
        #: Per artifact (as in the node ids), the names of the built-in checks that apply to it.
        self.expected: dict[str, tuple[str, ...]] = {}
        #: Per artifact, the ML Test Score of what this run established.
        self.scores: dict[str, MLTestScore] = {}
        #: Why a run asked to record was not recorded (the verdict says so, the exit is 1).
        self.not_recorded: str | None = None

    def add(self, report: pytest.TestReport) -> None:
        keywords = report.keywords
        category = next((c for c in CATEGORIES if c in keywords), None)
        if category is None:
            category = PROJECT if "deploy_gate" in keywords else OTHER
        artifact = report.nodeid.split("::")[0] if category not in (PROJECT, OTHER) else None
        outcome = self.outcomes.setdefault(
            report.nodeid, Outcome(report.nodeid, category, artifact)
        )
        if report.user_properties:
            outcome.properties = list(report.user_properties)
        if report.failed:
            kind = "failed" if report.when == "call" else "error"
            if not outcome.failed:
                outcome.outcome, outcome.message = kind, _first_line(report)
        elif report.skipped and not outcome.failed:
            outcome.outcome, outcome.message = "skipped", _skip_reason(report)
            outcome.skipped_elsewhere = not _skipped_by_gate(report)

    # -- figures -------------------------------------------------------------------------
    def gate_outcomes(self) -> list[Outcome]:
        return [o for o in self.outcomes.values() if o.category != OTHER]

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes.values() if o.failed]

    def counts(self, outcomes: Iterable[Outcome]) -> dict[str, int]:
        counts = {"passed": 0, "failed": 0, "skipped": 0}
        for o in outcomes:
            counts["failed" if o.failed else o.outcome] += 1
        return counts

    def by_artifact(self) -> dict[str, dict[str, list[Outcome]]]:
        table: dict[str, dict[str, list[Outcome]]] = {}
        for o in self.outcomes.values():
            key = o.artifact or ("project tests" if o.category == PROJECT else "other tests")
            table.setdefault(key, {}).setdefault(o.category, []).append(o)
        return table

    def version_ids(self) -> dict[str, str]:
        ids = {}
        for o in self.outcomes.values():
            if o.artifact is not None:
                for name, value in o.properties:
                    if name == "version_id":
                        ids[o.artifact] = str(value)
        return ids

    def comparison_lines(self, categories: dict[str, list[Outcome]]) -> list[str]:
        """The candidate-vs-baseline table and the rollout line of one artifact."""
        out = []
        rows = []
        for o in categories.get("baseline", []):
            props = dict(o.properties)
            if "metric" in props:
                ratio = props.get("ratio")
                shown = f"{float(ratio):.1%}" if ratio not in (None, "None") else "-"
                rows.append(
                    f"      {props['metric']:<18} {float(props['candidate']):>9.4f} "
                    f"{float(props['baseline']):>9.4f} {shown:>8} {float(props['threshold']):>9.4f}"
                )
        if rows:
            version = next(
                (dict(o.properties).get("baseline_version") for o in categories["baseline"]), None
            )
            out.append(f"  baseline {version or ''}".rstrip())
            out.append(
                f"      {'metric':<18} {'candidate':>9} {'baseline':>9} {'ratio':>8} {'limit':>9}"
            )
            out += rows
        stages = []
        for o in categories.get("rollout", []):
            props = dict(o.properties)
            mark = {"advanced": "ok", "rolled_back": "ROLLED BACK", "inconclusive": "INCONCLUSIVE"}
            stage = str(props.get("stage") or o.nodeid.rsplit("[", 1)[-1].rstrip("]"))
            status = mark.get(
                str(props.get("status")), "not reached" if o.outcome == "skipped" else o.outcome
            )
            stages.append((_share(stage), f"{stage} {status}"))
        if stages:
            out.append("  rollout  " + " > ".join(text for _, text in sorted(stages)))
        out += self.latency_lines(categories.get("latency", []))
        drift = [dict(o.properties) for o in categories.get("drift", [])]
        drift = [p for p in drift if "drift_feature" in p]
        if drift:
            out.append(
                f"  drift    {'feature':<22} {'PSI':>7} {'limit':>6} {'test':>5} "
                f"{'stat':>7} {'p-value':>9}  verdict"
            )
            for p in drift:
                verdict = "ok" if str(p.get("drift_passed")) == "True" else "DRIFT"
                out.append(
                    f"           {str(p['drift_feature'])[:22]:<22} {float(p['drift_psi']):>7.3f} "
                    f"{float(p['drift_psi_threshold']):>6.2f} {p['drift_test']!s:>5} "
                    f"{float(p['drift_statistic']):>7.3f} {float(p['drift_pvalue']):>9.2g}"
                    f"  {verdict}"
                )
        return out

    def latency_lines(self, outcomes: list[Outcome]) -> list[str]:
        """Per batch size p50/p95/p99/max in ms, then each judged budget with its verdict."""
        by_batch: dict[int, dict[str, Any]] = {}
        judged = []
        for o in outcomes:
            props = dict(o.properties)
            if "batch" not in props:
                continue
            if "vs-baseline" in str(props.get("percentile")):
                judged.append((o, props))
            elif "p99_ms" in props:
                by_batch.setdefault(int(props["batch"]), props)
                if "budget_ms" in props:
                    judged.append((o, props))
        if not by_batch and not judged:
            return []
        threads = next(iter(by_batch.values()), {}).get("threads", "?")
        out = [
            f"  latency  {'batch':>5} {'p50':>9} {'p95':>9} {'p99':>9} {'max':>9}  "
            f"(ms, threads={threads})"
        ]
        for batch, props in sorted(by_batch.items()):
            out.append(
                f"           {batch:>5} "
                + " ".join(_num(props.get(k)) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms"))
            )
        for o, props in judged:
            status = str(props.get("status", o.outcome)).upper()
            if props.get("inconclusive_warned"):
                status += " (warn: deploy_gate_latency_inconclusive)"
            label = f"{props.get('percentile')} batch={props.get('batch')}"
            if "budget_ms" in props:
                label += f" budget {float(props['budget_ms']):g} ms"
            elif "value" in props:
                label += f" {float(props['value']):.2f}x the baseline"
            out.append(f"           {label}: {status}")
        return out

    def expect(self, expected: Mapping[str, Iterable[str]]) -> None:
        """Tell the report which built-in checks apply to each artifact, so it can say what the
        run did not run."""
        self.expected = {artifact: tuple(names) for artifact, names in expected.items()}

    def not_run(self, artifact: str) -> list[NotRun]:
        """Per category, the applicable built-in checks of ``artifact`` this run did not run."""
        ran = {o.name: o for o in self.outcomes.values() if o.artifact == artifact}
        deselected: dict[str, int] = {}
        skipped: dict[str, list[str]] = {}
        for name in self.expected.get(artifact, ()):
            category = name.split("[", 1)[0]
            outcome = ran.get(name)
            if outcome is None:
                deselected[category] = deselected.get(category, 0) + 1
            elif outcome.outcome == "skipped" and outcome.skipped_elsewhere:
                skipped.setdefault(category, []).append(outcome.message)
        found = set(deselected) | set(skipped)
        return [
            NotRun(
                category,
                deselected.get(category, 0),
                len(skipped.get(category, [])),
                tuple(dict.fromkeys(skipped.get(category, []))),
            )
            for category in (*CATEGORIES, *sorted(found - set(CATEGORIES)))
            if category in found
        ]

    def partial(self) -> dict[str, list[NotRun]]:
        """The artifacts of a partial run, each with what it did not run; empty for a full run."""
        found = {artifact: self.not_run(artifact) for artifact in self.expected}
        return {artifact: missing for artifact, missing in found.items() if missing}

    def partial_summary(self) -> str:
        """``model.joblib: output, latency not run`` for each artifact of a partial run."""
        return "; ".join(
            f"{artifact}: {', '.join(n.category for n in missing)} not run"
            for artifact, missing in self.partial().items()
        )

    def isolation(self) -> dict[str, str]:
        """Per artifact, what protected the gate from its model (``smoke[load]``'s record)."""
        found = {}
        for o in self.outcomes.values():
            if o.artifact is not None:
                for name, value in o.properties:
                    if name in ("isolation", "isolation_warnings"):
                        key = o.artifact if name == "isolation" else f"{o.artifact}\0warnings"
                        found[key] = str(value)
        return found

    def verdict(self) -> tuple[bool, str]:
        failed = len(self.failures())
        passed = sum(1 for o in self.gate_outcomes() if o.outcome == "passed")
        if failed:
            return False, f"DEPLOYMENT BLOCKED ({failed} failed)"
        if passed == 0:
            return False, "DEPLOYMENT BLOCKED (no check passed)"
        text = APPROVED
        if any(v.startswith("none:") for v in self.isolation().values()):
            text += " (isolation none: the models ran inside pytest)"
        if self.not_recorded is not None:
            # Asked to record and unable to: the approval stands, the run does not pass.
            return False, f"{text}, but NOT RECORDED: {self.not_recorded}"
        return True, text

    def artifact_lines(self, artifact: str) -> list[str]:
        """What the run did not run of this artifact, and its ML Test Score, one line each."""
        out = []
        missing = self.not_run(artifact) if artifact in self.expected else []
        if missing:
            out.append("  not run  " + ", ".join(str(n) for n in missing))
        if artifact in self.scores:
            out.append(f"  {self.scores[artifact].summary_line()}")
        return out

    def isolation_lines(self, artifact: str) -> list[str]:
        isolation = self.isolation()
        out = []
        if artifact in isolation:
            out.append(f"  isolation  {isolation[artifact]}")
        if f"{artifact}\0warnings" in isolation:
            out.append(f"  isolation  not in force: {isolation[artifact + chr(0) + 'warnings']}")
        return out

    # -- renderings ----------------------------------------------------------------------
    def lines(self) -> list[str]:
        ids = self.version_ids()
        out = []
        for artifact, categories in self.by_artifact().items():
            head = artifact + (f"  {ids[artifact]}" if artifact in ids else "")
            out.append(head)
            out += self.isolation_lines(artifact)
            for category in (*CATEGORIES, PROJECT, OTHER):
                if category in categories:
                    c = self.counts(categories[category])
                    mark = "FAIL" if c["failed"] else ("ok" if c["passed"] else "--")
                    out.append(
                        f"  {mark:<4} {category:<8} {c['passed']:>3} passed "
                        f"{c['failed']:>3} failed {c['skipped']:>3} skipped"
                    )
            out += self.artifact_lines(artifact)
            out += self.comparison_lines(categories)
        for o in self.failures():
            out.append(f"FAILED {o.nodeid}: {o.message}")
        out.append(self.verdict()[1])
        return out

    def markdown(self) -> str:
        approved, line = self.verdict()
        ids = self.version_ids()
        md = [f"## {'✅' if approved else '❌'} {line}", ""]
        for artifact, categories in self.by_artifact().items():
            md.append(f"### `{artifact}`" + (f" — `{ids[artifact]}`" if artifact in ids else ""))
            md += [f"> {line.strip()}" for line in self.isolation_lines(artifact)]
            md += ["", "| check | passed | failed | skipped |", "|---|---:|---:|---:|"]
            for category in (*CATEGORIES, PROJECT, OTHER):
                if category in categories:
                    c = self.counts(categories[category])
                    md.append(f"| {category} | {c['passed']} | {c['failed']} | {c['skipped']} |")
            md.append("")
            notes = self.artifact_lines(artifact)
            if notes:
                md += [*(f"- {line.strip()}" for line in notes), ""]
            extra = self.comparison_lines(categories)
            if extra:
                md += ["```text", *extra, "```", ""]
        failures = self.failures()
        if failures:
            md += ["### Failures", ""]
            md += [f"- `{o.nodeid}`: {o.message}" for o in failures]
            md.append("")
        return "\n".join(md) + "\n"

    def annotations(self) -> list[str]:
        found = [
            f"::error file={_escape_property(o.nodeid.split('::')[0])},"
            f"title={_escape_property('deploy-gate ' + o.nodeid)}::{_escape_data(o.message)}"
            for o in self.failures()
        ]
        for artifact, missing in self.partial().items():
            text = "not run: " + ", ".join(str(n) for n in missing)
            found.append(
                f"::warning file={_escape_property(artifact)},"
                f"title={_escape_property('deploy-gate partial run')}::{_escape_data(text)}"
            )
        if self.not_recorded is not None:
            found.append(
                f"::error title={_escape_property('deploy-gate not recorded')}::"
                f"{_escape_data(self.not_recorded)}"
            )
        return found


def _num(value: object, width: int = 9) -> str:
    try:
        return f"{float(value):>{width}.3f}"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return f"{'-':>{width}}"


def _share(stage: str) -> float:
    try:
        return float(stage.rstrip("%"))
    except ValueError:
        return float("inf")


def _first_line(report: pytest.TestReport) -> str:
    text = report.longreprtext.strip()
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        text = str(crash.message)
    errors = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    if errors and crash is None:
        return errors[0][:500]
    for line in text.splitlines():
        # xdist puts "[gw0] linux -- Python 3.11.7 ..." before a worker's failure text.
        if line.strip() and not (line.startswith("[gw") and " -- Python " in line):
            return line.strip()[:500]
    return f"{report.when} failed"


def _skip_reason(report: pytest.TestReport) -> str:
    wasxfail = getattr(report, "wasxfail", None)
    if wasxfail is not None:
        return f"xfail: {wasxfail}" if wasxfail else "xfail"
    longrepr = report.longrepr
    if isinstance(longrepr, tuple | list) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _skipped_by_gate(report: pytest.TestReport) -> bool:
    """Whether a skip was raised by the gate's own code, which skips only with a stated reason
    (no labels, no data, no probabilities); a skip marker or a project's fixture is not."""
    if hasattr(report, "wasxfail"):
        return False
    longrepr = report.longrepr
    if not isinstance(longrepr, tuple | list) or len(longrepr) != 3:
        return False
    try:
        return Path(str(longrepr[0])).resolve().is_relative_to(_PACKAGE)
    except (OSError, ValueError):
        return False


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def finish_junit(path: Path, *, suite_name: str | None, move_properties: bool) -> None:
    """Give the suite the gate's name, and for xunit2 (whose schema has no properties on a
    testcase) move each testcase's figures to the suite, prefixed with the test's name.

    pytest's junitxml writes the file; this only renames and moves what it wrote.
    """
    import xml.etree.ElementTree as ET

    if not path.is_file():
        return
    tree = ET.parse(path)
    root = tree.getroot()
    for suite in root.iter("testsuite"):
        if suite_name is not None:
            suite.set("name", suite_name)
        if not move_properties:
            continue
        moved = []
        for case in suite.findall("testcase"):
            props = case.find("properties")
            if props is None:
                continue
            case.remove(props)
            test = f"{case.get('classname', '')}::{case.get('name', '')}"
            for prop in props.findall("property"):
                moved.append((f"{test}::{prop.get('name', '')}", prop.get("value", "")))
        if moved:
            suite_props = suite.find("properties")
            if suite_props is None:
                suite_props = ET.Element("properties")
                suite.insert(0, suite_props)
            for name, value in moved:
                ET.SubElement(suite_props, "property", name=name, value=value)
    from deploy_gate.files import write_atomic

    write_atomic(path, lambda f: tree.write(f, encoding="utf-8", xml_declaration=True))
