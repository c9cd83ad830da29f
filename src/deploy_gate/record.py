"""What a finished gate run writes down: which built-in checks applied, the ML Test Score of what
the run established, and ledger lines for an approved run.

Runs on the process that reports (the xdist controller or the only process), from the reports'
figures and the artifact files themselves, never from objects that live on workers.

Recording follows DESIGN 8b: an approval is earned only by a run that ran every applicable
built-in check. A partial run (``-k``, ``-m``, ``--lf``, node ids, checks a project skipped) may
pass, but ``--deploy-gate-record`` refuses it and the run exits 1, unless
``--deploy-gate-record-partial`` asks for a line marked partial, which the ledger never returns
as the deployed version. A record that cannot be written fails the run the same way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploy_gate.report import GateReport, Outcome

if TYPE_CHECKING:
    from deploy_gate.checks import Check
    from deploy_gate.gate import Gate
    from deploy_gate.ledger import LedgerEntry
    from deploy_gate.mltestscore import MLTestScore

#: Where the built-in checks are defined; a check from a plugin or conftest.py is not one.
_BUILTIN_MODULES = "deploy_gate.checks"


def is_builtin(check: Check) -> bool:
    """Whether ``check`` is one of the gate's own (a partial run is judged on those only)."""
    module = getattr(check.func, "__module__", "") or ""
    return module == _BUILTIN_MODULES or module.startswith(_BUILTIN_MODULES + ".")


def applicable_checks(gate: Gate, path: Path) -> tuple[str, ...]:
    """The names of the built-in checks that apply to the artifact at ``path``.

    This loads the artifact (in its model worker) unless this process already did, which is why
    the reporter asks only when no collection it saw can tell (under xdist with a selection).
    """
    from deploy_gate.checks import builtin_checks

    loaded = gate.artifact_or_error(path)
    profile = None if isinstance(loaded, BaseException) else loaded.profile
    return tuple(c.name for c in builtin_checks(profile, gate.settings) if is_builtin(c))


def artifact_outcomes(report: GateReport, artifact: str) -> list[Outcome]:
    return [o for o in report.outcomes.values() if o.artifact == artifact]


def counts_by_category(report: GateReport, outcomes: list[Outcome]) -> dict[str, dict[str, int]]:
    from deploy_gate.report import CATEGORIES

    return {
        category: report.counts(o for o in outcomes if o.category == category)
        for category in CATEGORIES
        if any(o.category == category for o in outcomes)
    }


def _props(outcomes: list[Outcome], category: str) -> list[dict[str, Any]]:
    return [dict(o.properties) for o in outcomes if o.category == category]


def score_artifacts(
    report: GateReport, artifacts: Mapping[str, Path], entries: Sequence[LedgerEntry]
) -> dict[str, MLTestScore]:
    """The ML Test Score of each artifact with outcomes, from the checks of this run that passed.

    Infra 7 (rollback) counts when the ledger holds a version of a full run with other bytes:
    after this artifact is deployed, that version is what a rollback goes back to.
    """
    from deploy_gate.identity import sha256_file
    from deploy_gate.mltestscore import GateRun, score

    full = {e.sha256 for e in entries if not e.is_partial}
    scores = {}
    for artifact, path in artifacts.items():
        outcomes = artifact_outcomes(report, artifact)
        if not outcomes:
            continue
        try:
            others = bool(full - {sha256_file(path)})
        except OSError:
            others = bool(full)
        run = GateRun.from_outcomes(
            {o.name: o.outcome for o in outcomes},
            ledger_has_previous=others,
            repeated=bool(os.environ.get("CI")),
        )
        scores[artifact] = score(run)
    return scores


def ledger_entry(
    gate: Gate, report: GateReport, artifact: str, path: Path, root: Path
) -> LedgerEntry:
    """The ledger line of one artifact of an approved run (marked partial when the run did not
    run every applicable built-in check of it)."""
    from deploy_gate.identity import environment_versions, sha256_file, version_id
    from deploy_gate.ledger import LedgerEntry

    outcomes = artifact_outcomes(report, artifact)
    sha = sha256_file(path)
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
    scored = report.scores.get(artifact)
    not_run = report.not_run(artifact) if artifact in report.expected else []
    return LedgerEntry.create(
        path,
        record_as=artifact,
        sha256=sha,
        version=version_id(sha, gate.started),
        when=gate.started,
        counts=counts_by_category(report, outcomes),
        latency=latency or None,
        loader=version_props.get("loader"),
        baseline_version=base_version,
        baseline_sha256=base_sha,
        metric_ratios=ratios or None,
        ml_test_score=None if scored is None else scored.to_dict(),
        partial={n.category: n.counts() for n in not_run} or None,
        libraries=environment_versions(),
        git_cwd=root,
    )


def record_run(
    gate: Gate, report: GateReport, artifacts: Mapping[str, Path], root: Path
) -> list[str]:
    """Append one ledger line per artifact of an approved run, all in one write; the summary
    lines that say what was (or was not) recorded.

    A run asked to record that is not recorded (partial, or the write failed) sets
    ``report.not_recorded``: its verdict says so and it exits 1.
    """
    from deploy_gate.errors import LedgerError
    from deploy_gate.ledger import Ledger

    ledger_path = Path(gate.settings.ledger)
    approved, verdict = report.verdict()
    if not approved:
        return [f"ledger: nothing recorded in {ledger_path} ({verdict})"]
    partial = report.partial()
    if partial and not gate.settings.record_partial:
        report.not_recorded = f"partial run ({report.partial_summary()})"
        return [
            f"ledger: NOT RECORDED in {ledger_path}: {report.not_recorded}. An approval is "
            "earned only by a run of every applicable built-in check: run them all, or pass "
            "--deploy-gate-record-partial to record this run marked partial (never the "
            "deployed version)"
        ]
    try:
        entries = [ledger_entry(gate, report, a, p, root) for a, p in artifacts.items()]
        Ledger(ledger_path).record_all(entries)
    except (LedgerError, OSError, ValueError, TypeError) as exc:
        report.not_recorded = _describe(exc)
        return [f"ledger: NOT RECORDED: {report.not_recorded}"]
    lines = []
    for entry in entries:
        line = f"ledger: recorded {entry.version} ({entry.path}) in {ledger_path}"
        if entry.is_partial:
            missing = ", ".join(str(n) for n in report.not_run(entry.path))
            line += (
                f" as PARTIAL (not run: {missing}); `deploy-gate ledger current` never returns it"
            )
        lines.append(line)
    return lines


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f" {os.fsdecode(exc.filename)}" if exc.filename is not None else ""
        return f"cannot write the ledger entry{where}: {exc.strerror}"
    return str(exc) or type(exc).__name__
