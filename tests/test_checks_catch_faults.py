"""Every built-in check fails on a small faulty model made to have that fault, naming it, and
healthy models pass them all."""

from __future__ import annotations

import faulty_models as fm
import numpy as np
import pandas as pd
import pytest
from conftest import GateRun, failed, junit_outcomes, messages
from faulty_models import FAULTS
from junit_properties import properties


@pytest.mark.parametrize(
    ("model", "target", "expected", "phrase"),
    FAULTS,
    ids=[type(f[0]).__name__ for f in FAULTS],
)
def test_check_fails_on_the_model_with_its_fault(
    gate: GateRun, model: object, target: str, expected: list[str], phrase: str
) -> None:
    gate.artifact(model)
    result = gate.run("model.joblib", target=target)
    root = gate.junit()
    assert failed(root) == set(expected)
    text = messages(root)[expected[0]]
    assert phrase in text, text
    result.stdout.fnmatch_lines(["DEPLOYMENT BLOCKED (*failed)"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.parametrize(
    ("model", "target"),
    [
        (fm.ThresholdClassifier(), "label"),
        (fm.LinearRegressor(), "y"),
        (fm.Float32Regressor(), "y"),
        (fm.Float32Widened(), "y"),
        (fm.LongDoubleRegressor(), "y"),
        (fm.SparseColumnRegressor(), "y"),
    ],
    ids=[
        "classifier",
        "regressor",
        "float32-regressor",
        "float32-answering-float64",
        "long-double-regressor",
        "sparse-column-regressor",
    ],
)
def test_healthy_models_pass_every_check(gate: GateRun, model: object, target: str) -> None:
    gate.artifact(model)
    result = gate.run("model.joblib", target=target)
    outcomes = junit_outcomes(gate.junit())
    # Every check runs and passes but the one for text features, which these models lack.
    assert outcomes.pop("errors[unseen-category]") == "skipped"
    assert set(outcomes.values()) == {"passed"}, outcomes
    result.stdout.fnmatch_lines(["APPROVED FOR DEPLOYMENT"])
    assert result.ret == pytest.ExitCode.OK


def test_outputs_the_worker_cannot_send_as_data_are_named_not_called_a_scalar(
    gate: GateRun,
) -> None:
    gate.artifact(fm.FractionRegressor())
    result = gate.run("model.joblib", "-k", "smoke[batch] or output[shape]", target="y")
    texts = messages(gate.junit())
    for item in ("smoke[batch]", "output[shape]"):
        first = texts[item].splitlines()[0]
        assert "got a numpy.ndarray that the model process could not send as data" in first
        assert "scalar" not in first
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_classifier_answering_mappings_fails_on_its_labels_not_on_the_gates_errors(
    gate: GateRun,
) -> None:
    # Unhashable outputs reached set lookups in the gate: "TypeError: unhashable type: 'dict'"
    # failed 14 checks, none saying what was wrong with the model.
    gate.artifact(fm.DictLabels())
    gate.run("model.joblib", "-k", "not latency")
    root = gate.junit()
    texts = messages(root)
    assert failed(root) == {
        "smoke[output-valid]",
        "output[known-labels]",
        "output[not-worse-than-chance]",
    }, texts
    assert not any("TypeError" in text for text in texts.values())
    assert texts["output[known-labels]"].startswith("label not among classes [0, 1] in row 0")
    assert "row 0: {'label': 1, 'score': 0.8}" in texts["output[known-labels]"]
    assert (
        "the model predicts [{'label': 1, 'score': 0.8}, "
        in (texts["output[not-worse-than-chance]"])
    )


def test_decimal_outputs_cross_and_fail_as_non_numeric(gate: GateRun) -> None:
    # Decimals cross the worker as data (Parquet DECIMAL inputs do); as outputs they are
    # numbers to Python, not to a JSON client.
    gate.artifact(fm.DecimalRegressor())
    result = gate.run("model.joblib", "-k", "output", target="y")
    root = gate.junit()
    assert failed(root) == {"output[numeric-dtype]", "output[regression-range]"}
    assert messages(root)["output[numeric-dtype]"].startswith("non-numeric output (dtype object)")
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_regression_range_names_the_rows_and_values_of_string_outputs(gate: GateRun) -> None:
    gate.artifact(fm.StringRegressor())
    gate.run("model.joblib", "-k", "regression-range", target="y")
    text = messages(gate.junit())["output[regression-range]"]
    first = text.splitlines()[0]
    assert first.startswith("non-numeric output (dtype <U"), first
    assert "in row 0, row 1, row 2, row 3, row 4, ... (" in first
    assert "row 0: '1.300'" in text  # row 0 is a=0.5, b=0.3: 2a + b


def test_a_positional_model_passes_reordered_columns_and_records_the_order(gate: GateRun) -> None:
    gate.artifact(fm.PositionalClassifier())
    gate.data(fm.make_frame().drop(columns=["y"]))
    gate.run("model.joblib", target="label")
    root = gate.junit()
    outcomes = junit_outcomes(root)
    assert outcomes.pop("errors[unseen-category]") == "skipped"  # no text feature
    assert set(outcomes.values()) == {"passed"}, messages(root)
    assert properties(root, "errors[reordered-columns]")["column_order"] == "a, b, c, d"


def test_a_wrapper_that_takes_named_columns_and_ignores_the_names_fails(gate: GateRun) -> None:
    gate.artifact(fm.ThresholdClassifier())
    gate.pytester.makeconftest(
        """
        import pytest
        from faulty_models import IgnoresNamesWrapper

        @pytest.fixture
        def deployment_factory():
            return IgnoresNamesWrapper
        """
    )
    gate.run("model.joblib")
    root = gate.junit()
    assert failed(root) == {"errors[reordered-columns]"}
    text = messages(root)["errors[reordered-columns]"]
    assert "IgnoresNamesWrapper takes named columns and ignores their names" in text


def test_latency_sanity_fails_on_a_model_slow_on_single_rows(gate: GateRun) -> None:
    gate.artifact(fm.SlowSingleRow())
    gate.run("model.joblib", "-k", "latency-sanity")
    root = gate.junit()
    assert failed(root) == {"smoke[latency-sanity]"}
    assert "exceeds budget 100.0 ms" in messages(root)["smoke[latency-sanity]"]


def test_a_model_that_raises_shows_its_own_exception(gate: GateRun) -> None:
    gate.artifact(fm.RaisesOnPredict())
    result = gate.run("model.joblib")
    assert "smoke[inference-single]" in failed(gate.junit())
    result.stdout.fnmatch_lines(["*RuntimeError: model exploded*"])
    # The model's own frames, from the worker, under the failure; not the channel's frames.
    result.stdout.fnmatch_lines(
        [
            "*- model traceback (in the model worker) -*",
            "Traceback (most recent call last):",
            '*faulty_models.py", line *, in predict',
            "*raise RuntimeError*",
        ]
    )
    assert "worker/client.py" not in result.stdout.str()


def test_a_model_that_crashes_on_a_category_it_never_saw_fails_naming_the_feature(
    gate: GateRun,
) -> None:
    gate.artifact(fm.CityLookupClassifier())
    gate.data(fm.city_frame())
    result = gate.run("model.joblib", target="label")
    root = gate.junit()
    # A missing city is a city it never saw either: the edge row and NaN input crash too.
    assert failed(root) == {"errors[unseen-category]", "errors[nan-input]", "output[edge-rows]"}
    text = messages(root)["errors[unseen-category]"]
    assert text.splitlines()[0] == (
        "a value never seen before mishandled in 1 of 1 text or categorical features"
    )
    assert "city='deploy-gate-unseen-category': KeyError" in text
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_model_that_answers_for_a_category_it_never_saw_passes(gate: GateRun) -> None:
    gate.artifact(fm.CityDefaultClassifier())
    gate.data(fm.city_frame())
    result = gate.run("model.joblib", target="label")
    outcomes = junit_outcomes(gate.junit())
    assert outcomes["errors[unseen-category]"] == "passed"
    assert set(outcomes.values()) == {"passed"}, messages(gate.junit())
    assert result.ret == 0


def test_a_duration_feature_is_not_given_an_unseen_category(gate: GateRun) -> None:
    # A pipeline fitted on a frame with a timedelta column (which it drops): pandas refuses a
    # string in that column, and the gate's own edit failed errors[unseen-category] before.
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = fm.make_frame().drop(columns=["y"])
    frame["duration"] = pd.to_timedelta(np.arange(len(frame)) * 61, unit="s")
    features = frame.drop(columns=["label"])
    scale = ColumnTransformer([("scaled", StandardScaler(), ["a", "b", "c", "d"])])
    gate.artifact(make_pipeline(scale, LogisticRegression()).fit(features, frame["label"]))
    gate.data(frame, "holdout.parquet")  # keeps the duration's dtype
    data = "--deploy-gate-data=holdout.parquet"
    result = gate.run("model.joblib", data, "-k", "errors", target="label")
    outcomes = junit_outcomes(gate.junit())
    assert outcomes.pop("errors[unseen-category]") == "skipped"
    assert set(outcomes.values()) == {"passed"}, messages(gate.junit())
    assert result.ret == 0


def test_a_scalar_for_one_row_is_named_as_the_models_output(gate: GateRun) -> None:
    # The gate's own deployment indexed the scalar: "IndexError: too many indices for array".
    gate.artifact(fm.ScalarForOneRow())
    gate.run("model.joblib", "-k", "inference-single")
    text = messages(gate.junit())["smoke[inference-single]"]
    first = text.splitlines()[0]
    assert first.endswith(
        "InvalidOutputError: predict returned a scalar for one row; expected one output per row"
    ), first


def test_a_model_that_takes_every_edited_row_answers_them_in_one_batch(gate: GateRun) -> None:
    # errors[nan-input] sends the rows with one feature missing each as one batch first: one
    # call per feature through the worker made a table of 500 features outlive its deadline.
    log = gate.path / "calls.txt"
    gate.artifact(fm.RecordsBatches(str(log)))
    result = gate.run("model.joblib", "-k", "nan-input", "--deploy-gate-isolation=none", target="y")
    assert junit_outcomes(gate.junit()) == {"errors[nan-input]": "passed"}
    assert log.read_text().split() == [str(len(fm.FEATURES))]
    assert result.ret == pytest.ExitCode.OK


def test_edge_rows_a_model_refuses_are_asked_alone_and_the_others_in_one_batch(
    gate: GateRun,
) -> None:
    # A model that refuses NaN refuses the batch of edge rows; every edge row went one by one
    # then, and on 300 features (900 edge rows, each call twice with probabilities) a healthy
    # StandardScaler + LogisticRegression outlived the check's deadline and was blocked.
    log = gate.path / "calls.txt"
    gate.artifact(fm.RefusesNaNRecordsBatches(str(log)))
    gate.run("model.joblib", "-k", "output[shape]", "--deploy-gate-isolation=none", target="y")
    assert junit_outcomes(gate.junit()) == {"output[shape]": "passed"}
    sizes = [int(n) for n in log.read_text().split()]
    # The data, the edge rows without a missing value (one batch), those with one (refused
    # as a batch), then each of those alone: one per feature.
    assert sizes[0] == len(fm.make_frame())
    assert sizes[3:] == [1] * len(fm.FEATURES)
    assert sizes[2] == len(fm.FEATURES)
    assert sizes[1] > len(fm.FEATURES)


def test_a_feature_refused_in_the_batch_is_named_by_its_row_alone(gate: GateRun) -> None:
    # The batch of edited rows fails when one row does; each row alone then names the feature.
    gate.artifact(fm.CrashesOnNaNInC())
    result = gate.run("model.joblib", "-k", "nan-input", target="y")
    text = messages(gate.junit())["errors[nan-input]"]
    assert "NaN input mishandled for 1 of 4 features" in text
    assert "c=NaN: RuntimeError" in text
    # And what to do about it.
    assert "impute the feature in the model" in text
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_single_row_path_that_fills_missing_values_its_own_way_fails(gate: GateRun) -> None:
    # NaN read as 0 for one-row requests, as the median in batches: no label flipped on the
    # rows spread evenly (none of which misses b), and probabilities were compared on 20.
    frame = fm.frame_missing_b()
    gate.data(frame)
    gate.artifact(fm.SingleRowFillsMissingWithZero())
    gate.run("model.joblib", "-k", "batch-consistency")
    text = messages(gate.junit())["smoke[batch-consistency]"]
    assert text.startswith("probabilities in the batch and alone differ on 1 of the 120 rows"), text
    first_row = int(text.split(": rows ")[1].split(",")[0].split(" ")[0])
    assert np.isnan(frame.b[first_row])
    # The healthy model, which reads a missing b the same way in both paths, is approved.
    gate.artifact(fm.FillsMissingB())
    result = gate.run("model.joblib", "-k", "not latency")
    outcomes = junit_outcomes(gate.junit())
    assert "failed" not in outcomes.values(), outcomes
    assert result.ret == pytest.ExitCode.OK


def test_a_model_that_refuses_a_large_batch_is_not_failed_for_it(gate: GateRun) -> None:
    # A stated limit on batch size is no wrong answer; the item says the batch was refused.
    gate.artifact(fm.RefusesLargeBatches())
    gate.run("model.joblib", "-k", "smoke[batch]")
    root = gate.junit()
    assert junit_outcomes(root)["smoke[batch]"] == "passed"
    refused = properties(root, "smoke[batch]")["large_batch"]
    assert refused == "refused: ValueError: at most 5000 rows per batch, got 10000"


def test_the_large_batch_is_not_sent_to_a_model_too_slow_for_its_deadline(
    gate: GateRun,
) -> None:
    # 200 rows take at least 0.03 s, so 10,000 would take 1.5 s: more than a quarter of 2 s.
    gate.artifact(fm.SlowOnBatches())
    gate.run("model.joblib", "-k", "smoke[batch]", "--deploy-gate-check-timeout", "2s")
    root = gate.junit()
    assert junit_outcomes(root)["smoke[batch]"] == "passed"
    note = properties(root, "smoke[batch]")["large_batch"]
    assert note.startswith("not sent: 200 rows took "), note
    assert note.endswith("of the check's 2 s"), note


def test_a_model_changing_with_use_is_caught_when_latency_is_measured_beside_a_baseline(
    gate: GateRun,
) -> None:
    # Under -k latency nothing has asked the model before the latency items; the measurement
    # shared with the baseline must still come after the first answers are taken.
    gate.artifact(fm.DegradesAfterUse())
    gate.artifact(fm.ThresholdClassifier(), "baseline.joblib")
    gate.run("model.joblib", "-k", "latency", "--deploy-gate-baseline=baseline.joblib")
    text = messages(gate.junit())["latency[answers-unchanged]"]
    assert "outputs changed after the latency measurements" in text, text


def test_a_model_that_fills_a_bounded_cache_is_not_said_to_leak(gate: GateRun) -> None:
    # 1 MiB for each input it has not seen: it grows past 64 MiB during the latency
    # measurements, then not at all over the second span, whose inputs are all cached.
    gate.artifact(fm.CachesEachNewInput())
    gate.run("model.joblib", "-k", "latency", target="label")
    root = gate.junit()
    assert junit_outcomes(root)["latency[memory-steady]"] == "passed"
    figures = properties(root, "latency[memory-steady]")
    assert int(figures["memory_more_calls"]) > 0, figures  # it was looked at again
    assert float(figures["memory_more_growth"].split()[0]) < 4, figures


def test_garbage_the_collector_frees_is_not_said_to_leak_with_the_collector_off(
    gate: GateRun,
) -> None:
    # Timed rounds without the collector leave 1 MiB of cyclic garbage per call for later.
    gate.artifact(fm.MakesCyclicGarbage())
    gate.run("model.joblib", "-k", "latency", "--deploy-gate-latency-gc=off", target="label")
    root = gate.junit()
    assert junit_outcomes(root)["latency[memory-steady]"] == "passed"
    figures = properties(root, "latency[memory-steady]")
    grew = float(figures["memory_after"].split()[0]) - float(figures["memory_before"].split()[0])
    assert grew < 64, figures


def test_a_model_answering_each_call_otherwise_is_not_said_to_change_with_use(
    gate: GateRun,
) -> None:
    # Its answers after the latency measurements differ from its first ones, but so do two
    # calls in a row: the change is not use's doing, and the message says so.
    gate.artifact(fm.Nondeterministic())
    gate.run("model.joblib", "-k", "latency", target="label")
    text = messages(gate.junit())["latency[answers-unchanged]"]
    assert "are not reproducible: two calls after the latency measurements differ" in text, text
    assert "see smoke[deterministic]" in text


def test_a_model_that_answers_otherwise_in_each_process_fails_after_a_restart(
    gate: GateRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    # hash() of text is seeded per process: identical calls agree, replicas do not.
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    gate.artifact(fm.HashSeededRegressor())
    gate.run("model.joblib", "-k", "answers-unchanged", target="y")
    root = gate.junit()
    text = messages(root)["latency[answers-unchanged]"]
    assert text.startswith(
        "outputs changed when the model was loaded again in a new process (hash seed drawn "
        "afresh) on rows 0, 1, 2, 3, 4, ... (200 of 200)"
    ), text
    # A seed fixed in the environment is kept, as it would be in every replica: it passes.
    monkeypatch.setenv("PYTHONHASHSEED", "7")
    result = gate.run("model.joblib", "-k", "answers-unchanged", target="y")
    assert result.ret == pytest.ExitCode.OK
    kept = properties(gate.junit(), "latency[answers-unchanged]")["new_process"]
    assert kept == "compared (PYTHONHASHSEED=7 kept)"


def test_without_a_model_process_the_new_process_comparison_says_why_it_did_not_run(
    gate: GateRun,
) -> None:
    gate.artifact(fm.LinearRegressor())
    result = gate.run(
        "model.joblib", "-k", "answers-unchanged", "--deploy-gate-isolation=none", target="y"
    )
    assert result.ret == pytest.ExitCode.OK
    note = properties(gate.junit(), "latency[answers-unchanged]")["new_process"]
    assert note == "not compared: the model is not in a model process the gate starts"


def test_a_model_unsafe_from_threads_is_approved_where_it_is_served_one_call_at_a_time(
    gate: GateRun,
) -> None:
    # Right one call at a time: a serving process that answers one request at a time may
    # serve it, and says so.
    gate.artifact(fm.KeepsTheRequestOnItself())
    result = gate.run("model.joblib", "-o", "deploy_gate_serving_threads=1", target="y")
    root = gate.junit()
    assert junit_outcomes(root)["smoke[concurrent-calls]"] == "skipped"
    assert failed(root) == set()
    result.stdout.fnmatch_lines(["APPROVED FOR DEPLOYMENT"])


def test_a_model_unsafe_from_threads_is_caught_in_the_gate_process_too(gate: GateRun) -> None:
    # --deploy-gate-isolation none runs the threads in pytest's own process.
    gate.artifact(fm.KeepsTheRequestOnItself())
    result = gate.run(
        "model.joblib", "-k", "concurrent", "--deploy-gate-isolation=none", target="y"
    )
    root = gate.junit()
    assert failed(root) == {"smoke[concurrent-calls]"}
    text = messages(root)["smoke[concurrent-calls]"]
    assert "called from 4 threads at once differ from the same rows one at a time" in text
    assert "deploy_gate_serving_threads = 1" in text
    result.stdout.fnmatch_lines(["DEPLOYMENT BLOCKED (*failed)"])


def test_threads_the_serving_process_uses_are_the_threads_the_check_calls_from(
    gate: GateRun,
) -> None:
    gate.artifact(fm.KeepsTheRequestOnItself())
    gate.run("model.joblib", "-k", "concurrent", "-o", "deploy_gate_serving_threads=3", target="y")
    root = gate.junit()
    assert "from 3 threads at once" in messages(root)["smoke[concurrent-calls]"]
    figures = properties(root, "smoke[concurrent-calls]")
    assert figures["threads"] == "3"
    assert int(figures["concurrent_calls"]) == 3 * int(figures["rows"])


def test_a_model_answering_each_call_otherwise_is_not_said_to_be_unsafe_from_threads(
    gate: GateRun,
) -> None:
    # Its answers from threads differ, but so do its answers one at a time.
    gate.artifact(fm.Float32Nondeterministic())
    gate.run("model.joblib", "-k", "concurrent", target="y")
    text = messages(gate.junit())["smoke[concurrent-calls]"]
    assert "single-row outputs are not reproducible" in text, text
    assert "see smoke[deterministic]" in text
    assert "not safe" not in text
