"""The model worker as a user meets it: where the model runs, what the reports say about it, and
that a project's own serving class still drives every check."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import faulty_models as fm
import joblib
import pytest
from conftest import GateRun, failed, junit_outcomes, messages

PID_MODEL = """
import os
from faulty_models import ThresholdClassifier


class RecordsWhereItLoads(ThresholdClassifier):
    '''Writes the pid of the process that unpickles it next to the artifact.'''

    def __setstate__(self, state):
        super().__setstate__(state)
        with open(os.environ["DEPLOY_GATE_TEST_PID_FILE"], "a") as f:
            f.write(f"{os.getpid()}\\n")
"""


def junit_properties(gate: GateRun, name: str) -> dict[str, str]:
    """A check's figures; under xunit2 (pytest's default) the gate keeps them as the suite's
    ``<artifact>::<check>::<figure>`` properties."""
    found = {}
    for prop in gate.junit().iter("property"):
        _, _, rest = prop.get("name", "").partition("::")
        check, _, figure = rest.partition("::")
        if check == name:
            found[figure] = prop.get("value", "")
    return found


def test_the_artifact_is_unpickled_only_in_the_model_worker(
    gate: GateRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate.pytester.makepyfile(pid_model=PID_MODEL)
    monkeypatch.syspath_prepend(gate.path)
    from pid_model import RecordsWhereItLoads  # type: ignore[import-not-found]

    pid_file = gate.path / "pids.txt"
    monkeypatch.setenv("DEPLOY_GATE_TEST_PID_FILE", str(pid_file))
    gate.artifact(RecordsWhereItLoads())
    # The sandbox confines writes to the worker's scratch folder: the model cannot even record.
    sandboxed = gate.run("model.joblib", "--deploy-gate-trust=pid_model", "-k", "load")
    assert sandboxed.ret == 1
    assert "Permission denied" in messages(gate.junit())["smoke[load]"]
    assert not pid_file.exists()
    result = gate.run(
        "model.joblib",
        "--deploy-gate-trust=pid_model",
        "-k",
        "smoke",
        "--deploy-gate-isolation=process",
    )
    assert result.ret == 0
    pids = {int(line) for line in pid_file.read_text().split()}
    assert pids, "the model was never loaded"
    assert os.getpid() not in pids


def test_the_summary_and_the_junit_report_state_the_protections_in_force(
    gate: GateRun,
) -> None:
    gate.artifact(fm.ThresholdClassifier())
    result = gate.run("model.joblib", "-k", "smoke")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["  isolation  process isolated*", "APPROVED FOR DEPLOYMENT"])
    isolation = junit_properties(gate, "smoke[load]")["isolation"]
    assert isolation.startswith("process isolated")
    assert "memory" in isolation


def test_isolation_process_keeps_the_limits_without_the_sandbox(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    result = gate.run("model.joblib", "-k", "load", "--deploy-gate-isolation=process")
    assert result.ret == 0
    isolation = junit_properties(gate, "smoke[load]")["isolation"]
    assert "process isolated" in isolation
    assert "network off" not in isolation


def test_isolation_none_runs_in_pytest_and_the_verdict_says_so(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    result = gate.run("model.joblib", "-k", "smoke", "--deploy-gate-isolation=none")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["APPROVED FOR DEPLOYMENT (isolation none: the models ran inside pytest)"]
    )


def test_an_unknown_isolation_is_a_usage_error_naming_the_option(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    result = gate.run("model.joblib", "--deploy-gate-isolation=docker")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--deploy-gate-isolation*sandbox, process, none*docker*"])


CLOSURE_FACTORY = """
import os
import pytest
from deploy_gate import ModelDeployment


class Served(ModelDeployment):
    def where(self):
        return os.getpid()


@pytest.fixture
def deployment_factory():
    threshold = 0.5  # a closure, as projects write them
    return lambda path: Served(
        path, trust=["faulty_models"], on_invalid_output="record" if threshold else "raise"
    )
"""

PROJECT_TEST = """
import os


def test_the_deployment_runs_in_another_process(deployment):
    assert deployment.where() != os.getpid()
"""


def test_a_closure_deployment_factory_runs_in_the_worker_and_drives_every_check(
    gate: GateRun,
) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.pytester.makeconftest(textwrap.dedent(CLOSURE_FACTORY))
    gate.pytester.makepyfile(test_where=textwrap.dedent(PROJECT_TEST))
    result = gate.run("model.joblib", "test_where.py", "-k", "not latency")
    outcomes = junit_outcomes(gate.junit())
    assert failed(gate.junit()) == set(), messages(gate.junit())
    assert outcomes["test_the_deployment_runs_in_another_process[model.joblib]"] == "passed"
    assert outcomes["errors[not-loaded]"] == "passed"  # built by the factory, unloaded
    assert result.ret == 0


def test_strict_versions_fails_a_model_saved_with_another_scikit_learn(
    gate: GateRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sklearn.base
    from sklearn.linear_model import LogisticRegression

    frame = fm.make_frame()
    model = LogisticRegression().fit(frame[list(fm.FEATURES)], frame["label"])
    with monkeypatch.context() as patch:
        patch.setattr(sklearn.base, "__version__", "1.0.0")
        joblib.dump(model, gate.path / "model.joblib")
    gate.data(frame)
    lenient = gate.run("model.joblib", "-k", "load", trust=False)
    assert lenient.ret == 0
    assert "InconsistentVersionWarning" in junit_properties(gate, "smoke[load]")["load_warnings"]
    strict = gate.run("model.joblib", "-k", "load", "--deploy-gate-strict-versions", trust=False)
    assert strict.ret == 1
    assert "deploy_gate_strict_versions" in messages(gate.junit())["smoke[load]"]


def interpreter(gate: GateRun, target: str) -> str:
    """A script that runs ``target`` as the worker's interpreter and notes that it did."""
    script = gate.path / "serving-python"
    script.write_text(
        f'#!/bin/sh\necho "$@" >> "{gate.path}/serving-python.log"\nexec {target} "$@"\n'
    )
    script.chmod(0o755)
    return str(script)


def test_the_worker_runs_under_the_serving_interpreter(gate: GateRun) -> None:
    import sys

    gate.artifact(fm.ThresholdClassifier())
    python = interpreter(gate, sys.executable)
    result = gate.run("model.joblib", "-k", "smoke", f"--deploy-gate-python={python}")
    assert result.ret == 0
    assert "deploy_gate.worker.serve" in (gate.path / "serving-python.log").read_text()


def test_a_serving_interpreter_without_the_libraries_fails_load_naming_what_is_missing(
    gate: GateRun,
) -> None:
    import shutil

    bare = shutil.which("python3", path="/usr/bin")
    if bare is None:
        pytest.skip("no system python3 at /usr/bin to stand for a bare serving environment")
    gate.artifact(fm.ThresholdClassifier())
    result = gate.run(
        "model.joblib", "-k", "smoke", f"--deploy-gate-python={interpreter(gate, bare)}"
    )
    assert result.ret == 1
    assert "No module named" in messages(gate.junit())["smoke[load]"]


WHERE_IT_RUNS = """
import os

from deploy_gate.worker import remote


def test_where_it_runs(deployment, tmp_path_factory):
    worker = remote(deployment).worker
    deployment.predict_single  # started and loaded by now
    here = sorted(os.sched_getaffinity(0))
    tids = [int(tid) for tid in os.listdir(f"/proc/{worker.pid}/task")]
    there = sorted({cpu for tid in tids for cpu in os.sched_getaffinity(tid)})
    name = os.environ.get("PYTEST_XDIST_WORKER", "main")
    out = os.environ["DEPLOY_GATE_TEST_CPU_FILE"]
    with open(f"{out}.{name}", "w") as f:
        f.write(f"{here}|{there}")
"""

needs_two_cpus = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="placement needs sched_setaffinity and two CPUs",
)


def _placements(
    gate: GateRun, monkeypatch: pytest.MonkeyPatch, *args: str
) -> list[tuple[list[int], list[int]]]:
    """Per pytest process of the run: the CPUs its test ran on, and its model worker's."""
    gate.artifact(fm.ThresholdClassifier())
    gate.pytester.makepyfile(test_where=WHERE_IT_RUNS)
    for old in gate.path.glob("cpus.*"):
        old.unlink()
    monkeypatch.setenv("DEPLOY_GATE_TEST_CPU_FILE", str(gate.path / "cpus"))
    result = gate.run("model.joblib", "test_where.py", "-k", "where", *args)
    assert result.ret == 0, result.stdout.str()[-3000:]
    found = []
    for path in sorted(gate.path.glob("cpus.*")):
        here, there = path.read_text().split("|")
        found.append((json.loads(here), json.loads(there)))
    return found


@needs_two_cpus
@pytest.mark.parametrize(
    "args",
    [(), ("-n", "2"), ("--deploy-gate-latency-threads=auto",)],
    ids=["one process", "two xdist workers", "thread pools left alone"],
)
def test_the_os_places_the_gate_and_its_model_workers(
    gate: GateRun, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    # Pinned to one CPU, every gate on a machine took the first: two gates side by side (two CI
    # jobs on one runner) shared one core while the other idled, 2-3x slower.
    gate.artifact(fm.ThresholdClassifier(), "second.joblib")
    placements = _placements(gate, monkeypatch, "second.joblib", *args)
    assert len(placements) == (2 if "-n" in args else 1), placements
    everywhere = sorted(os.sched_getaffinity(0))
    assert all(here == there == everywhere for here, there in placements), placements


@needs_two_cpus
def test_a_latency_comparison_shares_one_cpu_chosen_per_gate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from deploy_gate.checks.latency import _comparison_cpu

    cpus = sorted(os.sched_getaffinity(0))
    for number in range(4):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{number}")
        assert _comparison_cpu() == cpus[number % len(cpus)]
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    seen = set()
    for cpu in cpus[:2]:  # a lone gate: the CPU it runs on, not always the first
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(cpus))
        os.sched_setaffinity(0, {cpu})
        try:
            seen.add(_comparison_cpu())
        finally:
            os.sched_setaffinity(0, set(cpus))
    assert seen == set(cpus[:2])


def test_the_baseline_worker_starts_beside_the_candidates(tmp_path: Path) -> None:
    """Both model workers import their libraries at once (two CPUs), not one after the other
    when the first baseline check comes; the baseline's file is opened only by its own load."""
    from deploy_gate.gate import Gate
    from deploy_gate.options import OPTIONS, Settings

    candidate, baseline = tmp_path / "candidate.joblib", tmp_path / "baseline.joblib"
    joblib.dump(fm.ThresholdClassifier(), candidate)
    joblib.dump(fm.ThresholdClassifier(), baseline)
    values = {option.name: option.default for option in OPTIONS}
    values.update(baseline=baseline, trust=["faulty_models"], isolation="process")
    gate = Gate(Settings.of(values, {}), [candidate])
    try:
        loaded = gate.artifact_or_error(candidate)
        assert not isinstance(loaded, BaseException), loaded
        waiting = gate.worker_for(baseline)
        assert waiting.pid is not None
        assert waiting.info is None
        assert gate.remote_artifact(baseline) is None
        assert not isinstance(gate.artifact_or_error(baseline), BaseException)
        assert waiting.starts == 1
        assert waiting.deaths == 0
    finally:
        gate.close()


def test_prestart_starts_the_workers_before_anything_is_loaded(tmp_path: Path) -> None:
    """Called before the data is read: the workers import their libraries meanwhile, and the
    load that comes at collection uses the worker already started."""
    from deploy_gate.gate import Gate
    from deploy_gate.options import OPTIONS, Settings

    candidate, baseline = tmp_path / "candidate.joblib", tmp_path / "baseline.joblib"
    joblib.dump(fm.ThresholdClassifier(), candidate)
    joblib.dump(fm.ThresholdClassifier(), baseline)
    values = {option.name: option.default for option in OPTIONS}
    values.update(baseline=baseline, trust=["faulty_models"], isolation="process")
    gate = Gate(Settings.of(values, {}), [tmp_path / "missing.joblib", candidate])
    try:
        gate.prestart()
        workers = [gate.worker_for(candidate), gate.worker_for(baseline)]
        assert [w.pid is not None for w in workers] == [True, True]
        assert [gate.remote_artifact(p) for p in (candidate, baseline)] == [None, None]
        assert not isinstance(gate.artifact_or_error(candidate), BaseException)
        assert [(w.starts, w.deaths) for w in workers] == [(1, 0), (1, 0)]
    finally:
        gate.close()
    none = {**values, "isolation": "none"}
    before = _children()
    Gate(Settings.of(none, {}), [candidate]).prestart()
    assert _children() == before  # in process: no worker to start


def _children() -> set[str]:
    """The pids of this process's children (Linux)."""
    found: set[str] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        found.update((task / "children").read_text().split())
    return found
