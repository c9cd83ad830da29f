"""Reading the gate's data: ambiguous files are refused naming what is ambiguous, and the labels
the label-based checks can use are told apart from the rows without one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import GateRun

from deploy_gate.data import load_data, read_columns, read_table
from deploy_gate.errors import DataError

import faulty_models as fm  # isort: skip


def _write_duplicated(path: Path) -> None:
    """Columns age, income, age (other values), label: a file pandas would read without a word."""
    rows = [[30, 1000.0, 61, 0], [45, 2000.0, 22, 1], [52, 1500.0, 70, 0]]
    names = ["age", "income", "age", "label"]
    if path.suffix == ".csv":
        lines = [",".join(names)] + [",".join(map(str, r)) for r in rows]
        path.write_text("\n".join(lines) + "\n")
    elif path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = [pa.array([r[j] for r in rows]) for j in range(len(names))]
        pq.write_table(pa.table(columns, names=names), path)
    else:  # JSON lines: a repeated key in an object, the last one silently wins in pandas
        lines = [
            "{" + ", ".join(f'"{n}": {v}' for n, v in zip(names, r, strict=True)) + "}"
            for r in rows
        ]
        path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_duplicate_column_names_are_a_data_error_naming_the_columns_and_the_file(
    tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"holdout{suffix}"
    _write_duplicated(path)

    with pytest.raises(DataError) as raised:
        load_data(path, "label")

    message = str(raised.value)
    assert "duplicate column" in message
    assert "'age'" in message
    assert str(path) in message
    assert "--deploy-gate-data" in message


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_reading_only_the_column_names_refuses_duplicates_too(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"holdout{suffix}"
    _write_duplicated(path)

    with pytest.raises(DataError, match=r"duplicate column.*'age'"):
        read_columns(path)


def test_duplicates_are_refused_for_every_option_that_reads_data(tmp_path: Path) -> None:
    path = tmp_path / "current.csv"
    _write_duplicated(path)

    with pytest.raises(DataError, match=r"^--deploy-gate-current: .*current\.csv"):
        read_table(path, what="--deploy-gate-current")


def test_a_column_literally_named_like_a_pandas_rename_is_not_a_duplicate(tmp_path: Path) -> None:
    path = tmp_path / "holdout.csv"
    path.write_text("age,age.1,label\n30,31,0\n40,41,1\n")

    data = load_data(path, "label")

    assert list(data.features.columns) == ["age", "age.1"]


def test_duplicate_columns_in_the_data_are_a_usage_error_of_the_gate(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    frame = fm.make_frame()
    # a, b, c, d, label, y, and a second "a" holding other values.
    text = frame.to_csv(index=False).splitlines()
    rows = [f"{line},a" if i == 0 else f"{line},{-float(i)}" for i, line in enumerate(text)]
    (gate.path / "holdout.csv").write_text("\n".join(rows) + "\n")

    result = gate.run("model.joblib")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*holdout.csv*duplicate column*'a'*"])


def test_rows_without_a_label_are_counted_and_left_out_of_the_labelled_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "holdout.csv"
    frame = pd.DataFrame({"x": np.arange(10.0), "label": [0, 1, None, 1, 0, None, 1, 0, 1, 0]})
    frame.to_csv(path, index=False)

    data = load_data(path, "label")
    labelled = data.labelled()

    assert data.n_unlabelled == 2
    assert labelled.n_rows == 8
    assert labelled.n_unlabelled == 0
    assert labelled.target is not None
    assert labelled.target.notna().all()
    assert list(labelled.features.x) == [0.0, 1.0, 3.0, 4.0, 6.0, 7.0, 8.0, 9.0]
    assert list(labelled.table.x) == list(labelled.features.x)
