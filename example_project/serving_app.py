"""The example project's prediction service: a FastAPI app that serves the approved artifact.

    DEPLOY_GATE_MODEL=models/candidate.joblib uvicorn serving_app:app --host 127.0.0.1 --port 8000

It speaks the gate's documented JSON shape, so CI gates the running service after the artifact:

    pytest --deploy-gate models/candidate.joblib --deploy-gate-data data/holdout.parquet \\
        --deploy-gate-endpoint churn=http://127.0.0.1:8000

- ``GET /health``: 200 once the model is loaded.
- ``GET /metadata``: name, version, sha256 of the artifact file, features, classes, outputs.
- ``POST /predict`` with ``{"rows": [{feature: value, ...}, ...]}``: ``{"predictions": [...],
  "probabilities": [[...], ...], "model_version": ...}``.

A request the model cannot answer is refused with a 422 that says why: a missing or unknown
feature, a string where a number belongs, a missing value where the model has no imputer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict
from serving import ChurnService
from threadpoolctl import threadpool_limits

from deploy_gate.errors import InvalidOutputError
from deploy_gate.identity import sha256_file

MODEL_PATH = Path(
    os.environ.get("DEPLOY_GATE_MODEL", Path(__file__).parent / "models/candidate.joblib")
)


class Customer(BaseModel):
    """One row: the churn model's features. Missing charges and payment methods are imputed by
    the model; the other features must be given."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    tenure_months: int
    monthly_charges: float | None
    support_calls: int
    age: int
    contract: str
    payment_method: str | None
    region: str


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: list[Customer]


service = ChurnService(MODEL_PATH)
service.load_model()
# One thread per model call: a request is one row, and an OpenMP team spinning on a shared core
# makes it a hundred times slower (scale out with uvicorn --workers instead).
threadpool_limits(1)
SHA256 = sha256_file(MODEL_PATH)
app = FastAPI(title="churn")


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ready"}


@app.get("/metadata")
def metadata() -> dict[str, Any]:
    return {
        "name": "churn",
        "version": service.model_version,
        "sha256": SHA256,
        "features": list(Customer.model_fields),
        "classes": list(service.classes or ()),
        "outputs": ["predictions", "probabilities"],
    }


@app.post("/predict")
def predict(request: PredictRequest) -> dict[str, Any]:
    if not request.rows:
        return {"predictions": [], "probabilities": [], "model_version": service.model_version}
    # Rows as mappings: the deployment builds the frame, reading null as a missing value the
    # same way for one row as for many.
    rows = [row.model_dump() for row in request.rows]
    try:
        labels = service.batch_predict(rows)
        proba = service.batch_predict_proba(rows)
    except (KeyError, ValueError) as exc:
        if isinstance(exc, InvalidOutputError):
            raise  # the model misbehaved: a server error, never an answer
        raise HTTPException(status_code=422, detail=str(exc)) from None
    return {
        "predictions": labels.tolist(),
        "probabilities": proba.tolist(),
        "model_version": service.model_version,
    }
