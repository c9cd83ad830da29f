"""The verdict-quality suite: on a machine whose other core is kept busy by a CPU hog, the gate
approves every healthy model of every family we support and blocks every faulty one in the
category made for its fault, and its latency verdicts hold in ``--verdict-repeats`` (10 in CI)
repeated runs: 0 false alarms, 0 misses.

Each repeat is one more copy of the same artifact in the same gate run, so a repeat costs one
measurement, not one pytest start-up. It takes minutes, so it runs in a CI step of its own
(``pytest -m verdict_quality``, see ``.ci/run``) rather than in the default run.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import faulty_models as fm
import latency_models as lm
import numpy as np
import pandas as pd
import pytest
from conftest import GateRun, failed, junit_outcomes, messages
from faulty_models import FAULTS
from junit_properties import properties
from model_families import BY_NAME_WRAPPER, NUMERIC, frame, pipeline, single_tensor_onnx

pytestmark = pytest.mark.verdict_quality


@pytest.fixture(scope="module")
def cpu_hog() -> Iterator[subprocess.Popen[bytes]]:
    """A process spinning on the last CPU for the whole module (on the only one, if it is)."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) > 1:
        os.sched_setaffinity(hog.pid, {cpus[-1]})
    try:
        yield hog
    finally:
        hog.kill()
        hog.wait()


def _still_hogging(hog: subprocess.Popen[bytes]) -> None:
    """A verdict reached without the load it was meant to withstand proves nothing."""
    assert hog.poll() is None, "the CPU hog stopped during the run"


@pytest.fixture
def repeats(request: pytest.FixtureRequest) -> int:
    return int(request.config.getoption("--verdict-repeats"))


def _bad(root: Any, artifact: str) -> dict[str, str]:
    outcomes = junit_outcomes(root, artifact=artifact)
    assert outcomes, f"no items ran for {artifact}"
    texts = messages(root)
    return {k: texts.get(k, v) for k, v in outcomes.items() if v not in ("passed", "skipped")}


# --- healthy models of every family: approved ------------------------------------------------


def _mixed_family(gate: GateRun) -> tuple[list[str], str]:
    """scikit-learn pipelines with a categorical column and missing values, joblib and skops."""
    import joblib
    import skops.io
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    data = frame()
    X, y = data.drop(columns=["label", "amount"]), data["label"]
    joblib.dump(pipeline(LogisticRegression(max_iter=500)).fit(X, y), gate.path / "logistic.joblib")
    forest = pipeline(RandomForestClassifier(20, random_state=0)).fit(X, y)
    joblib.dump(forest, gate.path / "forest.joblib")
    skops.io.dump(pipeline(LogisticRegression(max_iter=500)).fit(X, y), gate.path / "pipe.skops")
    gate.data(data)
    return ["logistic.joblib", "forest.joblib", "pipe.skops"], "label"


def _numeric_data() -> pd.DataFrame:
    data = frame().drop(columns=["plan", "amount"])
    # A label the columns decide, so that a positional model fed reordered columns would show it.
    data["label"] = (data.age / 10 + data.visits > 8).astype(int)
    return data


def _numeric_classifiers(gate: GateRun) -> tuple[list[str], str]:
    """Gradient boosting (scikit-learn with native NaN, XGBoost) and a single-tensor ONNX
    classifier, on numeric columns with missing values."""
    import joblib
    import xgboost
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    data = _numeric_data()
    X, y = data[NUMERIC], data["label"]
    joblib.dump(HistGradientBoostingClassifier(max_iter=30).fit(X, y), gate.path / "hgb.joblib")
    joblib.dump(
        xgboost.XGBClassifier(n_estimators=20, max_depth=3).fit(X, y), gate.path / "xgb.joblib"
    )
    onnx_model = make_pipeline(SimpleImputer(), LogisticRegression(max_iter=500))
    onnx_model.fit(X.astype(np.float32), y)
    (gate.path / "clf.onnx").write_bytes(single_tensor_onnx(onnx_model, len(NUMERIC), True))
    gate.data(data)
    return ["hgb.joblib", "xgb.joblib", "clf.onnx"], "label"


def _lightgbm(gate: GateRun) -> tuple[list[str], str]:
    """LightGBM, served by name: it reads a frame's columns by position (see the model zoo)."""
    import joblib
    import lightgbm

    data = _numeric_data()
    model = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1)
    joblib.dump(model.fit(data[NUMERIC], data["label"]), gate.path / "lgbm.joblib")
    gate.pytester.makeconftest(BY_NAME_WRAPPER)
    gate.data(data)
    return ["lgbm.joblib"], "label"


def _float32_regressors(gate: GateRun) -> tuple[list[str], str]:
    """Regressors whose outputs are float32 (XGBoost, a single-tensor ONNX), and a float64 one."""
    import joblib
    import xgboost
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = frame().drop(columns=["plan", "label"])
    X, y = data[NUMERIC], data["amount"]
    xgb = xgboost.XGBRegressor(n_estimators=40, max_depth=4).fit(X, y)
    assert xgb.predict(X).dtype == np.float32
    joblib.dump(xgb, gate.path / "xgb.joblib")
    ridge = make_pipeline(SimpleImputer(), StandardScaler(), Ridge()).fit(X.astype(np.float32), y)
    (gate.path / "ridge.onnx").write_bytes(single_tensor_onnx(ridge, len(NUMERIC), False))
    joblib.dump(HistGradientBoostingRegressor(max_iter=30).fit(X, y), gate.path / "hgb.joblib")
    gate.data(data)
    return ["xgb.joblib", "ridge.onnx", "hgb.joblib"], "amount"


FAMILIES: dict[str, Callable[[GateRun], tuple[list[str], str]]] = {
    "sklearn-pipelines-categoricals-missing-values": _mixed_family,
    "gradient-boosting-and-onnx-classifiers": _numeric_classifiers,
    "lightgbm-served-by-name": _lightgbm,
    "float32-regressors": _float32_regressors,
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_healthy_models_are_approved_under_load(
    gate: GateRun, cpu_hog: subprocess.Popen[bytes], family: str
) -> None:
    artifacts, target = FAMILIES[family](gate)
    # The defaults, batches of 32 included: approval must hold on what a user gets.
    result = gate.run(*artifacts, "--deploy-gate-latency-batch-sizes=1 32", target=target)
    _still_hogging(cpu_hog)
    root = gate.junit()
    blocked = {name: bad for name in artifacts if (bad := _bad(root, name))}
    assert not blocked, blocked
    result.stdout.fnmatch_lines(["APPROVED FOR DEPLOYMENT*"])
    assert result.ret == 0


# --- faulty models: blocked, in the category made for the fault ------------------------------


def _category(item: str) -> str:
    return item.split("[", 1)[0]


@pytest.mark.parametrize("target", ["label", "y"], ids=["classifiers", "regressors"])
def test_faulty_models_are_blocked_in_their_category_under_load(
    gate: GateRun, cpu_hog: subprocess.Popen[bytes], target: str
) -> None:
    faults = {type(model).__name__: (model, want) for model, t, want, _ in FAULTS if t == target}
    for name, (model, _) in faults.items():
        gate.artifact(model, f"{name}.joblib")
    result = gate.run(*(f"{name}.joblib" for name in faults), target=target)
    _still_hogging(cpu_hog)
    root = gate.junit()
    for name, (_, want) in faults.items():
        got = failed(root, artifact=f"{name}.joblib")
        # The check made for the fault fails (a miss otherwise), and nothing outside the
        # categories the fault touches (a false alarm otherwise).
        assert set(want) <= got, (name, got)
        assert {_category(i) for i in got} <= {_category(i) for i in want}, (name, got)
    result.stdout.fnmatch_lines(["DEPLOYMENT BLOCKED*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_worse_model_is_blocked_by_the_baseline_under_load(
    gate: GateRun, cpu_hog: subprocess.Popen[bytes]
) -> None:
    gate.artifact(fm.ThresholdClassifier(), "baseline.joblib")
    gate.artifact(fm.WorseClassifier(), "worse.joblib")
    gate.artifact(fm.ThresholdClassifier(), "same.joblib")
    gate.data(fm.make_frame(1000))
    result = gate.run(
        "worse.joblib", "same.joblib", "--deploy-gate-baseline=baseline.joblib", "-m", "baseline"
    )
    _still_hogging(cpu_hog)
    root = gate.junit()
    assert "baseline[accuracy]" in failed(root, artifact="worse.joblib")
    assert {_category(i) for i in failed(root, artifact="worse.joblib")} == {"baseline"}
    assert not _bad(root, "same.joblib")
    assert result.ret == pytest.ExitCode.TESTS_FAILED


# --- latency: the same verdict in every repeat -----------------------------------------------


def _call_ms(model: Any, rows: pd.DataFrame, calls: int = 200) -> float:
    """Median time of ``model.predict`` on one row here, in ms: the scale of the budgets below
    (the gate's own calls add a little to it, never take from it)."""
    X = rows[list(fm.FEATURES)]
    times = []
    for i in range(calls):
        row = X.iloc[[i % len(X)]]
        begin = time.perf_counter_ns()
        model.predict(row)
        times.append(time.perf_counter_ns() - begin)
    return statistics.median(times) / 1e6


def _units_for_ms(ms: float) -> int:
    """Steps of ``latency_models.busy`` that take about ``ms`` here: timed at the fastest of
    15 tries, which the hog and other jobs can only have slowed."""
    units = 100_000
    times = []
    for _ in range(15):
        begin = time.perf_counter_ns()
        lm.busy(units)
        times.append(time.perf_counter_ns() - begin)
    return max(1, int(units * ms * 1e6 / min(times)))


@dataclass
class LatencyCase:
    #: (candidate, baseline or None, extra gate options) for this machine's speed
    build: Callable[[], tuple[Any, Any, list[str]]]
    #: latency items that must fail in every repeat; empty: none may fail in any repeat
    must_fail: frozenset[str]


def _fast() -> tuple[Any, Any, list[str]]:
    model = lm.BusyClassifier(_units_for_ms(1.0), per_row=_units_for_ms(0.05))
    budget = 10 * _call_ms(model, fm.make_frame())
    return model, None, [f"--deploy-gate-latency-budget=p99@1={budget:.3f}ms"]


def _over_budget() -> tuple[Any, Any, list[str]]:
    # Single rows only: batches of 8 would get a derived budget of 8 single-row budgets, and a
    # model four times over its own budget fails that one too on a slow host (its batch p99
    # at 7.4 ms against 4.8 ms in 5 of 10 repeats): a right verdict, but not this case's.
    model = lm.BusyClassifier(_units_for_ms(2.0))
    budget = _call_ms(model, fm.make_frame()) / 4
    return (
        model,
        None,
        [
            f"--deploy-gate-latency-budget=p99@1={budget:.3f}ms",
            "--deploy-gate-latency-batch-sizes=1",
        ],
    )


def _row_by_row() -> tuple[Any, Any, list[str]]:
    # Nearly all of its time goes to rows: a batch of 8 costs about what 8 single rows do.
    return lm.BusyClassifier(0, per_row=_units_for_ms(1.0)), None, []


#: The options of the cases judged against a baseline: single rows, at most 1.3x its latency.
AGAINST_BASELINE = ("--deploy-gate-latency-max-ratio=1.3", "--deploy-gate-latency-batch-sizes=1")


def _slower_than_baseline(factor: float) -> Callable[[], tuple[Any, Any, list[str]]]:
    def build() -> tuple[Any, Any, list[str]]:
        units = _units_for_ms(1.0)
        candidate = lm.BusyClassifier(int(units * factor))
        return candidate, lm.BusyClassifier(units), list(AGAINST_BASELINE)

    return build


def _slower_call_than_baseline(factor: float) -> Callable[[], tuple[Any, Any, list[str]]]:
    """A candidate whose whole call, not only its work, takes ``factor`` times the baseline's.

    Both models also spend a fixed time per call outside their work (pandas on a one-row frame),
    and that share grows on a slow machine: with 2.5x the work, the candidate's call measured
    only about 1.7x the baseline's on a host three times slower than usual, near the 1.3x limit
    and the 1.625x typical-call limit, so its p99 was undecided at the cap in 1 of 10 repeats.
    A fault meant to be clear is made clear on every machine."""

    def build() -> tuple[Any, Any, list[str]]:
        rows = fm.make_frame()
        baseline = lm.BusyClassifier(_units_for_ms(1.0))
        fixed_ms = _call_ms(lm.BusyClassifier(0), rows)
        work_ms = factor * _call_ms(baseline, rows) - fixed_ms
        return lm.BusyClassifier(_units_for_ms(work_ms)), baseline, list(AGAINST_BASELINE)

    return build


def _over_budget_beside_baseline() -> tuple[Any, Any, list[str]]:
    # Judged on the calls of its comparison with production (the same model, so that
    # comparison must pass): the budget still fails, and nothing else does.
    model, _, options = _over_budget()
    return model, model, [*options, "--deploy-gate-latency-max-ratio=1.3"]


LATENCY_CASES = {
    "healthy-fast": LatencyCase(_fast, frozenset()),
    "healthy-row-by-row-batches": LatencyCase(_row_by_row, frozenset()),
    # The same model as production, in two worker processes: any failure is a false alarm.
    "healthy-as-fast-as-baseline": LatencyCase(_slower_than_baseline(1.0), frozenset()),
    # Measurably slower than production (about 1.1x the call), within the 1.3x it may be.
    "healthy-slower-than-baseline": LatencyCase(_slower_than_baseline(1.15), frozenset()),
    "faulty-over-budget": LatencyCase(_over_budget, frozenset({"latency[p99-batch=1]"})),
    "faulty-slow-batches": LatencyCase(
        # 30 ms for every batch of 8 rows, several times what 8 single rows take.
        lambda: (lm.SlowEveryBatch(seconds=0.03), None, []),
        frozenset({"latency[batch-vs-single-batch=8]"}),
    ),
    "faulty-over-budget-beside-baseline": LatencyCase(
        _over_budget_beside_baseline, frozenset({"latency[p99-batch=1]"})
    ),
    "faulty-2.5x-slower-than-baseline": LatencyCase(
        _slower_call_than_baseline(2.5), frozenset({"latency[p99-vs-baseline-batch=1]"})
    ),
}


@pytest.mark.parametrize("case", list(LATENCY_CASES))
def test_latency_verdicts_hold_in_every_repeat_under_load(
    gate: GateRun, cpu_hog: subprocess.Popen[bytes], repeats: int, case: str
) -> None:
    spec = LATENCY_CASES[case]
    candidate, baseline, options = spec.build()
    first = gate.artifact(candidate, "copy0.joblib")
    names = [first.name]
    for i in range(1, repeats):
        shutil.copyfile(first, gate.path / f"copy{i}.joblib")
        names.append(f"copy{i}.joblib")
    if baseline is not None:
        gate.artifact(baseline, "baseline.joblib")
        options.append("--deploy-gate-baseline=baseline.joblib")
    if not any(o.startswith("--deploy-gate-latency-batch-sizes") for o in options):
        options.append("--deploy-gate-latency-batch-sizes=1 8")
    result = gate.run(
        *names,
        *options,
        "--deploy-gate-trust=latency_models",
        "-k",
        "latency",
    )
    _still_hogging(cpu_hog)
    root = gate.junit()
    misses, false_alarms = {}, {}
    for name in names:
        bad = _bad(root, name)
        if not spec.must_fail <= set(bad):
            misses[name] = bad or "approved"
        if extra := {k: v for k, v in bad.items() if k not in spec.must_fail}:
            false_alarms[name] = extra
    assert not misses, f"{len(misses)} of {repeats} runs missed the fault: {misses}"
    assert not false_alarms, f"{len(false_alarms)} of {repeats} false alarms: {false_alarms}"
    if baseline is not None:  # the budgets were judged on the calls of the comparison
        shared = [properties(root, "latency[p99-batch=1]", artifact=n) for n in names]
        assert all(p.get("timed_with_baseline") == "True" for p in shared), shared
    assert result.ret == (pytest.ExitCode.TESTS_FAILED if spec.must_fail else pytest.ExitCode.OK)
