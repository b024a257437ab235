"""KPIs on a hand-written shop, every value computed by hand in the comments."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.kpis import KPI_COLUMNS, kpis
from features.sources import check_tables

START, END = pd.Timestamp("2024-04-01"), pd.Timestamp("2024-05-01")


@pytest.fixture
def tables():
    orders = pd.DataFrame(
        [
            ("a", "2024-02-10", 100.0), ("a", "2024-04-05", 50.0), ("a", "2024-04-20", 30.0),
            ("b", "2024-03-01", 40.0), ("b", "2024-05-15", 60.0),  # back only after the period
            ("c", "2024-01-15", 20.0), ("c", "2024-04-10", 80.0),
            ("d", "2024-04-12", 70.0), ("d", "2024-04-25", 10.0),  # new in the period, twice
            ("e", "2024-05-10", 25.0),  # first order after the period: in nothing
        ],
        columns=["customer_id", "ordered_at", "amount"],
    )  # fmt: skip
    customers = pd.DataFrame(
        {"customer_id": list("abcdef"), "region": ["north", "north", "south", "south", "south", "north"]}
    )
    return check_tables({"orders": orders, "customers": customers})


def test_overall_kpis_by_hand(tables):
    k = kpis(tables, start=START, end=END, horizon_days=30).loc["all"]
    assert list(k.index) == list(KPI_COLUMNS)
    assert k.customers_base == 3  # a, b, c ordered before April
    assert k.retention_rate == pytest.approx(2 / 3)  # a and c ordered in April
    assert k.churn_rate == pytest.approx(1 / 3)  # b: no order in [Apr 1, May 1)
    assert k.buyers == 3 and k.new_buyers == 1  # a, c, d; d is new
    assert k.repeat_purchase_rate == pytest.approx(2 / 3)  # a and d ordered twice in April
    assert k.orders == 5 and k.revenue == 240  # 50 + 30 + 80 + 70 + 10
    assert k.purchase_frequency == pytest.approx(5 / 3)
    assert k.aov == pytest.approx(48)
    assert k.historical_clv == pytest.approx(100)  # 8 orders / 4 customers x (400 / 8)
    assert k.revenue_new == 80 and k.revenue_returning == 160


def test_churn_uses_the_horizon_not_the_period(tables):
    # 60-day horizon: [Apr 1, May 31); b's May 15 order means nobody churned, but the
    # data stop at the last order (May 15), so by default the horizon is not observed
    assert np.isnan(kpis(tables, start=START, end=END, horizon_days=60).loc["all", "churn_rate"])
    k = kpis(tables, start=START, end=END, horizon_days=60, data_end=pd.Timestamp("2024-06-01")).loc["all"]
    assert k.churn_rate == 0
    assert k.retention_rate == pytest.approx(2 / 3)  # unchanged: retention is about the period


def test_kpis_by_region(tables):
    k = kpis(tables, start=START, end=END, horizon_days=30, by="region")
    north, south = k.loc["north"], k.loc["south"]
    assert (north.customers_base, north.retention_rate, north.churn_rate) == (2, 0.5, 0.5)
    assert (north.buyers, north.orders, north.revenue, north.aov) == (1, 2, 80, 40)
    assert north.historical_clv == pytest.approx(110)  # a 180 + b 40 over 2 customers
    assert (south.customers_base, south.retention_rate, south.churn_rate) == (1, 1.0, 0.0)
    assert south.repeat_purchase_rate == 0.5 and south.purchase_frequency == 1.5
    assert south.aov == pytest.approx(160 / 3)
    assert south.historical_clv == pytest.approx(90)  # e has no order before May: left out
    assert (south.revenue_new, south.revenue_returning) == (80, 80)


def test_kpis_by_cohort(tables):
    k = kpis(tables, start=START, end=END, horizon_days=30, by="cohort")
    assert list(k.index) == ["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01"]
    assert k.loc["2024-03-01", "churn_rate"] == 1.0  # b
    assert np.isnan(k.loc["2024-04-01", "retention_rate"])  # no base: NaN, not 0
    assert k.loc["2024-04-01", "new_buyers"] == 1


def test_missing_segment_value_is_unknown_and_bad_inputs_are_refused(tables):
    customers = tables.customers.copy()
    customers.loc[customers.customer_id == "d", "region"] = pd.NA
    t = check_tables({"orders": tables.orders, "customers": customers})
    assert "unknown" in kpis(t, start=START, end=END, horizon_days=30, by="region").index
    with pytest.raises(ValueError, match="no such customers column"):
        kpis(tables, start=START, end=END, horizon_days=30, by="shoe_size")
    with pytest.raises(ValueError, match="period is empty"):
        kpis(tables, start=END, end=START, horizon_days=30)
