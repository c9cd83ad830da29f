"""pytest wiring of the deploy gate: options, collection, fixtures and reporting.

This module imports only pytest and the standard library, so a pytest run without
``--deploy-gate`` pays nothing for the plugin; the modules that need numpy, pandas or
scikit-learn load when the gate runs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from deploy_gate.collect import GATE_KEY, GateFile, GateItem
from deploy_gate.options import add_options

if TYPE_CHECKING:
    from deploy_gate.artifact import LoadedArtifact, ModelProfile
    from deploy_gate.checks import BaselineRun, Check
    from deploy_gate.data import GateData
    from deploy_gate.gate import Gate
    from deploy_gate.ledger import LedgerRead
    from deploy_gate.options import Settings
    from deploy_gate.report import GateReport

DEFAULT_JUNIT = "deploy-gate.xml"
SUITE_NAME = "deploy-gate"
_STARTED = "deploy_gate_started"
_NOT_ON = "the deploy gate is off: run pytest --deploy-gate ARTIFACT [--deploy-gate-data DATA]"


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from deploy_gate import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    from deploy_gate.report import CATEGORIES

    config.addinivalue_line("markers", "deploy_gate: a check of the model deployment gate")
    for category in CATEGORIES:
        config.addinivalue_line("markers", f"{category}: deploy gate {category} checks")
    if not config.getoption("deploy_gate"):
        return
    from deploy_gate.gate import Gate
    from deploy_gate.options import resolve

    settings = resolve(config)
    _check_trust_and_pins(settings)
    workerinput = getattr(config, "workerinput", None)
    started = (
        datetime.fromisoformat(workerinput[_STARTED])
        if workerinput is not None and _STARTED in workerinput
        else datetime.now(timezone.utc)
    )
    config.stash[GATE_KEY] = Gate(settings, _artifact_args(config), started)
    if workerinput is None:
        if config.option.xmlpath is None:
            config.option.xmlpath = DEFAULT_JUNIT
        config.pluginmanager.register(GateReporter(config), "deploy-gate-reporter")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(), "deploy-gate-xdist")


def _check_trust_and_pins(settings: Settings) -> None:
    from deploy_gate.errors import ConfigError
    from deploy_gate.safeload import read_pins, validate_trust

    try:
        validate_trust(settings.trust or ())
        if settings.pin is not None:
            read_pins(settings.pin)
    except (ConfigError, OSError) as exc:
        source = settings.source("pin") if "pin" in str(exc) else settings.source("trust")
        raise pytest.UsageError(f"{source}: {exc}") from None


def pytest_report_header(config: pytest.Config) -> list[str]:
    gate = config.stash.get(GATE_KEY, None)
    if gate is None:
        return []
    started = f"{gate.started:%Y-%m-%dT%H:%M:%SZ}"
    lines = [f"deploy-gate: {len(gate.artifact_paths)} artifact(s), run started {started}"]
    workers = getattr(config.option, "numprocesses", None)
    if workers:
        lines.append(
            "deploy-gate: latency items share one xdist worker, but the "
            "other workers still disturb its timings; use -n 0 for figures you compare"
        )
    return lines


def _artifact_args(config: pytest.Config) -> list[Path]:
    from deploy_gate.artifact import ARTIFACT_SUFFIXES

    base = config.invocation_params.dir
    paths = []
    for arg in config.args:
        path = Path(arg.split("::")[0])
        path = path if path.is_absolute() else base / path
        if path.suffix.lower() in ARTIFACT_SUFFIXES:
            paths.append(path)
        elif path.is_dir() and config.args_source == pytest.Config.ArgsSource.ARGS:
            # A folder of models would collect nothing and say nothing: the gate judges the
            # artifacts it is given, one by one, never whatever a folder happens to hold.
            inside = sorted(p.name for p in path.iterdir() if p.suffix.lower() in ARTIFACT_SUFFIXES)
            if inside:
                raise pytest.UsageError(
                    f"--deploy-gate: {arg} is a folder holding {', '.join(inside[:5])}"
                    f"{', ...' if len(inside) > 5 else ''}: name each artifact to gate, e.g. "
                    f"pytest --deploy-gate {Path(arg) / inside[0]}"
                )
    return paths


class _XdistHooks:
    """The xdist side of the gate: one start time for every worker, so version ids agree, and
    ``--dist load`` (what ``-n`` uses) keeping the latency items on one worker."""

    def pytest_configure_node(self, node: Any) -> None:
        gate = node.config.stash.get(GATE_KEY, None)
        if gate is not None:
            node.workerinput[_STARTED] = gate.started.isoformat()

    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        if getattr(config.option, "dist", "no") != "load":
            return None  # the user chose a scheduling mode: theirs
        from deploy_gate.pytest_compat import make_scheduler

        return make_scheduler(config, log, _is_latency_nodeid)


def _is_latency_nodeid(nodeid: str) -> bool:
    from deploy_gate.artifact import ARTIFACT_SUFFIXES

    path, _, name = nodeid.partition("::")
    return name.startswith("latency[") and path.lower().endswith(ARTIFACT_SUFFIXES)


def pytest_sessionstart(session: pytest.Session) -> None:
    gate = session.config.stash.get(GATE_KEY, None)
    if gate is None:
        return
    from deploy_gate.errors import DataError

    try:
        gate.data()
    except DataError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    gate = config.stash.get(GATE_KEY, None)
    if gate is not None:
        gate.close()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> GateFile | None:
    gate = parent.config.stash.get(GATE_KEY, None)
    if gate is not None and gate.is_artifact(file_path):
        return GateFile.from_parent(parent, path=file_path)
    return None


def pytest_deploy_gate_checks(profile: ModelProfile | None, settings: Settings) -> list[Check]:
    from deploy_gate.checks import builtin_checks

    return builtin_checks(profile, settings)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A project's own tests that use the fixtures run once per gated artifact."""
    gate = metafunc.config.stash.get(GATE_KEY, None)
    if gate is None or not gate.artifact_paths:
        return
    if "deploy_gate_artifact_path" in metafunc.fixturenames:
        root = metafunc.config.rootpath
        ids = [_short(p, root) for p in gate.artifact_paths]
        metafunc.parametrize(
            "deploy_gate_artifact_path", list(gate.artifact_paths), ids=ids, indirect=True
        )


def _short(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return path.name


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not isinstance(item, GateItem) and "deploy_gate_artifact_path" in getattr(
            item, "fixturenames", ()
        ):
            item.add_marker("deploy_gate")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Any:
    with _time_limit(item, "setup"):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    with _time_limit(item, "check"):
        return (yield)


@contextlib.contextmanager
def _time_limit(item: pytest.Item, phase: str) -> Iterator[None]:
    """A gate check runs under its time limit, with thread pools limited to
    deploy_gate_latency_threads (in the model worker, or here without one): an OpenMP team
    spinning on a busy shared CI core makes a single-row call a hundred times slower."""
    gate = item.config.stash.get(GATE_KEY, None)
    if gate is None or item.get_closest_marker("deploy_gate") is None:
        yield
        return
    seconds = float(gate.settings.check_timeout)
    if isinstance(item, GateItem) and item.check.category == "latency":
        # A latency measurement stops itself at deploy_gate_latency_max_seconds; the check's
        # deadline is for a hang, so it starts counting after that cap.
        seconds += float(gate.settings.latency_max_seconds)
    if gate.isolated:
        # Enforced from here by killing the model worker, so neither a C loop nor Python code
        # that swallows exceptions outlives it; the worker limits its own thread pools.
        with gate.deadline(seconds, f"{item.name} ({phase}, deploy_gate_check_timeout)"):
            yield
        return
    from deploy_gate.timeouts import deadline

    with contextlib.ExitStack() as stack:
        threads = gate.settings.latency_threads
        if threads is not None:
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(limits=threads))
        stack.enter_context(deadline(seconds, f"{item.name} ({phase})"))
        yield


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def deploy_gate(request: pytest.FixtureRequest) -> Gate:
    """The gate run: settings, artifacts and caches (skips when the gate is off)."""
    gate: Gate | None = request.config.stash.get(GATE_KEY, None)
    if gate is None:
        pytest.skip(_NOT_ON)
    return gate


@pytest.fixture
def deploy_gate_settings(deploy_gate: Gate) -> Settings:
    """The gate's resolved settings (command line over ini file over defaults)."""
    return deploy_gate.settings


@pytest.fixture
def deploy_gate_property(request: pytest.FixtureRequest) -> Callable[[str, object], None]:
    """Record a figure of the current check: it goes to the JUnit report and the summary.

    Unlike ``record_property`` it is valid for every ``junit_family``: under xunit2 the gate
    moves the figures to the suite's properties when the report is written.
    """

    def record(name: str, value: object) -> None:
        request.node.user_properties.append((name, value))

    return record


@pytest.fixture
def deploy_gate_artifact_path(request: pytest.FixtureRequest, deploy_gate: Gate) -> Path:
    """Path of the artifact under test (parametrized over the artifacts for project tests)."""
    param = getattr(request, "param", None)
    if param is not None:
        return Path(param)
    node = request.node.getparent(GateFile)
    if node is None:
        pytest.skip("no artifact to gate: name one, e.g. pytest --deploy-gate model.joblib")
    return Path(node.path)


@pytest.fixture
def model_artifact(deploy_gate: Gate, deploy_gate_artifact_path: Path) -> LoadedArtifact:
    """The loaded artifact: path, sha256, version id, loader and the model object."""
    from deploy_gate.checks import describe_exc

    loaded = deploy_gate.artifact_or_error(deploy_gate_artifact_path)
    if isinstance(loaded, BaseException):
        pytest.skip(
            f"{deploy_gate_artifact_path.name} did not load ({describe_exc(loaded)}); "
            "see smoke[load]"
        )
    return loaded


@pytest.fixture
def deploy_gate_data(deploy_gate: Gate, model_artifact: LoadedArtifact) -> GateData:
    """Rows to feed the model: --deploy-gate-data, or synthetic rows when the model allows."""
    from deploy_gate.errors import DataError

    try:
        data = deploy_gate.data_for(model_artifact)
    except DataError as exc:
        pytest.fail(str(exc), pytrace=False)
    if isinstance(data, str):
        pytest.skip(data)
    return data


@pytest.fixture
def deployment_factory(deploy_gate: Gate) -> Callable[[Path], Any]:
    """Makes an unloaded deployment for a path; override it to gate your own wrapper class.

    Return a class or a module-level function: the model worker imports it by name and builds
    the deployment there, so the model never runs inside pytest.
    """
    return deploy_gate.default_factory()


@pytest.fixture
def deploy_gate_factory(
    deploy_gate: Gate, deployment_factory: Callable[[Path], Any]
) -> Callable[[Path], Any]:
    """``deployment_factory`` as the gate calls it: building in the model worker (a proxy comes
    back) unless ``--deploy-gate-isolation none``."""
    from deploy_gate.errors import ConfigError

    try:
        return deploy_gate.served_by(deployment_factory)
    except ConfigError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def deployment(
    deploy_gate: Gate,
    model_artifact: LoadedArtifact,
    deploy_gate_factory: Callable[[Path], Any],
) -> Any:
    """The loaded deployment every check drives; override it to gate your serving wrapper."""

    def load() -> Any:
        deployed = deploy_gate_factory(model_artifact.path)
        deployed.load_model()
        return deployed

    # One loaded deployment per artifact and factory, shared by the checks as a serving process
    # shares one model between requests (a factory made anew per test is not cached).
    return deploy_gate.cached(("deployment", deploy_gate_factory, model_artifact.path), load)


@pytest.fixture
def deploy_gate_baseline(
    deploy_gate: Gate, deploy_gate_factory: Callable[[Path], Any]
) -> BaselineRun:
    """The model in production (--deploy-gate-baseline), served like the candidate."""
    from deploy_gate.checks import BaselineRun, describe_exc

    path = deploy_gate.settings.baseline
    if path is None:
        pytest.skip("no baseline: pass --deploy-gate-baseline PATH (the model in production)")
    loaded = deploy_gate.artifact_or_error(path)
    if isinstance(loaded, BaseException):
        pytest.fail(f"baseline {path} did not load: {describe_exc(loaded)}", pytrace=False)

    def load() -> Any:
        served = deploy_gate_factory(loaded.path)
        served.load_model()
        return served

    served = deploy_gate.cached(("deployment", deploy_gate_factory, loaded.path), load)
    return BaselineRun(loaded, served, deploy_gate.feature_names(loaded))


# -- reporting ------------------------------------------------------------------------------


class GateReporter:
    """Collects outcomes on the process that reports (the xdist controller, or the only one),
    and which built-in checks were collected, so the summary can say what a run did not run."""

    def __init__(self, config: pytest.Config) -> None:
        from deploy_gate.report import GateReport

        self.config = config
        self.report: GateReport = GateReport()
        self.extra_lines: list[str] = []
        # Without xdist: per artifact node id, its path and the built-in checks collected
        # (before -k, -m, --lf or node ids narrowed them down).
        self._paths: dict[str, Path] = {}
        self._collected: dict[str, list[str]] = {}
        # Under xdist: the gate items the workers collected, after their selection.
        self._worker_ids: dict[str, set[str]] = {}
        self._no_verdict: str | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.report.add(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        from deploy_gate.record import is_builtin

        for node in report.result:
            if isinstance(node, GateItem):
                key = node.nodeid.split("::")[0]
                self._paths[key] = node.path
                if report.nodeid != key:
                    continue  # the session's report: only the items node ids picked
                names = self._collected.setdefault(key, [])
                if is_builtin(node.check):
                    names.append(node.name)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        for nodeid in ids:
            key, sep, name = nodeid.partition("::")
            if sep:
                self._worker_ids.setdefault(key, set()).add(name)

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
        return {by_path.get(p.resolve()) or _short(p, root): p for p in gate.artifact_paths}

    def _expected(self, gate: Gate, artifacts: dict[str, Path]) -> dict[str, tuple[str, ...]]:
        """The built-in checks that apply to each artifact.

        Without xdist this process collected them. Under xdist the workers' ids are what they
        kept after -k, -m, --lf or node ids: with such a selection the controller asks the
        catalogue itself, which loads the artifact once more (in its model worker); without
        one, what the workers collected is every check.
        """
        from deploy_gate.record import applicable_checks

        expected = {}
        for key, path in artifacts.items():
            if self._collected.get(key):
                expected[key] = tuple(self._collected[key])
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


def _github(report: GateReport, write: Callable[[str], None]) -> None:
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as f:
            f.write(report.markdown())
    if os.environ.get("GITHUB_ACTIONS") == "true" or summary:
        for line in report.annotations():
            write(line)
