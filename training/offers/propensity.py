"""How the logged sends were assigned: P(logged arm | x) from the log, or estimated when it has none,
and a warning when some arm was almost never sent in a segment (effects there rest on extrapolation).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.model_selection import cross_val_predict

from features.contract import OFFERS
from training.offers.dataset import ARM

if TYPE_CHECKING:
    from training.offers.config import OfferModelConfig
    from training.offers.dataset import OfferRows

log = logging.getLogger(__name__)


def logged_propensity(rows: OfferRows, config: OfferModelConfig) -> tuple[np.ndarray, str]:
    """P(logged arm | x): from the log when present, else estimated (cross-fitted multinomial LightGBM)."""
    frame = rows.frame
    arm = frame[ARM].to_numpy()
    _check_randomised(rows, config)
    if OFFERS.propensity in frame.columns and frame[OFFERS.propensity].notna().all():
        p, source = frame[OFFERS.propensity].to_numpy(dtype=float), "log"
    else:
        clf = lgb.LGBMClassifier(
            n_estimators=60, learning_rate=0.05, num_leaves=7, min_child_samples=500, verbose=-1, n_jobs=config.n_jobs
        )
        proba = cross_val_predict(clf, rows.X(), arm, cv=2, method="predict_proba")
        p, source = proba[np.arange(len(arm)), arm], "estimated"
        log.info("offers table has no propensities; estimated them from the features")
    return np.clip(p, config.propensity_clip, 1.0), source


def _check_randomised(rows: OfferRows, config: OfferModelConfig) -> list[str]:
    """Warn when an arm is almost never assigned in some segment (campaign day x order-value tier)."""
    frame = rows.frame
    value = frame.get(config.order_value_feature) if config.order_value_feature else None
    tier = pd.qcut(value.rank(method="first"), 4, labels=False) if value is not None and value.notna().any() else 0
    seg = pd.DataFrame(
        {"day": frame[OFFERS.sent_at].dt.strftime("%Y-%m-%d"), "tier": pd.Series(tier, index=frame.index).fillna(-1)}
    )
    share = pd.crosstab([seg["day"], seg["tier"]], frame[ARM], normalize="index")
    size = seg.groupby(["day", "tier"]).size()
    share = share.reindex(columns=range(len(rows.arms)), fill_value=0.0)[size.reindex(share.index) >= 50]
    problems = []
    for (day, t), row in share.iterrows():
        for a, s in row.items():
            if s < config.min_arm_share:
                problems.append(f"{rows.arms[a]!r} got {s:.1%} of sends on {day} in order-value tier {t}")
    if problems:
        log.warning(
            "the offer log does not look randomised: %d segment(s) where an arm is almost never assigned "
            "(below %.0f%%), e.g. %s; effects there rest on extrapolation",
            len(problems),
            100 * config.min_arm_share,
            "; ".join(problems[:3]),
        )
    return problems
