"""Invariance: rows dated at or after the cutoff never change any feature; the cutoff instant is future
for labels, lifecycle, KPIs and cohorts too."""

from __future__ import annotations

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.cohorts import cohort_retention
from analytics.kpis import kpis
from features.build import build_features
from features.contract import EVENT_TYPES
from features.labels import churn_labels, spend_after
from features.sources import check_tables
from modeling.lifecycle import LifecycleConfig, lifecycle
from tests.conftest import CUTOFF, tiny_frames

CUT = pd.Timestamp(CUTOFF)
ids = st.sampled_from(["a", "b", "c"])
future = st.datetimes(min_value=CUT.to_pydatetime(), max_value=pd.Timestamp("2026-01-01").to_pydatetime())
money = st.floats(min_value=0, max_value=1e4, allow_nan=False)


def _rows(draw_table: str):
    """A strategy for one future row of the given table."""
    if draw_table == "orders":
        return st.fixed_dictionaries(
            {
                "customer_id": ids,
                "ordered_at": future,
                "amount": money,
                "discount_amount": money,
                "shipping_fee": st.sampled_from([0.0, 4.0]),
                "category": st.sampled_from(["shoes", "bags", "hats"]),
                "n_items": st.integers(1, 5),
            }
        )
    if draw_table == "events":
        return st.fixed_dictionaries(
            {"customer_id": ids, "occurred_at": future, "event_type": st.sampled_from(EVENT_TYPES)}
        )
    if draw_table == "reviews":
        return st.fixed_dictionaries(
            {
                "customer_id": ids,
                "created_at": future,
                "rating": st.integers(1, 5),
                "sentiment": st.floats(-1, 1),
            }
        )
    if draw_table == "offers":
        return st.fixed_dictionaries(
            {
                "customer_id": ids,
                "sent_at": future,
                "offer": st.sampled_from(["none", "free_shipping", "discount_20"]),
                "propensity": st.floats(0.01, 1),
                "converted": st.integers(0, 1),
                "revenue": money,
            }
        )
    return st.fixed_dictionaries(  # customers who sign up at or after the cutoff
        {"customer_id": st.text("xyz", min_size=3, max_size=6), "signed_up_at": future, "region": st.just("east")}
    )


additions = st.dictionaries(
    st.sampled_from(["orders", "events", "reviews", "offers", "customers"]),
    st.integers(1, 6),
    min_size=1,
).flatmap(
    lambda sizes: st.fixed_dictionaries(
        {name: st.lists(_rows(name), min_size=n, max_size=n) for name, n in sizes.items()}
    )
)

BASELINE = build_features(check_tables(tiny_frames()), cutoff=CUTOFF)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(additions)
def test_rows_at_or_after_cutoff_change_nothing(added):
    frames = tiny_frames()
    for name, rows in added.items():
        extra = pd.DataFrame(rows)
        if name == "orders":
            extra["order_id"] = [f"future{i}" for i in range(len(extra))]
        if name == "customers":
            extra = extra.drop_duplicates("customer_id")
            extra = extra[~extra["customer_id"].isin(frames["customers"]["customer_id"])]
        frames[name] = pd.concat([frames[name], extra], ignore_index=True)
    after = build_features(check_tables(frames), cutoff=CUTOFF)
    pd.testing.assert_frame_equal(after, BASELINE)


def test_the_cutoff_instant_is_future():
    frames = tiny_frames()
    frames["orders"].loc[0, "ordered_at"] = CUTOFF  # a's first order moves onto the cutoff instant
    feats = build_features(check_tables(frames), cutoff=CUTOFF)
    assert feats.loc["a", "sales_orders_all"] == 1


def test_a_row_at_the_cutoff_is_future_for_labels_lifecycle_kpis_and_cohorts():
    """One rule, the snapshot's: what happens at the cutoff instant is an outcome, never history."""
    day = pd.Timedelta(days=1)
    orders = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b", "b", "c"],
            "ordered_at": [CUT - 40 * day, CUT, CUT - 50 * day, CUT - 10 * day, CUT],
            "amount": [10.0, 20.0, 3.0, 5.0, 7.0],
        }
    )
    events = pd.DataFrame({"customer_id": ["b"], "occurred_at": [CUT], "event_type": ["add_to_cart"]})
    t = check_tables({"orders": orders, "events": events})
    assert churn_labels(t, cutoff=CUT, horizon_days=30).to_dict() == {"a": 0, "b": 1}  # c: no order before
    assert spend_after(t, cutoff=CUT, horizon_days=30).to_dict() == {"a": 20.0, "b": 0.0}
    stages = lifecycle(t, as_of=CUT, config=LifecycleConfig()).set_index("customer_id").lifecycle_stage
    assert stages.to_dict() == {"a": "inactive", "b": "active"}  # a's order and b's cart at the cutoff: unseen
    period = kpis(t, start=CUT, end=CUT + 30 * day, horizon_days=30).loc["all"]
    assert (period.customers_base, period.retained, period.orders, period.new_buyers) == (2, 1, 2, 1)
    before = kpis(t, start=CUT - 30 * day, end=CUT, horizon_days=30).loc["all"]
    assert (before.orders, before.revenue, before.churned) == (1, 5.0, 1)  # a's order at the cutoff: after both
    assert cohort_retention(t, as_of=CUT).sizes.sum() == 2  # c's only order is at the cutoff: no cohort yet
