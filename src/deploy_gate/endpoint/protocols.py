"""The wire formats of the serving protocols the gate speaks: how rows become a request body, and
how an answer becomes predictions (and probabilities).

- ``v2``: the Open Inference Protocol (KServe V2 REST) of MLServer, KServe, Triton and Seldon.
  The URL names the model, ``http://host:8080/v2/models/churn``; rows go as one input per
  column with the request ``content_type`` ``pd`` (MLServer's pandas codec), or as one ``FP64``
  tensor when the model's metadata declares a single input that is not a feature.
- ``mlflow``: MLflow's scoring server, ``POST /invocations`` with ``dataframe_split``.
- ``json``: the gate's documented shape for a service of one's own (FastAPI, Flask, ...):
  ``POST {url}/predict`` with ``{"rows": [{feature: value, ...}, ...]}`` answered by
  ``{"predictions": [...], "probabilities": [[...], ...]}``; ``GET {url}/health`` and
  ``GET {url}/metadata`` (``{"name", "version", "sha256", "features", "classes"}``).

Missing values (NaN, None) travel as JSON ``null`` in every protocol: strict JSON has no NaN.
Nothing here does I/O; :mod:`deploy_gate.endpoint.client` sends what this module builds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from deploy_gate.endpoint.errors import EndpointProtocolError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

PROTOCOLS = ("v2", "mlflow", "json")
_V2_PATH = re.compile(
    r"^(?P<root>.*?)/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/?$"
)
#: Output names that hold class probabilities in a V2 answer (MLServer's scikit-learn runtime
#: calls it predict_proba).
PROBA_OUTPUTS = ("predict_proba", "probabilities", "probability", "proba")


@dataclass(frozen=True)
class Request:
    """One HTTP request to send: ``method`` ``url`` with a JSON ``body`` (None for GET)."""

    method: str
    url: str
    body: Any = None


@dataclass(frozen=True)
class Answer:
    """What a prediction request came back with."""

    predictions: np.ndarray
    proba: np.ndarray | None = None
    #: The model version the server stated in its answer, if it did.
    model_version: str | None = None


def root_of(url: str) -> str:
    """``scheme://host:port`` of ``url``."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def v2_model(url: str) -> tuple[str, str, str | None] | None:
    """``(root, model name, version)`` of a V2 model URL, or None when it is not one."""
    parts = urlsplit(url)
    match = _V2_PATH.match(parts.path)
    if match is None:
        return None
    root = urlunsplit((parts.scheme, parts.netloc, match["root"], "", ""))
    return root, match["name"], match["version"]


def default_name(url: str, protocol: str | None) -> str:
    """The endpoint's name in node ids: the V2 model's name, else ``host:port``."""
    found = v2_model(url)
    if found is not None:
        return found[1]
    return urlsplit(url).netloc


def json_value(value: Any) -> Any:
    """A cell of a DataFrame as a JSON value: numpy scalars as Python ones, NaN/None/NA as null."""
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", 0) == 0:
        value = item()
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (bool, int, float, str)):
        return value
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _columns(frame: pd.DataFrame) -> list[tuple[str, list[Any]]]:
    return [(str(name), [json_value(v) for v in frame[name].tolist()]) for name in frame.columns]


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    columns = _columns(frame)
    return [{name: values[i] for name, values in columns} for i in range(len(frame))]


def _v2_datatype(values: Sequence[Any]) -> str:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "BOOL"
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "INT64"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "FP64"
    return "BYTES"


# -- building requests ----------------------------------------------------------------------
def predict_request(
    protocol: str, url: str, frame: pd.DataFrame, *, proba: bool, tensor_input: str | None = None
) -> Request:
    """The request that asks ``url`` for predictions (and probabilities) of ``frame``'s rows."""
    if protocol == "v2":
        return _v2_request(url, frame, proba=proba, tensor_input=tensor_input)
    if protocol == "mlflow":
        target = (
            url
            if urlsplit(url).path.rstrip("/").endswith("/invocations")
            else (url.rstrip("/") + "/invocations")
        )
        columns = _columns(frame)
        rows = [[values[i] for _, values in columns] for i in range(len(frame))]
        body = {"dataframe_split": {"columns": [n for n, _ in columns], "data": rows}}
        return Request("POST", target, body)
    return Request("POST", url.rstrip("/") + "/predict", {"rows": _records(frame)})


def _v2_request(url: str, frame: pd.DataFrame, *, proba: bool, tensor_input: str | None) -> Request:
    n = len(frame)
    if tensor_input is not None:
        columns = _columns(frame)
        flat = [values[i] for i in range(n) for _, values in columns]
        inputs = [
            {"name": tensor_input, "shape": [n, len(columns)], "datatype": "FP64", "data": flat}
        ]
        body: dict[str, Any] = {"inputs": inputs}
    else:
        body = {
            "parameters": {"content_type": "pd"},
            "inputs": [
                {"name": name, "shape": [n], "datatype": _v2_datatype(values), "data": values}
                for name, values in _columns(frame)
            ],
        }
    if proba:
        body["outputs"] = [{"name": "predict"}, {"name": "predict_proba"}]
    return Request("POST", url.rstrip("/") + "/infer", body)


def malformed_requests(protocol: str, url: str) -> list[tuple[str, Request, bytes | None]]:
    """Bodies every server must refuse with a 4xx: ``(what, request, raw bytes)``; raw bytes
    replace the JSON body when given."""
    target = predict_request(protocol, url, _empty_frame(), proba=False).url
    return [
        ("a body that is not JSON", Request("POST", target), b'{"rows": [1, 2,'),
        ("JSON of the wrong shape", Request("POST", target, {"deploy_gate": "no rows here"}), None),
    ]


def _empty_frame() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame()


# -- reading answers ------------------------------------------------------------------------
def read_answer(protocol: str, body: Any, n_rows: int) -> Answer:
    """Predictions (and probabilities) from a 2xx answer's JSON body."""
    if not isinstance(body, Mapping):
        raise EndpointProtocolError(
            f"expected a JSON object, got {type(body).__name__}: {_preview(body)}"
        )
    if protocol == "v2":
        return _read_v2(body, n_rows)
    if protocol == "mlflow":
        if "predictions" not in body:
            raise EndpointProtocolError(f"no 'predictions' in the answer: {_preview(body)}")
        return Answer(_array(body["predictions"], "predictions"))
    if "predictions" not in body:
        raise EndpointProtocolError(f"no 'predictions' in the answer: {_preview(body)}")
    proba = body.get("probabilities")
    version = body.get("model_version")
    return Answer(
        _array(body["predictions"], "predictions"),
        _array(proba, "probabilities") if proba is not None else None,
        str(version) if version is not None else None,
    )


def _read_v2(body: Mapping[str, Any], n_rows: int) -> Answer:
    import numpy as np

    outputs = body.get("outputs")
    if not isinstance(outputs, list) or not outputs:
        raise EndpointProtocolError(f"no 'outputs' in the V2 answer: {_preview(body)}")
    tensors: dict[str, np.ndarray] = {}
    for output in outputs:
        if not isinstance(output, Mapping) or "data" not in output:
            raise EndpointProtocolError(f"a V2 output without 'data': {_preview(output)}")
        data = _array(output["data"], f"output {output.get('name')!r}")
        shape = output.get("shape")
        if isinstance(shape, list) and all(isinstance(s, int) for s in shape):
            if int(np.prod(shape)) != data.size:
                raise EndpointProtocolError(
                    f"V2 output {output.get('name')!r} has shape {shape} but {data.size} values"
                )
            if len(shape) > 1 and shape[-1] != 1:
                data = data.reshape(shape)
            elif len(shape) > 1:
                data = data.reshape(shape[0])
        tensors[str(output.get("name", len(tensors)))] = data
    proba_name = next((n for n in tensors if n in PROBA_OUTPUTS), None)
    pred_name = next((n for n in tensors if n != proba_name), None)
    if pred_name is None:
        # Only probabilities came back: the labels are the argmax, as a client would read them.
        raise EndpointProtocolError(f"the V2 answer holds no predictions: {list(tensors)}")
    version = body.get("model_version")
    return Answer(
        tensors[pred_name],
        tensors[proba_name] if proba_name is not None else None,
        str(version) if version is not None else None,
    )


def _array(values: Any, what: str) -> np.ndarray:
    import numpy as np

    if not isinstance(values, list):
        raise EndpointProtocolError(f"{what} is not a list: {_preview(values)}")
    try:
        array = np.asarray([np.nan if v is None else v for v in values])
    except ValueError as exc:  # ragged rows
        raise EndpointProtocolError(f"{what} is not a table of values: {exc}") from None
    if array.dtype.kind == "U":
        array = array.astype(object)
    return array


def _preview(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def error_detail(body: Any, text: str) -> str:
    """The server's message in an error answer: FastAPI's ``detail``, V2's ``error``, MLflow's
    ``message``, or the raw text."""
    if isinstance(body, Mapping):
        for key in ("detail", "error", "message"):
            if key in body and body[key] not in (None, "", []):
                value = body[key]
                return value if isinstance(value, str) else _preview(value, 500)
    return text.strip()[:500]


# -- metadata -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Metadata:
    """What a server says about the model it serves (every field optional)."""

    name: str | None = None
    version: str | None = None
    sha256: str | None = None
    platform: str | None = None
    features: tuple[str, ...] | None = None
    classes: tuple[Any, ...] | None = None
    outputs: tuple[str, ...] = ()
    #: V2: the one tensor input of a model that takes its features by position.
    tensor_input: str | None = None
    raw: Mapping[str, Any] | None = None

    @property
    def has_proba(self) -> bool:
        return any(o in PROBA_OUTPUTS for o in self.outputs)


def read_metadata(protocol: str, body: Any) -> Metadata:
    """The model metadata of a V2 ``GET /v2/models/{name}`` or a ``json`` ``GET /metadata``."""
    if not isinstance(body, Mapping):
        raise EndpointProtocolError(f"metadata is not a JSON object: {_preview(body)}")
    if protocol == "v2":
        versions = body.get("versions")
        params = body.get("parameters") if isinstance(body.get("parameters"), Mapping) else {}
        inputs = [i for i in body.get("inputs") or [] if isinstance(i, Mapping)]
        outputs = tuple(
            str(o.get("name")) for o in body.get("outputs") or [] if isinstance(o, Mapping)
        )
        names = tuple(str(i.get("name")) for i in inputs)
        tensor = None
        if len(inputs) == 1:
            shape = inputs[0].get("shape")
            if isinstance(shape, list) and len(shape) == 2 and shape[-1] not in (1, -1):
                tensor = names[0]
        version = params.get("version") if isinstance(params, Mapping) else None
        if version is None and isinstance(versions, list) and versions:
            version = versions[-1]
        sha = (
            (params.get("sha256") or params.get("checksum"))
            if isinstance(params, Mapping)
            else None
        )
        return Metadata(
            name=str(body.get("name")) if body.get("name") is not None else None,
            version=str(version) if version is not None else None,
            sha256=str(sha) if sha else None,
            platform=str(body.get("platform")) if body.get("platform") else None,
            features=names if names and tensor is None else None,
            outputs=outputs,
            tensor_input=tensor,
            raw=dict(body),
        )
    features = body.get("features")
    classes = body.get("classes")
    listed = body.get("outputs")
    return Metadata(
        name=str(body["name"]) if body.get("name") is not None else None,
        version=str(body["version"]) if body.get("version") is not None else None,
        sha256=str(body["sha256"]) if body.get("sha256") else None,
        platform=str(body["platform"]) if body.get("platform") else None,
        features=tuple(map(str, features)) if isinstance(features, list) else None,
        classes=tuple(classes) if isinstance(classes, list) else None,
        outputs=tuple(map(str, listed)) if isinstance(listed, list) else (),
        raw=dict(body),
    )
