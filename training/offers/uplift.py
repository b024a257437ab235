"""Multi-treatment uplift learners on LightGBM: P(convert | x, arm) for 'none' and every offer.

Arms are integer codes, 0 = no offer. Each learner ends as a list of LightGBM
boosters and a spec saying how they add up to each arm's probability, the
form ``modeling.offer_model`` scores, so training and serving share one path.

- S-learner: one classifier on the features plus the arm.
- T-learner: one classifier per arm.
- X-learner: T-learner outcomes, then per offer two effect regressors on
  imputed effects (treated: y - mu0(x); control: mu_k(x) - y), blended by the
  share of rows that got the offer (Kuenzel et al. 2019).
- DR-learner: per offer one effect regressor on doubly-robust pseudo-outcomes
  built from cross-fitted outcome models and the logged propensities
  (Kennedy 2023), added to the control outcome model.

``fit(X, arm, y, propensity)``: ``propensity`` is P(logged arm | x) per row;
only the DR-learner reweights by it, the others model outcomes directly.
Every booster stops early on a seeded fifth of its own rows (at most
``n_estimators`` trees), so a 1% conversion rate gets the few trees it can
support and a 10% rate the many it needs.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd

from modeling.offer_model import ARM_COLUMN, OfferModel
from training.offers.errors import OfferLogError
from training.offers.holdout import split_random

LEARNERS = ("t", "s", "x", "dr")  # the first listed is the reference the others must beat
CROSS_FIT_FOLDS = 2
DEFAULT_PARAMS = {
    "n_estimators": 200,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 100,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
}


EARLY_STOPPING_SHARE = 0.2
EARLY_STOPPING_ROUNDS = 30
MIN_EARLY_STOPPING_ROWS = 200


class UpliftLearner:
    """Base: ``fit(X, arm, y)`` sets ``boosters_`` and ``terms_``; ``predict_proba(X)`` scores every arm."""

    kind = ""

    def __init__(self, n_arms: int, params: dict | None = None, random_state: int = 0, n_jobs: int = 2):
        self.n_arms = n_arms
        self.params = params
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _lgbm(self, estimator, **extra):
        params = {**DEFAULT_PARAMS, **(self.params or {}), **extra}
        return estimator(**params, random_state=self.random_state, n_jobs=self.n_jobs, verbose=-1)

    def _classifier(self, X: pd.DataFrame, y: np.ndarray, **fit_kw) -> lgb.Booster:
        if len(np.unique(y)) < 2:  # an arm where nobody (or everybody) converted
            raise OfferLogError(
                f"{self.kind}-learner: {len(y):,} rows of one arm all have outcome {int(y[0]) if len(y) else '-'}; "
                "cannot fit a conversion model; log more sends or raise min_conversions_per_arm"
            )
        return self._fit(lgb.LGBMClassifier, X, y, strata=y, **fit_kw)

    def _regressor(self, X: pd.DataFrame, y: np.ndarray) -> lgb.Booster:
        return self._fit(lgb.LGBMRegressor, X, y, strata=np.zeros(len(y), dtype=int))

    def _fit(self, estimator, X: pd.DataFrame, y: np.ndarray, *, strata: np.ndarray, **fit_kw) -> lgb.Booster:
        """Fit with the number of trees chosen honestly: early stopping on a seeded, stratified
        ``EARLY_STOPPING_SHARE`` of these rows that the trees never see (rare conversions need far
        fewer trees than common ones; a fixed count overfits them). Tiny inputs use every row and tree."""
        model = self._lgbm(estimator)
        valid = split_random(strata, EARLY_STOPPING_SHARE, self.random_state)
        if valid.sum() < MIN_EARLY_STOPPING_ROWS or len(np.unique(strata[~valid])) < len(np.unique(strata)):
            return model.fit(X, y, **fit_kw).booster_
        model.fit(
            X[~valid],
            y[~valid],
            eval_X=X[valid],
            eval_y=y[valid],
            callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, first_metric_only=True, verbose=False)],
            **fit_kw,
        )
        return model.booster_

    def _check(self, arm, y) -> tuple[np.ndarray, np.ndarray]:
        """Arms and outcomes as numpy arrays; every arm must have rows."""
        arm, y = np.asarray(arm), np.asarray(y)
        counts = np.bincount(arm, minlength=self.n_arms)
        if (counts == 0).any():
            raise OfferLogError(f"every arm needs training rows; rows per arm: {counts.tolist()}")
        return arm, y

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        text = {c: None for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype)}
        return OfferModel.from_parts(self.boosters_, {**self.spec_, "categories": text}).arm_proba(X, len(X))

    @property
    def spec_(self) -> dict:
        return {"arms": list(range(self.n_arms)), "terms": dict(enumerate(self.terms_))}


class SLearner(UpliftLearner):
    kind = "s"

    def fit(self, X: pd.DataFrame, arm: np.ndarray, y: np.ndarray, propensity: np.ndarray | None = None) -> SLearner:
        arm, y = self._check(arm, y)
        strata = arm * 2 + y  # every arm's conversions and non-conversions on both sides of the stopping split
        booster = self._fit(
            lgb.LGBMClassifier, X.assign(**{ARM_COLUMN: arm}), y, strata=strata, categorical_feature=[ARM_COLUMN]
        )
        self.boosters_ = [booster]
        self.terms_ = [[{"booster": 0, "weight": 1.0, "arm_code": a}] for a in range(self.n_arms)]
        return self


class TLearner(UpliftLearner):
    kind = "t"

    def fit(self, X: pd.DataFrame, arm: np.ndarray, y: np.ndarray, propensity: np.ndarray | None = None) -> TLearner:
        arm, y = self._check(arm, y)
        self.boosters_ = [self._classifier(X[arm == a], y[arm == a]) for a in range(self.n_arms)]
        self.terms_ = [[{"booster": a, "weight": 1.0, "arm_code": None}] for a in range(self.n_arms)]
        return self


class XLearner(UpliftLearner):
    kind = "x"

    def fit(self, X: pd.DataFrame, arm: np.ndarray, y: np.ndarray, propensity: np.ndarray | None = None) -> XLearner:
        arm, y = self._check(arm, y)
        outcome = [self._classifier(X[arm == a], y[arm == a]) for a in range(self.n_arms)]
        boosters = list(outcome)
        control = arm == 0
        mu0_treated = {a: outcome[0].predict(X[arm == a]) for a in range(1, self.n_arms)}
        terms = [[{"booster": 0, "weight": 1.0, "arm_code": None}]]
        for a in range(1, self.n_arms):
            treated = arm == a
            share = treated.sum() / (treated.sum() + control.sum())
            tau_treated = self._regressor(X[treated], y[treated] - mu0_treated[a])
            tau_control = self._regressor(X[control], outcome[a].predict(X[control]) - y[control])
            boosters += [tau_treated, tau_control]
            terms.append(
                [
                    {"booster": 0, "weight": 1.0, "arm_code": None},
                    # weight each effect model by the other group's share (the X-learner's g)
                    {"booster": len(boosters) - 2, "weight": float(1 - share), "arm_code": None},
                    {"booster": len(boosters) - 1, "weight": float(share), "arm_code": None},
                ]
            )
        self.boosters_, self.terms_ = boosters, terms
        return self


class DRLearner(UpliftLearner):
    kind = "dr"

    def fit(self, X: pd.DataFrame, arm: np.ndarray, y: np.ndarray, propensity: np.ndarray | None = None) -> DRLearner:
        arm, y = self._check(arm, y)
        n = len(y)
        if propensity is None:  # a randomised log with constant shares
            propensity = (np.bincount(arm, minlength=self.n_arms) / n)[arm]
        fold = np.random.default_rng(self.random_state).permutation(n) % CROSS_FIT_FOLDS
        mu = np.zeros((n, self.n_arms))
        for f in range(CROSS_FIT_FOLDS):  # each row's outcomes predicted by models that never saw it
            for a in range(self.n_arms):
                fit_rows = (fold != f) & (arm == a)
                mu[fold == f, a] = self._classifier(X[fit_rows], y[fit_rows]).predict(X[fold == f])
        phi = mu + (arm[:, None] == np.arange(self.n_arms)) / propensity[:, None] * (y[:, None] - mu)
        boosters = [self._classifier(X[arm == 0], y[arm == 0])]
        terms = [[{"booster": 0, "weight": 1.0, "arm_code": None}]]
        for a in range(1, self.n_arms):
            boosters.append(self._regressor(X, phi[:, a] - phi[:, 0]))
            terms.append(
                [{"booster": 0, "weight": 1.0, "arm_code": None}, {"booster": a, "weight": 1.0, "arm_code": None}]
            )
        self.boosters_, self.terms_ = boosters, terms
        return self


def make_learner(kind: str, n_arms: int, params: dict | None = None, random_state: int = 0, n_jobs: int = 2):
    classes = {"s": SLearner, "t": TLearner, "x": XLearner, "dr": DRLearner}
    if kind not in classes:
        raise ValueError(f"unknown uplift learner {kind!r}; expected one of {LEARNERS}")
    return classes[kind](n_arms, params=params, random_state=random_state, n_jobs=n_jobs)
