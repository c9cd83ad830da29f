"""Profiles built anywhere give the gate's answers: in memory, streamed, on a Dask cluster."""

from __future__ import annotations

import gc
import json
import re
import threading
from pathlib import Path

import faulty_models as fm
import numpy as np
import pandas as pd
import pytest
from conftest import GateRun, failed, junit_outcomes, messages

from deploy_gate import cli, profiles
from deploy_gate.drift import (
    NumericProfile,
    Profile,
    build_profile,
    detect_drift,
    drift_against_profile,
)
from deploy_gate.errors import DataError
from deploy_gate.monitor import Monitor


def _frame(n: int, seed: int, *, shift: float = 0.0, teal: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    colours = ["red", "green", "blue", "teal"] if teal else ["red", "green", "blue"]
    x = rng.normal(shift, 1.0, n)
    x[rng.random(n) < 0.02] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "income": rng.lognormal(10.0, 1.0, n),
            "visits": rng.poisson(3.0, n).astype(np.int64),
            "colour": np.array(colours, dtype=object)[rng.integers(0, len(colours), n)],
        }
    )


def _write_parts(folder: Path, frame: pd.DataFrame, files: int, row_group: int) -> None:
    folder.mkdir()
    size = -(-len(frame) // files)
    for i in range(files):
        part = frame.iloc[i * size : (i + 1) * size]
        part.to_parquet(folder / f"part-{i}.parquet", row_group_size=row_group, index=False)


def _counts(p: Profile) -> list[object]:
    out: list[object] = [p.rows]
    for f in p.features:
        if isinstance(f, NumericProfile):
            out.append((f.name, f.count, f.missing, f.bin_counts, f.below, f.at_or_below))
        else:
            pairs = sorted(zip(f.categories, f.counts, strict=True))
            out.append((f.name, f.count, f.missing, pairs))
    return out


@pytest.fixture(scope="module")
def reference() -> Profile:
    return build_profile(_frame(20_000, 1), predict=lambda d: d["visits"].to_numpy() / 10)


def test_a_current_profile_gives_the_same_verdicts_and_messages_as_the_raw_rows(reference):
    current = _frame(30_000, 2, shift=0.3, teal=True)

    from_rows = drift_against_profile(reference, current)
    from_profile = profiles.compare(reference, profiles.profile_current(current, reference))

    assert from_profile == from_rows
    assert {r.feature for r in from_rows if not r.passed} == {"x", "colour"}


def test_profile_to_profile_agrees_with_raw_reference_rows_within_the_sketch_bound():
    ref_rows = _frame(50_000, 1)
    current = _frame(30_000, 2, shift=0.3, teal=True)
    streamed_ref = build_profile(
        (ref_rows.iloc[i : i + 4000] for i in range(0, 50_000, 4000)), sketch_capacity=512
    )

    raw = {r.feature: r for r in detect_drift(ref_rows, current)}
    cmp = {
        r.feature: r
        for r in profiles.compare(streamed_ref, profiles.profile_current(current, streamed_ref))
    }

    assert {f: r.passed for f, r in raw.items()} == {f: r.passed for f, r in cmp.items()}
    for name in ("x", "income"):
        assert cmp[name].ks_error > 0
        assert abs(cmp[name].statistic - raw[name].statistic) <= cmp[name].ks_error


def test_whole_streamed_and_dask_profiles_have_identical_counts_and_verdicts(reference, tmp_path):
    pytest.importorskip("distributed")
    current = _frame(24_000, 3, shift=0.3, teal=True)
    _write_parts(tmp_path / "window", current, files=3, row_group=2000)
    threads_before = {t.name for t in threading.enumerate()}

    whole = profiles.profile_current(current, reference)
    streamed = profiles.build([tmp_path / "window"], reference=reference, chunk_rows=1500)
    from deploy_gate.cluster import map_reduce_on_dask
    from deploy_gate.sources import expand

    on_dask = map_reduce_on_dask(
        expand([str(tmp_path / "window" / "*.parquet")]),
        profiles.profile_unit,
        profiles.merge,
        broadcast={"options": profiles.BuildOptions(reference=reference)},
        workers=2,
        processes=False,
    )

    assert _counts(whole) == _counts(streamed) == _counts(on_dask)
    assert whole.sample == streamed.sample == on_dask.sample
    verdicts = [
        [(r.feature, r.passed, r.message) for r in profiles.compare(reference, p)]
        for p in (whole, streamed, on_dask)
    ]
    assert verdicts[0] == verdicts[1] == verdicts[2]
    # The current side's own sketch: each build within the stated bound of the exact quantiles.
    ordered = np.sort(current["income"].to_numpy())
    for p in (streamed, on_dask):
        income = p.feature("income")
        assert isinstance(income, NumericProfile)
        grid = np.asarray(income.quantiles)
        share = np.searchsorted(ordered, grid, side="right") / ordered.size
        targets = np.arange(grid.size) / (grid.size - 1)
        assert np.all(share >= targets - income.rank_error - 1e-12)
    # distributed keeps one process-wide offload thread; nothing per run is left behind.
    gc.collect()
    left = {t.name for t in threading.enumerate()} - threads_before
    assert {name for name in left if not name.startswith("Dask-Offload")} == set()


def test_the_dask_engine_runs_local_worker_processes_and_stops_them(reference, tmp_path):
    psutil = pytest.importorskip("psutil")
    _write_parts(tmp_path / "window", _frame(4000, 4), files=2, row_group=1000)

    profile = profiles.build([tmp_path / "window"], reference=reference, engine="dask", workers=2)

    assert profile.rows == 4000
    # multiprocessing's resource tracker is one per interpreter, not per run; it stays.
    left = [
        c
        for c in psutil.Process().children(recursive=True)
        if "resource_tracker" not in " ".join(c.cmdline())
    ]
    assert left == []


def test_a_saved_current_profile_round_trips_and_merges_with_data(reference, tmp_path):
    _write_parts(tmp_path / "a", _frame(3000, 5), files=1, row_group=1000)
    _write_parts(tmp_path / "b", _frame(2000, 6), files=1, row_group=1000)
    part = profiles.build([tmp_path / "a"], reference=reference)
    part.save(tmp_path / "a.json")

    merged = profiles.build([tmp_path / "a.json", tmp_path / "b"], reference=reference)
    direct = profiles.build([tmp_path / "a", tmp_path / "b"], reference=reference)

    assert Profile.load(tmp_path / "a.json") == part
    assert _counts(merged) == _counts(direct)


def test_data_is_found_in_folders_globs_csv_and_fsspec_urls(reference, tmp_path):
    fsspec = pytest.importorskip("fsspec")
    frame = _frame(1000, 7)
    frame.to_csv(tmp_path / "window.csv", index=False)
    memory = fsspec.filesystem("memory")
    with memory.open("/window/part.parquet", "wb") as fh:
        frame.to_parquet(fh, index=False)

    from_csv = profiles.build([str(tmp_path / "*.csv")], reference=reference)
    from_url = profiles.build(["memory://window/"], reference=reference)
    memory.rm("/window", recursive=True)

    assert (
        _counts(from_csv)
        == _counts(from_url)
        == _counts(profiles.profile_current(frame, reference))
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("nowhere.parquet", r"DATA: '.*nowhere\.parquet': no such file or directory"),
        ("*.nothing", r"matches no file"),
        ("notes.txt", r"unknown format"),
    ],
)
def test_bad_data_sources_are_data_errors_naming_them(reference, tmp_path, source, expected):
    (tmp_path / "notes.txt").write_text("hello")

    with pytest.raises(DataError, match=expected):
        profiles.build([str(tmp_path / source)], reference=reference)


@pytest.mark.parametrize("with_reference", [True, False])
def test_an_unreadable_file_is_named_once_with_or_without_a_reference(
    reference, tmp_path, with_reference
):
    (tmp_path / "broken.csv").write_text('a,b\n1,2\n"unterminated,4\n')

    with pytest.raises(DataError) as info:
        profiles.build(
            [str(tmp_path / "broken.csv")], reference=reference if with_reference else None
        )

    message = str(info.value)
    assert re.match(r"DATA: cannot read '[^']*broken\.csv' as CSV: ", message), message
    assert message.count("broken.csv") == 1, message  # no "DATA: broken.csv: DATA: ..." twice


def test_a_profile_of_another_reference_is_refused_naming_both(reference):
    other = build_profile(_frame(5000, 11))
    current = profiles.profile_current(_frame(1000, 2), other)

    with pytest.raises(DataError, match=r"cur\.json' was built against another reference"):
        profiles.compare(reference, current, current_source="profile 'cur.json'")
    with pytest.raises(DataError, match="is a reference profile, not a profile of current"):
        profiles.compare(reference, other)


def test_corrupted_and_future_profiles_are_data_errors_naming_the_file(reference, tmp_path):
    doc = json.loads(profiles.profile_current(_frame(500, 2), reference).to_json())
    doc["features"][0]["sketch"] = "bm90IGEgc2tldGNo"
    (tmp_path / "corrupt.json").write_text(json.dumps(doc))
    doc["version"] = 99
    (tmp_path / "future.json").write_text(json.dumps(doc))

    with pytest.raises(DataError, match=r"corrupt\.json.*sketch is corrupted"):
        profiles.load(tmp_path / "corrupt.json")
    with pytest.raises(DataError, match=r"future\.json.*version 99 is newer"):
        profiles.load(tmp_path / "future.json")


def test_format_1_profiles_still_load_and_say_why_they_cannot_merge(reference, tmp_path):
    doc = json.loads(reference.to_json())
    doc["version"] = 1
    for f in [*doc["features"], doc["prediction"]]:
        for key in ("sketch", "distinct"):
            f.pop(key, None)
    for key in ("sketch", "fingerprint", "reference", "sample"):
        doc.pop(key)
    (tmp_path / "v1.json").write_text(json.dumps(doc))

    old = Profile.load(tmp_path / "v1.json")

    assert old.fingerprint == reference.fingerprint
    assert profiles.compare(old, profiles.profile_current(_frame(500, 2), reference))
    with pytest.raises(DataError, match="format 1 holds no sketch"):
        profiles.merge(old, old)


def test_cli_builds_a_current_profile_and_reports_bad_input_without_a_traceback(
    reference, tmp_path, capsys
):
    reference.save(tmp_path / "ref.json")
    _write_parts(tmp_path / "window", _frame(3000, 2), files=2, row_group=500)

    status = cli.main(
        [
            "profile",
            "build",
            str(tmp_path / "window"),
            "--reference",
            str(tmp_path / "ref.json"),
            "-o",
            str(tmp_path / "out" / "current.json"),
        ]
    )
    out = capsys.readouterr().out
    bad = cli.main(
        [
            "profile",
            "build",
            str(tmp_path / "missing"),
            "--reference",
            str(tmp_path / "ref.json"),
            "-o",
            str(tmp_path / "x.json"),
        ]
    )
    err = capsys.readouterr().err

    assert status == 0
    assert "wrote current profile" in out
    assert "3000 rows" in out
    assert Profile.load(tmp_path / "out" / "current.json").reference == reference.fingerprint
    assert bad == 2
    assert "no such file or directory" in err
    assert "Traceback" not in err


def test_the_monitor_dumps_its_window_as_a_current_profile(reference, tmp_path):
    class Echo:
        def predict_single(self, row):
            return 0.0

        def batch_predict(self, rows):
            return np.zeros(len(rows))

    monitor = Monitor(Echo(), reference, drift_window=1000, hooks=[])
    current = _frame(2500, 8, shift=0.3)
    for i in range(0, 2500, 250):
        monitor.batch_predict(current.iloc[i : i + 250])

    dumped = monitor.dump_profile(tmp_path / "monitor.json")

    assert Profile.load(tmp_path / "monitor.json") == dumped
    assert dumped.rows == 2500
    assert _counts(dumped) == _counts(profiles.profile_current(current, reference))
    assert monitor.current_profile().rows == 0
    more = _frame(700, 9)
    monitor.batch_predict(more)
    # The open window's 500 dumped rows are not counted again when it closes.
    assert _counts(monitor.current_profile()) == _counts(profiles.profile_current(more, reference))


# --- through the gate ---------------------------------------------------------------------------


def _mixed(n: int, seed: int, *, shift_b: float = 0.0) -> pd.DataFrame:
    frame = fm.make_frame(n, seed=seed)
    frame["b"] = frame["b"] + shift_b
    return frame


def test_the_gate_judges_a_current_profile_like_the_current_rows(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.data(_mixed(3000, seed=1), name="train.csv")
    gate.run(
        "model.joblib",
        "--deploy-gate-data=train.csv",
        "--deploy-gate-save-profile=ref.json",
        "-k",
        "save-profile",
    )
    gate.data(_mixed(3000, seed=2, shift_b=1.0).drop(columns=["label", "y"]), name="current.csv")
    status = cli.main(
        [
            "profile",
            "build",
            str(gate.path / "current.csv"),
            "--reference",
            str(gate.path / "ref.json"),
            "-o",
            str(gate.path / "current.json"),
        ]
    )
    assert status == 0

    result = gate.run(
        "model.joblib",
        "--deploy-gate-profile=ref.json",
        "--deploy-gate-current=current.json",
        "-k",
        "drift",
        data=False,
    )
    from_profile = messages(gate.junit())
    gate.run(
        "model.joblib",
        "--deploy-gate-profile=ref.json",
        "--deploy-gate-current=current.csv",
        "-k",
        "drift",
        data=False,
    )
    from_rows = messages(gate.junit())

    assert result.ret == 1
    assert failed(gate.junit()) == {"drift[b]", "drift[prediction]"}
    assert {k: v for k, v in from_profile.items() if k != "drift[prediction]"} == {
        k: v for k, v in from_rows.items() if k != "drift[prediction]"
    }
    assert "uniform sample of 3000 of 3000 current rows" in from_profile["drift[prediction]"]


def test_the_gate_fails_drift_with_a_clear_message_on_a_profile_of_another_reference(
    gate: GateRun,
) -> None:
    gate.artifact(fm.ThresholdClassifier())
    build_profile(_mixed(2000, seed=1).drop(columns=["label", "y"])).save(gate.path / "ref.json")
    other = build_profile(_mixed(2000, seed=5).drop(columns=["label", "y"]))
    current = profiles.profile_current(_mixed(500, seed=2).drop(columns=["label", "y"]), other)
    current.save(gate.path / "current.json")

    gate.run(
        "model.joblib",
        "--deploy-gate-profile=ref.json",
        "--deploy-gate-current=current.json",
        "-k",
        "drift",
        data=False,
    )

    outcomes = junit_outcomes(gate.junit())
    assert {v for k, v in outcomes.items() if k != "drift[prediction]"} == {"failed"}
    assert "was built against another reference" in messages(gate.junit())["drift[a]"]
