"""Unit tests of the rollout router, its stage test and the simulated rollout of the gate.

Real but small scikit-learn models where behaviour matters; for the statistical acceptance tests,
"lookup" models whose answer for row ``id`` is a precomputed array, so hundreds of replays of a
20,000-row holdout take seconds.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from deploy_gate.compare import compare_metric
from deploy_gate.errors import ConfigError, DataError, DeployGateError, SchemaError
from deploy_gate.rollout import (
    ADVANCE,
    HOLD,
    ROLLBACK,
    Rollout,
    hash_buckets,
    rollout_line,
    simulate_rollout,
)

FEATURES = [f"x{i}" for i in range(6)]


# --------------------------------------------------------------------------------------------
# Models used by the tests
# --------------------------------------------------------------------------------------------


class Wrapped:
    """A deployment-like model: ``batch_predict`` on the feature columns of the rows."""

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator
        self.classes = estimator.classes_
        self.calls = 0

    def batch_predict(self, rows: pd.DataFrame) -> np.ndarray:
        self.calls += 1
        out: np.ndarray = self.estimator.predict(rows[FEATURES])
        return out


class Flipping(Wrapped):
    """Answers the opposite class on a fixed share of the rows (chosen by row id)."""

    def __init__(self, estimator: Any, share: float) -> None:
        super().__init__(estimator)
        self.share = share

    def batch_predict(self, rows: pd.DataFrame) -> np.ndarray:
        labels = super().batch_predict(rows)
        flip = (rows["id"].to_numpy() * 0.6180339887) % 1 < self.share
        return np.where(flip, 1 - labels, labels)


class Raising(Wrapped):
    """Raises on any batch that contains a row whose id is a multiple of 20 (5% of rows)."""

    def batch_predict(self, rows: pd.DataFrame) -> np.ndarray:
        if (rows["id"].to_numpy() % 20 == 0).any():
            raise ValueError("feature pipeline exploded")
        return super().batch_predict(rows)


class Lookup:
    """A deployment-like model whose answer for row ``id`` is ``outputs[id]``."""

    def __init__(self, outputs: np.ndarray, classes: np.ndarray | None = None) -> None:
        self.outputs = outputs
        if classes is not None:
            self.classes = classes

    def batch_predict(self, rows: pd.DataFrame) -> np.ndarray:
        out: np.ndarray = self.outputs[rows["id"].to_numpy()]
        return out


def holdout(n: int, *, seed: int = 0, sep: float = 1.0) -> tuple[pd.DataFrame, np.ndarray]:
    x, y = make_classification(
        n, n_features=6, n_informative=4, class_sep=sep, flip_y=0.0, random_state=seed
    )
    rows = pd.DataFrame(x, columns=FEATURES)
    rows.insert(0, "id", np.arange(n))
    return rows, y


def fitted(rows: pd.DataFrame, y: np.ndarray, columns: list[str]) -> Any:
    return LogisticRegression().fit(rows[columns].to_numpy()[:2000], y[:2000])


class OnColumns:
    """An estimator trained on some columns, called with all of them."""

    def __init__(self, rows: pd.DataFrame, y: np.ndarray, columns: list[str]) -> None:
        self.columns = columns
        self.model = fitted(rows, y, columns)
        self.classes_ = self.model.classes_

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        out: np.ndarray = self.model.predict(x[self.columns].to_numpy())
        return out


def full_model(rows: pd.DataFrame, y: np.ndarray) -> Wrapped:
    return Wrapped(OnColumns(rows, y, FEATURES))


def statuses(results: list[Any]) -> list[str]:
    return [r.status for r in results]


# --------------------------------------------------------------------------------------------
# Behaviour with real models
# --------------------------------------------------------------------------------------------


def test_a_better_candidate_passes_every_stage() -> None:
    rows, y = holdout(8000)
    baseline = Wrapped(OnColumns(rows, y, ["x0", "x1"]))
    candidate = full_model(rows, y)
    assert (
        compare_metric(
            "accuracy", y, candidate.batch_predict(rows), baseline.batch_predict(rows)
        ).ratio
        > 1.05
    )  # type: ignore[operator]

    results = simulate_rollout(candidate, baseline, rows, y, key="id")

    assert statuses(results) == ["advanced"] * 4
    assert [r.outcome for r in results] == ["passed"] * 4
    assert [r.label for r in results] == ["5%", "25%", "50%", "100%"]
    assert rollout_line(results) == "5% ok > 25% ok > 50% ok > 100% ok"
    assert results[0].message.startswith("advance from 5%: not significantly worse (look 1 of 4)")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_candidate_ten_percent_worse_is_rolled_back_at_the_first_stage_with_enough_samples(
    seed: int,
) -> None:
    rows, y = holdout(40_000, sep=3.0)
    baseline = full_model(rows, y)
    candidate = Flipping(baseline.estimator, share=0.105)
    ratio = compare_metric(
        "accuracy", y, candidate.batch_predict(rows), baseline.batch_predict(rows)
    ).ratio
    assert ratio is not None
    assert 0.88 < ratio < 0.92  # "10% worse"

    # 1000 candidate rows at 5% take about 20,000 rows: the first stage is extended once.
    results = simulate_rollout(candidate, baseline, rows, y, key="id", min_samples=1000, seed=seed)

    assert statuses(results) == ["rolled_back", "not_reached", "not_reached", "not_reached"]
    first = results[0]
    assert first.outcome == "failed"
    assert first.rows > 10_000  # extended beyond its 10,000-row slice
    assert first.decision is not None
    assert first.decision.look == 1
    assert [c.criterion for c in first.decision.criteria if c.worse] == ["accuracy"]
    assert first.message.startswith("rolled back at 5%: accuracy 0.")
    assert "significantly below the floor" in first.message
    assert all(r.message == "not reached: rolled back at 5%" for r in results[1:])
    assert [r.outcome for r in results[1:]] == ["skipped"] * 3


def test_a_candidate_that_raises_on_five_percent_of_rows_is_rolled_back_on_error_rate() -> None:
    rows, y = holdout(20_000)
    baseline = full_model(rows, y)
    candidate = Raising(baseline.estimator)

    results = simulate_rollout(candidate, baseline, rows, y, key="id")

    assert statuses(results)[0] == "rolled_back"
    decision = results[0].decision
    assert decision is not None
    assert [c.criterion for c in decision.criteria if c.worse] == ["error_rate"]
    assert results[0].message.startswith("rolled back at 5%: error rate ")
    assert statuses(results)[1:] == ["not_reached"] * 3


def test_the_rows_a_failing_candidate_cannot_answer_are_served_by_the_baseline() -> None:
    rows, y = holdout(2000)
    baseline = full_model(rows, y)
    candidate = Raising(baseline.estimator)
    rollout = Rollout(candidate, baseline, stages=(0.5, 1.0), key="id")

    served = rollout.serve(rows)
    predictions = rollout.predict(rows)  # no model failure reaches the caller

    bad = rows["id"].to_numpy() % 20 == 0
    expected_failures = served.to_candidate & bad
    assert expected_failures.sum() > 25
    np.testing.assert_array_equal(served.candidate_failed, expected_failures)
    np.testing.assert_array_equal(
        served.predictions[expected_failures],
        baseline.estimator.predict(rows[expected_failures]),
    )
    assert set(served.served_by[expected_failures]) == {"baseline"}
    assert set(served.served_by[served.to_candidate & ~bad]) == {"candidate"}
    np.testing.assert_array_equal(predictions, served.predictions)
    counts = rollout.counters()
    assert counts["candidate"].errors == 2 * int(expected_failures.sum())
    assert counts["baseline"].errors == 0


def test_a_tiny_holdout_is_inconclusive_skipped_and_never_passes() -> None:
    rows, y = holdout(300)
    baseline = Wrapped(OnColumns(rows, y, ["x0"]))
    candidate = full_model(rows, y)  # better, but there is too little data to show anything

    results = simulate_rollout(candidate, baseline, rows, y, key="id")

    assert statuses(results) == ["inconclusive", "not_reached", "not_reached", "not_reached"]
    # Not judged, so not passed; not a rollback either, so not a block.
    assert [r.outcome for r in results] == ["skipped", "skipped", "skipped", "skipped"]
    first = results[0]
    assert first.message.startswith("inconclusive at 5%: data ran out after 300 rows")
    assert "needs 100" in first.message
    assert first.decision is not None
    assert first.decision.action == HOLD
    assert first.decision.look is None
    assert results[1].message == "not reached: 5% was inconclusive (data ran out)"


def test_the_same_seed_and_data_give_the_same_decisions() -> None:
    rows, y = holdout(6000)
    baseline = Wrapped(OnColumns(rows, y, ["x0", "x1", "x2"]))
    candidate = full_model(rows, y)

    runs = [simulate_rollout(candidate, baseline, rows, y, seed=7, order_by="x3") for _ in range(2)]
    other = simulate_rollout(candidate, baseline, rows, y, seed=8, order_by="x3")

    assert runs[0] == runs[1]
    assert [r.candidate_requests for r in other] != [r.candidate_requests for r in runs[0]]


# --------------------------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------------------------


def test_routing_is_sticky_a_key_on_the_candidate_at_five_percent_stays_there_at_25_percent() -> (
    None
):
    n = 20_000
    rng = np.random.default_rng(3)
    requests = pd.DataFrame({"user": rng.integers(0, 5000, n), "x": rng.normal(size=n)})
    model = Lookup(np.zeros(n))
    rollout = Rollout(model, model, key="user", task="regression")

    at_5 = rollout.route(requests)
    rollout.advance(force=True)
    at_25 = rollout.route(requests)

    assert 0.04 < at_5.mean() < 0.06
    assert 0.23 < at_25.mean() < 0.27
    assert not (at_5 & ~at_25).any()
    # A user never flips between models within a stage either, whatever else the row holds.
    per_user = pd.Series(at_25).groupby(requests["user"].to_numpy()).nunique()
    assert (per_user == 1).all()


def test_row_routing_ignores_column_order_and_canonicalises_key_values() -> None:
    rows = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    np.testing.assert_array_equal(hash_buckets(rows), hash_buckets(rows[["b", "a"]]))
    as_int = hash_buckets(pd.DataFrame({"k": [42, 7]}), key="k")
    as_float = hash_buckets(pd.DataFrame({"k": [42.0, 7.0]}), key="k")
    as_text = hash_buckets(pd.DataFrame({"k": ["42", "7"]}), key="k")
    np.testing.assert_array_equal(as_int, as_float)
    np.testing.assert_array_equal(as_int, as_text)
    assert (as_int >= 0).all()
    assert (as_int < 1).all()
    assert not np.array_equal(as_int, hash_buckets(pd.DataFrame({"k": [42, 7]}), "k", seed=1))
    by_function = hash_buckets(rows, key=lambda df: df["a"] * 10)
    np.testing.assert_array_equal(by_function, hash_buckets(pd.DataFrame({"k": [10, 20, 30]}), "k"))


def test_routing_by_a_missing_key_column_names_it() -> None:
    rollout = Rollout(Lookup(np.zeros(3)), Lookup(np.zeros(3)), key="user", task="regression")
    with pytest.raises(SchemaError, match="rollout key column 'user' is not in the rows"):
        rollout.predict(pd.DataFrame({"id": [0, 1, 2]}))


# --------------------------------------------------------------------------------------------
# Decisions, state, persistence
# --------------------------------------------------------------------------------------------


def _lookup_pair(n: int, p_base: float, p_cand: float, seed: int) -> tuple[Lookup, Lookup]:
    rng = np.random.default_rng(seed)
    classes = np.array([0, 1])
    base = Lookup((rng.random(n) < p_base).astype(int), classes)
    cand = Lookup((rng.random(n) < p_cand).astype(int), classes)
    return cand, base


def test_evaluate_holds_without_spending_a_look_and_advance_needs_an_advance_decision() -> None:
    n = 4000
    cand, base = _lookup_pair(n, 0.9, 0.9, seed=1)
    rows, y = pd.DataFrame({"id": np.arange(n)}), np.ones(n, dtype=int)
    rollout = Rollout(cand, base, key="id")

    rollout.predict(rows.iloc[:200], y_true=y[:200])
    first = rollout.evaluate()
    assert first.action == HOLD
    assert first.reason.startswith("inconclusive at 5%: the candidate has ")
    assert rollout.looks_used == 0
    with pytest.raises(DeployGateError, match="cannot advance from 5%"):
        rollout.advance()

    rollout.predict(rows.iloc[200:], y_true=y[200:])
    decision = rollout.evaluate()
    assert decision.action == ADVANCE
    assert rollout.looks_used == 1
    assert rollout.evaluate() is decision  # polling spends nothing
    assert rollout.looks_used == 1
    assert len(rollout.history) == 2  # the HOLD, then the ADVANCE
    rollout.advance()
    assert rollout.share == 0.25


def test_a_rollback_sends_all_traffic_to_the_baseline() -> None:
    n = 6000
    cand, base = _lookup_pair(n, 0.95, 0.5, seed=2)
    rows, y = pd.DataFrame({"id": np.arange(n)}), np.ones(n, dtype=int)
    rollout = Rollout(cand, base, key="id")

    rollout.predict(rows.iloc[:4000], y_true=y[:4000])
    decision = rollout.evaluate()
    assert decision.action == ROLLBACK
    assert rollout.state == "rolled_back"
    assert rollout.share == 0.0
    before = rollout.counters()["candidate"].requests
    np.testing.assert_array_equal(rollout.predict(rows.iloc[4000:]), base.outputs[4000:])
    assert rollout.counters()["candidate"].requests == before
    assert rollout.evaluate() is decision
    with pytest.raises(DeployGateError, match="cannot advance: rolled back at 5%"):
        rollout.advance()


def test_a_spare_look_rejudges_a_stage_only_after_min_samples_new_observations() -> None:
    n = 8000
    cand, base = _lookup_pair(n, 0.9, 0.9, seed=6)
    rows, y = pd.DataFrame({"id": np.arange(n)}), np.ones(n, dtype=int)
    rollout = Rollout(cand, base, key="id", max_looks=5)
    assert rollout.alpha_per_test == pytest.approx(0.05 / 10)

    rollout.predict(rows.iloc[:4000], y_true=y[:4000])
    first = rollout.evaluate()
    rollout.predict(rows.iloc[4000:4100], y_true=y[4000:4100])  # a handful of candidate rows
    assert rollout.evaluate() is first
    rollout.predict(rows.iloc[4100:], y_true=y[4100:])  # about 200 more
    second = rollout.evaluate()

    assert (first.look, second.look) == (1, 2)
    assert second.action == ADVANCE
    # The one spare look is spent: the three later stages keep theirs.
    rollout.predict(rows, y_true=y)
    assert rollout.evaluate() is second
    assert rollout.looks_used == 2


def test_a_rollout_without_labels_can_judge_on_the_error_rate_alone() -> None:
    rows, _ = holdout(10_000)
    baseline = full_model(rows, np.asarray(make_classification(10_000, random_state=0)[1]))
    rollout = Rollout(Raising(baseline.estimator), baseline, key="id", criteria=("error_rate",))

    rollout.predict(rows)
    decision = rollout.evaluate()

    assert decision.action == ROLLBACK
    assert [c.criterion for c in decision.criteria] == ["error_rate"]


class Down:
    """A candidate whose every call fails (its feature service is down)."""

    classes = np.array([0, 1])

    def batch_predict(self, rows: pd.DataFrame) -> np.ndarray:
        raise RuntimeError("feature service unavailable")


def test_a_candidate_failing_every_request_is_rolled_back_at_the_first_stage_without_labels() -> (
    None
):
    # The case: default criteria, no labels at serving time. The primary criterion
    # never gets a labelled row from a candidate that answers nothing; the error rate decides.
    n = 20_000
    baseline = Lookup(np.ones(n, dtype=int), np.array([0, 1]))
    rollout = Rollout(Down(), baseline, key="id")
    rows = pd.DataFrame({"id": np.arange(n)})

    decisions = []
    for start in range(0, n, 500):
        rollout.predict(rows.iloc[start : start + 500])
        decisions.append(rollout.evaluate())
        if rollout.state != "running":
            break

    decision = decisions[-1]
    assert decision.action == ROLLBACK
    assert decision.stage == 0
    assert rollout.share == 0.0
    assert [c.criterion for c in decision.criteria] == ["error_rate"]
    assert decision.reason.startswith("rolled back at 5%: error rate 100.00% (")
    # Decided as soon as the candidate had min_samples requests at the stage, not 20,000 later.
    assert rollout.counters()["candidate"].requests < 200
    assert rollout.counters()["candidate"].labelled == 0


def test_without_labels_the_error_rate_is_judged_while_the_primary_criterion_waits() -> None:
    n = 6000
    cand, base = _lookup_pair(n, 0.9, 0.9, seed=12)
    rows, y = pd.DataFrame({"id": np.arange(n)}), np.ones(n, dtype=int)
    rollout = Rollout(cand, base, key="id")

    rollout.predict(rows.iloc[:4000])  # served, but no labels yet
    waiting = rollout.evaluate()
    assert waiting.action == HOLD
    assert [c.criterion for c in waiting.criteria] == ["error_rate"]
    assert not waiting.criteria[0].worse
    assert "labelled rows" in waiting.reason
    assert waiting.look == 1
    polled = rollout.evaluate()  # polling spends nothing: no test runs
    assert (polled.action, polled.look, polled.criteria) == (HOLD, None, waiting.criteria)
    assert rollout.looks_used == 1
    assert rollout.history == (waiting, polled)  # the HOLD that ran a test stays on record

    rollout.observe(rows.iloc[:4000], y[:4000])
    decision = rollout.evaluate()
    assert decision.action == ADVANCE
    assert [c.criterion for c in decision.criteria] == ["error_rate", "accuracy"]
    assert decision.look == 1  # each criterion's first look at this stage
    assert rollout.looks_used == 1


def test_a_replayed_candidate_failing_every_row_is_rolled_back_not_inconclusive() -> None:
    rows, y = holdout(6000)
    baseline = full_model(rows, y)

    results = simulate_rollout(Down(), baseline, rows, y, key="id")

    assert statuses(results) == ["rolled_back", "not_reached", "not_reached", "not_reached"]
    assert results[0].message.startswith("rolled back at 5%: error rate 100.00% (")


def test_the_replay_follows_the_timestamp_column_and_models_get_only_their_features() -> None:
    n = 6000
    cand, base = _lookup_pair(n, 0.9, 0.9, seed=8)

    class Strict(Lookup):
        def batch_predict(self, rows: pd.DataFrame) -> np.ndarray:
            assert list(rows.columns) == ["id"]
            return super().batch_predict(rows)

    strict_cand = Strict(cand.outputs, cand.classes)
    strict_base = Strict(base.outputs, base.classes)
    rng = np.random.default_rng(9)
    stamps = pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.permutation(n), unit="s")
    rows = pd.DataFrame({"id": np.arange(n), "ts": stamps, "user": rng.integers(0, 900, n)})
    y = np.ones(n, dtype=int)
    in_time_order = rows.sort_values("ts")

    by_column = simulate_rollout(
        strict_cand, strict_base, rows, y, key="user", order_by="ts", features=["id"]
    )
    presorted = simulate_rollout(
        strict_cand,
        strict_base,
        in_time_order,
        y[in_time_order.index],
        key="user",
        features=["id"],
    )

    assert by_column == presorted
    assert statuses(by_column) == ["advanced"] * 4


def test_the_state_round_trips_through_json_and_the_restored_router_carries_on() -> None:
    n = 12_000
    cand, base = _lookup_pair(n, 0.9, 0.91, seed=4)
    rows, y = pd.DataFrame({"id": np.arange(n)}), np.ones(n, dtype=int)
    original = Rollout(cand, base, key="id", seed="v2")
    original.predict(rows.iloc[:4000], y_true=y[:4000])
    assert original.evaluate().action == ADVANCE
    original.advance()
    original.predict(rows.iloc[4000:5000], y_true=y[4000:5000])
    original.evaluate()

    text = original.to_json()
    restored = Rollout.from_json(text, cand, base)

    assert restored.to_json() == text
    assert json.loads(text)["stage_index"] == 1
    assert restored.history == original.history
    assert restored.counters() == original.counters()
    for router in (original, restored):
        router.predict(rows.iloc[5000:], y_true=y[5000:])
        router.evaluate()
    assert restored.to_json() == original.to_json()
    np.testing.assert_array_equal(restored.route(rows), original.route(rows))


def test_a_state_written_in_the_first_format_is_still_read() -> None:
    n = 8000
    cand, base = _lookup_pair(n, 0.9, 0.9, seed=13)
    rows, y = pd.DataFrame({"id": np.arange(n)}), np.ones(n, dtype=int)
    rollout = Rollout(cand, base, key="id")
    rollout.predict(rows.iloc[:4000], y_true=y[:4000])
    advanced = rollout.evaluate()
    assert advanced.action == ADVANCE
    state = json.loads(rollout.to_json())
    # What format 1 wrote: one look count and one last look for every criterion.
    state["format"] = 1
    state["looks_used"] = max(state.pop("looks").values())
    state["last_look"] = next(iter(state["last_look"].values()))
    del state["judged"]

    restored = Rollout.from_json(json.dumps(state), cand, base)

    assert restored.to_json() == rollout.to_json()
    assert restored.evaluate() == advanced
    restored.advance()
    assert restored.share == 0.25


def test_a_rollout_routed_by_a_function_needs_it_back_to_restore() -> None:
    model = Lookup(np.zeros(10))
    rollout = Rollout(model, model, key=lambda df: df["id"] % 3, task="regression")
    with pytest.raises(ConfigError, match="pass it again"):
        Rollout.from_json(rollout.to_json(), model, model)
    restored = Rollout.from_json(rollout.to_json(), model, model, key=lambda df: df["id"] % 3)
    rows = pd.DataFrame({"id": np.arange(10)})
    np.testing.assert_array_equal(restored.buckets(rows), rollout.buckets(rows))


def test_a_regression_candidate_with_a_larger_absolute_error_is_rolled_back() -> None:
    n = 20_000
    rng = np.random.default_rng(5)
    y = rng.normal(size=n) * 10
    base = Lookup(y + rng.normal(size=n))
    worse = Lookup(y + 1.3 * rng.normal(size=n))
    same = Lookup(base.outputs.copy())
    rows = pd.DataFrame({"id": np.arange(n)})

    rolled = simulate_rollout(worse, base, rows, y, key="id", task="regression")
    kept = simulate_rollout(same, base, rows, y, key="id", task="regression")

    assert "rolled_back" in statuses(rolled)
    decision = next(r.decision for r in rolled if r.status == "rolled_back")
    assert decision is not None
    assert [c.criterion for c in decision.criteria if c.worse] == ["mae"]
    assert statuses(kept) == ["advanced"] * 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stages": (0.5, 0.25)}, "stages must increase"),
        ({"stages": (0.0, 1.0)}, r"stages must be shares in \(0, 1\]"),
        ({"confidence": 1.0}, "confidence must be between 0 and 1"),
        ({"min_samples": 1}, "min_samples must be an integer >= 2"),
        ({"criteria": ("latency",)}, "criteria must be a non-empty subset"),
        ({"max_looks": 2}, "max_looks must be at least the number of stages"),
    ],
)
def test_bad_settings_are_rejected_naming_the_setting(kwargs: dict[str, Any], message: str) -> None:
    model = Lookup(np.zeros(3))
    with pytest.raises(ConfigError, match=message):
        Rollout(model, model, task="regression", **kwargs)


def test_bad_rows_and_labels_are_rejected_naming_the_parameter() -> None:
    model = Lookup(np.zeros(3))
    rollout = Rollout(model, model, task="regression")
    with pytest.raises(DataError, match="rows must be a pandas DataFrame"):
        rollout.predict([[1, 2]])  # type: ignore[arg-type]
    with pytest.raises(DataError, match="y_true has shape"):
        simulate_rollout(model, model, pd.DataFrame({"id": [0, 1, 2]}), [1.0, 2.0])


# --------------------------------------------------------------------------------------------
# Acceptance: false-rollback rate and power, measured over replays
# --------------------------------------------------------------------------------------------

REPLAYS = 200
HOLDOUT = 20_000


def rollback_rate(
    draw: Any, *, replays: int = REPLAYS, n: int = HOLDOUT, seed: int = 0
) -> tuple[float, list[str]]:
    """Share of replays rolled back; ``draw(rng)`` gives (candidate, baseline) per replay."""
    rng = np.random.default_rng(seed)
    rows = pd.DataFrame({"id": np.arange(n)})
    y = np.ones(n, dtype=int)
    rolled, lines = 0, []
    for _ in range(replays):
        cand, base = draw(rng)
        order = rng.permutation(n)
        results = simulate_rollout(cand, base, rows.iloc[order], y[order], key="id")
        rolled += any(r.status == "rolled_back" for r in results)
        lines.append(rollout_line(results))
    return rolled / replays, lines


def test_an_identical_candidate_is_rolled_back_in_at_most_five_percent_of_replays() -> None:
    classes = np.array([0, 1])
    correct = (np.random.default_rng(10).random(HOLDOUT) < 0.9).astype(int)
    model = Lookup(correct, classes)
    twin = Lookup(correct.copy(), classes)

    rate, lines = rollback_rate(lambda rng: (twin, model))

    assert rate <= 0.05
    assert lines.count("5% ok > 25% ok > 50% ok > 100% ok") >= 0.95 * REPLAYS


def test_a_candidate_exactly_at_the_floor_is_rolled_back_in_at_most_five_percent_of_replays() -> (
    None
):
    # The promise is made at the margin: accuracy exactly 95% of the baseline's. Fresh data in
    # every replay, so this measures the test's error rate over all its looks (on half the
    # holdout, to keep the file fast).
    n = HOLDOUT // 2
    rate, _ = rollback_rate(
        lambda rng: _lookup_pair(n, 0.9, 0.9 * 0.95, int(rng.integers(1 << 31))), n=n
    )

    assert rate <= 0.05


def test_a_candidate_ten_percent_worse_is_rolled_back_in_at_least_95_percent_of_replays() -> None:
    classes = np.array([0, 1])
    rng = np.random.default_rng(11)
    base = Lookup((rng.random(HOLDOUT) < 0.9).astype(int), classes)
    worse = Lookup((rng.random(HOLDOUT) < 0.81).astype(int), classes)

    rate, _ = rollback_rate(lambda rng: (worse, base))

    assert rate >= 0.95
