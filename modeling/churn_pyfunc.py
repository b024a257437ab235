"""The churn model's pyfunc loader: what ``mlflow models predict`` and ``mlflow models serve`` run.

Shipped inside every churn model (``code/``) and named as its ``python_function``
``loader_module``, so plain MLflow can load it without this repository. The model
itself stays a scikit-learn model (``mlflow.sklearn.load_model`` and the service's
fast path read it as before); this wrapper only types the text features as the
categories LightGBM was trained with (JSON brings them as strings) and returns the
calibrated churn probability as the signature's ``p_churn`` column.

Imports nothing from this repository: it must load where only the model's folder is.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

OUTPUT = "p_churn"


class ChurnPyfunc:
    """``predict(frame) -> DataFrame[p_churn]`` with text features typed as the training categories."""

    def __init__(self, model, text_features: list[str]):
        self.model = model
        est = model.calibrated_classifiers_[0].estimator
        est = getattr(est, "estimator", est)  # FrozenEstimator wraps the classifier
        self.features = list(model.feature_names_in_)
        cats = est.booster_.pandas_categorical or []
        if len(cats) != len(text_features):
            raise ValueError(
                f"churn model: {len(text_features)} text features in the signature, {len(cats)} in the booster"
            )
        self.levels = dict(zip(text_features, cats, strict=True))

    def get_raw_model(self):
        return self.model

    def predict(self, data, params=None) -> pd.DataFrame:
        frame = pd.DataFrame(data)
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise ValueError(f"churn model input: missing feature column(s) {missing[:10]}")
        X = frame[self.features].copy()
        for col, levels in self.levels.items():
            X[col] = pd.Categorical(X[col].astype("string"), categories=levels)
        for col in self.features:
            if col not in self.levels:
                X[col] = pd.to_numeric(X[col], errors="raise").astype(np.float64)
        return pd.DataFrame({OUTPUT: self.model.predict_proba(X)[:, 1]}, index=frame.index)


def _load_pyfunc(path: str) -> ChurnPyfunc:
    """Called by ``mlflow.pyfunc.load_model`` with the model's data path (a file in the model folder)."""
    from mlflow.models import Model
    from mlflow.sklearn import _load_pyfunc as load_sklearn

    folder = os.path.dirname(path) if os.path.isfile(path) else path
    inputs = Model.load(folder).signature.inputs
    text = [n for n, t in zip(inputs.input_names(), inputs.input_types(), strict=True) if str(t) == "DataType.string"]
    return ChurnPyfunc(load_sklearn(path).get_raw_model(), text)
