"""Labels and probabilities tell one story: ``validation.label_probability_mismatch`` on real
scikit-learn classifiers (any threshold, SVC's Platt scaling, one-vs-one votes) and on labels or
columns swapped."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import FixedThresholdClassifier
from sklearn.svm import SVC

from deploy_gate.validation import label_probability_mismatch


def _data(classes: int, n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(
        n, 6, n_informative=4, n_classes=classes, n_clusters_per_class=1, random_state=0
    )
    return X, y


def _judge(model: Any, X: np.ndarray) -> tuple[tuple[int, ...], str] | None:
    return label_probability_mismatch(model.predict(X), model.predict_proba(X), model.classes_)


@pytest.mark.parametrize(
    ("model", "classes"),
    [
        (LogisticRegression(max_iter=500), 2),
        (LogisticRegression(max_iter=500), 4),
        (SVC(probability=True, random_state=0), 2),
        (SVC(probability=True, random_state=0), 4),
        (FixedThresholdClassifier(LogisticRegression(max_iter=500), threshold=0.2), 2),
        (FixedThresholdClassifier(LogisticRegression(max_iter=500), threshold=0.8), 2),
    ],
    ids=["logistic", "logistic-4", "svc", "svc-4", "threshold-0.2", "threshold-0.8"],
)
# SVC(probability=True) is deprecated from scikit-learn 1.9 on; artifacts made with it are not.
@pytest.mark.filterwarnings("ignore:The `probability` parameter was deprecated:FutureWarning")
def test_healthy_classifiers_agree_with_their_probabilities(model: Any, classes: int) -> None:
    X, y = _data(classes)
    model.fit(X, y)
    assert _judge(model, X) is None


def test_labels_inverted_against_the_probabilities_fail_naming_the_swap() -> None:
    X, y = _data(2)
    model = LogisticRegression(max_iter=500).fit(X, y)
    found = label_probability_mismatch(1 - model.predict(X), model.predict_proba(X), [0, 1])
    assert found is not None
    rows, rule = found
    assert "swapped" in rule
    assert len(rows) == len(X)


def test_swapped_columns_fail_even_when_one_class_is_rare() -> None:
    X, y = make_classification(2000, 6, weights=[0.97], random_state=0)
    model = LogisticRegression(max_iter=500).fit(X, y)
    assert model.predict(X).sum() > 0
    found = label_probability_mismatch(model.predict(X), model.predict_proba(X)[:, ::-1], [0, 1])
    assert found is not None
    assert "swapped" in found[1]


def test_labels_that_no_threshold_explains_fail_and_a_few_ties_do_not() -> None:
    p = np.linspace(0.0, 1.0, 400)
    proba = np.column_stack([1 - p, p])
    labels = (p > 0.5).astype(int)
    noisy = labels.copy()
    noisy[::10] = 1 - noisy[::10]  # 40 rows against every threshold
    found = label_probability_mismatch(noisy, proba, [0, 1])
    assert found is not None
    assert "no threshold" in found[1]
    assert len(found[0]) >= 30
    nearly = labels.copy()
    nearly[[199, 201]] = 1 - nearly[[199, 201]]  # 2 rows of 400 at the boundary: 0.5%
    assert label_probability_mismatch(nearly, proba, [0, 1]) is None


def test_more_classes_fail_when_a_class_is_predicted_where_it_is_less_likely() -> None:
    X, y = _data(4)
    model = LogisticRegression(max_iter=500).fit(X, y)
    shuffled = model.predict_proba(X)[:, [1, 2, 3, 0]]
    found = label_probability_mismatch(model.predict(X), shuffled, model.classes_)
    assert found is not None
    assert "swapped" in found[1]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.filterwarnings("ignore:The `probability` parameter was deprecated:FutureWarning")
def test_two_swapped_columns_of_four_classes_fail_and_the_healthy_models_pass(seed: int) -> None:
    # Columns 2 and 3 swapped, predict() right: the medians of a column over the rows predicted
    # its class and over the rest can still agree (a forest, seed 1), so the check also asks
    # how well each column ranks the rows predicted its class above the others: 99.5% and up
    # for healthy models, 45-67% swapped.
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.naive_bayes import GaussianNB

    X, y = make_classification(
        3000, 10, n_informative=6, n_classes=4, n_clusters_per_class=1,
        weights=[0.4, 0.3, 0.2, 0.1], random_state=seed,
    )  # fmt: skip
    models = [
        LogisticRegression(max_iter=1000),
        SVC(probability=True, class_weight="balanced", random_state=0),
        RandomForestClassifier(50, random_state=0),
        GaussianNB(),
    ]
    for model in models:
        model.fit(X[:2000], y[:2000])
        held = X[2000:]
        assert _judge(model, held) is None, model
        swapped = model.predict_proba(held)[:, [0, 1, 3, 2]]
        found = label_probability_mismatch(model.predict(held), swapped, model.classes_)
        assert found is not None, model
        assert "swapped" in found[1]


@pytest.mark.filterwarnings("ignore:The `probability` parameter was deprecated:FutureWarning")
def test_a_weighted_svc_whose_votes_differ_from_its_probabilities_passes() -> None:
    # One-vs-one votes with balanced class weights pick rare classes that the (unweighted)
    # Platt-scaled probabilities rank lower: a healthy model, not a contradiction.
    X, y = make_classification(
        3000, 8, n_informative=5, n_classes=5, weights=[0.6, 0.2, 0.1, 0.06, 0.04],
        n_clusters_per_class=1, random_state=0,
    )  # fmt: skip
    model = SVC(probability=True, class_weight="balanced", random_state=0).fit(X, y)
    assert _judge(model, X) is None


def test_string_labels_unknown_labels_and_other_shapes_are_left_to_their_own_checks() -> None:
    p = np.array([0.1, 0.9, 0.8, 0.2])
    proba = np.column_stack([1 - p, p])
    labels = np.array(["no", "yes", "yes", "no"], dtype=object)
    assert label_probability_mismatch(labels, proba, ["no", "yes"]) is None
    inverted = np.array(["yes", "no", "no", "yes"], dtype=object)
    assert label_probability_mismatch(inverted, proba, ["no", "yes"]) is not None
    unknown = np.array(["no", "maybe", "maybe", "no"], dtype=object)
    assert label_probability_mismatch(unknown, proba, ["no", "yes"]) is None
    assert label_probability_mismatch(labels.reshape(2, 2), proba, ["no", "yes"]) is None
    assert label_probability_mismatch(labels, proba[:, :1], ["no", "yes"]) is None
