"""Serving endpoints for the endpoint tests: a small FastAPI app that serves a joblib model in one
of the three protocols the gate speaks, healthy or with one fault.

    python endpoint_servers.py --model model.joblib --protocol json|v2|mlflow \
        --fault none|nan500|hang|wrong-length|slow|every10th500 --port 8000

Faults: ``nan500`` answers 500 when a value is missing (a crash, not a refusal); ``hang`` never
answers such a request; ``wrong-length`` drops the last prediction of a batch.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def build(model_path: Path, protocol: str, fault: str, name: str = "churn") -> FastAPI:
    model = joblib.load(model_path)
    features = [str(f) for f in model.feature_names_in_]
    sha256 = hashlib.sha256(model_path.read_bytes()).hexdigest()
    app = FastAPI()
    served = [0]

    async def predict(rows: list[dict[str, Any]]) -> tuple[list[Any], list[list[float]]]:
        for i, row in enumerate(rows):
            missing = [f for f in features if f not in row]
            if missing:
                raise Refused(422, f"row {i}: missing feature(s) {', '.join(missing)}")
            for f in features:
                value = row[f]
                if value is None or (isinstance(value, float) and math.isnan(value)):
                    if fault == "nan500":
                        raise RuntimeError("Input contains NaN")  # an unhandled crash: a 500
                    if fault == "hang":
                        await asyncio.sleep(3600)
                    raise Refused(422, f"row {i}: feature {f!r} is missing a value")
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    raise Refused(422, f"row {i}: feature {f!r} must be a number, not {value!r}")
        if not rows:
            return [], []
        if fault == "slow":  # a healthy service across a network: 150 ms a request
            await asyncio.sleep(0.15)
        if fault == "every10th500":
            served[0] += 1
            if served[0] % 10 == 0:
                raise RuntimeError("every tenth request crashes")  # an unhandled crash: a 500
            await asyncio.sleep(0.02)  # the others stay in flight meanwhile
        frame = pd.DataFrame(rows, columns=features)
        labels = model.predict(frame).tolist()
        proba = model.predict_proba(frame).tolist()
        if fault == "wrong-length" and len(labels) > 1:
            labels, proba = labels[:-1], proba[:-1]
        return labels, proba

    async def body_of(request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except ValueError as exc:
            raise Refused(400, f"the body is not JSON: {exc}") from None

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> JSONResponse:
        key = "error" if protocol == "v2" else "message" if protocol == "mlflow" else "detail"
        return JSONResponse({key: str(exc)}, status_code=exc.status)

    if protocol == "json":

        @app.get("/health")
        async def health() -> dict[str, str]:
            return {"status": "ready"}

        @app.get("/metadata")
        async def metadata() -> dict[str, Any]:
            return {
                "name": name,
                "version": "1",
                "sha256": sha256,
                "features": features,
                "classes": model.classes_.tolist(),
                "outputs": ["predictions", "probabilities"],
            }

        @app.post("/predict")
        async def predict_json(request: Request) -> dict[str, Any]:
            body = await body_of(request)
            if not isinstance(body, dict) or not isinstance(body.get("rows"), list):
                raise Refused(422, "expected {'rows': [...]}")
            labels, proba = await predict(body["rows"])
            return {"predictions": labels, "probabilities": proba}

    elif protocol == "v2":

        @app.get("/v2/health/ready")
        async def ready() -> dict[str, bool]:
            return {"ready": True}

        @app.get(f"/v2/models/{name}/ready")
        async def model_ready() -> dict[str, Any]:
            return {"name": name, "ready": True}

        @app.get(f"/v2/models/{name}")
        async def v2_metadata() -> dict[str, Any]:
            return {
                "name": name,
                "versions": ["1"],
                "platform": "sklearn",
                "inputs": [{"name": f, "datatype": "FP64", "shape": [-1]} for f in features],
                "outputs": [
                    {"name": "predict", "datatype": "INT64", "shape": [-1]},
                    {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]},
                ],
                "parameters": {"sha256": sha256},
            }

        @app.post(f"/v2/models/{name}/infer")
        async def infer(request: Request) -> dict[str, Any]:
            body = await body_of(request)
            if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
                raise Refused(422, "expected {'inputs': [...]}")
            columns = {i["name"]: i["data"] for i in body["inputs"] if isinstance(i, dict)}
            n = max((len(v) for v in columns.values()), default=0)
            rows = [{k: v[j] for k, v in columns.items() if j < len(v)} for j in range(n)]
            labels, proba = await predict(rows)
            outputs = [
                {"name": "predict", "shape": [len(labels)], "datatype": "INT64", "data": labels}
            ]
            wanted = [o.get("name") for o in body.get("outputs") or []]
            if "predict_proba" in wanted:
                outputs.append(
                    {
                        "name": "predict_proba",
                        "shape": [len(proba), 2],
                        "datatype": "FP64",
                        "data": list(np.ravel(proba)),
                    }
                )
            return {"model_name": name, "model_version": "1", "outputs": outputs}

    else:

        @app.get("/ping")
        async def ping() -> dict[str, str]:
            return {}

        @app.post("/invocations")
        async def invocations(request: Request) -> dict[str, Any]:
            body = await body_of(request)
            split = body.get("dataframe_split") if isinstance(body, dict) else None
            if not isinstance(split, dict):
                raise Refused(400, "expected dataframe_split")
            rows = [dict(zip(split["columns"], row, strict=False)) for row in split["data"]]
            labels, _ = await predict(rows)
            return {"predictions": labels}

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--protocol", default="json")
    parser.add_argument("--fault", default="none")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = build(args.model, args.protocol, args.fault)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
