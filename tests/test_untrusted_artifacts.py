"""The gate's side of untrusted artifacts: the guarded loader, trust, pinned hashes, timeouts."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import faulty_models as fm
import numpy as np
import pytest
from conftest import GateRun, failed, junit_outcomes, messages
from malicious_corpus import tofile_gadget


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_pickle_fails_load_and_nothing_runs(gate: GateRun) -> None:
    marker = gate.path / "pwned"
    (gate.path / "model.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    result = gate.run("model.pkl", "-rs")
    outcomes = junit_outcomes(gate.junit())
    assert outcomes.pop("smoke[load]") == "failed"
    assert set(outcomes.values()) == {"skipped"}
    text = messages(gate.junit())["smoke[load]"]
    assert "UnsafeArtifactError" in text
    assert "system" in text
    assert not marker.exists()
    assert "INTERNALERROR" not in result.stdout.str()


def test_a_gadget_of_allowlisted_classes_fails_load_and_its_payload_never_runs(
    gate: GateRun,
) -> None:
    canary = gate.path / "canary"
    (gate.path / "model.pkl").write_bytes(pickle.dumps(tofile_gadget(canary)))
    result = gate.run("model.pkl", "-rs")
    outcomes = junit_outcomes(gate.junit())
    assert outcomes.pop("smoke[load]") == "failed"
    assert set(outcomes.values()) == {"skipped"}
    text = messages(gate.junit())["smoke[load]"]
    assert "UnsafeArtifactError" in text
    assert "steps[3][1].stack_method_: 'tofile' is not a method" in text
    assert not canary.exists()
    assert result.ret == 1


def test_trusting_the_test_runner_is_a_usage_error_saying_why(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    result = gate.run("model.joblib", "--deploy-gate-trust=_pytest")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --deploy-gate-trust: Invalid trust entry '_pytest': *the test runner*"]
    )


def test_a_projects_own_class_needs_trust(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.run("model.joblib", trust=False)
    text = messages(gate.junit())["smoke[load]"]
    assert "faulty_models" in text
    assert "--deploy-gate-trust" in text
    gate.run("model.joblib")
    assert failed(gate.junit()) == set()


def test_trust_is_read_from_the_ini_line_list(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.pytester.makeini("[pytest]\ndeploy_gate_trust =\n    faulty_models\n")
    gate.run("model.joblib", trust=False)
    assert failed(gate.junit()) == set()


def test_trusting_a_dangerous_module_is_a_usage_error(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    result = gate.run("model.joblib", "--deploy-gate-trust=os")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --deploy-gate-trust: Invalid trust entry 'os'*"])


def _pin(gate: GateRun, artifact: Path, digest: str | None = None) -> None:
    digest = digest or hashlib.sha256(artifact.read_bytes()).hexdigest()
    (gate.path / "pins.sha256").write_text(f"{digest}  {artifact.name}\n")


def test_a_pinned_artifact_with_its_hash_passes(gate: GateRun) -> None:
    path = gate.artifact(fm.ThresholdClassifier())
    _pin(gate, path)
    gate.run("model.joblib", "--deploy-gate-pin=pins.sha256")
    outcomes = junit_outcomes(gate.junit())
    assert outcomes["version[pinned-hash]"] == "passed"
    assert outcomes.pop("errors[unseen-category]") == "skipped"  # numbers only
    assert set(outcomes.values()) == {"passed"}


def test_a_pinned_artifact_with_another_hash_fails_and_is_not_opened(gate: GateRun) -> None:
    path = gate.artifact(fm.ThresholdClassifier())
    _pin(gate, path, "0" * 64)
    gate.run("model.joblib", "--deploy-gate-pin=pins.sha256")
    root = gate.junit()
    assert failed(root) == {"smoke[load]", "version[pinned-hash]"}
    assert "the pin file pins 0000" in messages(root)["version[pinned-hash]"]
    assert "was not opened" in messages(root)["smoke[load]"]


def test_a_malformed_pin_file_is_a_usage_error(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    (gate.path / "pins.sha256").write_text("not a hash line\n")
    result = gate.run("model.joblib", "--deploy-gate-pin=pins.sha256")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --deploy-gate-pin: *pins.sha256*"])


def test_a_model_that_mutates_its_input_fails_input_mutation(gate: GateRun) -> None:
    gate.artifact(fm.MutatesInput())
    gate.run("model.joblib", "-k", "input-mutation")
    root = gate.junit()
    assert failed(root) == {"errors[input-mutation]"}
    assert "column 'a' modified" in messages(root)["errors[input-mutation]"]


@pytest.mark.parametrize(
    ("model", "said"),
    [
        (fm.ProbaMutatesInput(), "batch_predict_proba changed the caller's DataFrame: column 'a'"),
        (fm.FillsInPlace(), "batch_predict changed the caller's DataFrame: column 'c' modified"),
        (fm.SortsInPlace(), "batch_predict changed the caller's DataFrame: rows reordered"),
    ],
    ids=["probabilities", "fills-late-missing-values", "sorts"],
)
def test_input_mutation_sees_probabilities_late_missing_values_and_reordered_rows(
    gate: GateRun, model: Any, said: str
) -> None:
    gate.artifact(model)
    frame = fm.make_frame()
    frame.loc[[120, 170], "c"] = np.nan  # none in the first 50 rows
    gate.data(frame)
    gate.run("model.joblib", "-k", "input-mutation")
    root = gate.junit()
    assert failed(root) == {"errors[input-mutation]"}
    assert messages(root)["errors[input-mutation]"].startswith(said)


def test_a_hanging_model_fails_on_the_check_timeout(gate: GateRun) -> None:
    gate.artifact(fm.Hangs())
    result = gate.run(
        "model.joblib",
        "-k",
        "smoke and batch and not consistency",
        "--deploy-gate-check-timeout=1s",
    )
    root = gate.junit()
    assert failed(root) == {"smoke[batch]"}
    message = messages(root)["smoke[batch]"]
    assert message.startswith(
        "smoke[batch] (check, deploy_gate_check_timeout) did not finish within its 1 s deadline: "
        "killed the model process during batch_predict"
    )
    assert result.ret == 1


def test_a_class_whose_module_cannot_be_imported_fails_load_naming_it(gate: GateRun) -> None:
    # A protocol-2 pickle of an instance of no_such_project.models.Model (a trusted module).
    data = b"\x80\x02cno_such_project.models\nModel\nq\x00)\x81q\x01}q\x02b."
    (gate.path / "model.pkl").write_bytes(data)
    result = gate.run("model.pkl", "--deploy-gate-trust=no_such_project")
    outcomes = junit_outcomes(gate.junit())
    assert outcomes.pop("smoke[load]") == "failed"
    assert set(outcomes.values()) == {"skipped"}
    assert "no_such_project" in messages(gate.junit())["smoke[load]"]
    assert "INTERNALERROR" not in result.stdout.str()
