"""The gate's reporter: on the process that reports (the xdist controller, or the only one) it
gathers the outcomes, gives the verdict and the exit status, records the run, writes the JUnit
touch-ups, the HTML report and the terminal summary."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from deploy_gate.collect import GATE_KEY, GateItem
from deploy_gate.report import GateReport

if TYPE_CHECKING:
    from deploy_gate.gate import Gate
    from deploy_gate.ledger import LedgerRead

SUITE_NAME = "deploy-gate"
#: Where a worker's catalogue travels to the controller (``workeroutput``).
CATALOGUE_KEY = "deploy_gate_catalogue"


class GateReporter:
    """Collects outcomes on the process that reports (the xdist controller, or the only one),
    and which built-in checks were collected, so the summary can say what a run did not run."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.report: GateReport = GateReport()
        self.extra_lines: list[str] = []
        # Without xdist: per artifact node id, its path and the built-in checks collected
        # (before -k, -m, --lf or node ids narrowed them down).
        self._paths: dict[str, Path] = {}
        self._collected: dict[str, list[str]] = {}
        # Under xdist: the gate items the workers collected, after their selection, and the
        # built-in checks they collected before it.
        self._worker_ids: dict[str, set[str]] = {}
        self._worker_catalogue: dict[str, list[str]] = {}
        self._no_verdict: str | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.report.add(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        for node in report.result:
            if isinstance(node, GateItem):
                self._paths[node.nodeid.split("::")[0]] = node.path
        for key, names in builtins_collected(report).items():
            self._collected.setdefault(key, []).extend(names)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        for nodeid in ids:
            key, sep, name = nodeid.partition("::")
            if sep:
                self._worker_ids.setdefault(key, set()).add(name)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        # What a worker collected before its selection (see WorkerCatalogue); a worker that
        # crashed sends nothing, and the catalogue is then asked (_expected).
        output = getattr(node, "workeroutput", None) or {}
        for key, names in dict(output.get(CATALOGUE_KEY, {})).items():
            self._worker_catalogue.setdefault(str(key), [str(n) for n in names])

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        gate = self.config.stash[GATE_KEY]
        option = self.config.option
        if option.collectonly or getattr(option, "setuponly", False):
            # Nothing was checked: no verdict, no record, pytest's own exit status.
            flag = (
                "--collect-only"
                if option.collectonly
                else "--setup-plan"
                if getattr(option, "setupplan", False)
                else "--setup-only"
            )
            n = sum(isinstance(item, GateItem) for item in session.items)
            self._no_verdict = f"deploy gate: collected {n} checks; no verdict ({flag})"
            return
        from deploy_gate.record import record_run, score_artifacts

        artifacts = self._artifacts(gate)
        self.report.expect(self._expected(gate, artifacts))
        read = self._read_ledger(gate)
        self.report.scores = score_artifacts(self.report, artifacts, read.entries)
        if gate.settings.record or gate.settings.record_partial:
            self.extra_lines += record_run(gate, self.report, artifacts, self.config.rootpath)
        approved, _ = self.report.verdict()
        if not approved and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if gate.settings.latency_json is not None:
            self.extra_lines += self._latency_json(gate.settings.latency_json)
        if gate.settings.html is not None:
            from deploy_gate.html import write_html

            try:
                path = write_html(
                    self.report, gate.settings.html, artifacts=self._html_facts(artifacts)
                )
                self.extra_lines.append(f"HTML report: {path}")
            except OSError as exc:
                self.extra_lines.append(f"HTML report not written: {exc}")

    def _artifacts(self, gate: Gate) -> dict[str, Path]:
        """Each gated artifact under its node id (as the reports name it)."""
        root = self.config.rootpath
        known = dict(self._paths)
        named = set(self._worker_ids) | {o.artifact for o in self.report.outcomes.values()}
        for key in named - set(known) - {None}:
            known[str(key)] = root / str(key)
        by_path = {path.resolve(): key for key, path in known.items()}
        return {by_path.get(p.resolve()) or artifact_key(p, root): p for p in gate.artifact_paths}

    def _expected(self, gate: Gate, artifacts: dict[str, Path]) -> dict[str, tuple[str, ...]]:
        """The built-in checks that apply to each artifact.

        Without xdist this process collected them. Under xdist the workers' ids are what they
        kept after -k, -m, --lf or node ids, so the workers also send what they collected
        before (:class:`WorkerCatalogue`); without a selection, the ids are every check. Only
        when neither tells (a worker crashed) does the controller ask the catalogue itself,
        which loads the artifact once more (in its model worker).
        """
        from deploy_gate.record import applicable_checks

        expected = {}
        for key, path in artifacts.items():
            if self._collected.get(key):
                expected[key] = tuple(self._collected[key])
            elif self._worker_catalogue.get(key):
                expected[key] = tuple(self._worker_catalogue[key])
            elif self._worker_ids.get(key) and not self._selection_in_force():
                expected[key] = tuple(sorted(self._worker_ids[key]))
            else:
                expected[key] = applicable_checks(gate, path)
        return expected

    def _selection_in_force(self) -> bool:
        """Whether pytest was asked to run only some of the collected tests."""
        option = self.config.option
        chosen = (
            getattr(option, name, None)
            for name in ("keyword", "markexpr", "lf", "deselect", "stepwise", "stepwise_skip")
        )
        return any(chosen) or any("::" in str(arg) for arg in self.config.args)

    def _read_ledger(self, gate: Gate) -> LedgerRead:
        """The ledger as it was before this run recorded; its skipped lines reported once, in
        the summary (never as a warning, which filterwarnings=error would turn into a crash)."""
        from deploy_gate.errors import LedgerError
        from deploy_gate.ledger import Ledger, LedgerRead

        ledger = Ledger(gate.settings.ledger)
        if not ledger.exists():
            return LedgerRead()
        try:
            read = ledger.read()
        except LedgerError as exc:
            self.extra_lines.append(f"ledger: {exc}")
            return LedgerRead()
        self.extra_lines += [f"ledger: {skipped}" for skipped in read.skipped]
        return read

    def _html_facts(self, artifacts: dict[str, Path]) -> dict[str, dict[str, str]]:
        """What the run did not run and the ML Test Score in detail, per artifact."""
        facts: dict[str, dict[str, str]] = {}
        for artifact in artifacts:
            found: dict[str, str] = {}
            missing = self.report.not_run(artifact)
            if missing:
                found["Not run (a partial run)"] = ", ".join(str(n) for n in missing)
            scored = self.report.scores.get(artifact)
            if scored is not None:
                found.update(scored.details())
            if found:
                facts[artifact] = found
        return facts

    def _latency_json(self, path: Path) -> list[str]:
        """The latency rounds in pytest-benchmark's format: ``pytest-benchmark compare`` then
        shows them across runs (model versions)."""
        import json

        from deploy_gate.latency import benchmark_entry, write_benchmark_json

        entries = []
        for outcome in self.report.outcomes.values():
            props = dict(outcome.properties)
            if outcome.category == "latency" and "round_values_ms" in props:
                extra: dict[str, object] = {
                    k: props[k] for k in ("budget_ms", "threads", "batch") if k in props
                }
                entries.append(
                    benchmark_entry(
                        outcome.nodeid.split("::")[-1],
                        outcome.nodeid,
                        json.loads(str(props["round_values_ms"])),
                        group=outcome.artifact,
                        extra_info=extra,
                    )
                )
        if not entries:
            return [f"latency JSON: no latency rounds to write to {path}"]
        try:
            write_benchmark_json(path, entries)
        except OSError as exc:
            return [f"latency JSON not written: {exc}"]
        return [f"latency JSON (pytest-benchmark format): {path}"]

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        # junitxml writes its file in pytest_sessionfinish; by unconfigure it is complete.
        from deploy_gate.report import finish_junit

        xmlpath = config.option.xmlpath
        if not xmlpath:
            return
        suite = SUITE_NAME if config.getini("junit_suite_name") == "pytest" else None
        family = config.getini("junit_family")
        finish_junit(Path(xmlpath).absolute(), suite_name=suite, move_properties=family == "xunit2")

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self._no_verdict is not None:
            terminalreporter.write_sep("=", "deploy gate", bold=True)
            terminalreporter.write_line(self._no_verdict)
            return
        approved, verdict = self.report.verdict()
        terminalreporter.write_sep("=", "deploy gate", bold=True)
        try:
            lines = self.report.lines()
        except Exception as exc:  # a broken figure must not hide the verdict
            lines = [f"(the checklist could not be rendered: {exc!r})", verdict]
        for line in lines[:-1]:
            terminalreporter.write_line(line, red=line.startswith("FAILED"))
        for line in self.extra_lines:
            terminalreporter.write_line(line)
        terminalreporter.write_line(lines[-1], bold=True, green=approved, red=not approved)
        _github(self.report, terminalreporter.write_line)


class WorkerCatalogue:
    """On an xdist worker: the built-in checks each artifact collected, before -k, -m, --lf or
    node ids narrowed them, sent to the controller in ``workeroutput`` when the worker ends, so
    the reporter knows what a partial run left out without loading the artifact again."""

    def __init__(self, config: pytest.Config) -> None:
        self.collected: dict[str, list[str]] = {}
        config.workeroutput[CATALOGUE_KEY] = self.collected  # type: ignore[attr-defined]

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        for key, names in builtins_collected(report).items():
            self.collected.setdefault(key, []).extend(names)


def builtins_collected(report: pytest.CollectReport) -> dict[str, list[str]]:
    """Per artifact (node id), the built-in checks its own collect report holds: every one
    that applies, whatever a selection keeps (the session's report is left out: with node ids
    it holds only the items they picked)."""
    from deploy_gate.record import is_builtin

    found: dict[str, list[str]] = {}
    for node in report.result:
        if isinstance(node, GateItem):
            key = node.nodeid.split("::")[0]
            if report.nodeid != key:
                continue
            names = found.setdefault(key, [])
            if is_builtin(node.check):
                names.append(node.name)
    return found


def _github(report: GateReport, write: Callable[[str], None]) -> None:
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as f:
            f.write(report.markdown())
    if os.environ.get("GITHUB_ACTIONS") == "true" or summary:
        for line in report.annotations():
            write(line)


def artifact_key(path: Path, root: Path) -> str:
    """An artifact as reports name it: its path relative to the rootdir (else its name)."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return path.name
