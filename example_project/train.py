"""Train the example churn models and write them with their data, deterministically, in seconds.

    python train.py

writes models/candidate.joblib (the pull request's new model), models/baseline.joblib (the
model in production), data/train.parquet, data/holdout.parquet (labelled rows the gate checks
against) and data/current.parquet (recent production inputs, for drift checks).
"""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

HERE = Path(__file__).parent
NUMERIC = ["tenure_months", "monthly_charges", "support_calls", "age"]
CATEGORICAL = ["contract", "payment_method", "region"]
TARGET = "churned"


def customers(n: int, seed: int, *, shift: float = 0.0) -> pd.DataFrame:
    """Synthetic customers; ``shift`` raises monthly charges, as a price change would."""
    rng = np.random.default_rng(seed)
    contract = rng.choice(["month-to-month", "one-year", "two-year"], n, p=[0.55, 0.25, 0.2])
    frame = pd.DataFrame(
        {
            "tenure_months": rng.integers(0, 72, n),
            "monthly_charges": rng.normal(65 + shift, 20, n).clip(15, 150).round(2),
            "support_calls": rng.poisson(1.5, n),
            "age": rng.integers(18, 90, n),
            "contract": contract,
            "payment_method": rng.choice(["card", "bank", "check", "wallet"], n),
            "region": rng.choice(["north", "south", "east", "west"], n),
        }
    )
    # Real exports have holes: some charges and payment methods are missing.
    frame.loc[rng.random(n) < 0.03, "monthly_charges"] = np.nan
    frame.loc[rng.random(n) < 0.02, "payment_method"] = None
    # Churn has thresholds and interactions a linear model cannot draw, which is why the
    # candidate (gradient boosting) beats the baseline (logistic regression).
    charges = frame.monthly_charges.fillna(65)
    logit = (
        -1.2
        - 0.03 * frame.tenure_months
        + 0.4 * frame.support_calls
        + np.where(contract == "month-to-month", 1.0, -0.9)
        + 2.0 * ((frame.support_calls >= 3) & (frame.tenure_months < 12))
        + 1.5 * (charges > 95)
        - 1.2 * ((frame.age > 35) & (frame.age < 60))
    )
    frame[TARGET] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def preprocess(scale: bool) -> ColumnTransformer:
    numeric = [SimpleImputer(strategy="median")] + ([StandardScaler()] if scale else [])
    categorical = make_pipeline(
        SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")
    )
    return ColumnTransformer(
        [("numeric", make_pipeline(*numeric), NUMERIC), ("categorical", categorical, CATEGORICAL)]
    )


def main() -> None:
    (HERE / "models").mkdir(exist_ok=True)
    (HERE / "data").mkdir(exist_ok=True)
    train = customers(8000, seed=1)
    holdout = customers(6000, seed=2)
    current = customers(2000, seed=3).drop(columns=[TARGET])
    X, y = train.drop(columns=[TARGET]), train[TARGET]

    baseline = Pipeline(
        [("prep", preprocess(scale=True)), ("model", LogisticRegression(max_iter=1000))]
    ).fit(X, y)
    candidate = Pipeline(
        [
            ("prep", preprocess(scale=False)),
            (
                "model",
                HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, random_state=0),
            ),
        ]
    ).fit(X, y)

    joblib.dump(baseline, HERE / "models" / "baseline.joblib")
    joblib.dump(candidate, HERE / "models" / "candidate.joblib")
    train.to_parquet(HERE / "data" / "train.parquet", index=False)
    holdout.to_parquet(HERE / "data" / "holdout.parquet", index=False)
    current.to_parquet(HERE / "data" / "current.parquet", index=False)
    Xh, yh = holdout.drop(columns=[TARGET]), holdout[TARGET]
    for name, model in (("baseline", baseline), ("candidate", candidate)):
        print(f"{name}: holdout accuracy {model.score(Xh, yh):.3f}")


if __name__ == "__main__":
    main()
