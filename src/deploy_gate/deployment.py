"""The default deployment wrapper: what a serving process runs, and what the gate's checks drive.

A project gates its own serving code by overriding the ``deployment`` (or ``deployment_factory``)
fixture with an object that has the same methods; see :class:`Deployment`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from deploy_gate.errors import InvalidOutputError, NotLoadedError, SchemaError
from deploy_gate.validation import as_array, describe_names, find_problems, plain

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from deploy_gate.artifact import LoadedArtifact
    from deploy_gate.latency import LatencyTracker


@runtime_checkable
class Deployment(Protocol):
    """What every built-in check calls.

    The checks also read optional attributes where a deployment has them: ``classes`` (class
    labels), ``feature_names`` (the columns it claims) and, for classifiers,
    ``batch_predict_proba`` with ``supports_proba`` (see :class:`ProbabilisticDeployment`).
    """

    def load_model(self) -> None: ...

    def predict_single(self, features: Mapping[str, Any]) -> Any: ...

    def batch_predict(self, rows: Any) -> Any: ...

    @property
    def model_version(self) -> str: ...

    def get_model_metadata(self) -> dict[str, Any]: ...

    def get_latency_stats(self) -> dict[str, Any]: ...


class ProbabilisticDeployment(Deployment, Protocol):
    """A deployment that serves class probabilities, one row per input row.

    Having the method is not enough: ``supports_proba`` may say that this model has none
    (:class:`ModelDeployment` of a regressor, an MLflow endpoint). The checks narrow a
    :class:`Deployment` to this with :func:`deploy_gate.checks.common.has_proba`, which asks
    :func:`deploy_gate.capabilities.has_probabilities`.
    """

    def batch_predict_proba(self, rows: Any) -> Any: ...


class ModelDeployment:
    """Serve an artifact with input-schema validation, output validation and latency tracking.

    Wherever it knows the feature names (the model's, or ``feature_names``: the gate passes the
    data's header for a model that names none), it checks them and hands the model the columns
    in that order, whatever order the caller sent: a model that reads columns by position (an
    ONNX model with one tensor input, LightGBM) then gets them where it expects them. Without
    names it passes the columns on as they come. Invalid outputs raise ``InvalidOutputError``
    (``on_invalid_output="raise"``) or are only counted (``"record"``, what the gate uses so
    each output check can judge one property).

    ``categories`` names, per feature, the categories of a pandas categorical column the model
    was trained on (the gate passes those of its data): a row given as a mapping, or rows as a
    list of mappings, get that column as a categorical of these categories (with a value not
    among them added), as a serving process that casts request JSON to the training schema
    does. LightGBM and XGBoost models fitted on categorical columns refuse the column as plain
    strings.

    ``text_dtypes`` does the same for text columns of a pandas string dtype (the gate passes
    those of its data), as ``(storage, missing)`` pairs (see ``GateData.text_dtypes``): the
    column of a row given as a mapping gets that dtype, so a missing value (JSON's null, or NaN)
    is the missing value the model was trained on. Built from the mapping alone, a column
    holding only NaN is a float column, and scikit-learn's encoders refused it with
    ``TypeError: ufunc 'isnan' not supported``; as None it is a category the model never saw.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        feature_names: Sequence[str] | None = None,
        trust: Sequence[str] = (),
        on_invalid_output: Literal["raise", "record"] = "raise",
        latency_window: int = 10_000,
        artifact: LoadedArtifact | None = None,
        categories: Mapping[str, Sequence[Any]] | None = None,
        text_dtypes: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        from deploy_gate.latency import LatencyTracker

        self.path = Path(path)
        self.trust = tuple(trust)
        self.on_invalid_output = on_invalid_output
        self._given_names = tuple(feature_names) if feature_names is not None else None
        self._preloaded = artifact
        self._categories = {str(k): list(v) for k, v in (categories or {}).items()}
        self._text_dtypes = {str(k): _string_dtype(*v) for k, v in (text_dtypes or {}).items()}
        self._artifact: LoadedArtifact | None = None
        self._feature_names: tuple[str, ...] | None = self._given_names
        self._positional = False
        self._latency: dict[str, LatencyTracker] = {
            "single": LatencyTracker(latency_window),
            "batch": LatencyTracker(latency_window),
        }
        self.invalid_outputs: dict[str, int] = {}

    # -- loading ---------------------------------------------------------------------------
    def load_model(self) -> None:
        """Load the artifact; FileNotFoundError names a missing path."""
        from deploy_gate.artifact import load_artifact

        if self._preloaded is not None and self._preloaded.path == self.path:
            if not self.path.is_file():
                raise FileNotFoundError(f"model artifact not found: {self.path}")
            artifact = self._preloaded
        else:
            artifact = load_artifact(self.path, trust=self.trust)
        profile = artifact.profile
        self._artifact = artifact
        self._feature_names = self._given_names or profile.feature_names
        # A model fitted on a plain array reads columns by position and warns when given
        # names, so it gets the values in the order the caller gave them.
        self._positional = profile.feature_names is None and profile.n_features is not None

    @property
    def is_loaded(self) -> bool:
        return self._artifact is not None

    @property
    def artifact(self) -> LoadedArtifact:
        if self._artifact is None:
            raise NotLoadedError(f"model not loaded: call load_model() first ({self.path})")
        return self._artifact

    @property
    def model(self) -> Any:
        return self.artifact.model

    @property
    def model_version(self) -> str:
        return self.artifact.version_id

    @property
    def feature_names(self) -> tuple[str, ...] | None:
        return self._feature_names

    @property
    def supports_proba(self) -> bool:
        """Whether ``batch_predict_proba`` will work (the model has predict_proba)."""
        return self.artifact.profile.has_proba

    @property
    def classes(self) -> tuple[Any, ...] | None:
        return self.artifact.profile.classes

    def get_model_metadata(self) -> dict[str, Any]:
        meta = self.artifact.metadata()
        meta["feature_names"] = list(self._feature_names or ())
        return meta

    def get_latency_stats(self) -> dict[str, Any]:
        return {kind: tracker.stats() for kind, tracker in self._latency.items()}

    # -- predictions -----------------------------------------------------------------------
    def predict_single(self, features: Mapping[str, Any]) -> Any:
        """Predict one row given as a mapping of feature name to value."""
        frame = self._frame_from_mapping(features)
        return plain(_first(self._predict(frame, "predict", "single"), "predict"))

    def predict_proba_single(self, features: Mapping[str, Any]) -> np.ndarray:
        frame = self._frame_from_mapping(features)
        out: np.ndarray = _first(self._predict(frame, "predict_proba", "single"), "predict_proba")
        return out

    def batch_predict(self, rows: pd.DataFrame | Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Predict many rows: one output per row, in order."""
        return self._predict(self._frame(rows), "predict", "batch")

    def batch_predict_proba(self, rows: pd.DataFrame | Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Class probabilities, one row per input row (classifiers with predict_proba only)."""
        if not self.artifact.profile.has_proba:
            raise AttributeError(f"{self.artifact.profile.model_type} has no predict_proba")
        return self._predict(self._frame(rows), "predict_proba", "batch")

    def _predict(self, frame: pd.DataFrame, method: str, kind: str) -> np.ndarray:
        model = self.model
        X: Any = frame.to_numpy() if self._positional else frame
        start = time.perf_counter()
        raw = getattr(model, method)(X)
        self._latency[kind].record(time.perf_counter() - start)
        out = as_array(raw)
        profile = self.artifact.profile
        if method == "predict_proba":
            problems = find_problems(None, n_rows=len(frame), proba=out)
        else:
            problems = find_problems(out, n_rows=len(frame), classes=profile.classes)
        if problems:
            for problem in problems:
                self.invalid_outputs[problem.kind] = self.invalid_outputs.get(problem.kind, 0) + 1
            if self.on_invalid_output == "raise":
                raise InvalidOutputError(
                    f"{method} returned invalid output: " + "; ".join(map(str, problems))
                )
        return out

    # -- input schema ----------------------------------------------------------------------
    def _frame_from_mapping(self, features: Mapping[str, Any]) -> pd.DataFrame:
        import pandas as pd

        if not isinstance(features, Mapping):
            raise TypeError(
                f"predict_single takes a mapping of feature name to value, "
                f"got {type(features).__name__}"
            )
        self.artifact  # noqa: B018 - raises NotLoadedError before any other complaint
        names = self._feature_names or tuple(str(k) for k in features)
        self._check_names(list(features), names)
        frame = pd.DataFrame([[features[n] for n in names]], columns=list(names))
        return self._schema(frame)

    def _frame(self, rows: pd.DataFrame | Sequence[Mapping[str, Any]]) -> pd.DataFrame:
        import pandas as pd

        self.artifact  # noqa: B018 - raises NotLoadedError before any other complaint
        frame = rows if isinstance(rows, pd.DataFrame) else self._schema(pd.DataFrame(list(rows)))
        names = self._feature_names
        if names is not None and (len(frame.columns) or len(frame)):
            given = [str(c) for c in frame.columns]
            self._check_names(given, names)
            if given != list(names):
                # A new frame in the model's order; the caller's stays as it was.
                frame = frame.set_axis(given, axis=1)[list(names)]
        return frame

    def _schema(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` (built here from mappings) with a column of nothing but missing values
        holding the missing value pandas gives a column of text (``text_missing_value``), the
        columns named in ``categories`` as categoricals of those categories, plus any value of
        the rows not among them, and those named in ``text_dtypes`` in their string dtype."""
        import pandas as pd

        for name in frame.columns:
            column = frame[name]
            if pd.api.types.is_object_dtype(column.dtype) and column.isna().all():
                # JSON's null arrives as None. Where pandas reads text as its string dtype
                # (pandas 3), a null among text becomes NaN, but a column of nulls alone (one
                # row) keeps None, which scikit-learn's encoders and imputers take for another
                # value: the same row answered otherwise alone than in a batch. pandas 2 keeps
                # what was sent in both, and so does this.
                missing = text_missing_value()
                if missing is not None:
                    frame[name] = column.where(column.notna(), missing)
        for name, levels in self._categories.items():
            if name not in frame.columns or isinstance(frame[name].dtype, pd.CategoricalDtype):
                continue
            column = frame[name]
            known = set(levels)
            new = [v for v in pd.unique(column.dropna()) if v not in known]
            frame[name] = pd.Categorical(column, categories=[*levels, *new])
        for name, dtype in self._text_dtypes.items():
            if dtype is not None and name in frame.columns and frame[name].dtype != dtype:
                try:
                    frame[name] = frame[name].astype(dtype)
                except (TypeError, ValueError):  # left as sent: the model judges it
                    continue
        return frame

    @staticmethod
    def _check_names(given: Sequence[str], expected: Sequence[str]) -> None:
        known = set(expected)
        unknown = [n for n in given if n not in known]
        if unknown:
            raise SchemaError(
                f"unknown feature(s) {', '.join(map(repr, unknown))}; "
                f"the model takes {len(expected)}: {describe_names(expected)}"
            )
        present = set(given)
        missing = [n for n in expected if n not in present]
        if missing:
            raise SchemaError(f"missing feature(s) {', '.join(map(repr, missing))}")
        if len(present) < len(given):
            twice = sorted({n for n in given if given.count(n) > 1})
            raise SchemaError(
                f"feature(s) given more than once: {', '.join(map(repr, twice))} (ambiguous)"
            )


def text_missing_value() -> Any:
    """What a missing value becomes in a column of text built from Python values by this
    pandas: NaN where text is read as its string dtype (pandas 3, or 2 with
    ``future.infer_string``), None where it stays a column of objects. Asked each time, not
    cached: the option can change while a process runs."""
    import pandas as pd

    return pd.Series(["", None]).iloc[1]


def _first(out: np.ndarray, method: str) -> Any:
    """The one row's output; an ``InvalidOutputError`` (not an ``IndexError`` of the gate's
    own) when the model gave none for it: a scalar, or nothing."""
    if out.ndim == 0 or len(out) == 0:
        what = "a scalar" if out.ndim == 0 else "no output"
        raise InvalidOutputError(
            f"{method} returned {what} for one row; expected one output per row"
        )
    return out[0]


def _string_dtype(storage: str, missing: str) -> Any:
    """The string dtype of a ``(storage, missing)`` pair of ``text_dtypes``; None where this
    pandas has no such dtype (the column is then left as it comes)."""
    from deploy_gate.dtypes import string_dtype

    return string_dtype(storage, nan_missing=missing == "nan")
