"""Cross-fitting, for plans that hold customers out instead of later cutoffs.

A short history (usually a small shop) gives a 20% validation slice of a few hundred customers: too few
to choose a start or fit a calibrator without noise. :func:`cross_fitted` then uses every non-test
customer: five folds by customer, each candidate fitted on three, early-stopped on a fourth and scored
on the fifth; the start is chosen and the calibrator fitted on those out-of-fold scores at the latest
cutoff, and the model refitted on all of them.
"""

from __future__ import annotations

import zlib

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression

from features.contract import CUSTOMER_ID
from modeling.prior_boosting import PriorBoostedLGBM
from training.churn import FittedChurn, calibrate, classifier, fit_booster
from training.churn_starts import ALONE, candidate_priors, choose_start, score_auc, start_names
from training.config import ChurnConfig, LgbmParams
from training.datasets import CUTOFF, Rows, subset

FOLDS = 5  # cross-fitting folds (by customer) when customers, not later cutoffs, are held out


def folds(rows: Rows, k: int = FOLDS) -> np.ndarray:
    """Each row's fold: all of a customer's cutoffs together, from a CRC-32 of the id (salted, so the folds
    cut across the plan's own customer groups); row order and machine do not matter."""
    return np.array([zlib.crc32(f"fold:{i}".encode()) % k for i in rows.keys[CUSTOMER_ID]], dtype=np.int64)


def out_of_fold(
    pool: Rows, params: LgbmParams, config: ChurnConfig, *, bg_nbd: str | None, starts: list[str]
) -> tuple[dict[str, np.ndarray], dict[str, list[int]]]:
    """Every row's raw score under each start, fitted (the RFM prior too) on three other folds and
    early-stopped on the fourth, so no tree count is chosen on the rows it scores; and each start's
    early-stopped rounds per fold."""
    fold = folds(pool)
    scores = {name: np.full(len(pool), np.nan) for name in starts}
    rounds: dict[str, list[int]] = {}
    for k in range(FOLDS):
        held, stopping = fold == k, fold == (k + 1) % FOLDS
        fit, stop, out = subset(pool, ~held & ~stopping), subset(pool, stopping), subset(pool, held)
        priors = candidate_priors(fit, bg_nbd)
        for base in dict.fromkeys(name.removesuffix(ALONE) for name in starts):
            booster = fit_booster(fit, stop, params, seed=config.seed, prior=priors[base])
            rounds.setdefault(base, []).append(booster.best_iteration_ or params.max_rounds)
            for name in (base, f"{base}{ALONE}") if priors[base] is not None else (base,):
                if name in scores or name.endswith(ALONE):
                    scores.setdefault(name, np.full(len(pool), np.nan))
                    scored = booster if name == base else booster.alone()
                    scores[name][held] = scored.decision_function(out.X)
    return scores, rounds


def cross_fitted(
    pool: Rows, params: LgbmParams, config: ChurnConfig, *, bg_nbd: str | None, start: str | None = None
) -> FittedChurn:
    """The start (``start``, or the one :func:`choose_start` picks), refitted on all of ``pool`` with the
    folds' median early-stopped rounds.

    The choice, the trees' weight and the calibrator come from the out-of-fold scores at the latest cutoff,
    the rows nearest to scoring time: earlier cutoffs have less history behind them, so BG/NBD is weaker
    there and its probabilities mean something else (the time split recalibrates on its latest cutoffs too).
    """
    starts = [start] if start else start_names(candidate_priors(pool, bg_nbd))
    scores, rounds = out_of_fold(pool, params, config, bg_nbd=bg_nbd, starts=starts)
    latest = (pool.keys[CUTOFF] == pool.keys[CUTOFF].max()).to_numpy()
    y, recent = pool.y[latest], {name: s[latest] for name, s in scores.items()}
    auc = {name: score_auc(y, s) for name, s in recent.items()}
    best = start or choose_start(y, recent, seed=config.seed)
    base = best.removesuffix(ALONE)
    n_rounds = max(1, int(np.median(rounds[base])))
    prior = candidate_priors(pool, bg_nbd)[base]
    booster = classifier(params, n_estimators=n_rounds, seed=config.seed).fit_from_prior(pool.X, pool.y, prior=prior)
    if best.endswith(ALONE):
        booster, oof = booster.alone(), recent[best]
    elif prior is not None:
        alone = recent[f"{base}{ALONE}"]
        weight = tree_weight(y, trees=recent[best] - alone, prior=alone)
        booster, oof = booster.weighted(weight), weight * (recent[best] - alone) + alone
    else:
        oof = recent[best]
    model = calibrated_on(booster, subset(pool, latest), oof, config.calibration)
    return FittedChurn(model, booster, config.calibration, n_rounds, booster.prior, auc, best)


def tree_weight(y: np.ndarray, *, trees: np.ndarray, prior: np.ndarray) -> float:
    """How much the trees' correction counts beside the prior, in [0, 1]: the ratio of their coefficients in a
    logistic regression of the out-of-fold labels on both (stacking); on a small shop the trees are partly
    noise and a weight under 1 shrinks them toward the prior."""
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(np.column_stack([trees, prior]), y)
    a, b = lr.coef_[0]
    return float(np.clip(a / b, 0.0, 1.0)) if b > 0 else 1.0


def calibrated_on(clf: PriorBoostedLGBM, rows: Rows, scores: np.ndarray, method: str) -> CalibratedClassifierCV:
    """The frozen ``clf`` with a calibrator fitted on ``scores`` (out-of-fold raw scores of ``rows``), not on
    ``clf``'s own in-sample scores, which are overconfident: the usual calibrated model, refitted."""
    model = calibrate(clf, rows, method)
    model.calibrated_classifiers_[0].calibrators[0].fit(scores, rows.y)
    return model
