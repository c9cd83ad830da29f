"""The default deployment aligns columns by name wherever it knows the names, so a client that
sends them in another order gets the same answers."""

from __future__ import annotations

from pathlib import Path

import faulty_models as fm
import joblib
import numpy as np
import pytest

from deploy_gate.deployment import ModelDeployment

FEATURES = list(fm.FEATURES)


def _served(tmp_path: Path, model: object, names: list[str] | None = None) -> ModelDeployment:
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    deployment = ModelDeployment(path, feature_names=names, trust=["faulty_models"])
    deployment.load_model()
    return deployment


@pytest.mark.parametrize(
    ("model", "names"),
    [(fm.IgnoresColumnNames(), None), (fm.PositionalClassifier(), FEATURES)],
    ids=["names-from-the-model", "names-from-the-data-header"],
)
def test_columns_in_another_order_reach_the_model_in_its_order(
    tmp_path: Path, model: object, names: list[str] | None
) -> None:
    deployment = _served(tmp_path, model, names)
    rows = fm.make_frame()[FEATURES]

    reordered = deployment.batch_predict(rows[FEATURES[::-1]])

    np.testing.assert_array_equal(reordered, deployment.batch_predict(rows))
    first = rows.iloc[0].to_dict()
    assert deployment.predict_single(dict(reversed(list(first.items())))) == reordered[0]
    assert deployment.feature_names == tuple(FEATURES)


def test_a_model_without_names_served_without_names_takes_columns_as_they_come(
    tmp_path: Path,
) -> None:
    deployment = _served(tmp_path, fm.PositionalClassifier())
    rows = fm.make_frame()[FEATURES]

    reordered = deployment.batch_predict(rows[FEATURES[::-1]])

    assert deployment.feature_names is None
    assert (reordered != deployment.batch_predict(rows)).any()


def test_aligning_leaves_the_callers_frame_as_it_was(tmp_path: Path) -> None:
    deployment = _served(tmp_path, fm.ThresholdClassifier())
    rows = fm.make_frame()[FEATURES[::-1]]
    before = rows.copy()

    deployment.batch_predict(rows)

    assert list(rows.columns) == FEATURES[::-1]
    assert rows.equals(before)


def test_a_column_given_twice_is_refused_naming_it(tmp_path: Path) -> None:
    deployment = _served(tmp_path, fm.ThresholdClassifier())
    rows = fm.make_frame()[FEATURES]
    twice = rows.set_axis(["a", "b", "c", "a"], axis=1).assign(d=rows["d"])

    with pytest.raises(KeyError, match="given more than once: 'a'"):
        deployment.batch_predict(twice)


class _SeesDtypes(fm.ThresholdClassifier):
    """Answers with the dtype and categories its ``plan`` column arrived with."""

    def predict(self, X):  # type: ignore[no-untyped-def]
        plan = X["plan"]
        cats = list(plan.cat.categories) if str(plan.dtype) == "category" else None
        return np.array([f"{plan.dtype}:{cats}"] * len(X), dtype=object)


def test_categories_keep_a_single_rows_column_categorical_with_a_new_value_added(
    tmp_path: Path,
) -> None:
    path = tmp_path / "model.joblib"
    model = _SeesDtypes()
    model.feature_names_in_ = np.array([*fm.FEATURES, "plan"], dtype=object)
    joblib.dump(model, path)
    row = {"a": 0.5, "b": 0.1, "c": 0.0, "d": 0.0, "plan": "pro"}
    plain = ModelDeployment(path, trust=["test_deployment"], on_invalid_output="record")
    plain.load_model()
    assert plain.predict_single(row).endswith(":None")  # object, or str on pandas 3
    typed = ModelDeployment(
        path,
        trust=["test_deployment"],
        on_invalid_output="record",
        categories={"plan": ["basic", "pro"]},
    )
    typed.load_model()
    assert typed.predict_single(row) == "category:['basic', 'pro']"
    # A value the data never had is added, not turned into a missing value.
    assert typed.predict_single({**row, "plan": "gold"}) == "category:['basic', 'pro', 'gold']"
    assert typed.batch_predict([row, {**row, "plan": None}])[0] == "category:['basic', 'pro']"


def test_a_null_text_value_is_missing_for_one_row_as_for_a_batch(tmp_path: Path) -> None:
    # A JSON null arrives as None. In a batch pandas 3 reads it as missing (NaN) in a column
    # of text; alone, the column held a None that the imputer did not see missing, and the
    # one-hot encoder read an unknown category: the example service answered 0.684 alone for
    # 0.736. pandas 2 keeps None in both, as in the frame the model was fitted on.
    import pandas as pd
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.standard_normal(300), "city": rng.choice(["a", "b"], 300)})
    label = (frame.x + (frame.city == "a") > 0.5).astype(int)
    frame.loc[::10, "city"] = None
    encode = make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder())
    model = make_pipeline(
        make_column_transformer((encode, ["city"]), remainder="passthrough"),
        LogisticRegression(),
    ).fit(frame, label)
    served = _served(tmp_path, model)
    rows = [{"x": 0.3, "city": "b"}, {"x": 0.3, "city": None}]
    batch = served.batch_predict_proba(rows)
    np.testing.assert_array_equal(served.batch_predict_proba(rows[1:])[0], batch[1])
    np.testing.assert_array_equal(served.predict_proba_single(rows[1]), batch[1])
    # What the model answers the frame pandas builds of the rows, as it read its training
    # frame: a missing value in a column of text (NaN under pandas 3, None under pandas 2).
    np.testing.assert_array_equal(batch, model.predict_proba(pd.DataFrame(rows)))
