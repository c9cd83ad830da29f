"""Small models, healthy and faulty, that the tests pickle and gate.

Each faulty model differs from its healthy base in one way, named in its docstring, so a test can
show which check catches it. They are scikit-learn estimators (BaseEstimator plus a mixin), so
``is_classifier``/``is_regressor`` recognise them like any real model.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

FEATURES = ("a", "b", "c", "d")


def make_frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """Features a-d, the class label ``label`` (a + b > 0) and the regression target ``y``."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.standard_normal((n, 4)), columns=list(FEATURES))
    frame.loc[0, ["a", "b"]] = [0.5, 0.3]  # row 0 is an ordinary row for every model here
    frame["label"] = (frame.a + frame.b > 0).astype(int)
    frame["y"] = 2 * frame.a + frame.b
    return frame


class _Base(BaseEstimator):
    """Reads columns by name, refuses NaN and strings with a clear ValueError, like sklearn."""

    def __init__(self) -> None:
        self.feature_names_in_ = np.array(FEATURES, dtype=object)
        self.n_features_in_ = len(FEATURES)

    def _matrix(self, X: Any) -> np.ndarray:
        if isinstance(X, pd.DataFrame):
            missing = [f for f in FEATURES if f not in X.columns]
            if missing:
                raise KeyError(f"missing columns {missing}")
            X = X[list(FEATURES)]
        values = np.asarray(X, dtype=float)  # strings raise "could not convert string to float"
        if np.isnan(values).any():
            raise ValueError("Input X contains NaN.")
        return values

    def _score(self, X: Any) -> np.ndarray:
        m = self._matrix(X)
        return np.asarray(m[:, 0] + m[:, 1])


class ThresholdClassifier(ClassifierMixin, _Base):
    """Healthy classifier: label 1 when a + b > 0, probability from a logistic of a + b."""

    def __init__(self) -> None:
        super().__init__()
        self.classes_ = np.array([0, 1])

    def predict_proba(self, X: Any) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-self._score(X)))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        return (self._score(X) > 0).astype(int)


class LabelsOnlyClassifier(ClassifierMixin, _Base):
    """Healthy classifier without probabilities (as an SVC without probability=True): the
    labels of ThresholdClassifier, and no predict_proba."""

    def __init__(self) -> None:
        super().__init__()
        self.classes_ = np.array([0, 1])

    def predict(self, X: Any) -> np.ndarray:
        return (self._score(X) > 0).astype(int)


class LinearRegressor(RegressorMixin, _Base):
    """Healthy regressor: 2a + b, exactly the ``y`` of make_frame."""

    def predict(self, X: Any) -> np.ndarray:
        m = self._matrix(X)
        return np.asarray(2 * m[:, 0] + m[:, 1])


# -- output faults --------------------------------------------------------------------------


class NaNProbabilities(ThresholdClassifier):
    """NaN probabilities on rows where a < -1.5."""

    def predict_proba(self, X: Any) -> np.ndarray:
        proba = super().predict_proba(X)
        proba[self._matrix(X)[:, 0] < -1.5] = np.nan
        return proba


class NaNRegressor(LinearRegressor):
    """NaN output on rows where a < -1.5."""

    def predict(self, X: Any) -> np.ndarray:
        out = super().predict(X)
        out[self._matrix(X)[:, 0] < -1.5] = np.nan
        return out


class InfRegressor(LinearRegressor):
    """+Inf output on rows where a < -1.5."""

    def predict(self, X: Any) -> np.ndarray:
        out = super().predict(X)
        out[self._matrix(X)[:, 0] < -1.5] = np.inf
        return out


class ProbabilityAboveOne(ThresholdClassifier):
    """Probabilities [-0.2, 1.2] on rows where a > 1.5 (they still sum to 1)."""

    def predict_proba(self, X: Any) -> np.ndarray:
        proba = super().predict_proba(X)
        proba[self._matrix(X)[:, 0] > 1.5] = [-0.2, 1.2]
        return proba


class ProbabilitiesNotSumming(ThresholdClassifier):
    """Both class probabilities equal p, so rows sum to 2p."""

    def predict_proba(self, X: Any) -> np.ndarray:
        p = super().predict_proba(X)[:, 1]
        return np.column_stack([p, p])


class UnknownLabel(ThresholdClassifier):
    """Predicts label 7, not among classes_, on rows where a > 1.5."""

    def predict(self, X: Any) -> np.ndarray:
        out = super().predict(X)
        out[self._matrix(X)[:, 0] > 1.5] = 7
        return out


class OutOfRangeRegressor(LinearRegressor):
    """Outputs 1000x too large on rows where a > 1.5."""

    def predict(self, X: Any) -> np.ndarray:
        out = super().predict(X)
        big = self._matrix(X)[:, 0] > 1.5
        out[big] = out[big] * 1000
        return out


class StringRegressor(LinearRegressor):
    """Returns its numbers as strings."""

    def predict(self, X: Any) -> np.ndarray:
        return np.array([f"{v:.3f}" for v in super().predict(X)])


class WrongLength(ThresholdClassifier):
    """Drops the last output of every batch of more than one row."""

    def predict(self, X: Any) -> np.ndarray:
        out = super().predict(X)
        return out[:-1] if len(out) > 1 else out


class WrongLengthProbabilities(WrongLength):
    """Drops the last label and the last row of probabilities of every batch of more than one
    row (a model that skips rows it cannot score)."""

    def predict_proba(self, X: Any) -> np.ndarray:
        out = super().predict_proba(X)
        return out[:-1] if len(out) > 1 else out


class RaisesOnPredict(ThresholdClassifier):
    """predict() always raises."""

    def predict(self, X: Any) -> np.ndarray:
        raise RuntimeError("model exploded")


# -- behaviour faults -----------------------------------------------------------------------


class BatchDiffersFromSingle(ThresholdClassifier):
    """Shifts the score of batches (not of single rows), so they disagree near the threshold."""

    def predict(self, X: Any) -> np.ndarray:
        s = self._score(X)
        return ((s + 1.0 if len(s) > 1 else s) > 0).astype(int)


class Nondeterministic(ThresholdClassifier):
    """Flips a random 10% of the labels of every call."""

    def predict(self, X: Any) -> np.ndarray:
        out = super().predict(X)
        flip = np.random.default_rng().random(len(out)) < 0.1
        return np.where(flip, 1 - out, out)


class DegradesAfterUse(ThresholdClassifier):
    """Answers right for its first 600 calls, then flips every label and swaps its
    probability columns: state kept between calls (a cache that corrupts, a counter)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def _worn(self) -> bool:
        self.calls += 1
        return self.calls > 600

    def predict(self, X: Any) -> np.ndarray:
        out = super().predict(X)
        return 1 - out if self._worn() else out

    def predict_proba(self, X: Any) -> np.ndarray:
        out = super().predict_proba(X)
        return out[:, ::-1] if self._worn() else out


class _SomethingEachCall(ThresholdClassifier):
    """Answers as ``ThresholdClassifier`` does, and does ``_each_call`` first on every call."""

    def _each_call(self, X: Any) -> None:
        raise NotImplementedError

    def predict(self, X: Any) -> np.ndarray:
        self._each_call(X)
        return super().predict(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        self._each_call(X)
        return super().predict_proba(X)


class KeepsEveryCall(_SomethingEachCall):
    """Keeps 256 KiB for every call it answers (the inputs it saw, a history without a bound):
    its serving process runs out of memory, while every answer is right."""

    def __init__(self) -> None:
        super().__init__()
        self.history: list[np.ndarray] = []

    def _each_call(self, X: Any) -> None:
        self.history.append(np.ones(256 * 1024 // 8))


class KeepsTheRequestOnItself(LinearRegressor):
    """Keeps the request it is answering on itself and works on it in steps (``self.frame =
    X``, then methods that read and replace ``self.frame``), as hand-written feature code
    often does: right one call at a time, and another request's answer when two calls overlap,
    as they do in a threaded server."""

    def predict(self, X: Any) -> np.ndarray:
        self.frame = X
        self._select()
        self._to_float()
        return self._answer()

    def _select(self) -> None:
        self.frame = (
            self.frame[list(FEATURES)] if isinstance(self.frame, pd.DataFrame) else self.frame
        )

    def _to_float(self) -> None:
        self.frame = pd.DataFrame(self._matrix(self.frame), columns=list(FEATURES))

    def _answer(self) -> np.ndarray:
        m = self.frame.to_numpy()
        return np.asarray(2 * m[:, 0] + m[:, 1])


class CachesEachNewInput(_SomethingEachCall):
    """Healthy: keeps 1 MiB for each input it has not seen before (a cache of features looked
    up per input, bounded by the inputs there are), so its memory grows while new inputs come
    and stops when they are all cached."""

    def __init__(self) -> None:
        super().__init__()
        self.cache: dict[bytes, np.ndarray] = {}

    def _each_call(self, X: Any) -> None:
        key = self._matrix(X).tobytes()
        if key not in self.cache:
            self.cache[key] = np.ones(2**20 // 8)


class MakesCyclicGarbage(_SomethingEachCall):
    """Healthy: leaves 1 MiB in a reference cycle on every call, garbage the collector frees
    (objects that refer to each other, as pandas and many wrappers make)."""

    def _each_call(self, X: Any) -> None:
        litter: dict[str, Any] = {"block": np.ones(2**20 // 8)}
        litter["self"] = litter


class SlowSingleRow(ThresholdClassifier):
    """Sleeps 150 ms on every single-row call."""

    def predict(self, X: Any) -> np.ndarray:
        if len(X) == 1:
            time.sleep(0.15)
        return super().predict(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        if len(X) == 1:
            time.sleep(0.15)
        return super().predict_proba(X)


class ObscureCrashOnNaN(ThresholdClassifier):
    """Crashes with ZeroDivisionError instead of a clear error when a value is missing."""

    def _matrix(self, X: Any) -> np.ndarray:
        values = np.asarray(X[list(FEATURES)] if isinstance(X, pd.DataFrame) else X, dtype=float)
        if np.isnan(values).any():
            raise ZeroDivisionError("float division by zero")
        return values


class IgnoresColumnNames(ThresholdClassifier):
    """Reads columns by position although it was fitted with names."""

    def _matrix(self, X: Any) -> np.ndarray:
        values = np.asarray(X, dtype=float)
        if np.isnan(values).any():
            raise ValueError("Input X contains NaN.")
        return values


class AcceptsStrings(ThresholdClassifier):
    """Turns anything that is not a number into 0 and predicts anyway."""

    def _matrix(self, X: Any) -> np.ndarray:
        frame = pd.DataFrame(X)[list(FEATURES)].apply(pd.to_numeric, errors="coerce")
        return frame.fillna(0.0).to_numpy(dtype=float)


class EmptyBatchCrash(ThresholdClassifier):
    """Looks at the first row of every batch, so an empty batch raises IndexError."""

    def predict(self, X: Any) -> np.ndarray:
        _ = np.asarray(X)[0]
        return super().predict(X)


class CrashesOnZero(ThresholdClassifier):
    """Crashes with TypeError on an exact 0.0, a value the holdout never holds."""

    def _matrix(self, X: Any) -> np.ndarray:
        values = super()._matrix(X)
        if (values == 0.0).any():
            raise TypeError("unsupported operand type(s) for /: 'NoneType' and 'float'")
        return values


class HugeAtZeroRegressor(LinearRegressor):
    """Answers 1e6 where feature a is exactly 0.0, a value inside a's observed range (make_frame
    draws it from a standard normal) that no data row holds: only the a=zero edge row shows it."""

    def predict(self, X: Any) -> np.ndarray:
        out = super().predict(X)
        out[self._matrix(X)[:, 0] == 0.0] = 1e6
        return out


class LookupBeyondTraining(ThresholdClassifier):
    """Scores feature a through a table fitted on its training range (|a| <= 4.5, past any value
    the holdout of make_frame holds): a value beyond it is an IndexError, as production's first
    record-breaking input would be. Only an edge row past the holdout's maximum reaches it."""

    def _matrix(self, X: Any) -> np.ndarray:
        values = super()._matrix(X)
        beyond = np.abs(values[:, 0]) > 4.5
        if beyond.any():
            index = int(np.abs(values[beyond, 0]).max() * 2)
            raise IndexError(f"index {index} is out of bounds for axis 0 with size 10")
        return values


class NaNBeyondTraining(LinearRegressor):
    """Answers NaN where feature a lies beyond its training range (|a| > 4.5), as an
    interpolating lookup with no rule for the ends does."""

    def predict(self, X: Any) -> np.ndarray:
        out = super().predict(X)
        out[np.abs(self._matrix(X)[:, 0]) > 4.5] = np.nan
        return out


class ShiftsMidSizedBatches(LinearRegressor):
    """Answers batches of 22 to 150 rows in chunks of 21 joined with an off-by-one: from row 21
    on, each row gets the answer of the row before. Single rows, small batches and the whole
    data (200 rows) are right."""

    def predict(self, X: Any) -> np.ndarray:
        out = super().predict(X)
        if 22 <= len(out) <= 150:
            out[21:] = out[20:-1].copy()
        return out


class RecordsBatches(LinearRegressor):
    """Healthy regressor that imputes a missing value with 0 and appends each call's row count
    to the file ``log`` (run it with ``--deploy-gate-isolation none`` to read the file)."""

    def __init__(self, log: str = "") -> None:
        super().__init__()
        self.log = log

    def _matrix(self, X: Any) -> np.ndarray:
        return np.nan_to_num(super()._matrix(pd.DataFrame(X).fillna(0.0)))

    def predict(self, X: Any) -> np.ndarray:
        with open(self.log, "a", encoding="utf-8") as calls:
            calls.write(f"{len(X)}\n")
        return super().predict(X)


class RefusesNaNRecordsBatches(LinearRegressor):
    """Healthy regressor that refuses a missing value with a clear ValueError (as
    scikit-learn's do) and appends each call's row count to the file ``log``."""

    def __init__(self, log: str = "") -> None:
        super().__init__()
        self.log = log

    def predict(self, X: Any) -> np.ndarray:
        with open(self.log, "a", encoding="utf-8") as calls:
            calls.write(f"{len(X)}\n")
        return super().predict(X)


class CrashesOnNaNInC(LinearRegressor):
    """Imputes a missing a, b or d with 0 but crashes with RuntimeError on a missing c."""

    def _matrix(self, X: Any) -> np.ndarray:
        frame = pd.DataFrame(X)
        if frame["c"].isna().any():
            raise RuntimeError("imputer table has no entry for c")
        return super()._matrix(frame.fillna(0.0))


class NotAModel:
    """Has no predict() at all."""

    weights = (1.0, 2.0)


# -- serving wrappers, for conftest.py overrides of deployment_factory ------------------------


class ServingWrapper:
    """A project's own healthy serving wrapper, written without the gate's classes."""

    def __init__(self, path: Any) -> None:
        from pathlib import Path

        self.path = Path(path)
        self.model: Any = None
        self.calls = 0

    def load_model(self) -> None:
        import joblib

        if not self.path.is_file():
            raise FileNotFoundError(f"no model file at {self.path}")
        self.model = joblib.load(self.path)

    @property
    def model_version(self) -> str:
        return f"wrapper-{self.path.name}"

    def get_model_metadata(self) -> dict[str, Any]:
        return {"path": str(self.path)}

    def get_latency_stats(self) -> dict[str, Any]:
        return {"calls": self.calls}

    def _frame(self, rows: Any) -> pd.DataFrame:
        if self.model is None:
            raise ValueError("model not loaded: call load_model() first")
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
        unknown = [c for c in frame.columns if c not in FEATURES]
        if unknown:
            raise KeyError(f"unknown features: {unknown}")
        missing = [f for f in FEATURES if f not in frame.columns]
        if missing:
            raise KeyError(f"missing features: {missing}")
        return frame

    def batch_predict(self, rows: Any) -> np.ndarray:
        frame = self._frame(rows)
        self.calls += 1
        return np.asarray(self.model.predict(frame))

    def batch_predict_proba(self, rows: Any) -> np.ndarray:
        frame = self._frame(rows)
        return np.asarray(self.model.predict_proba(frame))

    def predict_single(self, features: dict[str, Any]) -> Any:
        return self.batch_predict([features])[0]


class DropsUnknownFeatures(ServingWrapper):
    """Silently drops features it does not know."""

    def _frame(self, rows: Any) -> pd.DataFrame:
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
        return super()._frame(frame[[c for c in frame.columns if c in FEATURES]])


class FillsMissingFeatures(ServingWrapper):
    """Silently fills a missing feature with 0."""

    def _frame(self, rows: Any) -> pd.DataFrame:
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
        missing = {f: 0.0 for f in FEATURES if f not in frame.columns}
        return super()._frame(frame.assign(**missing))


class QuietOnMissingFile(ServingWrapper):
    """Logs nothing and raises nothing when the model file is missing."""

    def load_model(self) -> None:
        if self.path.is_file():
            super().load_model()


class LoadsOnFirstCall(ServingWrapper):
    """Loads the model on the first prediction instead of refusing to predict."""

    def _frame(self, rows: Any) -> pd.DataFrame:
        if self.model is None:
            self.load_model()
        return super()._frame(rows)


class MutatesInput(ThresholdClassifier):
    """Writes its scaled features back into the caller's DataFrame."""

    def predict(self, X: Any) -> np.ndarray:
        if isinstance(X, pd.DataFrame):
            X["a"] = X["a"] * 2
        return super().predict(X)


class ProbaMutatesInput(ThresholdClassifier):
    """predict() leaves the caller's frame alone; predict_proba() clips column a in place."""

    def predict_proba(self, X: Any) -> np.ndarray:
        if isinstance(X, pd.DataFrame):
            X["a"] = X["a"].clip(-0.5, 0.5)
        return super().predict_proba(X)


class FillsInPlace(ThresholdClassifier):
    """Fills missing values with 0 in the caller's frame (fillna(inplace=True))."""

    def predict(self, X: Any) -> np.ndarray:
        if isinstance(X, pd.DataFrame):
            X.fillna(0.0, inplace=True)
        return super().predict(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        if isinstance(X, pd.DataFrame):
            X = X.fillna(0.0)
        return super().predict_proba(X)


class SortsInPlace(ThresholdClassifier):
    """Sorts the caller's frame by a in place, then answers in the order it was given."""

    def predict(self, X: Any) -> np.ndarray:
        if isinstance(X, pd.DataFrame):
            order = X.index.copy()
            X.sort_values("a", inplace=True)
            return super().predict(X.loc[order])
        return super().predict(X)


class ScalarForOneRow(ThresholdClassifier):
    """Answers a batch with one label per row, but a single row with a bare 0-d scalar."""

    def predict(self, X: Any) -> Any:
        labels = super().predict(X)
        return np.asarray(labels[0]) if len(labels) == 1 else labels


class Hangs(ThresholdClassifier):
    """Never returns from predict() on a batch of more than one row."""

    def predict(self, X: Any) -> np.ndarray:
        while len(X) > 1:
            time.sleep(0.05)
        return super().predict(X)


class SlowOnBatches(ThresholdClassifier):
    """Sleeps 30 ms on every batch of more than one row; single rows are fast."""

    def predict(self, X: Any) -> np.ndarray:
        if len(X) > 1:
            time.sleep(0.03)
        return super().predict(X)


class WorseClassifier(ThresholdClassifier):
    """Flips a fixed 15% of rows (chosen by a hash of feature c), so it is clearly worse."""

    def predict(self, X: object) -> np.ndarray:
        out = super().predict(X)
        flip = (np.abs(self._matrix(X)[:, 2]) * 1000).astype(int) % 100 < 15
        return np.where(flip, 1 - out, out)


# -- issue 13: positional models, float32 outputs, strings, scores on another scale ----------


class PositionalClassifier(IgnoresColumnNames):
    """Healthy, positional by contract: fitted on an array, it claims no column names and reads
    columns by position (like an ONNX model with one tensor input)."""

    def __init__(self) -> None:
        super().__init__()
        del self.feature_names_in_


class IgnoresNamesWrapper(ServingWrapper):
    """A serving wrapper that accepts named columns (it refuses unknown and missing names) and
    then hands the model the values in the order they came, names dropped."""

    def batch_predict(self, rows: Any) -> np.ndarray:
        frame = self._frame(rows)
        self.calls += 1
        return np.asarray(self.model.predict(frame.to_numpy()))

    def batch_predict_proba(self, rows: Any) -> np.ndarray:
        return np.asarray(self.model.predict_proba(self._frame(rows).to_numpy()))


class Float32Regressor(LinearRegressor):
    """Healthy float32 regressor: its batches are summed in another order than single rows, so
    they differ from them by one float32 rounding step (as ONNX and XGBoost runtimes do)."""

    def predict(self, X: Any) -> np.ndarray:
        out = super().predict(X).astype(np.float32)
        return np.nextafter(out, np.float32(np.inf)) if len(out) > 1 else out


class Float32Widened(Float32Regressor):
    """Healthy: computes in float32 as ``Float32Regressor`` does (a batch one float32 rounding
    step off its rows alone) and answers float64, as a network run in float32 behind a wrapper
    that returns float64 or Python floats does."""

    def predict(self, X: Any) -> np.ndarray:
        return super().predict(X).astype(np.float64)


class SparseColumnRegressor(LinearRegressor):
    """Healthy: answers its outputs as a scipy sparse column, as estimators fitted on sparse
    targets do."""

    def predict(self, X: Any) -> Any:
        from scipy import sparse

        return sparse.csr_matrix(super().predict(X).reshape(-1, 1))


class DictLabels(ThresholdClassifier):
    """Answers one ``{"label", "score"}`` mapping per row instead of labels, as a serving
    wrapper's JSON does."""

    def predict(self, X: Any) -> Any:
        score = self._score(X)
        return [{"label": int(s > 0), "score": float(s)} for s in score]


class Float32BatchDrift(LinearRegressor):
    """float32 outputs whose batches are 0.1% off the single-row outputs: far beyond rounding."""

    def predict(self, X: Any) -> np.ndarray:
        out = super().predict(X).astype(np.float32)
        return out * np.float32(1.001) if len(out) > 1 else out


class Float32Nondeterministic(LinearRegressor):
    """float32 outputs with 0.1% of random noise on every call."""

    def predict(self, X: Any) -> np.ndarray:
        out = super().predict(X)
        noise = np.random.default_rng().uniform(-1e-3, 1e-3, len(out))
        return (out * (1 + noise)).astype(np.float32)


class ObjectStringRegressor(LinearRegressor):
    """Returns its numbers as Python strings in an object array (a pandas Series of str)."""

    def predict(self, X: Any) -> np.ndarray:
        return np.array([f"{v:.3f}" for v in super().predict(X)], dtype=object)


class TimidClassifier(ThresholdClassifier):
    """The same labels as ThresholdClassifier, with probabilities squeezed towards 0.5: a model
    of another family that scores on another scale (and is less sure, so its log loss is worse)."""

    def predict_proba(self, X: Any) -> np.ndarray:
        p = 0.5 + (super().predict_proba(X)[:, 1] - 0.5) * 0.2
        return np.column_stack([1.0 - p, p])


# -- the faults and the checks made to catch them -------------------------------------------


#: (model, target column, the checks that must fail (the one the fault is made for first),
#:  a phrase that check's message holds)
class InvertedClassifier(ThresholdClassifier):
    """Labels and probabilities both inverted, consistently: each output agrees with the other
    and every output check passes, but the model predicts the opposite of the truth."""

    def predict(self, X: Any) -> np.ndarray:
        return 1 - super().predict(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        return super().predict_proba(X)[:, ::-1]


class NegatedRegressor(LinearRegressor):
    """-(2a + b): within the target's range, finite, deterministic, and wrong in sign."""

    def predict(self, X: Any) -> np.ndarray:
        return -super().predict(X)


CITY_OFFSETS = {"Oslo": 0.5, "Rome": -0.5, "Lima": 0.0}


class CityLookupClassifier(ThresholdClassifier):
    """Adds an offset per ``city`` looked up in a dict: a KeyError on a city it never saw."""

    def __init__(self) -> None:
        super().__init__()
        self.feature_names_in_ = np.array([*FEATURES, "city"], dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)

    def _score(self, X: Any) -> np.ndarray:
        offsets = np.array([CITY_OFFSETS[city] for city in X["city"]], dtype=float)
        return super()._score(X) + offsets


class CityDefaultClassifier(CityLookupClassifier):
    """The same, with no offset for a city it never saw: healthy."""

    def _score(self, X: Any) -> np.ndarray:
        offsets = np.array([CITY_OFFSETS.get(city, 0.0) for city in X["city"]], dtype=float)
        return ThresholdClassifier._score(self, X) + offsets


def city_frame(n: int = 200) -> pd.DataFrame:
    """make_frame with a ``city`` column of the three known cities."""
    frame = make_frame(n)
    frame.insert(4, "city", np.resize(list(CITY_OFFSETS), n))
    return frame


class PredictsAgainstProbabilities(ThresholdClassifier):
    """predict() is the opposite of what predict_proba() says."""

    def predict(self, X: Any) -> np.ndarray:
        return 1 - super().predict(X)


class SwappedProbabilityColumns(ThresholdClassifier):
    """Right labels, probability columns in the other order than classes_."""

    def predict_proba(self, X: Any) -> np.ndarray:
        return super().predict_proba(X)[:, ::-1]


class ProbabilitiesScaledOverBatch(ThresholdClassifier):
    """Standardises the score over the batch before the logistic: a row's probability depends
    on the other rows of its batch (a single row gets 0.5)."""

    def predict_proba(self, X: Any) -> np.ndarray:
        s = self._score(X)
        z = (s - s.mean()) / (s.std() or 1.0)
        p = 1.0 / (1.0 + np.exp(-z))
        return np.column_stack([1.0 - p, p])


class NoisyProbabilities(ThresholdClassifier):
    """Random noise on the probabilities of every call, never across 0.5 (labels stable)."""

    def predict_proba(self, X: Any) -> np.ndarray:
        p = super().predict_proba(X)[:, 1]
        noise = np.random.default_rng().uniform(-0.5, 0.5, len(p)) * np.abs(p - 0.5)
        q = np.clip(p + noise, 0.0, 1.0)
        return np.column_stack([1.0 - q, q])


class ReversesLargeBatches(ThresholdClassifier):
    """Batches of more than 64 rows come back in chunks of 64, the chunks in reverse order."""

    def _chunked(self, out: np.ndarray) -> np.ndarray:
        if len(out) <= 64:
            return out
        chunks = [out[i : i + 64] for i in range(0, len(out), 64)]
        return np.concatenate(chunks[::-1])

    def predict(self, X: Any) -> np.ndarray:
        return self._chunked(super().predict(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        return self._chunked(super().predict_proba(X))


class ShiftsMidSizeBatches(ThresholdClassifier):
    """Batches of 2 to 63 rows come back shifted by one row (a padding bug)."""

    def predict(self, X: Any) -> np.ndarray:
        out = super().predict(X)
        return np.roll(out, 1) if 1 < len(out) < 64 else out


class SingleRowFlipsSome(ThresholdClassifier):
    """The single-row path flips the label of rows with d > 2 (about 4% of rows)."""

    def predict(self, X: Any) -> np.ndarray:
        out = super().predict(X)
        if len(out) == 1 and float(self._matrix(X)[0, 3]) > 2:
            return 1 - out
        return out


class HashSeededRegressor(LinearRegressor):
    """Adds a term bucketed with Python's ``hash()`` of text, whose seed each process draws
    afresh: the same in every call of one process, another in the next replica."""

    def predict(self, X: Any) -> np.ndarray:
        return super().predict(X) + 0.01 * (hash("bucket") % 97)


class FillsMissingB(ThresholdClassifier):
    """Healthy: a missing b is read as 0.25, the median it was trained with."""

    single_row_fill = 0.25

    def _matrix(self, X: Any) -> np.ndarray:
        frame = X[list(FEATURES)] if isinstance(X, pd.DataFrame) else None
        if frame is None:
            frame = pd.DataFrame(np.asarray(X, dtype=float), columns=list(FEATURES))
        fill = self.single_row_fill if len(frame) == 1 else 0.25
        return super()._matrix(frame.assign(b=frame["b"].fillna(fill)))


class SingleRowFillsMissingWithZero(FillsMissingB):
    """One-row requests read a missing b as 0 where batches use the median 0.25: their
    probabilities move on the 2% of rows without b, and hardly a label flips."""

    single_row_fill = 0.0


def frame_missing_b(n: int = 600) -> pd.DataFrame:
    """``make_frame`` with b missing on 2% of rows, none of them among the 120 rows spread
    evenly that smoke[batch-consistency] asks one by one, nor near the label's boundary."""
    frame = make_frame(n)
    spread = set(np.linspace(0, n - 1, 115).round().astype(int)) | set(range(5))
    # Rows whose label no fill of b flips: the fault shows in their probabilities alone.
    others = [i for i in range(n) if i not in spread and abs(frame.a[i]) > 0.5]
    frame.loc[others[7 :: len(others) // 12][:12], "b"] = np.nan
    return frame


class SingleRowAsArray(ThresholdClassifier):
    """One row gives a 1x1 array where a batch gives one label per row."""

    def predict(self, X: Any) -> np.ndarray:
        out = super().predict(X)
        return out.reshape(1, 1) if len(out) == 1 else out


class OffsetRegressor(LinearRegressor):
    """Healthy: 2a + b + 0.05, close to LinearRegressor and never equal to it."""

    def predict(self, X: Any) -> np.ndarray:
        return super().predict(X) + 0.05


class KelvinRegressor(LinearRegressor):
    """2a + b + 273.15: right in every way but its unit (degrees served as kelvin)."""

    def predict(self, X: Any) -> np.ndarray:
        return super().predict(X) + 273.15


class ConstantRegressor(LinearRegressor):
    """Validates its input like sklearn, then answers 3.0 for every row (a preprocessing step
    that discards the features, a model that learned nothing)."""

    def predict(self, X: Any) -> np.ndarray:
        return np.full(len(self._matrix(X)), 3.0)


class ConstantProbabilities(ThresholdClassifier):
    """Validates its input, then gives every row the class shares [0.7, 0.3] and label 0."""

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.tile([0.7, 0.3], (len(self._matrix(X)), 1))

    def predict(self, X: Any) -> np.ndarray:
        return np.zeros(len(self._matrix(X)), dtype=int)


class ExtraProbabilityColumn(ThresholdClassifier):
    """Probabilities with a third, empty column for a model of two classes (rows sum to 1)."""

    def predict_proba(self, X: Any) -> np.ndarray:
        proba = super().predict_proba(X)
        return np.column_stack([proba, np.zeros(len(proba))])


class OneHotLabels(ThresholdClassifier):
    """``predict`` returns a one-hot (n, 2) matrix instead of one label per row."""

    def predict(self, X: Any) -> np.ndarray:
        labels = super().predict(X)
        return np.column_stack([1 - labels, labels])


class TwoColumnRegressor(LinearRegressor):
    """Two values per row (its prediction and a constant) for a single label column."""

    def predict(self, X: Any) -> np.ndarray:
        out = super().predict(X)
        return np.column_stack([out, np.full(len(out), 0.5)])


class BooleanRegressor(LinearRegressor):
    """A regressor thresholding its own output: ``predict() > 0`` as booleans."""

    def predict(self, X: Any) -> np.ndarray:
        return super().predict(X) > 0


class ComplexRegressor(LinearRegressor):
    """Complex outputs (a zero imaginary part) from a regressor."""

    def predict(self, X: Any) -> np.ndarray:
        return super().predict(X).astype(np.complex128)


class LongDoubleRegressor(LinearRegressor):
    """Healthy values computed in numpy's long double: the scalar of one row must cross from
    the model worker like any number (it crashed the worker's encoder)."""

    def predict(self, X: Any) -> np.ndarray:
        return super().predict(X).astype(np.longdouble)


class DecimalRegressor(LinearRegressor):
    """Its values as ``decimal.Decimal`` objects: numbers to Python, not to a JSON client."""

    def predict(self, X: Any) -> np.ndarray:
        import decimal

        return np.array([decimal.Decimal(str(x)) for x in super().predict(X)], dtype=object)


class FractionRegressor(LinearRegressor):
    """Its values as ``fractions.Fraction`` objects, which have no data-only encoding: the
    model worker cannot send them to the gate."""

    def predict(self, X: Any) -> np.ndarray:
        import fractions

        return np.array([fractions.Fraction(x) for x in super().predict(X)], dtype=object)


class CutsLargeBatches(ThresholdClassifier):
    """Answers the first 5,000 rows of a batch and drops the rest, without a word (a serving
    max-batch setting applied silently)."""

    def predict(self, X: Any) -> np.ndarray:
        return super().predict(X.iloc[:5000])

    def predict_proba(self, X: Any) -> np.ndarray:
        return super().predict_proba(X.iloc[:5000])


class RefusesLargeBatches(ThresholdClassifier):
    """Healthy: refuses batches of more than 5,000 rows with a clear error."""

    def predict(self, X: Any) -> np.ndarray:
        if len(X) > 5000:
            raise ValueError(f"at most 5000 rows per batch, got {len(X)}")
        return super().predict(X)


class DropsRepeatedRows(ThresholdClassifier):
    """Answers each distinct row once: a batch holding the same row twice gets one output
    fewer (``X.drop_duplicates()`` before predicting)."""

    def predict(self, X: Any) -> np.ndarray:
        return super().predict(X.drop_duplicates())

    def predict_proba(self, X: Any) -> np.ndarray:
        return super().predict_proba(X.drop_duplicates())


FAULTS: list[tuple[Any, str, list[str], str]] = [
    (
        KeepsTheRequestOnItself(),
        "y",
        ["smoke[concurrent-calls]"],
        "single-row outputs called from 4 threads at once differ from the same rows one at a time",
    ),
    (
        KeepsEveryCall(),
        "label",
        ["latency[memory-steady]"],
        "KiB per call), then by",
    ),
    (
        DegradesAfterUse(),
        "label",
        ["latency[answers-unchanged]"],
        "outputs changed after the latency measurements",
    ),
    (
        CutsLargeBatches(),
        "label",
        ["smoke[batch]"],
        "batch_predict on 10000 rows (the 200 rows of the data repeated): expected 10000 "
        "outputs (one per row), got 5000",
    ),
    (
        DropsRepeatedRows(),
        "label",
        ["smoke[batch-consistency]", "smoke[batch]"],
        "a batch of 20 rows with row 0 twice: expected 20 outputs (one per row), got 19",
    ),
    (
        ExtraProbabilityColumn(),
        "label",
        ["output[shape]"],
        "probabilities have 3 columns for the 2 classes of classes_ ('0', '1')",
    ),
    (
        OneHotLabels(),
        "label",
        ["output[shape]"],
        "expected one output per row, got 2 per row (shape (",
    ),
    (
        TwoColumnRegressor(),
        "y",
        ["output[shape]"],
        "expected one output per row, got 2 per row (shape (",
    ),
    (
        BooleanRegressor(),
        "y",
        ["output[numeric-dtype]"],
        "a regressor returned booleans (dtype bool)",
    ),
    (
        ComplexRegressor(),
        "y",
        ["output[numeric-dtype]", "output[regression-range]"],
        "complex output (dtype complex128) in row 0,",
    ),
    (NaNProbabilities(), "label", ["output[no-nan]"], "NaN probability in row 3"),
    (
        ConstantRegressor(),
        "y",
        ["output[not-constant]"],
        "the model gives the same prediction 3.0 for all 200 rows (200 distinct rows",
    ),
    (
        ConstantProbabilities(),
        "label",
        ["output[not-constant]"],
        "the model gives the same probabilities [0.7, 0.3] for all 200 rows",
    ),
    (NaNRegressor(), "y", ["output[no-nan]"], "NaN output in row"),
    (InfRegressor(), "y", ["output[no-inf]"], "Inf output in row"),
    (ProbabilityAboveOne(), "label", ["output[probabilities-range]"], "outside [0, 1]"),
    (
        ProbabilitiesNotSumming(),
        "label",
        # Row 0's output is invalid too, which the smoke check of one row sees.
        ["output[probabilities-sum]", "smoke[output-valid]"],
        "not summing to 1",
    ),
    (UnknownLabel(), "label", ["output[known-labels]"], "label not among classes [0, 1]"),
    (OutOfRangeRegressor(), "y", ["output[regression-range]"], "output outside ["),
    (
        StringRegressor(),
        "y",
        ["output[regression-range]", "output[numeric-dtype]"],
        "non-numeric output (dtype <U",
    ),
    (
        ObjectStringRegressor(),
        "y",
        # Strings that read as numbers are still strings: a client would get "1.234".
        ["output[numeric-dtype]", "output[regression-range]"],
        "non-numeric output (dtype object) in row 0, row 1,",
    ),
    (
        WrongLength(),
        "label",
        ["smoke[batch]", "output[shape]"],
        "expected 200 outputs (one per row), got 199",
    ),
    (
        BatchDiffersFromSingle(),
        "label",
        ["smoke[batch-consistency]"],
        "batch and row-by-row outputs differ",
    ),
    (
        Nondeterministic(),
        "label",
        # Batch vs single rows, reordered columns and calls from threads compare two calls,
        # which also disagree, and the flipped labels contradict the (stable) probabilities.
        [
            "smoke[deterministic]",
            "smoke[concurrent-calls]",
            "smoke[batch-consistency]",
            "errors[reordered-columns]",
            "output[labels-match-probabilities]",
            "latency[answers-unchanged]",
        ],
        "outputs changed between two identical calls",
    ),
    (
        ObscureCrashOnNaN(),
        "label",
        # A missing value is also an edge row, where the crash is not a clear ValueError.
        ["errors[nan-input]", "output[edge-rows]"],
        "a=NaN: ZeroDivisionError: float division by zero (not a clear ValueError)",
    ),
    (
        InvertedClassifier(),
        "label",
        ["output[not-worse-than-chance]"],
        "outputs are significantly worse than chance against the labels: balanced accuracy 0.000",
    ),
    (
        NegatedRegressor(),
        "y",
        ["output[not-worse-than-chance]"],
        "predictions rank the rows against their labels: Spearman correlation -1.000",
    ),
    (
        KelvinRegressor(),
        "y",
        ["output[not-worse-than-chance]", "output[regression-range]"],
        "predictions are off the labels' scale: the median prediction, 273.",
    ),
    (
        PredictsAgainstProbabilities(),
        "label",
        # Against the labels too: the labels (or probabilities) are the inverted ones.
        ["output[labels-match-probabilities]", "output[not-worse-than-chance]"],
        "labels contradict the probabilities (rows predicted 1 are less likely to be 1",
    ),
    (
        SwappedProbabilityColumns(),
        "label",
        # Against the labels too: the labels (or probabilities) are the inverted ones.
        ["output[labels-match-probabilities]", "output[not-worse-than-chance]"],
        "labels or probability columns swapped",
    ),
    (
        ProbabilitiesScaledOverBatch(),
        "label",
        ["smoke[batch-consistency]"],
        "probabilities in the batch and alone differ on",
    ),
    (
        NoisyProbabilities(),
        "label",
        # Each call's noise differs: two calls, a batch against one row, and after use.
        ["smoke[deterministic]", "smoke[batch-consistency]", "latency[answers-unchanged]"],
        "probabilities changed between two identical calls",
    ),
    (
        ShiftsMidSizeBatches(),
        "label",
        ["smoke[batch-consistency]"],
        "in the rows as one batch of 20 (row 0 twice)",
    ),
    (
        SingleRowFlipsSome(),
        "label",
        ["smoke[batch-consistency]"],
        "batch and row-by-row outputs differ on",
    ),
    (
        SingleRowAsArray(),
        "label",
        # (The edge rows are asked as two batches, those with a missing value apart, so only
        # the rows the model refuses are asked one by one: none of its 1x1 arrays reach
        # output[shape], which judged them when every edge row went one by one.)
        ["smoke[batch-consistency]"],
        "predict_single returned outputs of shape (1,)",
    ),
    (
        ReversesLargeBatches(),
        "label",
        ["smoke[batch-consistency]", "smoke[batch]"],
        "batch and row-by-row outputs differ on",
    ),
    (IgnoresColumnNames(), "label", ["errors[reordered-columns]"], "reads columns by position"),
    (
        Float32BatchDrift(),
        "y",
        ["smoke[batch-consistency]"],
        "(relative tolerance 1e-05 for float32 outputs)",
    ),
    (
        Float32Nondeterministic(),
        "y",
        [
            "smoke[deterministic]",
            "smoke[concurrent-calls]",
            "smoke[batch-consistency]",
            "errors[reordered-columns]",
            "latency[answers-unchanged]",
        ],
        "outputs changed between two identical calls",
    ),
    (AcceptsStrings(), "label", ["errors[wrong-dtype]"], "was accepted silently"),
    (EmptyBatchCrash(), "label", ["errors[empty-batch]"], "IndexError"),
    (CrashesOnZero(), "label", ["output[edge-rows]"], "edge row a=zero: TypeError"),
    (LookupBeyondTraining(), "label", ["output[edge-rows]"], "edge row a=above-max("),
    (
        ShiftsMidSizedBatches(),
        "y",
        ["smoke[batch-consistency]"],
        "in the rows as one batch of 117",
    ),
    (NaNBeyondTraining(), "y", ["output[no-nan]"], "edge row a=above-max("),
]
