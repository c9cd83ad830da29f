"""What a finished gate run writes down: ledger lines for a green run, and the ML Test Score.

Runs on the process that reports (the xdist controller or the only process), from the reports'
figures and the artifact files themselves, never from objects that live on workers.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploy_gate.report import CATEGORIES, GateReport, Outcome

if TYPE_CHECKING:
    from deploy_gate.gate import Gate
    from deploy_gate.ledger import LedgerEntry
    from deploy_gate.mltestscore import MLTestScore


def _short(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def artifact_outcomes(report: GateReport, artifact: str) -> list[Outcome]:
    return [o for o in report.outcomes.values() if o.artifact == artifact]


def counts_by_category(report: GateReport, outcomes: list[Outcome]) -> dict[str, dict[str, int]]:
    return {
        category: report.counts(o for o in outcomes if o.category == category)
        for category in CATEGORIES
        if any(o.category == category for o in outcomes)
    }


def _props(outcomes: list[Outcome], category: str) -> list[dict[str, Any]]:
    return [dict(o.properties) for o in outcomes if o.category == category]


def ml_test_score(
    report: GateReport, outcomes: list[Outcome], *, ledger_has_previous: bool
) -> MLTestScore:
    from deploy_gate.mltestscore import GateRun, score

    latency_ids = [o.nodeid for o in outcomes if o.category == "latency"]
    run = GateRun.from_counts(
        counts_by_category(report, outcomes),
        ledger_has_previous=ledger_has_previous,
        latency_vs_baseline=any("vs-baseline" in n for n in latency_ids),
        prediction_drift=any(o.nodeid.endswith("drift[prediction]") for o in outcomes),
        repeated=bool(os.environ.get("CI")),
    )
    return score(run)


def ledger_entry(
    gate: Gate, report: GateReport, artifact_path: Path, root: Path
) -> tuple[LedgerEntry, MLTestScore]:
    """The ledger line of one artifact of a green run."""
    from deploy_gate.artifact import library_versions
    from deploy_gate.ledger import Ledger, LedgerEntry, sha256_file, version_id

    name = _short(artifact_path, root)
    outcomes = artifact_outcomes(report, name)
    sha = sha256_file(artifact_path)
    ledger = Ledger(gate.settings.ledger)
    has_previous = any(e.sha256 != sha for e in ledger.entries())
    mlts = ml_test_score(report, outcomes, ledger_has_previous=has_previous)
    version_props = next(iter(_props(outcomes, "version")), {})
    latency: dict[str, Any] = {}
    for props in _props(outcomes, "smoke"):
        if "mean_ms" in props:
            latency["smoke_mean_ms"] = props["mean_ms"]
    for props in _props(outcomes, "latency"):
        if "percentile" in props and "batch" in props and "value" in props:
            unit = "x_baseline" if "vs-baseline" in str(props["percentile"]) else "ms"
            latency[f"{props['percentile']}_batch{props['batch']}_{unit}"] = props["value"]
    baseline = _props(outcomes, "baseline")
    ratios = {
        str(p["metric"]): float(p["ratio"])
        for p in baseline
        if "metric" in p and p.get("ratio") not in (None, "None")
    }
    base_version = next((p.get("baseline_version") for p in baseline), None)
    base_sha = next((p.get("baseline_sha256") for p in baseline), None)
    entry = LedgerEntry.create(
        name,
        sha256=sha,
        version=version_id(sha, gate.started),
        when=gate.started,
        counts=counts_by_category(report, outcomes),
        latency=latency or None,
        loader=version_props.get("loader"),
        baseline_version=base_version,
        baseline_sha256=base_sha,
        metric_ratios=ratios or None,
        ml_test_score=mlts.to_dict(),
        libraries=library_versions(),
        git_cwd=root,
    )
    return entry, mlts


def record_run(gate: Gate, report: GateReport, root: Path) -> list[str]:
    """Append one ledger line per artifact when every test of the run passed; the summary lines
    that say what was (or was not) recorded."""
    from deploy_gate.errors import LedgerError

    ledger_path = Path(gate.settings.ledger)
    approved, verdict = report.verdict()
    if not approved:
        return [f"ledger: nothing recorded in {ledger_path} ({verdict})"]
    lines = []
    # A torn ledger line must not become an error under a project's filterwarnings=error.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for path in gate.artifact_paths:
            from deploy_gate.ledger import Ledger

            try:
                entry, _ = ledger_entry(gate, report, path, root)
                Ledger(ledger_path).record(entry)
            except (LedgerError, OSError) as exc:
                lines.append(f"ledger: could not record {path.name}: {exc}")
                continue
            lines.append(f"ledger: recorded {entry.version} ({entry.path}) in {ledger_path}")
    lines += [f"ledger: warning: {w.message}" for w in caught]
    return lines
