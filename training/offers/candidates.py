"""Every uplift learner to try, fitted on the training sends, with the policy it gives on the held-out ones."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from features.config import OfferCatalog
from features.contract import OFFERS
from modeling.economics import expected_rewards
from modeling.offer_model import order_values
from training.offers.config import OfferModelConfig
from training.offers.dataset import ARM, OfferRows
from training.offers.policy import decide
from training.offers.uplift import UpliftLearner, make_learner


@dataclass(frozen=True)
class Candidate:
    """One fitted learner and, per held-out send, its conversion probabilities, expected rewards and arm."""

    learner: UpliftLearner
    proba: np.ndarray
    q: np.ndarray
    arms: np.ndarray
    fit_s: float  # fitting and deciding, seconds


def policy_of(learner, rows: OfferRows, mask, catalog: OfferCatalog, config: OfferModelConfig, spec: dict):
    """Conversion probabilities, expected rewards and the chosen arm per row of ``mask``."""
    proba = learner.predict_proba(rows.X(mask))
    value = order_values(rows.frame.loc[mask], spec)
    counts = rows.frame.loc[mask, config.order_count_feature] if config.order_count_feature in rows.features else None
    arms = decide(
        proba,
        value,
        catalog,
        order_count=None if counts is None else counts.to_numpy(),
        max_offers=config.max_offers,
        max_cost=config.max_cost,
    )
    return proba, expected_rewards(proba, value, catalog), arms


def fit_candidates(
    rows: OfferRows,
    held: np.ndarray,
    *,
    params: dict,
    propensity: np.ndarray,
    catalog: OfferCatalog,
    config: OfferModelConfig,
    spec: dict,
    step: Callable[[str, str], None],
) -> dict[str, Candidate]:
    """Each of ``config.learners`` fitted on the sends outside ``held``; ``step(done, next)`` after each."""
    X, arm = rows.X(), rows.frame[ARM].to_numpy()
    y = rows.frame[OFFERS.converted].to_numpy().astype(int)
    train = np.flatnonzero(~held)
    fitted = {}
    for i, kind in enumerate(config.learners):
        t0 = time.perf_counter()
        learner = make_learner(kind, len(rows.arms), params, config.seed, config.n_jobs)
        learner.fit(X.iloc[train], arm[train], y[train], propensity[train])
        proba, q, arms = policy_of(learner, rows, held, catalog, config, spec)
        fitted[kind] = Candidate(learner, proba, q, arms, time.perf_counter() - t0)
        later = config.learners[i + 1 :]
        step(f"{kind}-learner", f"fitting the {later[0]}-learner" if later else "evaluating policies on held-out sends")
    return fitted
