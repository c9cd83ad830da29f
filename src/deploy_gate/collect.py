"""Collection: an artifact named on the command line becomes a file node whose items are checks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from deploy_gate.errors import CheckFailure
from deploy_gate.pytest_compat import parse_stable_id

if TYPE_CHECKING:
    from deploy_gate.checks import Check
    from deploy_gate.gate import Gate

GATE_KEY: pytest.StashKey[Gate] = pytest.StashKey()


class GateFile(pytest.File):
    """One artifact; ``collect()`` yields an item per check that applies to its model."""

    def collect(self) -> Iterator[pytest.Item]:
        from deploy_gate.checks import iter_checks

        gate = self.config.stash[GATE_KEY]
        loaded = gate.artifact_or_error(self.path)
        profile = None if isinstance(loaded, BaseException) else loaded.profile
        results = self.config.hook.pytest_deploy_gate_checks(
            profile=profile, settings=gate.settings
        )
        for check in iter_checks(results, profile, gate.settings):
            yield GateItem.from_parent(self, name=check.name, callobj=check.func, check=check)


class GateItem(pytest.Function):
    """A check run as a real test function, so fixtures and overrides reach it."""

    def __init__(self, *, check: Check, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        parse_stable_id(self)
        self.check = check
        self.add_marker("deploy_gate")
        self.add_marker(check.category)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, self.name

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> Any:
        if isinstance(excinfo.value, CheckFailure) or _is_worker_error(excinfo.value):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


def _is_worker_error(exc: BaseException) -> bool:
    """A model worker died, hung or spoke out of turn, or an endpoint did not answer: its
    message is the whole story."""
    from deploy_gate.endpoint.errors import EndpointError
    from deploy_gate.worker import WorkerError

    return isinstance(exc, (WorkerError, EndpointError))


class EndpointNode(pytest.Collector):
    """One ``--deploy-gate-endpoint``: node id ``endpoint:<name>``, an item per check that
    applies to a server (see :mod:`deploy_gate.checks.endpoint`)."""

    def collect(self) -> Iterator[pytest.Item]:
        from deploy_gate.checks.endpoint import bind, endpoint_checks
        from deploy_gate.endpoint.target import endpoint_targets

        gate = self.config.stash[GATE_KEY]
        target = next(t for t in endpoint_targets(gate) if t.nodeid_name == self.name)
        checks = endpoint_checks(
            target.profile, gate.settings, with_artifact=bool(gate.artifact_paths)
        )
        for check in checks:
            yield GateItem.from_parent(
                self, name=check.name, callobj=bind(check, target), check=check
            )

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, self.name


class EndpointCollection:
    """Adds an :class:`EndpointNode` per endpoint to the session's collection (registered when
    ``--deploy-gate-endpoint`` is given): an endpoint is no file, so no argument claims it."""

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector: pytest.Collector) -> Any:
        report = yield
        if isinstance(collector, pytest.Session) and report.passed:
            from deploy_gate.endpoint.target import endpoint_targets

            gate = collector.config.stash[GATE_KEY]
            for target in endpoint_targets(gate):
                report.result.append(
                    EndpointNode.from_parent(
                        collector, name=target.nodeid_name, nodeid=target.nodeid_name
                    )
                )
        return report
