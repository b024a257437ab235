"""Time-based splits: label windows never reach a later split, and features never see the future."""

import dataclasses

import pandas as pd
import pytest

from features.config import FeaturesConfig
from features.labels import LABEL
from features.sources import check_tables
from simulator.demo_data import generate
from training.churn import InsufficientData, check_minimum
from training.config import MinimumData
from training.datasets import (
    CUSTOMERS,
    CUTOFF,
    TIME,
    NotEnoughHistory,
    build_panel,
    customer_groups,
    data_span,
    plan_cutoffs,
    rows_at,
)

HORIZON = 90


@pytest.fixture(scope="module")
def tables():
    return check_tables(generate(n_customers=1500, seed=3).tables)


def test_cutoffs_keep_a_horizon_between_splits(tables):
    plan = plan_cutoffs(tables, horizon_days=HORIZON, spacing_days=30, n_train=4)
    h = pd.Timedelta(days=HORIZON)
    _, end = data_span(tables)
    assert plan.test + h <= end
    assert max(plan.valid) + h <= plan.test
    assert max(plan.train) + h <= min(plan.valid)
    assert list(plan.train) == sorted(plan.train) and len(plan.train) == 4 and len(plan.valid) == 3
    # the scoring model: refit up to a horizon before its calibration slice, which ends at the test cutoff
    assert max(plan.refit) + h <= min(plan.recalibrate) and max(plan.recalibrate) == plan.test
    assert set(plan.train) <= set(plan.refit)


def _last_days(tables, days: int):
    """The shop as if its orders log began ``days`` before its last order day."""
    _, end = data_span(tables)
    orders = tables.orders[tables.orders["ordered_at"] >= end - pd.Timedelta(days=days)]
    return dataclasses.replace(tables, orders=orders)


def test_long_history_splits_by_time(tables):
    assert plan_cutoffs(tables, horizon_days=HORIZON, spacing_days=30, n_train=4).holdout == TIME


@pytest.mark.parametrize("days", [180, 273])
def test_short_history_holds_out_customers_at_the_same_cutoffs(tables, days):
    plan = plan_cutoffs(_last_days(tables, days), horizon_days=HORIZON, spacing_days=30, n_train=8)
    first, end = data_span(_last_days(tables, days))
    assert plan.holdout == CUSTOMERS and "customer split" in plan.note and "Given up" in plan.note
    assert plan.test + pd.Timedelta(days=HORIZON) <= end  # the test's labels are complete
    assert min(plan.train) - pd.Timedelta(days=HORIZON) >= first  # every cutoff has a horizon of history
    panel = build_panel(_last_days(tables, days), plan, config=FeaturesConfig())
    ids = {role: set(plan.rows(panel, role).keys["customer_id"]) for role in ("train", "valid", "test")}
    assert ids["train"] and ids["valid"] and ids["test"]
    assert not ids["train"] & ids["valid"] and not ids["train"] & ids["test"] and not ids["valid"] & ids["test"]
    assert set(plan.rows(panel, "test").keys[CUTOFF]) == {plan.test}
    # the scoring model never fits on the customers that calibrate it
    assert not set(plan.rows(panel, "refit").keys["customer_id"]) & set(
        plan.rows(panel, "recalibrate").keys["customer_id"]
    )


def test_customer_groups_depend_on_the_id_alone():
    ids = pd.Series([f"c{i}" for i in range(2000)])
    groups = customer_groups(ids)
    shuffled = customer_groups(ids.sample(frac=1, random_state=1))
    assert groups.equals(shuffled.sort_index())
    share = groups.value_counts(normalize=True)
    assert set(share.index) == {"fit", "calibrate", "test"} and share["fit"] > share["test"] > share["calibrate"]


def test_refuses_less_than_two_horizons_and_names_the_setting_that_fits(tables):
    with pytest.raises(NotEnoughHistory) as err:
        plan_cutoffs(_last_days(tables, 170), horizon_days=HORIZON, spacing_days=30, n_train=3)
    message = str(err.value)
    assert "needs at least 180 days" in message and "horizon_days: 85" in message
    plan_cutoffs(_last_days(tables, 170), horizon_days=85, spacing_days=30, n_train=3)  # the named setting works


def _truncate(tables, at: pd.Timestamp):
    """Drop every timed row at or after ``at``: what the shop looked like before then."""
    keep = {
        "orders": "ordered_at",
        "events": "occurred_at",
        "reviews": "created_at",
        "offers": "sent_at",
    }
    return dataclasses.replace(tables, **{t: getattr(tables, t)[getattr(tables, t)[c] < at] for t, c in keep.items()})


def test_panel_features_ignore_everything_after_each_cutoff(tables):
    """The leak test: erase the future after the test cutoff; no feature at any cutoff may change."""
    plan = plan_cutoffs(tables, horizon_days=HORIZON, spacing_days=30, n_train=2)
    plan = dataclasses.replace(plan, refit=plan.train, recalibrate=(plan.test,))
    full = build_panel(tables, plan, config=FeaturesConfig())
    past = build_panel(_truncate(tables, plan.test), plan, config=FeaturesConfig())
    # the past-only tables know only the customers who ordered before the test cutoff: same population
    features = [c for c in full.columns if c != LABEL]
    pd.testing.assert_frame_equal(full[features], past[features])
    # labels do look ahead: at the test cutoff everyone looks churned once the future is erased
    at_test = past[CUTOFF] == plan.test
    assert past.loc[at_test, LABEL].all() and not full.loc[at_test, LABEL].all()
    settled = full[CUTOFF] + pd.Timedelta(days=HORIZON) <= plan.test
    assert full.loc[settled, LABEL].equals(past.loc[settled, LABEL])


def test_minimum_data_check_names_counts_and_thresholds(tables):
    plan = plan_cutoffs(tables, horizon_days=HORIZON, spacing_days=30, n_train=1)
    panel = build_panel(tables, dataclasses.replace(plan, refit=(), recalibrate=()), config=FeaturesConfig())
    train, test = rows_at(panel, plan.train), rows_at(panel, plan.test)
    with pytest.raises(InsufficientData, match=r"customers at the test cutoff \(need >= 1,000,000\)"):
        check_minimum(train, test, MinimumData(customers=1_000_000, churners=10))
    check_minimum(train, test, MinimumData(customers=100, churners=10))
