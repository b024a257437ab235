"""Fit the churn model: LightGBM with early stopping, calibrated on held-out rows.

The trees may start from a prior's log-odds (``modeling.prior_boosting``): from a
constant, from BG/NBD's P(no order in the horizon), or from an RFM logistic
regression fitted on the training rows (:mod:`training.churn_starts` makes and
chooses them), so the model starts where the classic baselines end and keeps their
smooth ranking on small shops.

The evaluation model learns from the training cutoffs, stops early and is calibrated
on the validation cutoff, and is scored on the test cutoff. The scoring model that is
registered repeats the recipe one step later: the booster refits on every cutoff up
to the validation one and is calibrated on the test cutoff, the most recent labels.
When the plan holds customers out instead of later cutoffs, :mod:`training.crossfit`
fits both.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

from modeling.prior_boosting import Prior, PriorBoostedLGBM
from training.churn_starts import ALONE, candidate_priors, choose_start, score_auc
from training.config import ChurnConfig, LgbmParams, MinimumData
from training.datasets import Rows, join_rows


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
    train: Rows, stop: Rows, params: LgbmParams, *, seed: int, prior: Prior | None = None, callbacks: tuple = ()
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


def calibrate(clf: PriorBoostedLGBM, rows: Rows, method: str) -> CalibratedClassifierCV:
    """Map the frozen booster's scores to probabilities on rows it never saw."""
    return CalibratedClassifierCV(FrozenEstimator(clf), method=method).fit(rows.X, rows.y)


@dataclass(frozen=True)
class FittedChurn:
    """A calibrated model plus how it was made; ``prior``: what the trees were boosted from, or None."""

    model: CalibratedClassifierCV
    booster: PriorBoostedLGBM
    method: str
    rounds: int
    prior: Prior | None = None
    valid_auc: dict[str, float] | None = None  # validation-rows AUC of each candidate start
    start: str = "none"  # the chosen candidate: none, bg_nbd, rfm, or a prior alone (bg_nbd_alone, rfm_alone)


def fit_churn_model(
    train: Rows, stop: Rows, calib: Rows, params: LgbmParams, config: ChurnConfig, *, bg_nbd: str | None = None
) -> FittedChurn:
    """Early stopping on ``stop``, choice of start on ``calib``, calibration on both (rows no tree has seen).

    Candidate starts: a constant, BG/NBD's log-odds (``bg_nbd``, the column of its P(no order)) and the
    RFM logistic prior; see :func:`choose_start`.
    """
    priors = candidate_priors(train, bg_nbd)
    boosters = {name: fit_booster(train, stop, params, seed=config.seed, prior=p) for name, p in priors.items()}
    for name in [n for n, p in priors.items() if p is not None]:
        boosters[f"{name}{ALONE}"] = boosters[name].alone()  # the baseline itself, in case the trees only add noise
    held = join_rows(stop, calib)
    scores = {name: b.decision_function(held.X) for name, b in boosters.items()}
    auc = {name: score_auc(held.y, s) for name, s in scores.items()}
    best = choose_start(held.y, scores, seed=config.seed)
    booster = boosters[best]
    rounds = booster.best_iteration_ or params.max_rounds
    method = config.calibration
    return FittedChurn(calibrate(booster, held, method), booster, method, rounds, booster.prior, auc, best)


def refit_for_scoring(
    refit: Rows, latest: Rows, params: LgbmParams, rounds: int, config: ChurnConfig, *, start: str, bg_nbd: str | None
) -> FittedChurn:
    """The registered model: the chosen start (an RFM prior refitted too) and the early-stopped number of
    rounds on the refit rows (or the prior alone), calibrated on the latest."""
    alone = start.endswith(ALONE)
    prior = candidate_priors(refit, bg_nbd)[start.removesuffix(ALONE)]
    booster = classifier(params, n_estimators=rounds, seed=config.seed).fit_from_prior(refit.X, refit.y, prior=prior)
    booster = booster.alone() if alone else booster
    return FittedChurn(
        calibrate(booster, latest, config.calibration), booster, config.calibration, rounds, booster.prior, start=start
    )


def predict(model: CalibratedClassifierCV, X: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(X)[:, 1]
