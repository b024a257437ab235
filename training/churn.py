"""Fit the churn model: LightGBM with early stopping, calibrated on a later held-out time slice.

The trees may start from BG/NBD's log-odds (``serving.prior_boosting``): both
ways are fitted and the one that ranks the held-out calibration rows better is kept.

The evaluation model learns from the training cutoffs, stops early and is calibrated
on the validation cutoff, and is scored on the test cutoff. The scoring model that is
registered repeats the recipe one step later: the booster refits on every cutoff up
to the validation one and is calibrated on the test cutoff, the most recent labels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import roc_auc_score

from features.contract import CUSTOMER_ID
from serving.prior_boosting import PriorBoostedLGBM
from training.config import ChurnConfig, LgbmParams, MinimumData
from training.datasets import Rows

log = logging.getLogger(__name__)


class InsufficientData(ValueError):
    """Too few customers or churners to learn and evaluate; the message gives counts and thresholds."""


def check_minimum(train: Rows, test: Rows, minimum: MinimumData) -> None:
    """Refuse to train when the counts cannot support a model or its evaluation."""
    problems = []
    if len(test) < minimum.customers:
        problems.append(f"{len(test):,} customers at the test cutoff (need >= {minimum.customers:,})")
    for name, rows in (("training", train), ("test", test)):
        churners, stayers = rows.churners, len(rows) - rows.churners
        if churners < minimum.churners:
            problems.append(f"{churners:,} churners in {name} rows (need >= {minimum.churners:,})")
        if stayers < minimum.churners:
            problems.append(f"{stayers:,} non-churners in {name} rows (need >= {minimum.churners:,})")
    if problems:
        raise InsufficientData("too little data to train a churn model: " + "; ".join(problems))


def classifier(params: LgbmParams, *, n_estimators: int, seed: int) -> PriorBoostedLGBM:
    return PriorBoostedLGBM(
        n_estimators=n_estimators,
        learning_rate=params.learning_rate,
        num_leaves=params.num_leaves,
        min_child_samples=params.min_child_samples,
        colsample_bytree=params.feature_fraction,
        subsample=params.bagging_fraction,
        subsample_freq=params.bagging_freq,
        reg_lambda=params.lambda_l2,
        metric="auc",
        random_state=seed,
        verbose=-1,
    )


def fit_booster(
    train: Rows, stop: Rows, params: LgbmParams, *, seed: int, prior: str | None = None, callbacks: tuple = ()
) -> PriorBoostedLGBM:
    """Boost (from the prior's log-odds, when given) until the validation AUC stops improving."""
    clf = classifier(params, n_estimators=params.max_rounds, seed=seed)
    return clf.fit_from_prior(
        train.X,
        train.y,
        prior=prior,
        eval_X=stop.X,
        eval_y=stop.y,
        callbacks=[lgb.early_stopping(params.early_stopping_rounds, verbose=False), *callbacks],
    )


def calibration_method(n_rows: int, config: ChurnConfig) -> str:
    """Isotonic needs many rows to be smooth; Platt scaling is safer on a small slice."""
    if config.calibration != "auto":
        return config.calibration
    return "isotonic" if n_rows >= config.isotonic_min_rows else "sigmoid"


def calibrate(clf: PriorBoostedLGBM, rows: Rows, method: str) -> CalibratedClassifierCV:
    """Map the frozen booster's scores to probabilities on rows it never saw."""
    return CalibratedClassifierCV(FrozenEstimator(clf), method=method).fit(rows.X, rows.y)


def split_rows(rows: Rows, share: float, seed: int) -> tuple[Rows, Rows]:
    """Split a time slice by customer (all of a customer's cutoffs on one side): early stopping vs calibration."""
    ids = rows.keys[CUSTOMER_ID].unique()
    chosen = ids[np.random.default_rng(seed).random(len(ids)) < share]
    pick = rows.keys[CUSTOMER_ID].isin(chosen).to_numpy()
    return _subset(rows, pick), _subset(rows, ~pick)


def _subset(rows: Rows, mask: np.ndarray) -> Rows:
    return Rows(X=rows.X[mask].reset_index(drop=True), y=rows.y[mask], keys=rows.keys[mask].reset_index(drop=True))


@dataclass(frozen=True)
class FittedChurn:
    """A calibrated model plus how it was made; ``prior``: the column it was boosted from, or None."""

    model: CalibratedClassifierCV
    booster: PriorBoostedLGBM
    method: str
    rounds: int
    prior: str | None = None
    prior_auc: dict[str, float] | None = None  # calibration-half AUC with and without the prior


def fit_churn_model(
    train: Rows, valid: Rows, params: LgbmParams, config: ChurnConfig, *, prior: str | None = None
) -> FittedChurn:
    """Early stopping on one half of the validation slice, calibration on the other.

    With a ``prior`` column, two boosters are fitted, from the prior's log-odds and from a constant, and
    the one with the higher AUC on the calibration half (rows neither has seen) is kept.
    """
    stop, calib = split_rows(valid, 0.5, config.seed)
    booster = fit_booster(train, stop, params, seed=config.seed)
    auc = None
    if prior is not None:
        boosted = fit_booster(train, stop, params, seed=config.seed, prior=prior)
        auc = {"with_prior": _auc(calib.y, boosted.decision_function(calib.X))}
        auc["without_prior"] = _auc(calib.y, booster.decision_function(calib.X))
        if auc["with_prior"] > auc["without_prior"]:
            booster = boosted
    method = calibration_method(len(calib), config)
    rounds = booster.best_iteration_ or params.max_rounds
    return FittedChurn(calibrate(booster, calib, method), booster, method, rounds, booster.prior_, auc)


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    return float(roc_auc_score(y, score)) if 0 < y.mean() < 1 else float("nan")


def refit_for_scoring(
    refit: Rows, latest: Rows, params: LgbmParams, rounds: int, config: ChurnConfig, *, prior: str | None = None
) -> FittedChurn:
    """The registered model: the early-stopped number of rounds on every earlier cutoff, calibrated on the latest."""
    booster = classifier(params, n_estimators=rounds, seed=config.seed).fit_from_prior(refit.X, refit.y, prior=prior)
    method = calibration_method(len(latest), config)
    return FittedChurn(calibrate(booster, latest, method), booster, method, rounds, prior)


def predict(model: CalibratedClassifierCV, X: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(X)[:, 1]
