"""Tuning: trials are nested MLflow runs, the configured parameters are trial 0, the SQLite study resumes where
it stopped on the same data and settings, and other data starts its own study."""

import mlflow
import numpy as np
import optuna
import pandas as pd

from training.churn_tuning import study_name, tune
from training.config import LgbmParams, Tuning
from training.datasets import Rows
from training.runs import start_tracking
from training.tuning import storage_url


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
    name = study_name(train, stop, base=base, tuning=tuning, seed=0)
    assert name.startswith("resume-me-")
    study = optuna.load_study(study_name=name, storage=storage_url(storage))
    assert len(study.trials) == 5
    first = study.trials[0]
    assert first.params["learning_rate"] == base.learning_rate and first.params["num_leaves"] == base.num_leaves
    assert study.best_value >= first.value  # tuning never returns worse than the configured parameters
    assert best.max_rounds == 200


def test_other_data_or_settings_get_their_own_study(tmp_path):
    train, stop = synthetic_rows(500, 0), synthetic_rows(200, 1)
    base, tuning = LgbmParams(), Tuning(study_name="churn")
    name = study_name(train, stop, base=base, tuning=tuning, seed=0)
    assert name == study_name(synthetic_rows(500, 0), synthetic_rows(200, 1), base=base, tuning=tuning, seed=0)
    assert name != study_name(synthetic_rows(500, 2), stop, base=base, tuning=tuning, seed=0)
    assert name != study_name(train, stop, base=LgbmParams(num_leaves=15), tuning=tuning, seed=0)
    assert name != study_name(train, stop, base=base, tuning=tuning, seed=1)


def test_offer_tuning_starts_from_the_configured_settings():
    """One trial is the configured LightGBM settings themselves: tuning cannot return something untried and worse."""
    from training.offers.config import OfferModelConfig
    from training.offers.tuning import tune_params
    from training.offers.uplift import DEFAULT_PARAMS

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=600), "b": rng.normal(size=600)})
    arm, y = rng.integers(0, 3, 600), rng.integers(0, 2, 600)
    valid = np.arange(600) >= 450
    config = OfferModelConfig(trials=1, lgbm={"num_leaves": 7, "n_estimators": 30}, n_jobs=1)
    assert tune_params(X, arm, y, valid, config) == {**DEFAULT_PARAMS, "num_leaves": 7, "n_estimators": 30}
