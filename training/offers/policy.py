"""From conversion probabilities to a decision: which offer, if any, each customer gets.

An offer is worth sending only when its expected profit beats sending nothing:
a discount to someone who would buy anyway loses money. A budget keeps the
most profitable sends; and when the personalised policy does not beat the best
constant policy (nothing, or one offer for everyone) with confidence on
held-out data, the constant one is used instead, because a noisy model that
loses to "send everyone the same thing" must never ship.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from features.config import OfferCatalog
from modeling.economics import choose, cost_arrays, eligible, incremental_profit
from training.offers.offpolicy import dr_scores

log = logging.getLogger(__name__)


def expected_cost(proba: np.ndarray, order_value: np.ndarray, catalog: OfferCatalog) -> np.ndarray:
    """Expected money spent per offer, shape (n, offers): the send plus the redemption if it converts."""
    send, share, redemption = cost_arrays(catalog)
    return send + proba[:, 1:] * (share * np.asarray(order_value, dtype=float)[:, None] + redemption)


def apply_budget(
    arms: np.ndarray,
    profit: np.ndarray,
    cost: np.ndarray,
    *,
    max_offers: int | None = None,
    max_cost: float | None = None,
) -> np.ndarray:
    """Keep the most profitable sends within the budget (greedy by profit); the rest get nothing."""
    if max_offers is None and max_cost is None:
        return arms
    rows = np.flatnonzero(arms > 0)
    gain = profit[rows, arms[rows] - 1]
    order = rows[np.argsort(-gain, kind="stable")]
    keep = np.ones(len(order), dtype=bool)
    if max_offers is not None:
        keep &= np.arange(len(order)) < max_offers
    if max_cost is not None:
        keep &= np.cumsum(cost[order, arms[order] - 1]) <= max_cost
    out = np.zeros_like(arms)
    out[order[keep]] = arms[order[keep]]
    return out


def decide(
    proba: np.ndarray,
    order_value: np.ndarray,
    catalog: OfferCatalog,
    *,
    order_count: np.ndarray | None = None,
    max_offers: int | None = None,
    max_cost: float | None = None,
) -> np.ndarray:
    """The arm per customer (0 = none): the largest positive incremental profit, within the budget."""
    profit = incremental_profit(proba, order_value, catalog)
    arms = choose(profit, eligible(order_count, catalog))
    cost = expected_cost(proba, order_value, catalog)
    return apply_budget(arms, profit, cost, max_offers=max_offers, max_cost=max_cost)


@dataclass(frozen=True)
class Fallback:
    """Whether to personalise, and why; ``constant_arm`` is None when the learned policy ships."""

    constant_arm: int | None
    best_constant_arm: int
    gain: float  # DR value of personalised minus best constant, per customer
    gain_se: float
    lower_bound: float
    reason: str


def check_against_constant(
    arms: np.ndarray,
    reward: np.ndarray,
    logged: np.ndarray,
    propensity: np.ndarray,
    q: np.ndarray,
    names: list[str],
    *,
    confidence: float = 0.95,
) -> Fallback:
    """Compare the personalised policy with the best constant policy on held-out rows (paired DR scores).

    The safe default is sending nothing; one offer for everyone replaces it only
    when its own gain over nothing is confidently positive (one-sided lower bound
    above zero), so a noisy estimate never ships a money-losing blanket send. The
    personalised policy ships only when it confidently beats that constant policy.
    """
    n, n_arms = q.shape
    z = stats.norm.ppf(confidence)
    const = np.column_stack([dr_scores(np.full(n, a), reward, logged, propensity, q) for a in range(n_arms)])
    gain_over_none = const - const[:, [0]]
    lower = gain_over_none.mean(axis=0) - z * gain_over_none.std(axis=0, ddof=1) / np.sqrt(n)
    best = int(np.argmax(np.where(lower > 0, const.mean(axis=0), -np.inf))) if (lower[1:] > 0).any() else 0
    diff = dr_scores(arms, reward, logged, propensity, q) - const[:, best]
    gain, se = float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(n))
    bound = gain - z * se
    if bound > 0:
        reason = f"personalised beats the best constant policy ({names[best]!r}) by {gain:.4f} ± {se:.4f} per customer"
        log.info(reason)
        return Fallback(None, best, gain, se, bound, reason)
    reason = (
        f"personalised policy does not beat sending {names[best]!r} to everyone with {confidence:.0%} confidence "
        f"(gain {gain:.4f} ± {se:.4f} per customer, lower bound {bound:.4f}); falling back to {names[best]!r} for all"
    )
    log.warning(reason)
    return Fallback(best, best, gain, se, bound, reason)


@dataclass(frozen=True)
class LearnerChoice:
    """Which learner's policy ships; ``table`` has each one's paired DR gain over the reference."""

    learner: str
    reference: str
    table: pd.DataFrame  # per learner: vs_reference, vs_reference_se, vs_reference_low
    reason: str


def choose_learner(
    policies: dict[str, np.ndarray],
    reward: np.ndarray,
    logged: np.ndarray,
    propensity: np.ndarray,
    q: np.ndarray,
    *,
    confidence: float = 0.95,
) -> LearnerChoice:
    """The first policy (the reference, the simplest) unless another beats it with confidence on held-out rows.

    Each learner's policy is scored per row with the same DR correction; the
    difference from the reference's scores gives a paired mean and standard
    error. Among the learners whose one-sided lower bound is above zero the one
    with the largest gain ships; when none is, the reference does, because a
    DR value that is higher only by noise is no reason to ship a more complex,
    less stable learner. The bound is Bonferroni-corrected for the number of
    challengers, so trying more learners does not make a lucky one ship.
    """
    names = list(policies)
    reference = names[0]
    z = stats.norm.ppf(1 - (1 - confidence) / max(len(names) - 1, 1))  # Bonferroni over the challengers
    scores = {k: dr_scores(p, reward, logged, propensity, q) for k, p in policies.items()}
    rows = {}
    for k in names:
        diff = scores[k] - scores[reference]
        mean = float(diff.mean())
        se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
        rows[k] = {"vs_reference": mean, "vs_reference_se": se, "vs_reference_low": mean - z * se}
    table = pd.DataFrame.from_dict(rows, orient="index")
    better = table[(table.index != reference) & (table["vs_reference_low"] > 0)]
    if len(better):
        best = str(better["vs_reference"].idxmax())
        row = table.loc[best]
        reason = (
            f"{best}-learner beats the reference {reference}-learner by {row['vs_reference']:.4f} "
            f"± {row['vs_reference_se']:.4f} per send on held-out sends ({confidence:.0%} one-sided, Bonferroni)"
        )
    else:
        best = reference
        others = table.drop(index=reference)
        top = str(others["vs_reference"].idxmax()) if len(others) else reference
        reason = (
            f"{reference}-learner (the reference): no learner beats it with {confidence:.0%} confidence "
            f"(best other: {top} {table.loc[top, 'vs_reference']:+.4f} ± {table.loc[top, 'vs_reference_se']:.4f})"
            if len(others)
            else f"{reference}-learner (the only one tried)"
        )
    log.info(reason)
    return LearnerChoice(best, reference, table, reason)
