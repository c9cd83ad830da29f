"""Healthy models of families the gate once misjudged are APPROVED, and the fault each fix
could hide is still caught.

Each family here was BLOCKED by a check that was wrong about it; the test builds the model on
tiny data, runs the whole gate on it and expects APPROVED, next to a faulty model that the
loosened check must still block.
"""

from __future__ import annotations

import functools
import pickle
import re
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import GateRun, junit_outcomes, messages
from model_families import NUMERIC
from model_families import frame as _frame

from deploy_gate.errors import UnsafeArtifactError
from deploy_gate.safeload import audit_fitted_state, load_model_file

FAST = ("--deploy-gate-latency-max-seconds=1", "-k", "not latency")


def _approved(gate: GateRun, result: pytest.RunResult) -> None:
    outcomes = junit_outcomes(gate.junit())
    bad = {k: v for k, v in outcomes.items() if v not in ("passed", "skipped")}
    assert not bad, {k: messages(gate.junit()).get(k) for k in bad}
    assert "smoke[load]" in outcomes
    assert "output[no-nan]" in outcomes
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*APPROVED FOR DEPLOYMENT*"])


# --- HistGradientBoosting with native categorical features -----------------------------------
# With a categorical feature (pandas ``category`` columns, the default ``from_dtype``, or
# ``categorical_features=[names]``) the fitted model holds
# ``FunctionTransformer(functools.partial(check_array, dtype=[float64], ...))`` for its numeric
# columns. The guarded loader refused every such artifact: functools.partial was never admitted.


def _categorical_frame() -> pd.DataFrame:
    frame = _frame(300).drop(columns=["amount"])
    frame["label"] = ((frame.plan == "pro") ^ (frame.age > 50)).astype(int)
    return frame


@pytest.mark.parametrize("how", ["category-dtype", "by-name"])
def test_histgradientboosting_with_native_categorical_features_is_approved(
    gate: GateRun, how: str
) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    frame = _categorical_frame()
    if how == "category-dtype":
        frame["plan"] = frame["plan"].astype("category")
        model = HistGradientBoostingClassifier(max_iter=10, categorical_features="from_dtype")
    else:
        model = HistGradientBoostingClassifier(max_iter=10, categorical_features=["plan"])
    model.fit(frame[[*NUMERIC, "plan"]], frame["label"])
    assert isinstance(model._preprocessor.named_transformers_["numerical"].func, functools.partial)
    joblib.dump(model, gate.path / "model.joblib")
    gate.data(frame, "holdout.parquet")

    result = gate.run("model.joblib", "--deploy-gate-data=holdout.parquet", *FAST, target="label")

    _approved(gate, result)


class _Reduces:
    """Pickles as ``reduced``: a hand-made pickle of a partial, as an attacker would write."""

    def __init__(self, *reduced: object) -> None:
        self.reduced = reduced

    def __reduce__(self) -> tuple[object, ...]:
        return self.reduced


def _check_array() -> object:
    from sklearn.utils.validation import check_array

    return check_array


def _wrapped_in_a_pipeline(func: object) -> object:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    return make_pipeline(FunctionTransformer(func), LogisticRegression())


@pytest.mark.parametrize(
    ("partial", "refused"),
    [
        # another function than the validation helpers a fitted model holds
        (functools.partial(np.add, 1), "functools:partial of a numpy:ufunc object"),
        (
            _Reduces(functools.partial, (pd.eval,)),
            # pandas < 2.2 names it by its defining module
            r"pandas(\.core\.computation\.eval)?:eval \(never admitted\)",
        ),
        # the form a fitted model holds: loads (the control)
        (functools.partial(_check_array(), dtype=[np.float64], ensure_all_finite=False), None),
    ],
    ids=["ufunc", "never-admitted-function", "control-check-array"],
)
def test_a_partial_of_anything_but_the_validation_helpers_is_still_refused(
    tmp_path: Path, partial: object, refused: str | None
) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(_wrapped_in_a_pipeline(partial), path)
    if refused is None:
        assert audit_fitted_state(load_model_file(path).model) == []
        return
    with pytest.raises(UnsafeArtifactError) as caught:
        load_model_file(path)
    assert re.search(refused, str(caught.value)), str(caught.value)
    assert "functools:partial" in str(caught.value)


def test_a_partial_whose_pickled_state_swaps_its_function_is_refused(tmp_path: Path) -> None:
    from sklearn.metrics.pairwise import euclidean_distances

    # partial(check_array) passes the constructor; its BUILD state then names another function
    # that may be imported (a sklearn metric): the swap is refused before it is set.
    swapped = _Reduces(functools.partial, (_check_array(),), (euclidean_distances, (), {}, None))
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(_wrapped_in_a_pipeline(swapped), protocol=4))

    with pytest.raises(
        UnsafeArtifactError, match=r"functools:partial of sklearn\.metrics\.pairwise"
    ):
        load_model_file(path)


def _estimator() -> object:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression()


@pytest.mark.parametrize(
    ("args", "keywords"),
    [
        ((), {"estimator": _estimator()}),  # an estimator among the keyword arguments
        ((), {"out": np.zeros(3)}),  # a keyword argument that writes into an array
        ((_estimator(),), {}),  # an object among the positional arguments
    ],
    ids=["object-keyword", "writing-keyword", "object-positional"],
)
def test_a_partial_of_check_array_with_arguments_that_are_not_plain_data_is_refused(
    tmp_path: Path, args: tuple[object, ...], keywords: dict[str, object]
) -> None:
    forged = _Reduces(functools.partial, (_check_array(),), (_check_array(), args, keywords, None))
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(_wrapped_in_a_pipeline(forged), protocol=4))

    with pytest.raises(UnsafeArtifactError, match="functools:partial with"):
        load_model_file(path)


def test_check_array_may_be_held_but_not_called_while_loading(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    # check_array([[1.0]]) as a REDUCE: naming it to hold it is admitted, calling it is not.
    path.write_bytes(pickle.dumps(_Reduces(_check_array(), ([[1.0]],)), protocol=4))

    with pytest.raises(UnsafeArtifactError, match="may hold but not call while loading"):
        load_model_file(path)


def test_a_partial_of_check_array_in_a_model_is_refused_by_the_gate_when_forged(
    gate: GateRun,
) -> None:
    """Through the whole gate: the forged partial blocks the deployment at smoke[load]."""
    from sklearn.metrics.pairwise import euclidean_distances

    frame = _frame(200)
    swapped = _Reduces(functools.partial, (_check_array(),), (euclidean_distances, (), {}, None))
    (gate.path / "model.pkl").write_bytes(pickle.dumps(_wrapped_in_a_pipeline(swapped), protocol=4))
    gate.data(frame)

    result = gate.run("model.pkl", *FAST)

    outcomes = junit_outcomes(gate.junit())
    assert outcomes["smoke[load]"] == "failed"
    assert "functools:partial of" in messages(gate.junit())["smoke[load]"]
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*DEPLOYMENT BLOCKED*"])


# --- a linear regressor on a feature far from zero ----------------------------------------------
# Edge rows put each numeric feature at 0. For a feature the data never brings near 0 (a year,
# 2015-2024), that row is an extrapolation: a healthy Ridge answered -99841 for year=0, outside
# the target's range widened by its span, and output[regression-range] blocked it.


def _year_frame(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"year": rng.integers(2015, 2025, n).astype(float), "rooms": rng.integers(1, 6, n)}
    )
    frame["price"] = 1000 + 50 * (frame.year - 2015) + 30 * frame.rooms + rng.normal(0, 5, n)
    return frame


def _year_model(frame: pd.DataFrame) -> object:
    from sklearn.linear_model import Ridge

    return Ridge().fit(frame[["year", "rooms"]], frame["price"])


def test_a_linear_regressor_on_a_feature_far_from_zero_is_approved(gate: GateRun) -> None:
    from junit_properties import properties

    frame = _year_frame()
    gate.artifact(_year_model(frame))
    gate.data(frame)

    result = gate.run("model.joblib", *FAST, target="price")

    _approved(gate, result)
    props = properties(gate.junit(), "output[regression-range]")
    assert "edge row year=zero: -" in props["edge_rows_extrapolated"]


def test_an_explicit_output_range_still_judges_the_extrapolated_edge_rows(gate: GateRun) -> None:
    frame = _year_frame()
    gate.artifact(_year_model(frame))
    gate.data(frame)

    result = gate.run("model.joblib", "--deploy-gate-output-range=0,5000", *FAST, target="price")

    root = gate.junit()
    assert {k for k, v in junit_outcomes(root).items() if v == "failed"} == {
        "output[regression-range]"
    }
    assert "edge row year=zero" in messages(root)["output[regression-range]"]
    assert result.ret == 1


def test_an_edge_row_inside_the_observed_inputs_is_still_judged(gate: GateRun) -> None:
    import faulty_models as fm

    gate.artifact(fm.HugeAtZeroRegressor())
    gate.data(fm.make_frame())

    result = gate.run("model.joblib", *FAST, target="y")

    root = gate.junit()
    assert {k for k, v in junit_outcomes(root).items() if v == "failed"} == {
        "output[regression-range]"
    }
    assert "edge row a=zero: 1e+06" in messages(root)["output[regression-range]"]
    assert result.ret == 1


# --- nullable columns with gaps ------------------------------------------------------------------
# Rows given to predict_single are mappings, as a client sends them. A missing value of a
# nullable column (Int64, boolean) came out of the data as pandas' NA, which no client sends and
# scikit-learn cannot read: every single-row check of a healthy HistGradientBoosting failed with
# "TypeError: float() argument must be ... not 'NAType'". As None, an imputing pipeline failed
# instead (SimpleImputer looks for NaN; LogisticRegression then met the None as NaN). A missing
# number or flag is NaN in single rows, as it is when scikit-learn reads the column as a batch.


def _nullable_frame(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "a": rng.normal(0, 1, n),
            "visits": pd.array(rng.integers(0, 9, n), dtype="Int64"),
            "member": pd.array(rng.random(n) < 0.4, dtype="boolean"),
        }
    )
    for column in ("visits", "member"):
        frame.loc[rng.random(n) < 0.1, column] = pd.NA
        frame.loc[0, column] = pd.NA  # the row every single-row check starts with
    score = frame.a + frame.visits.fillna(4).astype(float) / 4 + frame.member.fillna(False)
    frame["label"] = (score > 1.2).astype(int)
    return frame


FEATURES = ["a", "visits", "member"]


@pytest.mark.parametrize("family", ["hgb-native-nan", "imputing-pipeline"])
def test_a_model_fitted_on_nullable_columns_with_gaps_is_approved(
    gate: GateRun, family: str
) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    frame = _nullable_frame()
    if family == "hgb-native-nan":
        model = HistGradientBoostingClassifier(max_iter=10)
    else:
        model = make_pipeline(SimpleImputer(strategy="most_frequent"), LogisticRegression())
    gate.artifact(model.fit(frame[FEATURES], frame.label))
    gate.data(frame, "holdout.parquet")

    result = gate.run("model.joblib", "--deploy-gate-data=holdout.parquet", *FAST, target="label")

    _approved(gate, result)


def test_a_model_that_cannot_take_the_missing_value_is_still_blocked(gate: GateRun) -> None:
    from sklearn.linear_model import LogisticRegression

    frame = _nullable_frame()
    fitted_on = frame.dropna()
    model = LogisticRegression().fit(fitted_on[FEATURES], fitted_on.label)
    gate.artifact(model)
    gate.data(frame, "holdout.parquet")

    result = gate.run("model.joblib", "--deploy-gate-data=holdout.parquet", *FAST, target="label")

    root = gate.junit()
    assert junit_outcomes(root)["smoke[inference-single]"] == "failed"
    assert "Input X contains NaN" in messages(root)["smoke[inference-single]"]
    assert result.ret == 1


# --- text gaps and object columns of Parquet types ------------------------------------------------
# Under pandas 3 a Parquet text column is pandas' ``str`` dtype, whose missing value is NaN. A
# single row built from a mapping holding only that NaN was a float column, and a one-hot
# encoder fitted with missing values as a category refused it in every single-row check.
# Parquet DECIMAL and DATE columns are object columns of ``Decimal`` and ``date`` values, which
# the model worker could not send: 23 checks failed on a pipeline that drops them.


def _text_gap_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x": rng.standard_normal(n),
            "pay": rng.choice(["card", "bank", "cash"], n).astype(object),
        }
    )
    frame.loc[::7, "pay"] = None
    frame.loc[0, "pay"] = None  # row 0, the one the single-row checks edit, has the gap
    frame["label"] = ((frame.x > 0) ^ (frame.pay == "cash")).astype(int)
    return frame


def test_a_one_hot_pipeline_that_learned_missing_text_as_a_category_is_approved(
    gate: GateRun,
) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    train = _text_gap_frame(seed=1)
    gate.data(_text_gap_frame(), "holdout.parquet")
    model = make_pipeline(
        ColumnTransformer(
            [("pay", OneHotEncoder(handle_unknown="ignore"), ["pay"])], remainder="passthrough"
        ),
        LogisticRegression(),
    )
    train = pd.read_parquet(gate.data(train, "train.parquet"))  # the dtypes Parquet gives
    gate.artifact(model.fit(train[["x", "pay"]], train["label"]))

    result = gate.run("model.joblib", "--deploy-gate-data=holdout.parquet", *FAST, target="label")

    _approved(gate, result)


def test_a_pipeline_dropping_decimal_date_and_zoned_columns_is_approved(gate: GateRun) -> None:
    import datetime
    import decimal

    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    frame = _text_gap_frame().drop(columns="pay")
    n = len(frame)
    frame["price"] = [decimal.Decimal(f"{i}.25") for i in range(n)]
    frame["day"] = [datetime.date(2024, 1, 1) + datetime.timedelta(days=i) for i in range(n)]
    frame["seen"] = pd.date_range("2024-01-01", periods=n, freq="h", tz="Europe/Paris")
    gate.data(frame, "holdout.parquet")
    model = make_pipeline(
        ColumnTransformer([("x", "passthrough", ["x"])], remainder="drop"), LogisticRegression()
    )
    gate.artifact(model.fit(frame.drop(columns="label"), frame["label"]))

    result = gate.run("model.joblib", "--deploy-gate-data=holdout.parquet", *FAST, target="label")

    _approved(gate, result)


def test_a_pipeline_that_drops_an_id_column_is_asked_about_a_feature_it_reads(
    gate: GateRun,
) -> None:
    # The holdout keeps its id column first; the pipeline's ColumnTransformer drops it
    # (remainder="drop"), so a string there changes nothing. errors[wrong-dtype] put its
    # string into the id and blocked this healthy model ("accepted silently").
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"id": np.arange(600), "x1": rng.normal(size=600)})
    frame["x2"] = rng.normal(size=600)
    frame["label"] = (frame.x1 - frame.x2 + rng.normal(0, 0.5, 600) > 0).astype(int)
    scaled = ColumnTransformer([("n", StandardScaler(), ["x1", "x2"])])
    model = make_pipeline(scaled, LogisticRegression()).fit(frame[["id", "x1", "x2"]], frame.label)
    gate.artifact(model)
    gate.data(frame)

    gate.run("model.joblib", "-k", "wrong-dtype")

    root = gate.junit()
    assert junit_outcomes(root) == {"errors[wrong-dtype]": "passed"}, messages(root)
