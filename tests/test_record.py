"""--deploy-gate-record: green runs append to the ledger, red runs do not, version[ledger]."""

from __future__ import annotations

import json
import re

import faulty_models as fm
import pytest
from conftest import GateRun, failed, junit_outcomes, messages

from deploy_gate.ledger import Ledger


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
    assert counts["smoke"]["passed"] == 8
    result.stdout.fnmatch_lines(
        ["*ML Test Score*", "ledger: recorded v_* (a.joblib) in *deployments.jsonl"]
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


def test_a_record_that_cannot_be_written_exits_1_and_the_verdict_says_so(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier(), "a.joblib")
    gate.pytester.makeini("[pytest]\n")
    result = gate.run(
        "a.joblib", "--deploy-gate-record", "--deploy-gate-ledger=no/such/folder/deployments.jsonl"
    )
    result.stdout.fnmatch_lines(
        [
            "ledger: NOT RECORDED: cannot write ledger *no/such/folder/deployments.jsonl: "
            "No such file or directory",
            "APPROVED FOR DEPLOYMENT, but NOT RECORDED: cannot write ledger "
            "*deployments.jsonl: No such file or directory",
        ]
    )
    assert result.ret == 1


def test_a_torn_ledger_line_is_reported_once_even_when_warnings_are_errors(
    gate: GateRun,
) -> None:
    gate.artifact(fm.ThresholdClassifier(), "a.joblib")
    gate.pytester.makeini("[pytest]\nfilterwarnings = error\n")
    gate.run("a.joblib", "--deploy-gate-record")
    with (gate.path / "deployments.jsonl").open("ab") as handle:
        handle.write(b'{"version": "v_2026')  # a writer killed mid-line
    result = gate.run("a.joblib", "--deploy-gate-record")
    assert result.ret == 0, result.stdout.str()
    assert failed(gate.junit()) == set()
    out = result.stdout.str()
    assert out.count("skipped torn last line") == 1, out
    result.stdout.fnmatch_lines(
        ["ledger: *deployments.jsonl:2: skipped torn last line*", "APPROVED FOR DEPLOYMENT"]
    )
    assert len(Ledger(gate.path / "deployments.jsonl").entries()) == 2


def test_the_ml_test_score_is_one_line_that_agrees_with_the_runs_results(gate: GateRun) -> None:
    gate.artifact(fm.NaNRegressor())
    gate.pytester.makeini("[pytest]\n")
    result = gate.run("model.joblib", "--deploy-gate-html=report.html", target="y")
    assert "output[no-nan]" in failed(gate.junit())
    out = result.stdout.str()
    score_lines = [line for line in out.splitlines() if "ML Test Score" in line]
    assert len(score_lines) == 1, out
    assert "Monitor 5" not in score_lines[0]
    assert "no NaN" not in out
    assert "research project" not in out
    page = (gate.path / "report.html").read_text()
    assert "ML Test Score" in page
    assert "Monitor 5" in page  # the gap is explained there
    assert "output[no-nan] failed" in page


def test_an_approved_run_records_the_ml_test_score_details_in_the_ledger(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier(), "a.joblib")
    gate.pytester.makeini("[pytest]\n")
    result = gate.run("a.joblib", "--deploy-gate-record")
    assert result.ret == 0
    score = _lines(gate)[0]["ml_test_score"]
    assert isinstance(score, dict)
    monitor5 = score["items"]["Monitor 5"]
    # The output checks that passed, the first few by name and the rest counted.
    assert re.search(r": (output\[[a-z-]+\], )+.* more passed$", monitor5["evidence"]), monitor5
    result.stdout.fnmatch_lines(
        ["  ML Test Score 0 = min(Data 0, Model 0, Infrastructure 0, Monitoring *)*Monitor 5*"]
    )
    assert "research project" not in result.stdout.str()


def test_a_run_from_a_subfolder_records_the_artifact_path_from_the_root(
    gate: GateRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate.artifact(fm.ThresholdClassifier(), "a.joblib")
    gate.data()
    gate.pytester.makeini("[pytest]\n")
    (gate.path / "sub").mkdir()
    monkeypatch.chdir(gate.path / "sub")
    result = gate.run(
        "../a.joblib",
        "--deploy-gate-record",
        "--deploy-gate-data=../holdout.csv",
        "--deploy-gate-target=label",
    )
    assert result.ret == 0, result.stdout.str()
    (line,) = _lines(gate)
    assert line["path"] == "a.joblib"
