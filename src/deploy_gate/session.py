"""The hooks of a pytest run with the gate switched on: collecting the artifacts named on the
command line, parametrizing project tests over them, time limits, and xdist scheduling.

:func:`start` registers them from the plugin's ``pytest_configure`` when ``--deploy-gate`` is
given, so a run without the flag neither imports this module nor calls its hooks.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from deploy_gate.collect import GATE_KEY, GateFile, GateItem
from deploy_gate.reporter import GateReporter, WorkerCatalogue, artifact_key

if TYPE_CHECKING:
    from deploy_gate.options import Settings

DEFAULT_JUNIT = "deploy-gate.xml"
_STARTED = "deploy_gate_started"
_THREADS_KEY: pytest.StashKey[ThreadLimits] = pytest.StashKey()


def start(config: pytest.Config) -> None:
    """Resolve the settings, build the run's :class:`~deploy_gate.gate.Gate` and register the
    hooks that run it (the reporter only on the process that reports)."""
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
    gate = Gate(settings, _artifact_args(config), started)
    config.stash[GATE_KEY] = gate
    if not gate.isolated and settings.latency_threads is not None:
        config.stash[_THREADS_KEY] = ThreadLimits(int(settings.latency_threads))
    config.pluginmanager.register(sys.modules[__name__], "deploy-gate-session")
    if settings.endpoint:
        from deploy_gate.collect import EndpointCollection

        config.pluginmanager.register(EndpointCollection(), "deploy-gate-endpoints")
    if workerinput is None:
        if config.option.xmlpath is None:
            config.option.xmlpath = DEFAULT_JUNIT
        config.pluginmanager.register(GateReporter(config), "deploy-gate-reporter")
    else:
        config.pluginmanager.register(WorkerCatalogue(config), "deploy-gate-catalogue")
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

    # Not in pytest-xdist's controller: it runs no check, its workers start their own.
    config = session.config
    if (
        getattr(config, "workerinput", None) is not None
        or getattr(config.option, "dist", "no") == "no"
    ):
        gate.prestart()
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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A project's own tests that use the fixtures run once per gated artifact."""
    gate = metafunc.config.stash.get(GATE_KEY, None)
    if gate is None or not gate.artifact_paths:
        return
    if "deploy_gate_artifact_path" in metafunc.fixturenames:
        root = metafunc.config.rootpath
        ids = [artifact_key(p, root) for p in gate.artifact_paths]
        metafunc.parametrize(
            "deploy_gate_artifact_path", list(gate.artifact_paths), ids=ids, indirect=True
        )


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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A model's own exception, raised in the model worker, carries its traceback there: shown
    under the failure as a section of its own. The gate's frames that carried it are hidden
    (``__tracebackhide__``), so the failure reads as the check's call and the model's frames."""
    report = yield
    if call.excinfo is not None:
        text = _model_traceback(call.excinfo.value)
        if text:
            report.sections.append(("model traceback (in the model worker)", text))
    return report


def _model_traceback(exc: BaseException) -> str:
    """The worker's traceback of ``exc``, or of the exception it was raised from."""
    seen: set[int] = set()
    found: BaseException | None = exc
    while found is not None and id(found) not in seen:
        seen.add(id(found))
        text = getattr(found, "remote_traceback", "")
        if isinstance(text, str) and text.strip():
            return text
        found = found.__cause__ or (None if found.__suppress_context__ else found.__context__)
    return ""


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
        # that swallows exceptions outlives it; the worker limits its own thread pools. Where
        # the gate and its workers run is the OS's choice (see checks/latency.py, _one_cpu).
        with gate.deadline(seconds, f"{item.name} ({phase}, deploy_gate_check_timeout)"):
            yield
        return
    from deploy_gate.timeouts import deadline

    with contextlib.ExitStack() as stack:
        limits = item.config.stash.get(_THREADS_KEY, None)
        if limits is not None:
            stack.enter_context(limits.limited())
        stack.enter_context(deadline(seconds, f"{item.name} ({phase})"))
        yield


class ThreadLimits:
    """``deploy_gate_latency_threads`` on this process's thread pools (BLAS, OpenMP), for the
    checks that run the model here (``--deploy-gate-isolation none``).

    threadpoolctl finds the pools by scanning every loaded shared library, milliseconds a scan:
    twice per check adds up to seconds per artifact. One scan is kept and reused, and redone
    only when modules were imported since, which is how a model's runtimes arrive (numpy's
    BLAS, scikit-learn's or LightGBM's OpenMP). Setting and restoring the limits around a check
    through a kept controller costs microseconds.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._controller: Any = None
        self._modules = -1

    def limited(self) -> contextlib.AbstractContextManager[Any]:
        """The limits in force for a ``with`` block, the original ones restored after it."""
        from threadpoolctl import ThreadpoolController

        modules = len(sys.modules)
        if self._controller is None or modules != self._modules:
            self._controller = ThreadpoolController()
            self._modules = modules
        limiter: contextlib.AbstractContextManager[Any] = self._controller.limit(limits=self.limit)
        return limiter
