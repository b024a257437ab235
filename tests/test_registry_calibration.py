"""Both calibration methods the trainer may choose can be logged and loaded back (skops trusted types)."""

from __future__ import annotations

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

from training.registry import log_model, start_tracking


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibrated_model_round_trips_through_mlflow(method, tmp_path):
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"sales_orders_all": rng.poisson(3, 600).astype(float), "demo_age": rng.normal(40, 9, 600)})
    y = (rng.random(600) < 1 / (1 + np.exp(X["sales_orders_all"] - 3))).astype(int)
    clf = lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(X[:400], y[:400])
    model = CalibratedClassifierCV(FrozenEstimator(clf), method=method).fit(X[400:], y[400:])
    start_tracking("calibration", uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifacts=(tmp_path / "a").as_uri())
    with mlflow.start_run():
        uri = log_model(model, X)
    loaded = mlflow.sklearn.load_model(uri)
    np.testing.assert_allclose(loaded.predict_proba(X)[:, 1], model.predict_proba(X)[:, 1])
