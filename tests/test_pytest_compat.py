"""The pytest and xdist internals in deploy_gate.pytest_compat, one test each, plus what users
see when they break: a rerun of the failed checks, and a crashed xdist worker."""

from __future__ import annotations

import textwrap

import faulty_models as fm
from conftest import GateRun, junit_outcomes

from deploy_gate.collect import GateItem
from deploy_gate.session import _is_latency_nodeid


def collected_gate_items(gate: GateRun) -> list[GateItem]:
    gate.data()
    items, _ = gate.pytester.inline_genitems(
        "--deploy-gate",
        "model.joblib",
        "--deploy-gate-data=holdout.csv",
        "--deploy-gate-trust=faulty_models",
    )
    return [item for item in items if isinstance(item, GateItem)]


def test_gate_item_ids_parse_back_to_themselves(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    items = collected_gate_items(gate)
    assert items
    try:
        from _pytest.nodeid import NodeId
    except ImportError:  # pytest < 9.2 keys --lf by the nodeid string itself
        assert all(item.nodeid == f"model.joblib::{item.name}" for item in items)
        return
    for item in items:
        parsed = NodeId.parse(item.nodeid)
        assert parsed == item.id, item.nodeid  # what --lf compares with its cache
        assert str(parsed) == f"model.joblib::{item.name}"


def test_latency_items_are_told_apart_by_their_nodeid() -> None:
    assert _is_latency_nodeid("models/candidate.joblib::latency[p99-batch=1]")
    assert _is_latency_nodeid("model.ONNX::latency[p99-vs-baseline-batch=32]")
    assert not _is_latency_nodeid("models/candidate.joblib::smoke[latency-sanity]")
    # A project's own test that happens to be named latency is not the gate's.
    assert not _is_latency_nodeid("tests/test_speed.py::latency[fast]")


def test_last_failed_reruns_only_the_failed_checks_twice_in_a_row(gate: GateRun) -> None:
    gate.artifact(fm.UnknownLabel())
    first = gate.run("model.joblib", "-p", "cacheprovider")
    failed_first = {k for k, v in junit_outcomes(gate.junit()).items() if v == "failed"}
    assert failed_first == {"output[known-labels]"}
    assert first.ret == 1
    for _ in range(2):
        rerun = gate.run("model.joblib", "-p", "cacheprovider", "--lf")
        rerun.stdout.fnmatch_lines(["run-last-failure: rerun previous 1 failure*"])
        assert set(junit_outcomes(gate.junit())) == failed_first


CRASHING_TEST = """
import os
import signal


def test_serving_crashes(deployment):
    os.kill(os.getpid(), signal.SIGSEGV)
"""


def test_a_crashed_xdist_worker_fails_its_test_once_and_the_gate_still_reports(
    gate: GateRun,
) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.pytester.makepyfile(test_crash=textwrap.dedent(CRASHING_TEST))
    result = gate.run("model.joblib", "test_crash.py", "-n", "2", "-p", "no:faulthandler")
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert result.ret == 1
    outcomes = junit_outcomes(gate.junit())
    crashed = [name for name in outcomes if "test_serving_crashes" in name]
    assert len(crashed) == 1, outcomes
    assert outcomes[crashed[0]] in ("failed", "error")
    assert outcomes["smoke[load]"] == "passed"
    assert outcomes["latency[p99-batch=1]"] == "passed"
    result.stdout.fnmatch_lines(["DEPLOYMENT BLOCKED (1 failed)"])
