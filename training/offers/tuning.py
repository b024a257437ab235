"""The offer model's LightGBM settings, searched with the one tuner (``training.tuning``) by the pooled
outcome model's (an S-learner's) validation log-loss on a slice of the training sends."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
from sklearn.metrics import log_loss

from training.offers.config import OfferModelConfig
from training.offers.holdout import split_random
from training.offers.uplift import DEFAULT_PARAMS, make_learner
from training.tuning import Range, search

OFFER_SPACE = {
    "n_estimators": Range(50, 400, log=True, integer=True),
    "learning_rate": Range(0.02, 0.2, log=True),
    "num_leaves": Range(4, 63, log=True, integer=True),
    "min_child_samples": Range(20, 400, log=True, integer=True),
    "reg_lambda": Range(1e-3, 10.0, log=True),
}


def validation_sends(arm: np.ndarray, holdout_kind: str, seed: int) -> np.ndarray:
    """Tuning's own split of the training sends: the latest quarter after a time holdout, else a random one."""
    if holdout_kind != "time":
        return split_random(arm, 0.25, seed + 1)
    valid = np.zeros(len(arm), dtype=bool)
    valid[int(0.75 * len(arm)) :] = True
    return valid


def tune_params(X: pd.DataFrame, arm: np.ndarray, y: np.ndarray, valid: np.ndarray, config: OfferModelConfig) -> dict:
    """The configured settings (``config.trials`` 0) or the best of the search, trial 0 being them."""
    base = {**DEFAULT_PARAMS, **config.lgbm}
    if config.trials == 0:
        return base

    def evaluate(values: dict, trial: optuna.Trial) -> dict[str, float]:
        learner = make_learner("s", int(arm.max()) + 1, {**base, **values}, config.seed, config.n_jobs)
        learner.fit(X[~valid], arm[~valid], y[~valid])
        p = learner.predict_proba(X[valid])[np.arange(valid.sum()), arm[valid]]
        return {"valid_log_loss": float(log_loss(y[valid], np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1]))}

    study = search(
        evaluate,
        space=OFFER_SPACE,
        start=base,
        metric="valid_log_loss",
        direction="minimize",
        seed=config.seed,
        trials=config.trials,
        timeout_s=config.timeout_s,
        label="valid log-loss",
    )
    return {**base, **study.best_params}
