"""What an offer earns: costs, the margin of a conversion, expected profit per arm, the choice and the oracle.

One set of rules for training (off-policy evaluation, policy choice), scoring and the simulator's truth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.config import OfferCatalog


def cost_arrays(catalog: OfferCatalog) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per offer: cost per send, share of the order given up, fixed cost per redemption."""
    send = np.array([o.cost_per_send for o in catalog.offers])
    share = np.array([o.cost_share_of_order for o in catalog.offers])
    redemption = np.array([o.cost_per_redemption for o in catalog.offers])
    return send, share, redemption


def margin(order_value: np.ndarray, catalog: OfferCatalog) -> np.ndarray:
    """Value of one conversion: the configured margin, else the order value x margin rate."""
    if catalog.margin_per_order is not None:
        return np.full(len(order_value), catalog.margin_per_order)
    return np.asarray(order_value, dtype=float) * catalog.margin_rate


def expected_rewards(proba: np.ndarray, order_value: np.ndarray, catalog: OfferCatalog) -> np.ndarray:
    """Expected profit of each arm, shape (n, 1 + offers): none earns p0 x margin, an offer pays its costs."""
    send, share, redemption = cost_arrays(catalog)
    value = np.asarray(order_value, dtype=float)[:, None]
    m = margin(order_value, catalog)[:, None]
    offers = proba[:, 1:] * (m - share * value - redemption) - send
    return np.column_stack([proba[:, 0] * m[:, 0], offers])


def incremental_profit(proba: np.ndarray, order_value: np.ndarray, catalog: OfferCatalog) -> np.ndarray:
    """Expected profit of each offer minus that of sending nothing, shape (n, offers)."""
    rewards = expected_rewards(proba, order_value, catalog)
    return rewards[:, 1:] - rewards[:, [0]]


def eligible(order_count: np.ndarray | None, catalog: OfferCatalog) -> np.ndarray | None:
    """Which customer may get which offer, shape (n, offers), from each offer's ``min_orders``; None: all."""
    minimum = np.array([o.min_orders for o in catalog.offers])
    if not (minimum > 0).any():
        return None
    if order_count is None:
        raise ValueError("offers with min_orders need the customers' order counts")
    return np.nan_to_num(np.asarray(order_count, dtype=float))[:, None] >= minimum


def choose(profit: np.ndarray, allowed: np.ndarray | None = None) -> np.ndarray:
    """The arm with the largest positive incremental profit per row; 0 ('none') when none is positive."""
    if allowed is not None:
        profit = np.where(allowed, profit, -np.inf)
    best = profit.argmax(axis=1)
    return np.where(profit[np.arange(len(profit)), best] > 0, best + 1, 0)


def best_arms(rewards: np.ndarray, allowed: np.ndarray | None = None) -> np.ndarray:
    """The arm whose expected reward is highest, shape (n,); 0 ('none') unless an offer beats sending nothing.

    With the true conversion probabilities (``expected_rewards`` of the truth) this is the oracle policy.
    """
    return choose(rewards[:, 1:] - rewards[:, [0]], allowed)


def true_rewards(truth: pd.DataFrame, arms: list[str], catalog: OfferCatalog) -> np.ndarray:
    """Expected profit per arm from the known truth (``p_convert_<arm>`` and ``order_value`` columns)."""
    proba = truth[[f"p_convert_{a}" for a in arms]].to_numpy(dtype=float)
    return expected_rewards(proba, truth["order_value"].to_numpy(dtype=float), catalog)
