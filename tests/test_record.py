"""--deploy-gate-record: green runs append to the ledger, red runs do not, version[ledger]."""

from __future__ import annotations

import json

import faulty_models as fm
from conftest import GateRun, failed, junit_outcomes, messages


def _lines(gate: GateRun) -> list[dict[str, object]]:
    path = gate.path / "deployments.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_green_run_records_one_line_per_artifact(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier(), "a.joblib")
    gate.artifact(fm.LinearRegressor(), "b.joblib")
    gate.pytester.makeini("[pytest]\n")
    result = gate.run(
        "a.joblib", "b.joblib", "--deploy-gate-record", "--deploy-gate-target=y", target=None
    )
    assert result.ret == 0, result.stdout.str()
    lines = _lines(gate)
    assert [line["path"] for line in lines] == ["a.joblib", "b.joblib"]
    first = lines[0]
    for field in (
        "version",
        "sha256",
        "size",
        "recorded_at",
        "python",
        "libraries",
        "counts",
        "ml_test_score",
    ):
        assert first.get(field) is not None, field
    assert str(first["version"]).endswith(str(first["sha256"])[:8])
    counts = first["counts"]
    assert isinstance(counts, dict)
    assert counts["smoke"]["passed"] == 7
    result.stdout.fnmatch_lines(
        ["ledger: recorded v_* (a.joblib) in *deployments.jsonl", "*ML Test Score*"]
    )


def test_a_red_run_records_nothing_and_says_so(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier(), "a.joblib")
    gate.artifact(fm.UnknownLabel(), "b.joblib")
    gate.pytester.makeini("[pytest]\n")
    result = gate.run("a.joblib", "b.joblib", "--deploy-gate-record")
    assert result.ret == 1
    assert _lines(gate) == []
    result.stdout.fnmatch_lines(
        ["ledger: nothing recorded in *deployments.jsonl (DEPLOYMENT BLOCKED (1 failed))"]
    )


def test_version_ledger_names_a_redeploy_of_a_recorded_hash(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier(), "a.joblib")
    gate.pytester.makeini("[pytest]\n")
    gate.run("a.joblib", "--deploy-gate-record")
    first = _lines(gate)[0]["version"]
    gate.run("a.joblib", "-k", "ledger")
    case = next(c for c in gate.junit().iter("testcase") if c.get("name") == "version[ledger]")
    assert case.find("failure") is None
    props = {p.get("name"): p.get("value") for p in gate.junit().iter("property")}
    assert props["a.joblib::version[ledger]::redeploy_of"] == first


def test_version_ledger_refuses_a_colliding_version_id(gate: GateRun) -> None:
    path = gate.artifact(fm.ThresholdClassifier(), "a.joblib")
    gate.pytester.makeini("[pytest]\n")
    gate.pytester.makeconftest(
        """
        import json, hashlib
        from pathlib import Path

        def pytest_configure(config):
            from deploy_gate.collect import GATE_KEY
            from deploy_gate.ledger import version_id
            gate = config.stash[GATE_KEY]
            sha = hashlib.sha256(Path("a.joblib").read_bytes()).hexdigest()
            other = sha[:8] + "0" * 56
            line = {"version": version_id(sha, gate.started), "sha256": other, "size": 1,
                    "path": "x.joblib", "recorded_at": "2026-01-01T00:00:00+00:00"}
            Path("deployments.jsonl").write_text(json.dumps(line) + "\\n")
        """
    )
    gate.run("a.joblib", "-k", "ledger")
    root = gate.junit()
    assert failed(root) == {"version[ledger]"}
    assert "refusing a colliding version" in messages(root)["version[ledger]"]
    assert path.exists()


def test_without_a_ledger_or_record_no_ledger_item_is_collected(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.run("model.joblib")
    assert "version[ledger]" not in junit_outcomes(gate.junit())
