"""Time-based splits: label windows never reach a later split, and features never see the future."""

import dataclasses

import pandas as pd
import pytest

from features.config import FeaturesConfig
from features.demo_data import generate
from features.labels import LABEL
from features.sources import check_tables
from training.churn import InsufficientData, check_minimum
from training.config import MinimumData
from training.datasets import CUTOFF, NotEnoughHistory, build_panel, data_span, plan_cutoffs, rows_at

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


def test_refuses_a_span_too_short_for_three_windows(tables):
    orders = tables.orders[tables.orders["ordered_at"] >= tables.orders["ordered_at"].max() - pd.Timedelta(days=200)]
    with pytest.raises(NotEnoughHistory, match="Need at least"):
        plan_cutoffs(dataclasses.replace(tables, orders=orders), horizon_days=HORIZON, spacing_days=30, n_train=3)


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
