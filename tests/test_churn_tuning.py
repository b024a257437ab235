"""Tuning: trials are nested MLflow runs, and the SQLite study resumes where it stopped."""

import mlflow
import numpy as np
import optuna
import pandas as pd

from training.config import LgbmParams, Tuning
from training.datasets import Rows
from training.registry import start_tracking
from training.tuning import storage_url, tune


def synthetic_rows(n: int, seed: int) -> Rows:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"recency": rng.exponential(30, n), "visits": rng.poisson(3, n).astype(float)})
    logit = (X["recency"] - 30) / 10 - 0.3 * X["visits"]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).to_numpy(dtype="int8")
    keys = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "cutoff": pd.Timestamp("2026-01-01")})
    return Rows(X=X, y=y, keys=keys)


def test_trials_are_nested_runs_and_the_study_resumes(tmp_path):
    start_tracking("tuning-test", uri=f"sqlite:///{tmp_path}/mlflow.db", artifacts=(tmp_path / "art").as_uri())
    train, stop = synthetic_rows(3000, 0), synthetic_rows(1000, 1)
    base = LgbmParams(max_rounds=200, early_stopping_rounds=10)
    tuning = Tuning(study_name="resume-me")
    storage = tmp_path / "optuna.db"
    try:
        with mlflow.start_run() as parent:
            best = tune(train, stop, base=base, tuning=tuning, trials=3, storage=storage, seed=0)
        with mlflow.start_run():
            tune(train, stop, base=base, tuning=tuning, trials=2, storage=storage, seed=0)
        children = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    finally:
        mlflow.set_tracking_uri(None)
    assert len(children) == 3 and {"params.learning_rate", "params.num_leaves"} <= set(children.columns)
    study = optuna.load_study(study_name="resume-me", storage=storage_url(storage))
    assert len(study.trials) == 5
    assert best.max_rounds == 200 and best != base
