from __future__ import annotations

import contextlib
import importlib
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import pandas as pd

TESTS = Path(__file__).parent

# pytester's in-process runs drop the modules a run imported; native extensions such as onnx's
# abort the interpreter when they are imported a second time, so they are imported once here.
# pandas registers its Arrow extension types once per interpreter, on first use of pyarrow.
_NATIVE = ("onnx", "onnxruntime", "skl2onnx", "skops.io", "lightgbm", "xgboost", "pyarrow.parquet")
for _name in (*_NATIVE, "pandas.core.arrays.arrow.extension_types"):
    with contextlib.suppress(ImportError):
        importlib.import_module(_name)


class GateRun:
    """Writes artifacts and data into a pytester directory and runs the gate on them."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.path = pytester.path

    def artifact(self, model: object, name: str = "model.joblib") -> Path:
        import joblib

        path = self.path / name
        joblib.dump(model, path)
        return path

    def data(self, frame: Any = None, name: str = "holdout.csv") -> Path:
        from faulty_models import make_frame

        frame = make_frame() if frame is None else frame
        path = self.path / name
        if name.endswith(".parquet"):
            frame.to_parquet(path)
        elif name.endswith(".jsonl"):
            frame.to_json(path, orient="records", lines=True)
        else:
            frame.to_csv(path, index=False)
        return path

    def run(
        self, *args: str, data: bool = True, target: str | None = None, trust: bool = True
    ) -> pytest.RunResult:
        """Run the gate; the test models' module is trusted unless ``trust`` is False."""
        argv = ["--deploy-gate", *args]
        if not any(a.startswith("--deploy-gate-latency-batch-sizes") for a in args):
            # Single rows only: each measured batch size adds a second to every run.
            argv.append("--deploy-gate-latency-batch-sizes=1")
        if trust:
            argv.append("--deploy-gate-trust=faulty_models")
        if data and not any(a.startswith("--deploy-gate-data") for a in args):
            if not (self.path / "holdout.csv").exists():
                self.data()
            argv += ["--deploy-gate-data", "holdout.csv"]
            if target is None and not any(a.startswith("--deploy-gate-target") for a in args):
                argv += ["--deploy-gate-target", "label"]
        if target is not None:
            argv += ["--deploy-gate-target", target]
        return self.pytester.runpytest(*argv)

    def junit(self, name: str = "deploy-gate.xml") -> ET.Element:
        return ET.parse(self.path / name).getroot()


def write_frame(frame: pd.DataFrame, path: Path) -> None:
    """``frame`` in the format that the name's ending says (compression inferred by pandas)."""
    from deploy_gate.sources import format_of

    fmt = format_of(path.name)
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
    elif fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)


def junit_outcomes(root: ET.Element, *, artifact: str | None = None) -> dict[str, str]:
    found: dict[str, str] = {}
    for case in root.iter("testcase"):
        if artifact is not None and case.get("classname") != artifact:
            continue
        kind = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                kind = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
        found[str(case.get("name"))] = kind
    return found


def failed(root: ET.Element, *, artifact: str | None = None) -> set[str]:
    """Names of the items that failed or errored."""
    return {
        n for n, o in junit_outcomes(root, artifact=artifact).items() if o in ("failed", "error")
    }


def messages(root: ET.Element) -> dict[str, str]:
    """Failure, error or skip text of each item that has one."""
    found = {}
    for case in root.iter("testcase"):
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                found[str(case.get("name"))] = (
                    (node.get("message") or "") + "\n" + (node.text or "")
                )
    return found


@pytest.fixture
def gate(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> GateRun:
    # xdist workers started by a gate run unpickle the test models: they need this folder.
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    )
    return GateRun(pytester)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--verdict-repeats",
        type=int,
        default=10,
        help="repeats of each latency case in the verdict-quality suite (-m verdict_quality)",
    )
