"""Reading the gate's data: ambiguous files are refused naming what is ambiguous, and the labels
the label-based checks can use are told apart from the rows without one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import GateRun, write_frame

from deploy_gate import profiles
from deploy_gate.data import load_data, read_columns, read_table
from deploy_gate.drift import iter_chunks
from deploy_gate.errors import DataError
from deploy_gate.sources import SUFFIXES

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
        text = "\n".join(lines) + "\n"
        if path.suffix == ".gz":
            import gzip

            path.write_bytes(gzip.compress(text.encode()))
        else:
            path.write_text(text)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl", ".jsonl.gz"])
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


# --- formats: the holdout is read like the current data and the profiles' data ------------------


def _rows() -> pd.DataFrame:
    """Numbers, whole numbers, text and a label: each format has to give them back as they are."""
    return pd.DataFrame(
        {
            "x": [0.5, -1.25, 2.0, 3.5, -0.75, 1.0],
            "n": [1, 2, 3, 4, 5, 6],
            "color": ["red", "blue", "red", "green", "blue", "red"],
            "label": [0, 1, 0, 1, 1, 0],
        }
    )


@pytest.mark.parametrize("name", ["holdout.csv.gz", "holdout.jsonl", "holdout.jsonl.gz"])
def test_a_compressed_csv_or_json_lines_holdout_is_read_like_the_csv(
    tmp_path: Path, name: str
) -> None:
    write_frame(_rows(), tmp_path / "holdout.csv")
    write_frame(_rows(), tmp_path / name)

    expected = load_data(tmp_path / "holdout.csv", "label")
    data = load_data(tmp_path / name, "label")

    pd.testing.assert_frame_equal(data.features, expected.features)
    assert data.target is not None
    assert expected.target is not None
    pd.testing.assert_series_equal(data.target, expected.target)
    assert data.source == str(tmp_path / name)


def test_the_gate_runs_on_a_gzipped_holdout(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.data(name="holdout.csv.gz")

    result = gate.run(
        "model.joblib", "--deploy-gate-data=holdout.csv.gz", "--deploy-gate-target=label"
    )

    assert result.ret == 0


def test_an_unknown_holdout_format_names_the_flag_the_file_and_the_accepted_formats(
    tmp_path: Path,
) -> None:
    path = tmp_path / "holdout.xlsx"
    path.write_bytes(b"PK")

    with pytest.raises(DataError) as raised:
        load_data(path, "label")

    message = str(raised.value)
    assert message.startswith("--deploy-gate-data: ")
    assert str(path) in message
    assert "unknown format '.xlsx'" in message
    accepted = message.split("expected a name ending in one of ", 1)[1].rstrip(")")
    assert accepted.split(", ") == sorted(SUFFIXES)
    # The current data's reader refuses it with the same list of formats.
    with pytest.raises(DataError, match=r"unknown format '\.xlsx'") as current:
        iter_chunks(path)
    assert str(current.value).endswith(message.split("unknown format '.xlsx'", 1)[1])


@pytest.mark.parametrize("suffix", sorted(SUFFIXES))
def test_every_format_of_the_one_table_is_read_by_every_option_that_reads_data(
    tmp_path: Path, suffix: str
) -> None:
    frame = _rows()
    path = tmp_path / f"rows{suffix}"
    write_frame(frame, path)

    # --deploy-gate-data: the whole file, its column names, and the features and labels.
    data = load_data(path, "label")
    pd.testing.assert_frame_equal(data.features, frame.drop(columns=["label"]))
    assert data.target is not None
    assert data.target.tolist() == frame["label"].tolist()
    assert read_columns(path) == list(frame.columns)
    # --deploy-gate-current (and --deploy-gate-save-profile): the same file in chunks.
    chunks = list(iter_chunks(path, chunk_rows=4, columns=["x", "color"]))
    assert [len(c) for c in chunks] == [4, 2]
    pd.testing.assert_frame_equal(
        pd.concat(chunks, ignore_index=True), frame[["x", "color"]], check_dtype=False
    )
    # deploy-gate profile build: the same file as a data source.
    profile = profiles.build([str(path)], features=["x", "color"], chunk_rows=4)
    assert profile.rows == len(frame)
    assert profile.feature_names == ("x", "color")
