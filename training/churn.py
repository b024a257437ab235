"""Fit the churn model: LightGBM with early stopping, calibrated on held-out rows.

The trees may start from a prior's log-odds (``modeling.prior_boosting``): from a
constant, from BG/NBD's P(no order in the horizon), or from an RFM logistic
regression fitted on the training rows. All three are fitted and the one that
ranks the held-out calibration rows best is kept, so the model starts where the
classic baselines end and keeps their smooth ranking on small shops.

The evaluation model learns from the training cutoffs, stops early and is calibrated
on the validation cutoff, and is scored on the test cutoff. The scoring model that is
registered repeats the recipe one step later: the booster refits on every cutoff up
to the validation one and is calibrated on the test cutoff, the most recent labels.

When the plan holds customers out instead of later cutoffs (a short history, so
usually a small shop), a 20% validation slice is a few hundred customers: too few
to choose a start or fit a calibrator without noise. Then :func:`cross_fitted`
uses every non-test customer: five folds by customer, each candidate fitted
on three, early-stopped on a fourth and scored on the fifth; the start is
chosen and the calibrator fitted on those out-of-fold scores at the latest
cutoff, and the model refitted on all of them.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from features.contract import CUSTOMER_ID
from modeling.prior_boosting import Prior, PriorBoostedLGBM, transform
from training.config import ChurnConfig, LgbmParams, MinimumData
from training.datasets import CUTOFF, Rows
from training.evaluate import roc_auc

log = logging.getLogger(__name__)

ALONE = "_alone"  # a start whose trees are weighed 0: the prior alone
FOLDS = 5  # cross-fitting folds (by customer) when customers, not later cutoffs, are held out
# the RFM logistic prior's inputs: recency, frequency, value, tenure (log1p) and BG/NBD's prediction (logit)
RFM_FEATURES = (
    "sales_days_since_last_order",
    "sales_orders_all",
    "sales_avg_order_value_all",
    "sales_days_since_first_order",
)


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


def split_rows(rows: Rows, share: float, seed: int) -> tuple[Rows, Rows]:
    """Split a time slice by customer (all of a customer's cutoffs on one side): early stopping vs calibration."""
    ids = rows.keys[CUSTOMER_ID].unique()
    chosen = ids[np.random.default_rng(seed).random(len(ids)) < share]
    pick = rows.keys[CUSTOMER_ID].isin(chosen).to_numpy()
    return _subset(rows, pick), _subset(rows, ~pick)


def _subset(rows: Rows, mask: np.ndarray) -> Rows:
    return Rows(X=rows.X[mask].reset_index(drop=True), y=rows.y[mask], keys=rows.keys[mask].reset_index(drop=True))


def join_rows(a: Rows, b: Rows) -> Rows:
    """``a``'s rows then ``b``'s; a text feature stays a category with both sides' levels (a plain concat of
    categories that differ gives strings, which LightGBM refuses)."""
    X = pd.concat([a.X, b.X], ignore_index=True)
    for col in a.X.columns:
        if isinstance(a.X[col].dtype, pd.CategoricalDtype) and not isinstance(X[col].dtype, pd.CategoricalDtype):
            X[col] = union_categoricals([a.X[col], b.X[col]], ignore_order=True)
    return Rows(X=X, y=np.r_[a.y, b.y], keys=pd.concat([a.keys, b.keys], ignore_index=True))


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


def rfm_prior(train: Rows, bg_nbd: str | None) -> Prior | None:
    """Logistic regression on log recency, frequency, value and tenure (and BG/NBD's logit), as a Prior."""
    columns = [c for c in RFM_FEATURES if c in train.X.columns] + ([bg_nbd] if bg_nbd else [])
    if not columns or len(np.unique(train.y)) < 2:
        return None
    kinds = ["logit" if c == bg_nbd else "log1p" for c in columns]
    Z = np.column_stack([transform(train.X[c], k) for c, k in zip(columns, kinds, strict=True)])
    center, scale = np.nanmean(Z, axis=0), np.nanstd(Z, axis=0)
    scale[~(scale > 0)] = 1.0
    Zs = np.nan_to_num((Z - center) / scale, nan=0.0)  # missing -> the centre, a term of 0
    lr = LogisticRegression(C=1.0, max_iter=1000).fit(Zs, train.y)
    coef = lr.coef_[0] / scale
    return Prior("rfm", tuple(columns), tuple(kinds), tuple(map(float, coef)), tuple(map(float, center)),
                 float(lr.intercept_[0]))  # fmt: skip


def candidate_priors(rows: Rows, bg_nbd: str | None) -> dict[str, Prior | None]:
    """The starts the trees may boost from, the RFM one fitted on ``rows``."""
    priors = {"none": None}
    if bg_nbd is not None:
        priors["bg_nbd"] = Prior.single(bg_nbd)
    rfm = rfm_prior(rows, bg_nbd)
    if rfm is not None:
        priors["rfm"] = rfm
    return priors


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
    auc = {name: _auc(held.y, s) for name, s in scores.items()}
    best = choose_start(held.y, scores, seed=config.seed)
    booster = boosters[best]
    rounds = booster.best_iteration_ or params.max_rounds
    method = config.calibration
    return FittedChurn(calibrate(booster, held, method), booster, method, rounds, booster.prior, auc, best)


# simplest first: BG/NBD alone, the RFM regression, trees on BG/NBD, trees on the RFM regression, trees alone
LADDER = ("bg_nbd_alone", "rfm_alone", "bg_nbd", "rfm", "none")


def choose_start(y: np.ndarray, scores: dict[str, np.ndarray], *, seed: int, n_boot: int = 200) -> str:
    """The simplest candidate (in :data:`LADDER` order) whose ROC AUC is within one standard error of the
    best one's: the one-standard-error rule, the standard error that of the paired bootstrap difference.

    On a small shop the AUCs differ by noise and BG/NBD alone ships; the RFM regression and the trees
    must earn their parameters by a margin the rows can tell from noise.
    """
    names = sorted(scores, key=lambda name: LADDER.index(name) if name in LADDER else len(LADDER))
    rng = np.random.default_rng(seed)
    draws = {name: [] for name in names}
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        for name in names:
            draws[name].append(roc_auc(y[idx], scores[name][idx]))
    auc = {name: _auc(y, scores[name]) for name in names}
    best = max(names, key=lambda name: auc[name])
    for name in names:
        if auc[name] >= auc[best] - np.nanstd(np.subtract(draws[best], draws[name])):
            return name
    return best


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    return float(roc_auc_score(y, score)) if 0 < y.mean() < 1 else float("nan")


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
        fit, stop, out = _subset(pool, ~held & ~stopping), _subset(pool, stopping), _subset(pool, held)
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
    starts = [start] if start else _start_names(candidate_priors(pool, bg_nbd))
    scores, rounds = out_of_fold(pool, params, config, bg_nbd=bg_nbd, starts=starts)
    latest = (pool.keys[CUTOFF] == pool.keys[CUTOFF].max()).to_numpy()
    y, recent = pool.y[latest], {name: s[latest] for name, s in scores.items()}
    auc = {name: _auc(y, s) for name, s in recent.items()}
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
    model = calibrated_on(booster, _subset(pool, latest), oof, config.calibration)
    return FittedChurn(model, booster, config.calibration, n_rounds, booster.prior, auc, best)


def tree_weight(y: np.ndarray, *, trees: np.ndarray, prior: np.ndarray) -> float:
    """How much the trees' correction counts beside the prior, in [0, 1]: the ratio of their coefficients in a
    logistic regression of the out-of-fold labels on both (stacking); on a small shop the trees are partly
    noise and a weight under 1 shrinks them toward the prior."""
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(np.column_stack([trees, prior]), y)
    a, b = lr.coef_[0]
    return float(np.clip(a / b, 0.0, 1.0)) if b > 0 else 1.0


def _start_names(priors: dict[str, Prior | None]) -> list[str]:
    return list(priors) + [f"{name}{ALONE}" for name, p in priors.items() if p is not None]


def calibrated_on(clf: PriorBoostedLGBM, rows: Rows, scores: np.ndarray, method: str) -> CalibratedClassifierCV:
    """The frozen ``clf`` with a calibrator fitted on ``scores`` (out-of-fold raw scores of ``rows``), not on
    ``clf``'s own in-sample scores, which are overconfident: the usual calibrated model, refitted."""
    model = calibrate(clf, rows, method)
    model.calibrated_classifiers_[0].calibrators[0].fit(scores, rows.y)
    return model


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
