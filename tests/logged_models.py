"""The registered champions through MLflow's own loaders: the reference the scorer's fast paths must reproduce."""

from __future__ import annotations

import numpy as np
import pandas as pd


def logged_churn(models, rows: pd.DataFrame) -> np.ndarray:
    """The registered churn model's own probabilities (MLflow's loader, sklearn's predict_proba) for ``rows``."""
    import mlflow.sklearn

    churn = mlflow.sklearn.load_model(f"models:/{models.churn.name}/{models.churn.version}")
    X = rows[list(models.churn.features)].copy()
    for col, levels in models.churn.levels.items():
        X[col] = pd.Categorical(X[col].astype("string"), categories=list(levels))
    return churn.predict_proba(X)[:, 1]


def logged_offer(models):
    """The registered offer model, through MLflow's pyfunc loader."""
    import mlflow.pyfunc

    inner = mlflow.pyfunc.load_model(f"models:/{models.offer.name}/{models.offer.version}").unwrap_python_model()
    return inner.model
