"""Offer policy and off-policy estimators on numbers small enough to check by hand."""

from __future__ import annotations

import numpy as np
import pytest

from features.config import Offer, OfferCatalog
from modeling.economics import choose, expected_rewards, incremental_profit
from training.offers.offpolicy import dr_scores, ipw_scores, qini_summary, realized_reward, uplift_curve
from training.offers.policy import apply_budget, check_against_constant, decide

CATALOG = OfferCatalog(
    offers=(
        Offer(name="free_shipping", cost_per_send=0.05, cost_per_redemption=5.0),
        Offer(name="discount_20", cost_per_send=0.05, cost_share_of_order=0.2),
    ),
    margin_rate=0.3,
)


def test_incremental_profit_by_hand():
    # order 100, margin 30: free shipping 0.5*(30-5)-0.05 - 0.2*30 = 6.45; discount 0.4*(30-20)-0.05-6 = -2.05
    proba = np.array([[0.2, 0.5, 0.4]])
    np.testing.assert_allclose(incremental_profit(proba, np.array([100.0]), CATALOG), [[6.45, -2.05]])
    np.testing.assert_allclose(expected_rewards(proba, np.array([100.0]), CATALOG), [[6.0, 12.45, 3.95]])


def test_fixed_margin_per_order_replaces_order_value_times_rate():
    catalog = CATALOG.model_copy(update={"margin_per_order": 10.0})
    proba = np.array([[0.1, 0.1, 0.1]])
    # same conversion: free shipping only costs 0.1*5 + 0.05; the discount 0.1*0.2*50 + 0.05
    np.testing.assert_allclose(incremental_profit(proba, np.array([50.0]), catalog), [[-0.55, -1.05]])


def test_choose_none_when_nothing_pays_and_respects_eligibility():
    profit = np.array([[1.0, 2.0], [-1.0, -0.5], [3.0, 1.0]])
    np.testing.assert_array_equal(choose(profit), [2, 0, 1])
    allowed = np.array([[True, False], [True, True], [False, True]])
    np.testing.assert_array_equal(choose(profit, allowed), [1, 0, 2])


def test_min_orders_makes_new_customers_ineligible():
    catalog = OfferCatalog(offers=(Offer(name="loyalty", cost_per_send=0.0, min_orders=2),), margin_rate=0.3)
    proba = np.array([[0.1, 0.9], [0.1, 0.9]])
    arms = decide(proba, np.array([50.0, 50.0]), catalog, order_count=np.array([0, 5]))
    np.testing.assert_array_equal(arms, [0, 1])
    with pytest.raises(ValueError, match="order counts"):
        decide(proba, np.array([50.0, 50.0]), catalog)


def test_budget_keeps_the_most_profitable_sends():
    arms = np.array([1, 2, 0, 1])
    profit = np.array([[1.0, 0.0], [0.0, 5.0], [0.0, 0.0], [3.0, 0.0]])
    cost = np.array([[1.0, 1.0], [4.0, 4.0], [1.0, 1.0], [1.0, 1.0]])
    np.testing.assert_array_equal(apply_budget(arms, profit, cost, max_offers=2), [0, 2, 0, 1])
    np.testing.assert_array_equal(apply_budget(arms, profit, cost, max_cost=4.5), [0, 2, 0, 0])


def test_realized_reward_pays_costs_only_for_offers():
    r = realized_reward(np.array([1, 1, 0, 1]), np.array([0, 1, 1, 2]), np.full(4, 100.0), CATALOG)
    np.testing.assert_allclose(r, [30.0, 24.95, -0.05, 9.95])


def test_ipw_and_dr_are_unbiased_on_a_randomised_log():
    rng = np.random.default_rng(0)
    n = 200_000
    p_true = np.array([0.1, 0.3, 0.2])
    logged = rng.integers(0, 3, n)
    reward = (rng.random(n) < p_true[logged]).astype(float)
    prop = np.full(n, 1 / 3)
    q = np.tile([0.2, 0.2, 0.2], (n, 1))  # a wrong outcome model: DR must still be right
    policy = np.ones(n, dtype=int)
    assert ipw_scores(policy, reward, logged, prop).mean() == pytest.approx(0.3, abs=0.01)
    assert dr_scores(policy, reward, logged, prop, q).mean() == pytest.approx(0.3, abs=0.01)


def test_fallback_to_nothing_when_personalising_does_not_pay():
    rng = np.random.default_rng(1)
    n = 5000
    logged = rng.integers(0, 3, n)
    reward = rng.normal(0, 1, n)  # no arm does anything
    q = np.zeros((n, 3))
    arms = rng.integers(0, 3, n)
    fb = check_against_constant(arms, reward, logged, np.full(n, 1 / 3), q, ["none", "a", "b"])
    assert fb.constant_arm == 0 and "falling back" in fb.reason


def test_qini_is_positive_when_the_ranking_finds_the_responders():
    rng = np.random.default_rng(2)
    n = 20_000
    responder = rng.random(n) < 0.3
    treated = rng.random(n) < 0.5
    y = rng.random(n) < 0.1 + 0.3 * (responder & treated)
    good = qini_summary(uplift_curve(responder + rng.random(n) * 0.1, treated, y))
    noise = qini_summary(uplift_curve(rng.random(n), treated, y))
    assert good["qini"] > 0.01 > 3 * abs(noise["qini"])
    assert good["auuc"] > noise["auuc"]
