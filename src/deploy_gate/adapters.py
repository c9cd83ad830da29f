"""Load ``.onnx`` artifacts through their own safe path.

ONNX files load in onnxruntime without external data and are wrapped in ``OnnxModel``, which
gives them the sklearn-like surface the gate's checks drive (``predict``, ``predict_proba``,
``classes_``, ``feature_names_in_``, ``n_features_in_``). This module knows nothing of the
allowlist: the formats it judges (pickle, joblib, skops) load in ``safeload``, which imports
this module and never the other way round.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd

from deploy_gate.errors import ArtifactLoadError, SchemaError, UnsafeArtifactError

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["OnnxModel", "load_onnx", "looks_like_onnx"]


# --------------------------------------------------------------------------------------------
# A minimal protobuf reader, enough to recognise an ONNX ModelProto, refuse external data and
# read class labels without needing the onnx package.

_Field = tuple[int, int, "int | memoryview"]

# ModelProto fields (onnx.proto): ir_version=1, producer_name=2, producer_version=3, domain=4,
# model_version=5, doc_string=6, graph=7, opset_import=8, metadata_props=14,
# training_info=20, functions=25, configuration=26.
_MODEL_FIELDS: Final = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 14, 20, 25, 26})
_MAX_DEPTH: Final = 256  # message levels: four per nested subgraph


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buf: memoryview) -> Iterator[_Field]:
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        value: int | memoryview
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"wire type {wire}")
        if pos > end:
            raise ValueError("truncated field")
        yield number, wire, value


def looks_like_onnx(data: mmap.mmap | bytes) -> bool:
    """Whether ``data`` parses as an ONNX ModelProto with an IR version and a graph."""
    try:
        seen = {(number, wire) for number, wire, _ in _fields(memoryview(data))}
    except ValueError:
        return False
    numbers = {number for number, _ in seen}
    return (1, 0) in seen and (7, 2) in seen and numbers <= _MODEL_FIELDS


def _sub(fields: list[_Field], number: int) -> Iterator[memoryview]:
    for field_number, wire, value in fields:
        if field_number == number and wire == 2 and isinstance(value, memoryview):
            yield value


# Where TensorProtos can sit, by message type: {field number: (message type, what it is)}.
# onnx.proto: ModelProto graph=7, training_info=20, functions=25; TrainingInfoProto
# initialization=1, algorithm=2; GraphProto node=1, initializer=5, sparse_initializer=15;
# FunctionProto node=7, attribute_proto=11; NodeProto attribute=5; AttributeProto t=5, g=6,
# tensors=10, graphs=11, sparse_tensor=22, sparse_tensors=23; SparseTensorProto values=1,
# indices=2.
_TENSOR_HOLDERS: Final[Mapping[str, Mapping[int, tuple[str, str]]]] = {
    "model": {
        7: ("graph", "graph"),
        20: ("training", "training info"),
        25: ("function", "function"),
    },
    "training": {1: ("graph", "initialization"), 2: ("graph", "algorithm")},
    "graph": {
        1: ("node", "node"),
        5: ("tensor", "initializer"),
        15: ("sparse", "sparse initializer"),
    },
    "function": {7: ("node", "node"), 11: ("attribute", "attribute")},
    "node": {5: ("attribute", "attribute")},
    "attribute": {
        5: ("tensor", "tensor"),
        6: ("graph", "graph"),
        10: ("tensor", "tensor"),
        11: ("graph", "graph"),
        22: ("sparse", "sparse tensor"),
        23: ("sparse", "sparse tensor"),
    },
    "sparse": {1: ("tensor", "values"), 2: ("tensor", "indices")},
}


def _text(fields: list[_Field], number: int) -> str:
    return b"".join(bytes(v) for v in _sub(fields, number)).decode("utf-8", "replace")


def _external_tensors(
    message: memoryview, kind: str = "model", context: tuple[str, ...] = (), depth: int = 0
) -> Iterator[str]:
    """Tensors anywhere in an ONNX message whose data lives in other files.

    Everywhere a TensorProto can sit is searched: graph initializers and sparse initializers,
    tensor and sparse-tensor attributes of nodes, subgraphs held by attributes (``Loop`` and
    ``Scan`` bodies, ``If`` branches) at any depth, functions and training graphs. Each is
    named with where it sits: ``W``, ``W (Loop node 'loop', attribute 'body', graph 'b')``.
    """
    if depth > _MAX_DEPTH:
        raise ValueError("graphs nested too deep")
    fields = list(_fields(message))
    if kind == "tensor":
        # external_data=13, data_location=14 (EXTERNAL = 1)
        if any(n == 13 or (n == 14 and v == 1) for n, _, v in fields):
            name = _text(fields, 8) or "<unnamed>"
            yield f"{name} ({', '.join(context)})" if context else name
        return
    if kind == "node":  # name=3, op_type=4
        name, op_type = _text(fields, 3), _text(fields, 4)
        context = (*context, f"{op_type} node {name!r}" if name else f"{op_type} node")
    elif kind == "attribute":  # name=1
        context = (*context, f"attribute {_text(fields, 1)!r}")
    elif kind == "function":  # name=1
        context = (*context, f"function {_text(fields, 1)!r}")
    elif kind == "graph" and depth > 1:  # a subgraph or a training graph; name=2
        context = (*context, f"graph {_text(fields, 2)!r}")
    elif kind == "training":
        context = (*context, "training info")
    holders = _TENSOR_HOLDERS[kind]
    for number, _wire, value in fields:
        holder = holders.get(number)
        if holder is not None and isinstance(value, memoryview):
            inner, label = holder
            inner_context = (*context, label) if "sparse" in (kind, inner) else context
            yield from _external_tensors(value, inner, inner_context, depth + 1)


def _class_labels(graph: memoryview) -> np.ndarray[Any, Any] | None:
    """``classes_`` from the ZipMap node (or a classifier node) skl2onnx and others write."""
    found: dict[str, np.ndarray[Any, Any]] = {}
    for node in _sub(list(_fields(graph)), 1):
        node_fields = list(_fields(node))
        op_type = b"".join(bytes(v) for v in _sub(node_fields, 4)).decode("utf-8", "replace")
        for attribute in _sub(node_fields, 5):
            attribute_fields = list(_fields(attribute))
            name = b"".join(bytes(v) for v in _sub(attribute_fields, 1)).decode()
            if name == "classlabels_strings":
                labels = [bytes(v).decode("utf-8") for v in _sub(attribute_fields, 9)]
                found.setdefault(op_type, np.array(labels, dtype=object))
            elif name in ("classlabels_int64s", "classlabels_ints"):
                found.setdefault(op_type, np.array(_int64s(attribute_fields), dtype=np.int64))
    if "ZipMap" in found:
        return found["ZipMap"]
    return next(iter(found.values()), None)


def _scores_not_probabilities(graph: memoryview) -> bool:
    """Whether the graph's classifier node outputs raw decision scores, not probabilities:
    an ``SVMClassifier`` without Platt scaling (``prob_a``; skl2onnx's export of
    ``SVC(probability=False)``) or a ``LinearClassifier`` without a post transform (LinearSVC,
    RidgeClassifier). skl2onnx still names that output ``probabilities``."""
    for node in _sub(list(_fields(graph)), 1):
        node_fields = list(_fields(node))
        op_type = _text(node_fields, 4)
        if op_type not in ("SVMClassifier", "LinearClassifier"):
            continue
        attributes = {}
        for attribute in _sub(node_fields, 5):
            attribute_fields = list(_fields(attribute))
            attributes[_text(attribute_fields, 1)] = attribute_fields
        post = _text(attributes["post_transform"], 4) if "post_transform" in attributes else "NONE"
        if op_type == "SVMClassifier" and "prob_a" not in attributes and post == "NONE":
            return True
        if op_type == "LinearClassifier" and post == "NONE":
            return True
    return False


def _int64s(fields: list[_Field]) -> list[int]:
    values: list[int] = []
    for number, wire, value in fields:
        if number != 8:
            continue
        if wire == 0 and isinstance(value, int):
            values.append(value)
        elif isinstance(value, memoryview):  # packed
            pos = 0
            while pos < len(value):
                item, pos = _varint(value, pos)
                values.append(item)
    return [v - (1 << 64) if v >= 1 << 63 else v for v in values]


# --------------------------------------------------------------------------------------------
# ONNX


_ONNX_DTYPES: Final[Mapping[str, Any]] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
    "tensor(string)": object,
}


def load_onnx(path: Path) -> OnnxModel:
    """Load an ``.onnx`` file in onnxruntime (CPU), refusing models with external data."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ArtifactLoadError(
            f"{path}: an ONNX artifact; install the 'onnx' extra "
            "(pip install pytest-deploy-gate[onnx]) to load it"
        ) from None
    data = path.read_bytes()
    try:
        top = list(_fields(memoryview(data)))
        graphs = list(_sub(top, 7))
        external = list(_external_tensors(memoryview(data)))
        classes = _class_labels(graphs[0]) if graphs else None
        scores_only = _scores_not_probabilities(graphs[0]) if graphs else False
    except ValueError as exc:
        raise ArtifactLoadError(f"{path}: truncated or corrupt ONNX file ({exc})") from None
    if external:
        raise UnsafeArtifactError(
            f"{path}: refused to load: the ONNX model keeps tensors in external files "
            f"({', '.join(external[:5])}{', ...' if len(external) > 5 else ''}); the gate "
            "loads self-contained models only, with no external data anywhere"
        )
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors surface as exceptions, not stderr noise
    try:
        # Loading from bytes gives onnxruntime no directory to resolve external data against.
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... classes
        raise ArtifactLoadError(
            f"{path}: onnxruntime cannot load the model: {type(exc).__name__}: {exc}"
        ) from exc
    return OnnxModel(session, classes, probabilities=not scores_only)


def _cast(values: Any, dtype: Any, name: str) -> Any:
    """``values`` as ``dtype``; a missing value for an integer or boolean input is a clear
    ValueError (numpy would turn NaN into -9223372036854775808 without a word)."""
    if np.dtype(dtype).kind in "iub" and values.dtype.kind in "fO":
        missing = pd.isna(values)
        if np.any(missing):
            raise ValueError(
                f"Input {name!r} contains NaN: the ONNX model takes {np.dtype(dtype)} there, "
                "which has no missing value"
            )
    return values.astype(dtype)


class OnnxModel:
    """An onnxruntime session with the sklearn-like surface the gate uses.

    Inputs are either one 2-D tensor (``n_features_in_`` from its shape) or one ``[N, 1]``
    tensor per column (``feature_names_in_`` from the input names, as skl2onnx writes
    DataFrame pipelines). The label output feeds ``predict``; a probability output (ZipMap
    dictionaries or a tensor) feeds ``predict_proba``.
    """

    def __init__(
        self,
        session: Any,
        classes: np.ndarray[Any, Any] | None = None,
        *,
        probabilities: bool = True,
    ) -> None:
        self.session = session
        self._inputs = list(session.get_inputs())
        outputs = list(session.get_outputs())
        # One input per column when there are several inputs; a single input, even of width
        # 1 (a one-feature model exported as FloatTensorType([None, 1])), is a 2-D tensor read
        # by position: its name is the tensor's ("input"), not a column of the data.
        self._per_column = len(self._inputs) > 1
        self._probability = next(
            (o.name for o in outputs if o.type.startswith("seq(map(") or "prob" in o.name),
            None,
        )
        tensors = [o.name for o in outputs if o.type.startswith("tensor(")]
        labels = [name for name in tensors if name != self._probability]
        if not probabilities:  # decision scores under a probability's name
            self._probability = None
        self._label = next((name for name in labels if "label" in name), None) or (
            labels[0] if labels else None
        )
        if self._label is None:
            raise ArtifactLoadError("the ONNX model has no tensor output to predict from")
        self._classes = classes

    @property
    def classes_(self) -> np.ndarray[Any, Any]:
        """Class labels, when the graph names them (classifiers converted by skl2onnx)."""
        if self._classes is None:
            raise AttributeError("classes_ is not known for this ONNX model")
        return self._classes

    @property
    def feature_names_in_(self) -> np.ndarray[Any, Any]:
        """Input column names, when the graph has one input per column."""
        if not self._per_column:
            raise AttributeError("the ONNX model takes one 2-D input, not named columns")
        return np.array([i.name for i in self._inputs], dtype=object)

    @property
    def n_features_in_(self) -> int:
        """Number of input features, from the graph's inputs."""
        if self._per_column:
            return len(self._inputs)
        width = list(self._inputs[0].shape)[1:2]
        if not width or not isinstance(width[0], int):
            raise AttributeError("the ONNX model's input width is not fixed")
        return width[0]

    def __getattr__(self, name: str) -> Any:
        # predict_proba only exists when the graph has a probability output, so that
        # hasattr(model, "predict_proba") tells the checks what the model can do.
        if name == "predict_proba" and self.__dict__.get("_probability") is not None:
            return self._predict_proba
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def predict(self, X: Any) -> NDArray[Any]:
        """Predicted labels (classifiers) or values (regressors), one per row."""
        (result,) = self.session.run([self._label], self._feed(X))
        values = np.asarray(result)
        return values.ravel() if values.ndim == 2 and values.shape[1] == 1 else values

    def _predict_proba(self, X: Any) -> NDArray[np.float64]:
        (result,) = self.session.run([self._probability], self._feed(X))
        if isinstance(result, list):  # ZipMap: one {class: probability} dict per row
            classes = list(self._classes) if self._classes is not None else list(result[0])
            # ZipMap holds float32 values: keep their precision, so that outputs which should
            # be equal are compared at float32's tolerance, not float64's.
            return np.array([[row[c] for c in classes] for row in result], dtype=np.float32)
        values = np.asarray(result)
        return values if np.issubdtype(values.dtype, np.floating) else values.astype(np.float64)

    def _feed(self, X: Any) -> dict[str, Any]:
        if self._per_column:
            return self._feed_columns(X)
        single = self._inputs[0]
        dtype = _ONNX_DTYPES.get(single.type)
        if dtype is None:
            raise TypeError(f"unsupported ONNX input type {single.type} for {single.name!r}")
        values = X.to_numpy() if isinstance(X, pd.DataFrame) else np.asarray(X)
        if values.ndim == 1:
            values = values.reshape(1, -1)
        width = list(single.shape)[1:2]
        if width and isinstance(width[0], int) and values.shape[1] != width[0]:
            raise ValueError(
                f"X has {values.shape[1]} features, but the ONNX model expects {width[0]}"
            )
        return {single.name: _cast(values, dtype, single.name)}

    def _feed_columns(self, X: Any) -> dict[str, Any]:
        names = [i.name for i in self._inputs]
        if isinstance(X, pd.DataFrame):
            missing = [n for n in names if n not in X.columns]
            unknown = [str(c) for c in X.columns if c not in names]
            if missing or unknown:
                raise SchemaError(
                    f"feature names do not match the ONNX model's inputs: "
                    f"missing {missing}, unknown {unknown}"
                )
            columns = [X[n].to_numpy() for n in names]
        else:
            values = np.asarray(X)
            if values.ndim != 2 or values.shape[1] != len(names):
                raise ValueError(
                    f"X has shape {values.shape}, but the ONNX model expects "
                    f"{len(names)} columns ({', '.join(names)})"
                )
            columns = [values[:, j] for j in range(len(names))]
        feed: dict[str, Any] = {}
        for spec, column in zip(self._inputs, columns, strict=True):
            dtype = _ONNX_DTYPES.get(spec.type)
            if dtype is None:
                raise TypeError(f"unsupported ONNX input type {spec.type} for {spec.name!r}")
            if dtype is object:
                column = np.array(["" if pd.isna(v) else str(v) for v in column], dtype=object)
            feed[spec.name] = _cast(np.asarray(column), dtype, spec.name).reshape(-1, 1)
        return feed
