from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_frame
from scipy import stats

from deploy_gate.drift import (
    DriftThresholds,
    NumericProfile,
    Profile,
    build_profile,
    detect_drift,
    drift_against_profile,
    iter_chunks,
    prediction_drift,
    prediction_drift_against_profile,
    prediction_scores,
)
from deploy_gate.errors import ConfigError, DataError
from deploy_gate.stats import binned_shares, quantile_edges


def frame(n: int, seed: int, *, age_shift: float = 0.0, colors: list[str] | None = None):
    rng = np.random.default_rng(seed)
    palette = colors or ["red", "green", "blue"]
    return pd.DataFrame(
        {
            "age": rng.normal(40.0 + age_shift, 10.0, n),
            "income": rng.lognormal(10.0, 1.0, n),
            "visits": rng.poisson(3.0, n).astype(np.int64),
            "color": np.array(palette, dtype=object)[rng.integers(0, len(palette), n)],
        }
    )


def by_feature(results):
    return {r.feature: r for r in results}


# --- verdicts -------------------------------------------------------------------------------


def test_a_planted_shift_in_one_feature_flags_exactly_that_feature():
    results = detect_drift(frame(5000, 1), frame(4000, 2, age_shift=5.0))

    failed = [r.feature for r in results if not r.passed]

    assert failed == ["age"]


@pytest.mark.parametrize("n", [100, 10_000, 1_000_000])
def test_identical_distributions_pass_for_every_feature_at_any_size(n):
    rng = np.random.default_rng(n)
    colors = np.array(["a", "b", "c", "d"], dtype=object)

    def sample() -> pd.DataFrame:
        return pd.DataFrame(
            {
                "x": rng.normal(size=n),
                "k": rng.poisson(4.0, n).astype(np.float64),
                "c": colors[rng.integers(0, 4, n)],
            }
        )

    results = detect_drift(sample(), sample())

    assert [r.message for r in results if not r.passed] == []
    assert all(r.n_reference == n for r in results)


def test_false_alarm_rate_on_small_identical_samples_stays_near_the_pvalue():
    rng = np.random.default_rng(7)
    trials = 300
    alarms = sum(
        not prediction_drift(rng.normal(size=100), rng.normal(size=100)).passed
        for _ in range(trials)
    )

    # The rule fails only on p < 0.01, so about 3 of 300; PSI noise alone (~0.2 here) never does.
    assert alarms <= 9


def test_a_negligible_shift_on_a_million_rows_is_significant_but_passes_on_the_effect_floor():
    rng = np.random.default_rng(3)
    ref = rng.normal(size=1_000_000)
    cur = rng.normal(0.02, 1.0, size=1_000_000)

    result = prediction_drift(ref, cur, name="x")

    assert result.pvalue < 0.01
    assert result.passed
    assert result.message.startswith("no drift in 'x': PSI 0.00 <= 0.20, KS D=0.0")


def test_a_large_psi_on_a_handful_of_rows_is_not_significant_and_passes():
    rng = np.random.default_rng(11)
    result = prediction_drift(rng.normal(size=20), rng.normal(0.4, 1.0, size=20))

    assert result.psi > 0.2
    assert result.pvalue >= 0.01
    assert result.passed
    assert result.message.startswith("no significant drift in 'prediction': PSI ")


def test_failure_message_names_feature_statistic_value_threshold_sizes_and_moved_bins():
    result = by_feature(detect_drift(frame(10_000, 1), frame(5000, 2, age_shift=8.0)))["age"]

    first = result.message
    assert first.startswith(f"drift in 'age': PSI {result.psi:.2f} > 0.20 (KS D=")
    assert "p<1e-12; n_ref=10000, n_cur=5000); most moved: [" in first
    top = result.moved[0]
    assert top.current_share > top.reference_share
    assert f"{top.reference_share:.1%} -> {top.current_share:.1%}" in first


def test_a_shift_caught_by_ks_alone_names_the_effect_floor():
    rng = np.random.default_rng(5)
    ref = rng.normal(size=50_000)
    cur = rng.normal(0.3, 1.0, size=50_000)

    result = prediction_drift(ref, cur, name="x", psi_threshold=0.5)

    assert not result.passed
    assert result.psi <= 0.5
    assert result.message.startswith("drift in 'x': KS D=")
    assert ">= 0.10, p<1e-12 < 0.01 (PSI" in result.message


def test_an_unseen_category_is_reported_by_name():
    ref = frame(5000, 1)
    cur = frame(5000, 2, colors=["red", "green", "blue", "purple"])

    color = by_feature(detect_drift(ref, cur))["color"]
    from_profile = by_feature(drift_against_profile(build_profile(ref), cur))["color"]

    for result in (color, from_profile):
        assert result.unseen == ("purple",)
        assert not result.passed
        assert "'purple' (unseen): 0.0% -> 2" in result.message
        assert result.message.endswith("unseen: 'purple'")


def test_a_feature_going_missing_drifts_even_when_the_rest_is_unchanged():
    ref = frame(5000, 1)
    cur = frame(5000, 2)
    cur.loc[cur.index[:1500], "income"] = np.nan

    income = by_feature(detect_drift(ref, cur))["income"]

    assert not income.passed
    assert income.missing_current == pytest.approx(0.3)
    assert income.moved[0].label == "missing"


def test_categorical_statistics_are_scipys_chi_square_and_cramers_v():
    ref = frame(3000, 1)
    cur = frame(2000, 2)
    cur.loc[cur.index[:300], "color"] = "red"

    color = by_feature(detect_drift(ref, cur))["color"]

    table = np.array(
        [
            [(ref.color == c).sum() for c in ["red", "green", "blue"]],
            [(cur.color == c).sum() for c in ["red", "green", "blue"]],
        ]
    )
    expected = stats.chi2_contingency(table)
    assert color.test == "chi2"
    assert color.statistic == pytest.approx(expected.statistic)
    assert color.pvalue == pytest.approx(expected.pvalue)
    assert color.effect == pytest.approx(stats.contingency.association(table))


@pytest.mark.parametrize("discrete", [False, True])
def test_ks_on_large_samples_matches_scipy_statistic_and_asymptotic_pvalue(discrete):
    rng = np.random.default_rng(2)
    if discrete:
        a, b = rng.poisson(5, 30_000).astype(float), rng.poisson(5.03, 20_000).astype(float)
    else:
        a, b = rng.normal(size=30_000), rng.normal(0.03, 1.0, size=20_000)

    result = prediction_drift(a, b)

    expected = stats.ks_2samp(a, b, method="asymp")
    assert result.statistic == pytest.approx(expected.statistic, abs=1e-12)
    # Stephens' approximation of the Kolmogorov distribution instead of scipy's slow kstwo.
    assert result.pvalue == pytest.approx(expected.pvalue, rel=1e-2)


def test_psi_bins_are_the_reference_quantile_bins_of_stats():
    rng = np.random.default_rng(4)
    ref, cur = rng.normal(size=20_000), rng.normal(0.5, 1.0, size=20_000)

    result = prediction_drift(ref, cur, bins=10)

    edges = quantile_edges(ref, 10)
    expected = binned_shares(cur, edges)
    moved = {b.label: b.current_share for b in result.moved}
    assert moved
    labels = ["(-inf"] + [f"[{e:.4g}" for e in edges]
    for label, share in moved.items():
        assert share == pytest.approx(expected[labels.index(label.split(",")[0])])


# --- predictions ------------------------------------------------------------------------------


def test_prediction_drift_is_judged_from_the_models_scores():
    ref, cur = frame(4000, 1), frame(4000, 2, age_shift=10.0)

    def predict(rows: pd.DataFrame) -> np.ndarray:
        p = 1 / (1 + np.exp(-(rows["age"].to_numpy() - 40) / 5))
        return np.column_stack([1 - p, p])

    results = detect_drift(ref, cur, predict=predict, features=["income"])

    assert [(r.feature, r.kind, r.passed) for r in results] == [
        ("income", "numeric", True),
        ("prediction", "prediction", False),
    ]


def test_prediction_scores_take_the_positive_class_or_the_top_probability():
    two = np.array([[0.8, 0.2], [0.1, 0.9]])
    three = np.array([[0.2, 0.5, 0.3], [0.7, 0.2, 0.1]])

    assert prediction_scores(two).tolist() == [0.2, 0.9]
    assert prediction_scores(three).tolist() == [0.5, 0.7]
    assert prediction_scores([1, 2, 3]).tolist() == [1.0, 2.0, 3.0]


# --- profile ----------------------------------------------------------------------------------


def test_profile_round_trips_through_json_and_a_file(tmp_path):
    profile = build_profile(frame(3000, 1), predict=lambda d: d["age"].to_numpy() / 100)
    path = tmp_path / "profile.json"

    profile.save(path)
    doc = json.loads(path.read_text())

    assert Profile.from_json(profile.to_json()) == profile
    assert Profile.load(path) == profile
    age = next(f for f in doc["features"] if f["name"] == "age")
    assert set(age) >= {"edges", "bin_shares", "bin_counts", "quantiles", "missing_share"}
    color = next(f for f in doc["features"] if f["name"] == "color")
    assert sum(color["category_shares"].values()) == pytest.approx(1.0)
    assert doc["prediction"]["name"] == "prediction"


def test_profile_gives_the_same_verdicts_as_the_raw_reference_within_tolerance():
    ref = frame(20_000, 1)
    cur = frame(8000, 2, age_shift=3.0, colors=["red", "green", "blue", "teal"])
    cur.loc[cur.index[:800], "visits"] = 9
    chunks = [ref.iloc[i : i + 1500] for i in range(0, len(ref), 1500)]
    # A small sketch forces compactions, so the error bound is exercised, not zero.
    profile = Profile.from_json(build_profile(chunks, sketch_capacity=256).to_json())

    raw = by_feature(detect_drift(ref, cur))
    prof = by_feature(drift_against_profile(profile, cur))

    assert any(f.rank_error > 0 for f in profile.features if isinstance(f, NumericProfile))
    assert {f: r.passed for f, r in raw.items()} == {f: r.passed for f, r in prof.items()}
    assert sorted(f for f, r in raw.items() if not r.passed) == ["age", "color", "visits"]
    for name, r in raw.items():
        assert prof[name].psi == pytest.approx(r.psi, abs=0.03)
        if r.test == "ks":
            assert abs(prof[name].statistic - r.statistic) <= prof[name].ks_error


def test_sketch_quantiles_are_within_the_stated_rank_error():
    rng = np.random.default_rng(9)
    values = np.concatenate([rng.normal(size=60_000), np.full(5000, 1.5)])
    rng.shuffle(values)
    chunks = [pd.DataFrame({"v": values[i : i + 4000]}) for i in range(0, values.size, 4000)]

    prof = build_profile(chunks, sketch_capacity=128, quantiles=200).feature("v")

    assert isinstance(prof, NumericProfile)
    assert 0 < prof.rank_error < 0.05
    grid = np.asarray(prof.quantiles)
    ordered = np.sort(values)
    below = np.searchsorted(ordered, grid, side="left") / values.size
    at_most = np.searchsorted(ordered, grid, side="right") / values.size
    targets = np.arange(grid.size) / (grid.size - 1)
    # The value at rank p has at most p (+error) of the data below it and at least p at or below.
    assert np.all(below <= targets + prof.rank_error + 1e-12)
    assert np.all(at_most >= targets - prof.rank_error - 1e-12)


def test_a_single_dataframe_is_profiled_exactly():
    ref = frame(5000, 1)

    profile = build_profile(ref)
    age = profile.feature("age")

    assert isinstance(age, NumericProfile)
    assert age.rank_error == 0.0
    assert age.bin_counts == tuple(np.round(binned_shares(ref.age, age.edges) * 5000).astype(int))


def test_streaming_drift_equals_drift_on_the_whole_frame():
    profile = build_profile(frame(5000, 1))
    cur = frame(7000, 2, age_shift=2.0)

    whole = drift_against_profile(profile, cur)
    streamed = drift_against_profile(profile, (cur.iloc[i : i + 999] for i in range(0, 7000, 999)))

    assert whole == streamed


def test_prediction_drift_against_a_profile_uses_its_reference_scores():
    ref = frame(5000, 1)
    profile = build_profile(ref, predict=lambda d: d["age"].to_numpy())

    same = prediction_drift_against_profile(profile, frame(3000, 2)["age"])
    moved = prediction_drift_against_profile(profile, frame(3000, 2, age_shift=6.0)["age"])

    assert same.passed
    assert not moved.passed
    assert moved.kind == "prediction"


# --- reading --------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["parquet", "csv", "jsonl"])
def test_iter_chunks_reads_each_format_in_bounded_chunks(tmp_path, suffix):
    data = frame(2500, 1)
    path = tmp_path / f"data.{suffix}"
    write_frame(data, path)

    chunks = list(iter_chunks(path, chunk_rows=1000))

    assert [len(c) for c in chunks] == [1000, 1000, 500]
    joined = pd.concat(chunks, ignore_index=True)
    assert joined["age"].to_numpy() == pytest.approx(data["age"].to_numpy())
    assert joined["color"].tolist() == data["color"].tolist()


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("broken.parquet", b"not parquet at all", "cannot read '{path}' as Parquet"),
        ("broken.csv", b"a,b\n1,2\n3,4,5,6\n", "cannot read '{path}' as CSV"),
        ("data.xlsx", b"", "cannot read '{path}': unknown format"),
    ],
)
def test_unreadable_input_raises_a_data_error_naming_the_file(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)

    with pytest.raises(DataError, match=expected.format(path=path).replace(".", r"\.")):
        list(iter_chunks(path))


def test_a_missing_file_raises_when_the_reader_is_made():
    with pytest.raises(DataError, match=r"cannot read 'nope\.parquet': no such file"):
        iter_chunks(Path("nope.parquet"))


def test_a_broken_profile_file_raises_a_data_error_naming_it(tmp_path):
    path = tmp_path / "profile.json"
    path.write_text('{"format": "deploy-gate-profile", "version": 1, "rows": 1, "bins": 10}')

    with pytest.raises(DataError, match=r"profile\.json.*missing key 'features'"):
        Profile.load(path)


# --- bad input --------------------------------------------------------------------------------


def test_current_data_lacking_a_feature_is_a_data_error_naming_it():
    with pytest.raises(DataError, match="current data lacks feature\\(s\\) 'income'"):
        detect_drift(frame(100, 1), frame(100, 2).drop(columns="income"))


def test_text_in_a_numeric_feature_is_a_data_error_naming_feature_and_value():
    cur = frame(100, 2)
    cur["age"] = cur["age"].astype(object)
    cur.loc[cur.index[7], "age"] = "forty"

    with pytest.raises(DataError, match=r"feature 'age' is numeric.*'forty' \(row 7\)"):
        detect_drift(frame(100, 1), cur)


def test_bad_thresholds_are_config_errors_naming_the_setting():
    with pytest.raises(ConfigError, match="pvalue must be in \\(0, 1\\), got 2"):
        DriftThresholds(pvalue=2)
    with pytest.raises(ConfigError, match="unknown drift threshold in \\['psi'\\]"):
        detect_drift(frame(100, 1), frame(100, 2), psi=0.1)


def test_date_columns_are_refused_with_advice():
    ref = frame(100, 1).assign(when=pd.Timestamp("2024-01-01"))

    with pytest.raises(DataError, match="feature 'when' holds dates/times"):
        build_profile(ref)
