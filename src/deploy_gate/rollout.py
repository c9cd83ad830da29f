"""Staged rollout of a candidate model: sticky routing, fallback, a stage test, rollback.

:class:`Rollout` is the runtime router a serving process can use without pytest: it sends a
growing share of the traffic (5% -> 25% -> 50% -> 100% by default) to the candidate, serves a row
from the baseline whenever the candidate raises or returns an invalid output for it, keeps
per-arm counters, and at each stage judges the candidate against the baseline with a one-sided
test; a candidate that is significantly worse is rolled back to 0% on the spot. Its state
round-trips through JSON. :func:`simulate_rollout` replays a labelled holdout through the same
class as traffic, which is what the gate's ``rollout[...]`` items report.

The stage test, in short (details in :class:`Rollout`): each criterion is a non-inferiority test
with the margins of the baseline checks (accuracy or MAE within 95% of the baseline's, error rate
within ``max(2x baseline, 0.1%)``), at level ``(1 - confidence) / (max_looks * criteria)``, a
Bonferroni split over every look the rollout may take, so that all stages and extensions together
roll back a candidate that meets those margins at most ``1 - confidence`` of the time. Each
criterion is judged as soon as it has its own samples: the error rate needs only requests, so a
candidate that fails every request is rolled back at the first stage without a single label.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Concatenate, Literal, ParamSpec, TypeVar

from deploy_gate.capabilities import Task, check_task
from deploy_gate.compare import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_ERROR_FLOOR,
    DEFAULT_MAX_ERROR_RATIO,
    DEFAULT_MIN_RELATIVE,
    adapt_model,
    format_metric,
    infer_task,
    predict_outputs,
)
from deploy_gate.errors import (
    ConfigError,
    DataError,
    DeployGateError,
    InvalidOutputError,
    SchemaError,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from numpy.typing import ArrayLike

    from deploy_gate.compare import ModelAdapter

#: Shares of the traffic the candidate gets, stage after stage.
DEFAULT_STAGES: tuple[float, ...] = (0.05, 0.25, 0.5, 1.0)
#: One-sided confidence of the stage test, over all looks together.
DEFAULT_CONFIDENCE = 0.95
#: Observations each arm needs before a stage is judged: fewer is INCONCLUSIVE. Below ~100 the
#: normal approximations of the accuracy/MAE test are rough and no real effect is detectable.
DEFAULT_MIN_SAMPLES = 100

Action = Literal["advance", "hold", "rollback"]
State = Literal["running", "rolled_back", "completed"]
Criterion = Literal["error_rate", "primary"]
StageStatus = Literal["advanced", "rolled_back", "inconclusive", "not_reached"]
KeyFunction = Callable[["pd.DataFrame"], "ArrayLike"]

ADVANCE: Action = "advance"
HOLD: Action = "hold"
ROLLBACK: Action = "rollback"
CRITERIA: tuple[Criterion, ...] = ("error_rate", "primary")

#: Version 2 keeps looks per criterion; version 1 states (one look count) are still read.
_FORMAT = 2
_ARMS = ("candidate", "baseline")


# --------------------------------------------------------------------------------------------
# Sticky routing
# --------------------------------------------------------------------------------------------


def hash_buckets(
    rows: pd.DataFrame, key: str | KeyFunction | None = None, seed: int | str = 0
) -> np.ndarray:
    """Each row's stable position in [0, 1): a BLAKE2b hash of the seed and the row's key.

    The key is the value of column ``key``, one value per row from a callable ``key(rows)``, or,
    with ``key=None``, the whole row (column names sorted, so column order does not matter).
    Values are written canonically before hashing (``42``, ``42.0``, ``np.int64(42)`` and
    ``"42"`` are the same key; missing values are one key), so the same key lands in the same
    bucket in every process and run; the seed picks a different canary population.
    """
    import numpy as np

    tokens = _key_tokens(rows, key)
    prefix = f"{seed}\x1e"
    packed = b"".join([_digest(prefix, t) for t in tokens])
    digests = np.frombuffer(packed, dtype=">u8").astype(np.uint64)
    # The top 53 bits are exact in a float64, so the bucket is exactly below 1.
    buckets: np.ndarray = (digests >> np.uint64(11)).astype(float) / float(2**53)
    return buckets


# Keys repeat (users, sessions): caching their hashes makes routing several times cheaper.
@functools.lru_cache(maxsize=1 << 15)
def _digest(prefix: str, token: str) -> bytes:
    return hashlib.blake2b((prefix + token).encode(), digest_size=8).digest()


def _key_tokens(rows: pd.DataFrame, key: str | KeyFunction | None) -> list[str]:
    import numpy as np
    import pandas as pd

    if not isinstance(rows, pd.DataFrame):
        raise DataError(f"rows must be a pandas DataFrame, got {type(rows).__name__}")
    if key is None:
        columns = sorted(rows.columns, key=str)
        if not columns:
            return [""] * len(rows)
        per_column = [[f"{c}={v}" for v in _canonical(rows[c].to_numpy())] for c in columns]
        return ["\x1f".join(parts) for parts in zip(*per_column, strict=True)]
    if isinstance(key, str):
        if key not in rows.columns:
            shown = ", ".join(map(str, list(rows.columns)[:12]))
            raise SchemaError(f"rollout key column {key!r} is not in the rows (columns: {shown})")
        return _canonical(rows[key].to_numpy())
    if callable(key):
        values = np.asarray(key(rows))
        if values.ndim != 1 or values.shape[0] != len(rows):
            raise DataError(
                f"the rollout key function returned shape {values.shape} for {len(rows)} rows: "
                "it must return one key per row"
            )
        return _canonical(values)
    raise ConfigError(
        f"key must be None, a column name or a function of the rows, got {type(key).__name__}"
    )


def _canonical(values: np.ndarray) -> list[str]:
    import numpy as np

    kind = values.dtype.kind
    if kind in "iu":
        out: list[str] = values.astype(str).tolist()
        return out
    if kind == "b":
        return np.where(values, "True", "False").tolist()  # type: ignore[no-any-return]
    if kind == "f":  # the common case of whole-row keys: no per-value type dispatch
        return [
            "<NA>" if v != v else str(int(v)) if v.is_integer() else repr(v)
            for v in values.astype(float).tolist()
        ]
    return [_canonical_scalar(v) for v in values.tolist()]


def _canonical_scalar(value: Any) -> str:
    import numpy as np

    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "<NA>"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    try:
        import pandas as pd

        if pd.isna(value):
            return "<NA>"
    except (TypeError, ValueError):
        pass
    return str(value)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CriterionResult:
    """One criterion of one stage test: the figures, the p-value and whether it says "worse"."""

    #: ``"error_rate"``, ``"accuracy"`` (classification) or ``"mae"`` (regression).
    criterion: str
    candidate: float
    baseline: float
    #: The non-inferiority boundary the candidate was tested against.
    limit: float
    n_candidate: int
    n_baseline: int
    p_value: float
    alpha: float
    worse: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CriterionResult:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


@dataclass(frozen=True)
class StageDecision:
    """What :meth:`Rollout.evaluate` decided at a stage, and why."""

    action: Action
    #: Index of the stage in ``stages`` and its share of the traffic.
    stage: int
    share: float
    #: One line that stands alone: the decision, the stage and the deciding figures.
    reason: str
    criteria: tuple[CriterionResult, ...] = ()
    #: 1-based number of this look (None when no test ran) and the planned maximum.
    look: int | None = None
    max_looks: int = 0

    @property
    def inconclusive(self) -> bool:
        """True for HOLD: too few samples to judge, never a pass."""
        return self.action == HOLD

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        data = dict(self.__dict__)
        data["criteria"] = [c.to_dict() for c in self.criteria]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageDecision:
        """Inverse of :meth:`to_dict`."""
        values = dict(data)
        values["criteria"] = tuple(CriterionResult.from_dict(c) for c in data["criteria"])
        return cls(**values)


@dataclass(frozen=True)
class ArmCounts:
    """Counters of one arm of the rollout since it started."""

    requests: int
    errors: int
    labelled: int
    #: ``"accuracy"`` or ``"mae"``, and its value over the labelled rows (None before any).
    primary_name: str
    primary: float | None

    @property
    def error_rate(self) -> float:
        """Share of the arm's requests on which its model failed."""
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True, eq=False)
class Served:
    """One call of :meth:`Rollout.serve`: the answers and who gave them."""

    predictions: np.ndarray
    #: Rows routed to the candidate.
    to_candidate: np.ndarray
    #: Rows routed to the candidate on which it failed (they were served by the baseline).
    candidate_failed: np.ndarray
    #: Rows no model answered (the baseline failed too); their prediction is missing.
    unserved: np.ndarray

    @property
    def served_by(self) -> np.ndarray:
        """``"candidate"``, ``"baseline"`` or ``""`` (unserved) per row."""
        import numpy as np

        by = np.where(self.to_candidate & ~self.candidate_failed, "candidate", "baseline")
        out: np.ndarray = np.where(self.unserved, "", by)
        return out


# --------------------------------------------------------------------------------------------
# The router
# --------------------------------------------------------------------------------------------


@dataclass
class _Arm:
    requests: int = 0
    errors: int = 0
    labelled: int = 0
    # Running mean and sum of squared deviations (Chan et al.) of the per-row primary value.
    mean: float = 0.0
    m2: float = 0.0

    def add(self, values: np.ndarray) -> None:
        k = int(values.shape[0])
        if not k:
            return
        batch_mean = float(values.mean())
        batch_m2 = float(((values - batch_mean) ** 2).sum())
        n = self.labelled
        total = n + k
        delta = batch_mean - self.mean
        self.mean += delta * k / total
        self.m2 += batch_m2 + delta * delta * n * k / total
        self.labelled = total

    @property
    def std(self) -> float:
        return math.sqrt(max(self.m2, 0.0) / (self.labelled - 1)) if self.labelled > 1 else 0.0


@dataclass
class _Marks:
    """Candidate/baseline counters at a point in time (stage start, last look)."""

    requests: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_ARMS, 0))
    labelled: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_ARMS, 0))


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _locked(
    method: Callable[Concatenate[Rollout, _P], _R],
) -> Callable[Concatenate[Rollout, _P], _R]:
    def locked(self: Rollout, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._lock:
            return method(self, *args, **kwargs)

    functools.update_wrapper(locked, method)
    return locked


class Rollout:
    """Route traffic between a candidate and the baseline stage by stage, and roll back on harm.

    Routing is sticky and deterministic: a row goes to the candidate when its
    :func:`hash_buckets` position is below the current stage's share, so a key that reached the
    candidate at 5% stays there at 25%. When the candidate raises or returns an invalid output
    for a row, the baseline answers it and the row counts as a candidate error. Labels fed with
    ``predict(rows, y_true=...)`` or :meth:`observe` give each arm its primary figure (accuracy
    for classifiers, absolute error for regressors).

    :meth:`evaluate` judges each criterion of the current stage as soon as both arms have
    ``min_samples`` observations for it (the candidate at this stage, the baseline in all:
    requests for the error rate, labelled rows for the primary figure), with a one-sided test:
    ROLLBACK (automatic, to 0%) as soon as one criterion shows the candidate significantly worse
    than its margin allows, ADVANCE once every criterion has been judged and none did, HOLD
    (inconclusive) while a criterion still lacks its samples; :meth:`advance` moves on. Not
    being proven better is no reason to hold: the candidate must be shown worse to be stopped.
    The criteria do not wait for each other: a candidate that fails every request never
    produces a labelled row, and its error rate alone rolls it back.

    * ``error_rate``: H0 "candidate error rate <= max(max_error_ratio * baseline's,
      error_floor)". The baseline's rate is bounded above by a one-sided Clopper-Pearson bound
      and the candidate's error count tested against that limit with an exact binomial test,
      each at half the level (a union bound, valid at any count, also at 0 errors).
    * ``primary``: H0 "candidate accuracy >= min_relative * baseline's" (classification) or
      "candidate MAE <= baseline's / min_relative" (regression), a Welch t-test
      (``scipy.stats.ttest_ind_from_stats``) on the per-row correctness or absolute error.

    Each test runs at ``(1 - confidence) / (max_looks * len(criteria))``: Bonferroni over all
    looks of all criteria (each criterion takes at most ``max_looks`` looks), so stages and extra
    looks together keep false rollbacks of a candidate that meets the margins below
    ``1 - confidence``. ``max_looks`` defaults to one look per stage; a larger value allows
    re-looks within a stage (each needs ``min_samples`` new candidate observations of that
    criterion), at the price of a stricter level per look. Counters are cumulative, so later
    looks weigh all the evidence so far.

    Without labels at serving time the error rate is still judged at every stage; the primary
    criterion holds the stage until labelled rows arrive (pass ``criteria=("error_rate",)`` to
    advance on the error rate alone). Counters and decisions are guarded by a lock, so serving
    threads may share one router.
    """

    def __init__(
        self,
        candidate: object,
        baseline: object,
        *,
        stages: Sequence[float] = DEFAULT_STAGES,
        key: str | KeyFunction | None = None,
        confidence: float = DEFAULT_CONFIDENCE,
        min_samples: int = DEFAULT_MIN_SAMPLES,
        criteria: Sequence[Criterion] = CRITERIA,
        task: Task | None = None,
        min_relative: float = DEFAULT_MIN_RELATIVE,
        max_error_ratio: float = DEFAULT_MAX_ERROR_RATIO,
        error_floor: float = DEFAULT_ERROR_FLOOR,
        max_looks: int | None = None,
        features: Sequence[str] | None = None,
        seed: int | str = 0,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self._candidate: ModelAdapter = adapt_model(candidate)
        self._baseline: ModelAdapter = adapt_model(baseline)
        self._stages = _check_stages(stages)
        if not 0 < confidence < 1:
            raise ConfigError(f"confidence must be between 0 and 1, got {confidence}")
        if not isinstance(min_samples, int) or min_samples < 2:
            raise ConfigError(f"min_samples must be an integer >= 2, got {min_samples!r}")
        unknown = [c for c in criteria if c not in CRITERIA]
        if unknown or not criteria:
            raise ConfigError(
                f"criteria must be a non-empty subset of {CRITERIA}, got {tuple(criteria)}"
            )
        if not min_relative > 0:
            raise ConfigError(f"min_relative must be positive, got {min_relative}")
        if max_error_ratio < 1:
            raise ConfigError(f"max_error_ratio must be at least 1, got {max_error_ratio}")
        if not 0 <= error_floor < 1:
            raise ConfigError(f"error_floor must be in [0, 1), got {error_floor}")
        looks = len(self._stages) if max_looks is None else max_looks
        if looks < len(self._stages):
            raise ConfigError(
                f"max_looks must be at least the number of stages ({len(self._stages)}), "
                f"got {max_looks}"
            )
        if key is not None and not isinstance(key, str) and not callable(key):
            raise ConfigError(
                f"key must be None, a column name or a function of the rows, got {key!r}"
            )
        self.key = key
        self.confidence = float(confidence)
        self.min_samples = min_samples
        self.criteria: tuple[Criterion, ...] = tuple(dict.fromkeys(criteria))
        self.task: Task = check_task(task) or _infer_pair(self._baseline, self._candidate)
        self.min_relative = float(min_relative)
        self.max_error_ratio = float(max_error_ratio)
        self.error_floor = float(error_floor)
        self.max_looks = looks
        self.features = tuple(features) if features is not None else None
        self.seed = seed
        self.batch_size = batch_size
        self._index = 0
        self._state: State = "running"
        self._arms = {arm: _Arm() for arm in _ARMS}
        self._stage_start = _Marks()
        # Per criterion: tests run so far, the counters at its last test, and its result at the
        # current stage (cleared when the stage advances).
        self._looks: dict[str, int] = dict.fromkeys(self.criteria, 0)
        self._last_look: dict[str, _Marks] = {}
        self._judged: dict[str, CriterionResult] = {}
        self._unserved = 0
        self._history: list[StageDecision] = []
        # Serving threads share one router: counters and decisions change under this lock,
        # model calls run outside it.
        self._lock = threading.RLock()

    # -- state ---------------------------------------------------------------------------------
    @property
    def stages(self) -> tuple[float, ...]:
        """The candidate's share of the traffic at each stage."""
        return self._stages

    @property
    def stage_index(self) -> int:
        """Index of the current stage (``len(stages)`` once completed)."""
        return self._index

    @property
    def state(self) -> State:
        """``"running"``, ``"rolled_back"`` or ``"completed"``."""
        return self._state

    @property
    def share(self) -> float:
        """The candidate's current share of the traffic: 0 after a rollback."""
        if self._state == "rolled_back":
            return 0.0
        return self._stages[min(self._index, len(self._stages) - 1)]

    @property
    def history(self) -> tuple[StageDecision, ...]:
        """Every decision so far (consecutive HOLDs at a stage collapse into the latest)."""
        return tuple(self._history)

    @property
    def looks_used(self) -> int:
        """How many looks the most-judged criterion has taken (each test spends its share of
        1 - confidence)."""
        return max(self._looks.values(), default=0)

    @property
    def alpha_per_test(self) -> float:
        """The one-sided level of each criterion's test at each look."""
        return (1 - self.confidence) / (self.max_looks * len(self.criteria))

    @property
    def primary_name(self) -> str:
        """``"accuracy"`` for classification, ``"mae"`` for regression."""
        return "accuracy" if self.task == "classification" else "mae"

    def counters(self) -> dict[str, ArmCounts]:
        """Per-arm counters since the start: requests, errors, labelled rows, primary figure."""
        return {
            name: ArmCounts(
                requests=arm.requests,
                errors=arm.errors,
                labelled=arm.labelled,
                primary_name=self.primary_name,
                primary=arm.mean if arm.labelled else None,
            )
            for name, arm in self._arms.items()
        }

    # -- routing and serving ---------------------------------------------------------------------
    def buckets(self, rows: pd.DataFrame) -> np.ndarray:
        """Each row's stable routing position in [0, 1) (see :func:`hash_buckets`)."""
        return hash_buckets(rows, self.key, self.seed)

    def route(self, rows: pd.DataFrame) -> np.ndarray:
        """True for the rows the candidate serves at the current stage."""
        import numpy as np

        if self.share <= 0:
            return np.zeros(len(rows), dtype=bool)
        routed: np.ndarray = self.buckets(rows) < self.share
        return routed

    def serve(self, rows: pd.DataFrame) -> Served:
        """Answer ``rows`` through the router and count the requests and errors per arm.

        Never raises for a model's failure: rows neither model answers are flagged ``unserved``.
        """
        return self._serve(rows, count=True)

    def predict(self, rows: pd.DataFrame, y_true: ArrayLike | None = None) -> np.ndarray:
        """One prediction per row, from the candidate or the baseline; labels optional.

        Raises :class:`InvalidOutputError` naming the rows that no model could answer (after
        counting everything); use :meth:`serve` to get partial answers instead.
        """
        import numpy as np

        served = self._serve(rows, count=True)
        if y_true is not None:
            self.observe(rows, y_true, served=served)
        if served.unserved.any():
            bad = rows.index[np.flatnonzero(served.unserved)[:10]].tolist()
            raise InvalidOutputError(
                f"neither the candidate nor the baseline returned a valid output for "
                f"{int(served.unserved.sum())} row(s), e.g. {bad}"
            )
        return served.predictions

    def observe(self, rows: pd.DataFrame, y_true: ArrayLike, served: Served | None = None) -> None:
        """Feed the true labels of ``rows`` so each arm gets its primary figure.

        Pass the :class:`Served` from :meth:`serve` when you have it; without it the rows are
        routed and predicted again (requests are not counted twice), which assumes the stage has
        not changed since they were served. Missing labels (NaN/None) are skipped. Rows the
        candidate failed on count only as its errors, not in its accuracy or MAE.
        """
        import numpy as np
        import pandas as pd

        if served is None:
            served = self._serve(rows, count=False)
        y = np.asarray(y_true.to_numpy() if isinstance(y_true, pd.Series) else y_true)
        n = served.predictions.shape[0]
        if y.ndim != 1 or y.shape[0] != n:
            raise DataError(f"y_true has shape {y.shape} for {n} rows: one label per row")
        labelled = ~np.asarray(pd.isna(y), dtype=bool)
        masks = {
            "candidate": served.to_candidate & ~served.candidate_failed & labelled,
            "baseline": ~served.to_candidate & ~served.unserved & labelled,
        }
        values = {
            name: self._primary_values(served.predictions[mask], y[mask])
            for name, mask in masks.items()
        }
        with self._lock:
            for name, v in values.items():
                self._arms[name].add(v)

    def _primary_values(self, predictions: np.ndarray, y: np.ndarray) -> np.ndarray:
        import numpy as np

        if self.task == "regression":
            try:
                errors: np.ndarray = np.abs(predictions.astype(float) - y.astype(float))
            except (TypeError, ValueError):
                raise DataError("y_true must be numeric for a regression rollout") from None
            return errors
        if predictions.dtype.kind in "biuf" and y.dtype.kind in "biuf":
            correct: np.ndarray = (predictions == y).astype(float)
            return correct
        # Mixed or object labels: compare as Python objects, element by element.
        same = np.asarray(predictions, dtype=object) == np.asarray(y, dtype=object)
        return np.asarray(same, dtype=float)

    def _model_rows(self, rows: pd.DataFrame) -> pd.DataFrame:
        if self.features is None:
            return rows
        missing = [f for f in self.features if f not in rows.columns]
        if missing:
            raise SchemaError(f"rows lack the model feature(s) {', '.join(map(repr, missing))}")
        return rows[list(self.features)]

    def _serve(self, rows: pd.DataFrame, *, count: bool) -> Served:
        import numpy as np
        import pandas as pd

        if not isinstance(rows, pd.DataFrame):
            raise DataError(f"rows must be a pandas DataFrame, got {type(rows).__name__}")
        n = len(rows)
        to_candidate = self.route(rows)
        frame = self._model_rows(rows)
        failed = np.zeros(n, dtype=bool)
        unserved = np.zeros(n, dtype=bool)
        pieces: list[tuple[np.ndarray, np.ndarray]] = []
        cand_pos = np.flatnonzero(to_candidate)
        if cand_pos.size:
            out = predict_outputs(
                self._candidate,
                frame.iloc[cand_pos],
                task=self.task,
                proba=False,
                batch_size=self.batch_size,
            )
            failed[cand_pos[~out.valid]] = True
            pieces.append((cand_pos[out.valid], out.labels[out.valid]))
        base_pos = np.flatnonzero(~to_candidate | failed)
        baseline_errors = 0
        if base_pos.size:
            out = predict_outputs(
                self._baseline,
                frame.iloc[base_pos],
                task=self.task,
                proba=False,
                batch_size=self.batch_size,
            )
            unserved[base_pos[~out.valid]] = True
            baseline_errors = int((~out.valid & ~to_candidate[base_pos]).sum())
            pieces.append((base_pos[out.valid], out.labels[out.valid]))
        if count:
            with self._lock:
                cand, base = self._arms["candidate"], self._arms["baseline"]
                cand.requests += int(cand_pos.size)
                cand.errors += int(failed.sum())
                base.requests += n - int(cand_pos.size)
                base.errors += baseline_errors
                self._unserved += int(unserved.sum())
        return Served(
            predictions=_assemble(n, pieces),
            to_candidate=to_candidate,
            candidate_failed=failed,
            unserved=unserved,
        )

    # -- decisions -------------------------------------------------------------------------------
    @_locked
    def evaluate(self) -> StageDecision:
        """Judge the current stage: ROLLBACK (applied now), ADVANCE, or HOLD (a criterion still
        lacks samples).

        Each criterion is tested once it has its samples, whether or not the others have theirs;
        one significantly worse criterion rolls back at once. A criterion judged at this stage is
        judged again only after ``min_samples`` new observations of it and while a spare look is
        left (see ``max_looks``), so polling does not spend the confidence budget.
        """
        if self._state != "running":
            return self._history[-1]
        due = [c for c in self.criteria if self._due(c)]
        if due:
            return self._look(due)
        last = self._history[-1] if self._history else None
        if last is not None and last.stage == self._index and last.action == ADVANCE:
            return last
        return self._record(self._decision(HOLD, look=None))

    def _due(self, criterion: Criterion) -> bool:
        """Whether ``criterion`` has the samples for a look at this stage, and a look to spend."""
        if self._shortfalls(self._stage_start, (criterion,)):
            return False
        if criterion not in self._judged:
            return True  # its look at this stage: one is reserved for every stage
        # A spare look is one that leaves a look for each later stage.
        spare = self._looks[criterion] + len(self._stages) - self._index <= self.max_looks
        since = self._last_look.get(criterion)
        return spare and since is not None and not self._shortfalls(since, (criterion,))

    def _shortfalls(self, since: _Marks, criteria: Sequence[Criterion] | None = None) -> list[str]:
        """What is missing before a look: candidate observations since ``since``, baseline total."""
        cand, base = self._arms["candidate"], self._arms["baseline"]
        need = self.min_samples
        out: list[str] = []
        for criterion in self.criteria if criteria is None else criteria:
            what = "requests" if criterion == "error_rate" else "labelled rows"
            c_have = (
                cand.requests - since.requests["candidate"]
                if criterion == "error_rate"
                else cand.labelled - since.labelled["candidate"]
            )
            b_have = base.requests if criterion == "error_rate" else base.labelled
            if c_have < need:
                out.append(f"the candidate has {c_have} {what} at this stage, needs {need}")
            if b_have < need:
                out.append(f"the baseline has {b_have} {what}, needs {need}")
        return list(dict.fromkeys(out))

    def _look(self, due: Sequence[Criterion]) -> StageDecision:
        alpha = self.alpha_per_test
        cand, base = self._arms["candidate"], self._arms["baseline"]
        now = _Marks(
            requests={a: self._arms[a].requests for a in _ARMS},
            labelled={a: self._arms[a].labelled for a in _ARMS},
        )
        for criterion in due:
            if criterion == "error_rate":
                result = _error_rate_test(cand, base, self.max_error_ratio, self.error_floor, alpha)
            else:
                result = _primary_test(cand, base, self.task, self.min_relative, alpha)
            self._judged[criterion] = result
            self._looks[criterion] += 1
            self._last_look[criterion] = now
        look = max(self._looks[c] for c in due)
        worse = [self._judged[c] for c in due if self._judged[c].worse]
        if worse:
            action: Action = ROLLBACK
        elif all(c in self._judged for c in self.criteria):
            action = ADVANCE
        else:
            action = HOLD
        decision = self._record(self._decision(action, look=look, worse=worse))
        if action == ROLLBACK:
            self._state = "rolled_back"
        return decision

    def _decision(
        self, action: Action, *, look: int | None, worse: Sequence[CriterionResult] = ()
    ) -> StageDecision:
        pct = _pct(self.share)
        judged = tuple(self._judged[c] for c in self.criteria if c in self._judged)
        looked = f"look {look} of {self.max_looks}"
        summary = "; ".join(_short(r) for r in judged)
        if action == ROLLBACK:
            reason = f"rolled back at {pct}: {worse[0].message} ({looked})"
        elif action == ADVANCE:
            reason = f"advance from {pct}: not significantly worse ({looked}): {summary}"
        else:
            pending = [c for c in self.criteria if c not in self._judged]
            reason = f"inconclusive at {pct}: " + "; ".join(
                self._shortfalls(self._stage_start, pending)
            )
            if judged:
                reason += f" (so far not significantly worse: {summary})"
        return StageDecision(
            action=action,
            stage=self._index,
            share=self.share,
            reason=reason,
            criteria=judged,
            look=look,
            max_looks=self.max_looks,
        )

    def _record(self, decision: StageDecision) -> StageDecision:
        last = self._history[-1] if self._history else None
        # Polls that only wait collapse into the latest; a HOLD that ran a test stays recorded.
        if (
            decision.action == HOLD
            and last is not None
            and last.action == HOLD
            and last.look is None
            and last.stage == decision.stage
        ):
            self._history[-1] = decision
        else:
            self._history.append(decision)
        return decision

    @_locked
    def advance(self, *, force: bool = False) -> None:
        """Move to the next stage after an ADVANCE decision (``force=True`` skips that check).

        After the last stage the rollout is ``"completed"`` and the candidate keeps the last
        stage's share.
        """
        if self._state == "rolled_back":
            raise DeployGateError(f"cannot advance: {self._history[-1].reason}")
        if self._state == "completed":
            raise DeployGateError("cannot advance: the rollout is already complete")
        last = self._history[-1] if self._history else None
        if not force and (last is None or last.stage != self._index or last.action != ADVANCE):
            got = f"last decision: {last.reason}" if last is not None else "no decision yet"
            raise DeployGateError(
                f"cannot advance from {_pct(self.share)}: evaluate() has not decided ADVANCE "
                f"at this stage ({got})"
            )
        self._index += 1
        self._stage_start = _Marks(
            requests={a: self._arms[a].requests for a in _ARMS},
            labelled={a: self._arms[a].labelled for a in _ARMS},
        )
        self._last_look = {}
        self._judged = {}
        if self._index == len(self._stages):
            self._state = "completed"

    @_locked
    def rollback(self, reason: str = "rolled back by hand") -> StageDecision:
        """Send all traffic back to the baseline now, recording ``reason``."""
        if self._state == "rolled_back":
            return self._history[-1]
        index = min(self._index, len(self._stages) - 1)
        decision = StageDecision(
            action=ROLLBACK,
            stage=index,
            share=self._stages[index],
            reason=f"rolled back at {_pct(self._stages[index])}: {reason}",
            max_looks=self.max_looks,
        )
        self._history.append(decision)
        self._state = "rolled_back"
        return decision

    # -- persistence ------------------------------------------------------------------------------
    @_locked
    def to_json(self) -> str:
        """The whole state (settings, stage, counters, decisions) as JSON, models excluded.

        A key function cannot be written: :meth:`from_json` then needs it passed again.
        """
        key_kind = (
            "row" if self.key is None else "column" if isinstance(self.key, str) else "function"
        )
        state = {
            "format": _FORMAT,
            "settings": {
                "stages": list(self._stages),
                "key": self.key if isinstance(self.key, str) else None,
                "key_kind": key_kind,
                "confidence": self.confidence,
                "min_samples": self.min_samples,
                "criteria": list(self.criteria),
                "task": self.task,
                "min_relative": self.min_relative,
                "max_error_ratio": self.max_error_ratio,
                "error_floor": self.error_floor,
                "max_looks": self.max_looks,
                "features": list(self.features) if self.features is not None else None,
                "seed": self.seed,
                "batch_size": self.batch_size,
            },
            "stage_index": self._index,
            "state": self._state,
            "looks": dict(self._looks),
            "unserved": self._unserved,
            "arms": {name: dict(arm.__dict__) for name, arm in self._arms.items()},
            "stage_start": dict(self._stage_start.__dict__),
            "last_look": {c: dict(m.__dict__) for c, m in self._last_look.items()},
            "judged": {c: r.to_dict() for c, r in self._judged.items()},
            "history": [d.to_dict() for d in self._history],
        }
        return json.dumps(state, indent=1, allow_nan=False)

    @classmethod
    def from_json(
        cls,
        text: str,
        candidate: object,
        baseline: object,
        *,
        key: KeyFunction | None = None,
    ) -> Rollout:
        """Restore a rollout written by :meth:`to_json`, with the same two models.

        ``key`` is needed (only) when the rollout was routed by a key function.
        """
        try:
            state = json.loads(text)
            settings = dict(state["settings"])
            if state.get("format") not in (1, _FORMAT):
                raise ConfigError(f"unknown rollout state format {state.get('format')!r}")
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"not a rollout state written by Rollout.to_json(): {exc}") from None
        kind = settings.pop("key_kind")
        stored_key = settings.pop("key")
        if kind == "function":
            if key is None:
                raise ConfigError(
                    "this rollout routes by a key function: pass it again as from_json(..., key=)"
                )
            routing: str | KeyFunction | None = key
        else:
            if key is not None:
                routed_by = f"column {stored_key!r}" if stored_key else "row"
                raise ConfigError(
                    f"this rollout routes by {routed_by}; changing the key would break sticky "
                    "routing"
                )
            routing = stored_key
        rollout = cls(candidate, baseline, key=routing, **settings)
        rollout._index = int(state["stage_index"])
        rollout._state = state["state"]
        rollout._unserved = int(state["unserved"])
        rollout._arms = {name: _Arm(**values) for name, values in state["arms"].items()}
        rollout._stage_start = _Marks(**state["stage_start"])
        rollout._history = [StageDecision.from_dict(d) for d in state["history"]]
        if state["format"] == 1:  # one look count and one last look for all criteria
            rollout._looks = dict.fromkeys(rollout.criteria, int(state["looks_used"]))
            marks = state["last_look"]
            rollout._last_look = {c: _Marks(**marks) for c in rollout.criteria} if marks else {}
            last = rollout._history[-1] if rollout._history else None
            if last is not None and last.stage == rollout._index and last.look is not None:
                rollout._judged = {
                    "error_rate" if r.criterion == "error_rate" else "primary": r
                    for r in last.criteria
                }
        else:
            rollout._looks = {c: int(n) for c, n in state["looks"].items()}
            rollout._last_look = {c: _Marks(**m) for c, m in state["last_look"].items()}
            rollout._judged = {c: CriterionResult.from_dict(r) for c, r in state["judged"].items()}
        return rollout


# --------------------------------------------------------------------------------------------
# Stage tests
# --------------------------------------------------------------------------------------------


def _error_rate_test(
    cand: _Arm, base: _Arm, max_ratio: float, floor: float, alpha: float
) -> CriterionResult:
    from scipy import stats

    x_c, n_c, x_b, n_b = cand.errors, cand.requests, base.errors, base.requests
    half = alpha / 2
    # One-sided Clopper-Pearson upper bound of the baseline's error rate.
    upper = 1.0 if x_b >= n_b else float(stats.beta.ppf(1 - half, x_b + 1, n_b - x_b))
    limit = min(1.0, max(max_ratio * upper, floor))
    p = 1.0
    if x_c and limit < 1:
        p = float(stats.binomtest(x_c, n_c, limit, alternative="greater").pvalue)
    worse = p <= half
    rate_c = x_c / n_c
    rate_b = x_b / n_b
    figures = (
        f"error rate {rate_c:.2%} ({x_c} of {n_c} requests)"
        f" {'is significantly above' if worse else 'is not significantly above'} the limit "
        f"{limit:.2%} = max({max_ratio:g}x the baseline's upper bound {upper:.2%}, floor "
        f"{floor:.2%}) (baseline {x_b} of {n_b}): p={p:.2g} "
        f"{'<=' if worse else '>'} {half:.2g}"
    )
    return CriterionResult(
        criterion="error_rate",
        candidate=rate_c,
        baseline=rate_b,
        limit=limit,
        n_candidate=n_c,
        n_baseline=n_b,
        p_value=p,
        alpha=half,
        worse=worse,
        message=figures,
    )


def _primary_test(
    cand: _Arm, base: _Arm, task: Task, min_relative: float, alpha: float
) -> CriterionResult:
    from scipy import stats

    m = min_relative
    higher = task == "classification"
    # The margin scales the baseline, so scale its spread with it: mean and sd of m * x_b.
    scale = m if higher else 1 / m
    limit = base.mean * scale
    sd_limit = base.std * scale
    if cand.std == 0 and sd_limit == 0:
        worse_now = cand.mean < limit if higher else cand.mean > limit
        p = 0.0 if worse_now else 1.0
    else:
        res = stats.ttest_ind_from_stats(
            cand.mean,
            cand.std,
            cand.labelled,
            limit,
            sd_limit,
            base.labelled,
            equal_var=False,
            alternative="less" if higher else "greater",
        )
        p = float(res.pvalue)
    worse = p <= alpha
    name = "accuracy" if higher else "mae"
    verb = (
        ("is significantly below" if worse else "is not significantly below")
        if higher
        else ("is significantly above" if worse else "is not significantly above")
    )
    bound = (
        f"the floor {limit:.3f} = {m * 100:g}% of baseline {base.mean:.3f}"
        if higher
        else f"the limit {format_metric(limit)} = baseline {format_metric(base.mean)} / {m:g}"
    )
    message = (
        f"{name} {format_metric(cand.mean)} (n={cand.labelled}) {verb} {bound} "
        f"(n={base.labelled}): "
        f"p={p:.2g} {'<=' if worse else '>'} {alpha:.2g}"
    )
    return CriterionResult(
        criterion=name,
        candidate=cand.mean,
        baseline=base.mean,
        limit=limit,
        n_candidate=cand.labelled,
        n_baseline=base.labelled,
        p_value=p,
        alpha=alpha,
        worse=worse,
        message=message,
    )


# --------------------------------------------------------------------------------------------
# Replaying a holdout, for the gate
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageResult:
    """How one stage of a simulated rollout ended."""

    share: float
    status: StageStatus
    #: First line stands alone: what happened at which stage and why.
    message: str
    #: Holdout rows replayed during this stage, and the requests each arm got.
    rows: int = 0
    candidate_requests: int = 0
    baseline_requests: int = 0
    decision: StageDecision | None = None

    @property
    def label(self) -> str:
        """The stage as an id: ``"5%"``."""
        return _pct(self.share)

    @property
    def outcome(self) -> Literal["passed", "failed", "skipped"]:
        """What the gate item reports: advanced passes, rolled back fails; inconclusive (the
        data ran out before the stage could be judged) and not reached are skipped, saying
        why. A stage that could not be judged never passes, and it does not block either: on
        a holdout of fewer than about 2,000 labelled rows every healthy candidate was blocked
        at 5%, while the baseline items had judged its quality on every row."""
        if self.status == "advanced":
            return "passed"
        return "failed" if self.status == "rolled_back" else "skipped"


def simulate_rollout(
    candidate: object,
    baseline: object,
    rows: pd.DataFrame,
    y_true: ArrayLike,
    *,
    stages: Sequence[float] = DEFAULT_STAGES,
    key: str | KeyFunction | None = None,
    order_by: str | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    seed: int | str = 0,
    criteria: Sequence[Criterion] = CRITERIA,
    task: Task | None = None,
    min_relative: float = DEFAULT_MIN_RELATIVE,
    max_error_ratio: float = DEFAULT_MAX_ERROR_RATIO,
    error_floor: float = DEFAULT_ERROR_FLOOR,
    features: Sequence[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[StageResult]:
    """Replay a labelled holdout as traffic through a :class:`Rollout` and report each stage.

    Rows arrive in file order, or sorted by the ``order_by`` (timestamp) column. Each stage gets
    an equal slice of the holdout, like equal time per stage; a stage whose decision is HOLD
    (too few samples) is extended with just enough further rows for the missing samples and
    judged again. When the data runs out first the stage is "inconclusive" (skipped, never a
    pass); the first rollback stops the replay; later stages are "not reached". The routing hash
    is salted with ``seed``, so the same seed and data give the same decisions. ``features``
    names the columns the models get (default: all of them; leave out key/timestamp columns the
    models do not take).
    """
    import numpy as np
    import pandas as pd

    if not isinstance(rows, pd.DataFrame):
        raise DataError(f"rows must be a pandas DataFrame, got {type(rows).__name__}")
    y = np.asarray(y_true.to_numpy() if isinstance(y_true, pd.Series) else y_true)
    if y.ndim != 1 or y.shape[0] != len(rows):
        raise DataError(f"y_true has shape {y.shape} for {len(rows)} rows: one label per row")
    if order_by is not None:
        if order_by not in rows.columns:
            raise SchemaError(f"order_by column {order_by!r} is not in the rows")
        column = rows[order_by].reset_index(drop=True)
        try:
            order = column.sort_values(kind="stable", na_position="last").index.to_numpy()
        except TypeError as exc:
            raise DataError(f"order_by column {order_by!r} cannot be sorted: {exc}") from None
        rows, y = rows.iloc[order], y[order]
    task = check_task(task)
    if task is None:
        task = _infer_pair(adapt_model(baseline), adapt_model(candidate), y)
    rollout = Rollout(
        candidate,
        baseline,
        stages=stages,
        key=key,
        confidence=confidence,
        min_samples=min_samples,
        criteria=criteria,
        task=task,
        min_relative=min_relative,
        max_error_ratio=max_error_ratio,
        error_floor=error_floor,
        features=features,
        seed=seed,
        batch_size=batch_size,
    )
    n = len(rows)
    cursor = 0
    results: list[StageResult] = []

    def feed(count: int) -> None:
        nonlocal cursor
        stop = min(n, cursor + count)
        if stop > cursor:
            chunk = rows.iloc[cursor:stop]
            served = rollout.serve(chunk)
            rollout.observe(chunk, y[cursor:stop], served=served)
        cursor = stop

    for i, share in enumerate(rollout.stages):
        start, before = cursor, rollout.counters()
        # The rows left are shared equally by the stages left, so a stage that had to be
        # extended does not starve the ones after it.
        feed(math.ceil((n - cursor) / (len(rollout.stages) - i)))
        decision = rollout.evaluate()
        while decision.action == HOLD and cursor < n:
            needed = _rows_needed(rollout, share)
            if needed is None:
                break
            feed(needed)
            decision = rollout.evaluate()
        after = rollout.counters()
        sizes = {
            "rows": cursor - start,
            "candidate_requests": after["candidate"].requests - before["candidate"].requests,
            "baseline_requests": after["baseline"].requests - before["baseline"].requests,
        }
        if decision.action == ADVANCE:
            results.append(
                StageResult(share, "advanced", decision.reason, **sizes, decision=decision)
            )
            rollout.advance()
            continue
        if decision.action == ROLLBACK:
            results.append(
                StageResult(share, "rolled_back", decision.reason, **sizes, decision=decision)
            )
            why = f"rolled back at {_pct(share)}"
        else:
            detail = decision.reason.split(": ", 1)[-1]
            hint = math.ceil(min_samples / share)
            message = (
                f"inconclusive at {_pct(share)}: data ran out after {cursor - start} rows at this "
                f"stage ({n} rows in all); {detail}. A {_pct(share)} stage needs about {hint} "
                "rows: use a larger holdout, a lower min_samples or a larger first stage"
                if _rows_needed(rollout, share) is not None
                else f"inconclusive at {_pct(share)}: {detail}, and the baseline gets no traffic "
                "at 100%: start with a smaller stage"
            )
            results.append(StageResult(share, "inconclusive", message, **sizes, decision=decision))
            why = f"{_pct(share)} was inconclusive (data ran out)"
        for later in rollout.stages[i + 1 :]:
            results.append(StageResult(later, "not_reached", f"not reached: {why}"))
        break
    return results


def rollout_line(results: Sequence[StageResult]) -> str:
    """The simulated rollout on one line for the terminal: ``5% ok > 25% ROLLED BACK > ...``."""
    marks = {
        "advanced": "ok",
        "rolled_back": "ROLLED BACK",
        "inconclusive": "INCONCLUSIVE",
        "not_reached": "not reached",
    }
    return " > ".join(f"{r.label} {marks[r.status]}" for r in results)


def _rows_needed(rollout: Rollout, share: float) -> int | None:
    """Rows that should bring the current stage its missing samples (None: they never will)."""
    cand, base = rollout._arms["candidate"], rollout._arms["baseline"]
    start = rollout._stage_start
    need = rollout.min_samples
    c_have = min(
        cand.requests - start.requests["candidate"]
        if c == "error_rate"
        else cand.labelled - start.labelled["candidate"]
        for c in rollout.criteria
    )
    b_have = min(base.requests if c == "error_rate" else base.labelled for c in rollout.criteria)
    rows = 1
    if c_have < need:
        rows = max(rows, math.ceil((need - c_have) / share))
    if b_have < need:
        if share >= 1:
            return None  # the baseline gets no traffic at 100%
        rows = max(rows, math.ceil((need - b_have) / (1 - share)))
    return rows


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _check_stages(stages: Sequence[float]) -> tuple[float, ...]:
    try:
        values = tuple(float(s) for s in stages)
    except (TypeError, ValueError):
        raise ConfigError(f"stages must be numbers in (0, 1], got {stages!r}") from None
    if not values:
        raise ConfigError("stages must name at least one share of the traffic")
    if any(not 0 < s <= 1 for s in values):
        raise ConfigError(f"stages must be shares in (0, 1], got {list(values)}")
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise ConfigError(f"stages must increase, got {list(values)}")
    return values


def _infer_pair(first: ModelAdapter, second: ModelAdapter, y: ArrayLike | None = None) -> Task:
    try:
        return infer_task(first, y)
    except ConfigError:
        return infer_task(second, y)


def _assemble(n: int, pieces: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    import numpy as np

    filled = [(p, v) for p, v in pieces if v.size]
    if not filled:
        return np.full(n, np.nan)
    merged = np.concatenate([v for _, v in filled])
    positions = np.concatenate([p for p, _ in filled])
    if positions.shape[0] == n:
        out = np.empty(n, dtype=merged.dtype)
    elif merged.dtype.kind in "biuf":
        out = np.full(n, np.nan)
    else:
        out = np.full(n, None, dtype=object)
    out[positions] = merged
    return out


def _short(result: CriterionResult) -> str:
    if result.criterion == "error_rate":
        figures = f"error rate {result.candidate:.2%} vs limit {result.limit:.2%}"
    else:
        bound = "floor" if result.criterion == "accuracy" else "limit"
        figures = (
            f"{result.criterion} {format_metric(result.candidate)} "
            f"vs {bound} {format_metric(result.limit)}"
        )
    return f"{figures} (n={result.n_candidate}/{result.n_baseline}, p={result.p_value:.2g})"


def _pct(share: float) -> str:
    return f"{share * 100:g}%"
