"""The starts the churn trees may boost from, and the choice among them by the one-standard-error rule.

A constant (``none``), BG/NBD's log-odds (``bg_nbd``) and an RFM logistic regression (``rfm``); each
prior also alone, its trees weighed 0 (``bg_nbd_alone``, ``rfm_alone``), in case the trees only add noise.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from modeling.prior_boosting import Prior, transform
from training.datasets import Rows
from training.evaluate import roc_auc

ALONE = "_alone"  # a start whose trees are weighed 0: the prior alone
# the RFM logistic prior's inputs: recency, frequency, value, tenure (log1p) and BG/NBD's prediction (logit)
RFM_FEATURES = (
    "sales_days_since_last_order",
    "sales_orders_all",
    "sales_avg_order_value_all",
    "sales_days_since_first_order",
)


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
    auc = {name: score_auc(y, scores[name]) for name in names}
    best = max(names, key=lambda name: auc[name])
    for name in names:
        if auc[name] >= auc[best] - np.nanstd(np.subtract(draws[best], draws[name])):
            return name
    return best


def score_auc(y: np.ndarray, score: np.ndarray) -> float:
    """scikit-learn's ROC AUC of the candidates' raw scores; NaN when the rows hold one class."""
    return float(roc_auc_score(y, score)) if 0 < y.mean() < 1 else float("nan")


def start_names(priors: dict[str, Prior | None]) -> list[str]:
    """Every candidate start: each prior, and each non-constant one alone."""
    return list(priors) + [f"{name}{ALONE}" for name, p in priors.items() if p is not None]
