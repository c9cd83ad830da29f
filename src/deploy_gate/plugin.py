"""pytest wiring of the deploy gate: the plugin's entry point (``pytest11``).

Every pytest run imports this module, so with the gate off it costs only what option and marker
registration need: it imports pytest, the standard library and the option specs. Its fixtures
exist either way (and skip when the gate is off); ``--deploy-gate`` registers the hooks that
run the gate (:mod:`deploy_gate.session`) and report it (:mod:`deploy_gate.reporter`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from deploy_gate.categories import CATEGORIES
from deploy_gate.options import add_options

if TYPE_CHECKING:
    from deploy_gate.artifact import LoadedArtifact, ModelProfile
    from deploy_gate.checks import Check
    from deploy_gate.checks.baseline import BaselineRun
    from deploy_gate.data import GateData
    from deploy_gate.deployment import Deployment
    from deploy_gate.gate import Gate
    from deploy_gate.options import Settings

_NOT_ON = "the deploy gate is off: run pytest --deploy-gate ARTIFACT [--deploy-gate-data DATA]"


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from deploy_gate import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "deploy_gate: a check of the model deployment gate")
    for category in CATEGORIES:
        config.addinivalue_line("markers", f"{category}: deploy gate {category} checks")
    if config.getoption("deploy_gate"):
        from deploy_gate.session import start

        start(config)


def pytest_deploy_gate_checks(profile: ModelProfile | None, settings: Settings) -> list[Check]:
    # Here, not in deploy_gate.session, so that it is registered before any conftest.py: a
    # project's check of the same name then comes first and replaces the built-in one.
    from deploy_gate.checks import builtin_checks

    return builtin_checks(profile, settings)


def _gate(config: pytest.Config) -> Gate | None:
    """The gate of this run, or None when it is off (then nothing of it is imported)."""
    if not config.getoption("deploy_gate", False):
        return None
    from deploy_gate.collect import GATE_KEY

    return config.stash.get(GATE_KEY, None)


@pytest.fixture
def deploy_gate(request: pytest.FixtureRequest) -> Gate:
    """The gate run: settings, artifacts and caches (skips when the gate is off)."""
    gate = _gate(request.config)
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
    from deploy_gate.collect import GateFile

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
def deployment_factory(deploy_gate: Gate) -> Callable[[Path], Deployment]:
    """Makes an unloaded deployment for a path; override it to gate your own wrapper class.

    Return a class or a module-level function: the model worker imports it by name and builds
    the deployment there, so the model never runs inside pytest.
    """
    return deploy_gate.default_factory()


@pytest.fixture
def deploy_gate_factory(
    deploy_gate: Gate, deployment_factory: Callable[[Path], Deployment]
) -> Callable[[Path], Deployment]:
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
    deploy_gate_factory: Callable[[Path], Deployment],
) -> Deployment:
    """The loaded deployment every check drives; override it to gate your serving wrapper."""
    # One per artifact and factory (a factory made anew per test is not shared).
    return deploy_gate.loaded(deploy_gate_factory, model_artifact.path)


@pytest.fixture
def deploy_gate_baseline(
    deploy_gate: Gate, deploy_gate_factory: Callable[[Path], Deployment]
) -> BaselineRun:
    """The model in production (--deploy-gate-baseline), served like the candidate."""
    from deploy_gate.checks import describe_exc
    from deploy_gate.checks.baseline import served_baseline

    path = deploy_gate.settings.baseline
    if path is None:
        pytest.skip("no baseline: pass --deploy-gate-baseline PATH (the model in production)")
    loaded = deploy_gate.artifact_or_error(path)
    if isinstance(loaded, BaseException):
        pytest.fail(f"baseline {path} did not load: {describe_exc(loaded)}", pytrace=False)

    return served_baseline(deploy_gate, deploy_gate_factory, loaded)
