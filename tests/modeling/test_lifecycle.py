"""Lifecycle rules on hand-made customers, including the exact 2-hour and 30-day boundaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.sources import check_tables
from modeling.lifecycle import LifecycleConfig, lifecycle, risk_band

AS_OF = pd.Timestamp("2024-06-01 12:00")
H, D, S = pd.Timedelta(hours=1), pd.Timedelta(days=1), pd.Timedelta(seconds=1)
CFG = LifecycleConfig()


def _tables(orders=(), carts=(), customers=()):
    frames = {}
    if orders:
        frames["orders"] = pd.DataFrame(orders, columns=["customer_id", "ordered_at"]).assign(amount=10.0)
    if carts:
        frames["events"] = pd.DataFrame(carts, columns=["customer_id", "occurred_at"]).assign(event_type="add_to_cart")
    ids = sorted({r[0] for r in [*orders, *carts]} | set(customers))
    frames["customers"] = pd.DataFrame({"customer_id": ids})
    return check_tables(frames)


def _one(tables, cid, **kw):
    out = lifecycle(tables, as_of=kw.pop("as_of", AS_OF), config=kw.pop("config", CFG), **kw)
    return out.set_index("customer_id").loc[cid]


def test_columns_and_one_row_per_known_customer():
    t = _tables(orders=[("a", AS_OF - 60 * D)], customers=["p"])
    out = lifecycle(t, as_of=AS_OF, config=CFG)
    assert list(out.columns) == ["customer_id", "lifecycle_stage", "next_action", "contact_at"]
    assert out.customer_id.tolist() == ["a", "p"]
    assert out.set_index("customer_id").lifecycle_stage.to_dict() == {"a": "inactive", "p": "prospect"}


@pytest.mark.parametrize(
    ("since_last", "stage", "action"),
    [
        (30 * D - S, "active", "new_arrivals"),
        (30 * D, "inactive", "motivating_offer"),  # exactly 30 days: inactive
        (180 * D - S, "inactive", "motivating_offer"),
        (180 * D, "lapsed", "winback_offer"),
    ],
)
def test_inactive_and_lapsed_boundaries(since_last, stage, action):
    t = _tables(orders=[("a", AS_OF - 400 * D), ("a", AS_OF - since_last)])
    row = _one(t, "a")
    assert (row.lifecycle_stage, row.next_action, row.contact_at) == (stage, action, AS_OF)


def test_new_buyer_gets_the_welcome_offer_right_after_the_first_order():
    t = _tables(orders=[("n", AS_OF - 2 * H), ("old", AS_OF - 30 * D), ("old", AS_OF - 1 * D)])
    assert _one(t, "n").lifecycle_stage == "new_buyer"
    assert _one(t, "n").contact_at == AS_OF  # due: now
    assert _one(t, "old").lifecycle_stage == "active"  # first order exactly 30 days ago: no longer new
    delayed = LifecycleConfig(welcome_delay_hours=24)
    assert _one(t, "n", config=delayed).contact_at == AS_OF - 2 * H + 24 * H


@pytest.mark.parametrize(
    ("order_after_cart", "as_of_after_cart", "stage", "contact_after_cart"),
    [
        (None, 2 * H, "abandoned_cart", 2 * H),  # exactly 2 hours, no order: remind now
        (None, 30 * pd.Timedelta(minutes=1), "abandoned_cart", 2 * H),  # scheduled for cart + 2 h
        (None, 5 * H, "abandoned_cart", 5 * H),  # overdue: now
        (2 * H - S, 3 * H, "new_buyer", 3 * H),  # ordered 1 s before the 2-hour mark: no reminder
        (2 * H, 2 * H, "abandoned_cart", 2 * H),  # an order at as_of is the future: not seen yet
        (0 * H, 3 * H, "new_buyer", 3 * H),  # an order at the cart instant closes it
        (None, 72 * H + S, "prospect", 72 * H + S),  # older than cart_max_age_hours: no reminder
    ],
)
def test_abandoned_cart_two_hour_boundary(order_after_cart, as_of_after_cart, stage, contact_after_cart):
    cart = AS_OF - 10 * D
    orders = [("c", cart + order_after_cart)] if order_after_cart is not None else []
    t = _tables(orders=orders, carts=[("c", cart)])
    row = _one(t, "c", as_of=cart + as_of_after_cart)
    assert row.lifecycle_stage == stage
    assert row.contact_at == cart + contact_after_cart
    if stage == "abandoned_cart":
        assert row.next_action == "cart_reminder"


def test_latest_cart_counts_and_an_earlier_order_does_not_close_it():
    t = _tables(orders=[("c", AS_OF - 3 * D), ("c", AS_OF - 40 * D)], carts=[("c", AS_OF - 5 * H), ("c", AS_OF - H)])
    row = _one(t, "c")
    assert row.lifecycle_stage == "abandoned_cart" and row.contact_at == AS_OF + H


def test_at_risk_needs_probabilities_and_the_threshold_is_inclusive():
    t = _tables(orders=[(c, AS_OF - 60 * D) for c in "xyz"] + [("q", AS_OF - 200 * D)])
    assert set(lifecycle(t, as_of=AS_OF, config=CFG).lifecycle_stage) == {"inactive", "lapsed"}
    prob = pd.Series({"x": 0.5, "y": 0.49, "q": 0.99})  # z has no score: not at risk
    out = lifecycle(t, as_of=AS_OF, churn_probability=prob, config=CFG).set_index("customer_id")
    assert out.lifecycle_stage.to_dict() == {"q": "lapsed", "x": "at_risk", "y": "inactive", "z": "inactive"}
    assert out.loc["x", "next_action"] == "retention_offer"


def test_point_in_time_rows_at_or_after_as_of_change_nothing():
    base = [("a", AS_OF - 40 * D), ("b", AS_OF - 3 * D)]
    before = lifecycle(_tables(orders=base, carts=[("b", AS_OF - 5 * H)]), as_of=AS_OF, config=CFG)
    future = _tables(
        orders=[*base, ("a", AS_OF), ("b", AS_OF + H)],
        carts=[("b", AS_OF - 5 * H), ("a", AS_OF)],
    )
    after = lifecycle(future, as_of=AS_OF, config=CFG)
    pd.testing.assert_frame_equal(before, after)


def test_customers_signed_up_after_as_of_are_left_out():
    customers = pd.DataFrame({"customer_id": ["a", "b"], "signed_up_at": [AS_OF - D, AS_OF]})
    t = check_tables({"customers": customers})
    assert lifecycle(t, as_of=AS_OF, config=CFG).customer_id.tolist() == ["a"]


def test_vectorized_for_many_customers():
    rng = np.random.default_rng(0)
    n = 200_000
    orders = pd.DataFrame(
        {
            "customer_id": rng.integers(0, 50_000, n).astype(str),
            "ordered_at": AS_OF - pd.to_timedelta(rng.integers(1, 400 * 86400, n), unit="s"),
            "amount": 1.0,
        }
    )
    out = lifecycle(check_tables({"orders": orders}), as_of=AS_OF, config=CFG)
    assert len(out) == orders.customer_id.nunique()
    assert out.contact_at.min() >= AS_OF


def test_risk_bands():
    bands = risk_band(pd.Series([0.0, 0.29, 0.3, 0.6, 1.0]), (0.3, 0.6))
    assert bands.astype(str).tolist() == ["low", "low", "medium", "high", "high"]


def test_config_refuses_inconsistent_rules():
    with pytest.raises(ValueError, match="lapsed_days"):
        LifecycleConfig(inactive_days=200, lapsed_days=180)
    with pytest.raises(ValueError, match="extra"):
        LifecycleConfig(inactve_days=30)


def test_a_prospect_is_never_at_risk_and_a_missing_probability_is_not_high():
    """at_risk needs an order before as_of: the churn model does not score prospects, whatever is passed."""
    t = _tables(orders=[("b", AS_OF - 60 * D), ("c", AS_OF - 60 * D)], customers=["p"])
    prob = pd.Series({"p": 0.99, "b": 0.99, "c": np.nan})
    out = lifecycle(t, as_of=AS_OF, churn_probability=prob, config=CFG).set_index("customer_id")
    assert out.lifecycle_stage.to_dict() == {"b": "at_risk", "c": "inactive", "p": "prospect"}
