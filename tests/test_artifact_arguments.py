"""What the gate makes of the paths named on its command line."""

from __future__ import annotations

import faulty_models as fm
import pytest
from conftest import GateRun


def test_a_folder_of_models_named_as_the_artifact_is_a_usage_error_naming_it(
    gate: GateRun,
) -> None:
    (gate.path / "models").mkdir()
    gate.artifact(fm.ThresholdClassifier(), "models/model.joblib")
    gate.data()

    result = gate.run("models/")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*models*is a folder*model.joblib*"])
