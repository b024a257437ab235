"""Cohort matrices against hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.cohorts import cohort_retention
from features.sources import check_tables


def _tables(rows):
    frame = pd.DataFrame(rows, columns=["customer_id", "ordered_at"]).assign(amount=10.0)
    return check_tables({"orders": frame})


def test_may_cohort_of_5000_with_1250_june_buyers_gives_25_percent():
    may = [(f"c{i}", f"2024-05-{1 + i % 28:02d} 10:00") for i in range(5000)]
    june = [(f"c{i}", "2024-06-15") for i in range(1250)] + [(f"c{i}", "2024-06-20") for i in range(1000)]  # twice
    c = cohort_retention(_tables(may + june), as_of="2024-07-01")
    may_ts = pd.Timestamp("2024-05-01")
    assert c.sizes[may_ts] == 5000
    assert c.counts.loc[may_ts, 1] == 1250  # a customer buying twice in June counts once
    assert c.shares.loc[may_ts, 1] == pytest.approx(0.25)
    assert c.shares.loc[may_ts, 0] == 1.0


def test_cohort_is_the_first_purchase_month_and_unobserved_cells_are_nan():
    rows = [
        ("a", "2024-01-05"), ("a", "2024-02-10"),  # Jan cohort, buys in Feb
        ("b", "2024-01-20"), ("b", "2024-03-01"),  # Jan cohort, buys in Mar
        ("c", "2024-01-31 23:59"), ("c", "2024-02-01"), ("c", "2024-03-31"),  # Feb and Mar
        ("d", "2024-01-02"),  # never again
        ("e", "2024-02-14"), ("e", "2024-03-14"),  # Feb cohort
        ("f", "2024-03-03"),  # Mar cohort
        ("g", "2024-04-01"),  # at as_of: the future, not counted
    ]  # fmt: skip
    c = cohort_retention(_tables(rows), as_of="2024-04-01")
    jan, feb, mar = (pd.Timestamp(f"2024-0{m}-01") for m in (1, 2, 3))
    assert list(c.sizes.index) == [jan, feb, mar]
    assert c.sizes.tolist() == [4, 1, 1]
    assert c.shares.loc[jan].tolist() == [1.0, 0.5, 0.5]
    assert c.shares.loc[feb, 1] == 1.0 and np.isnan(c.shares.loc[feb, 2])  # April not observed yet
    assert np.isnan(c.shares.loc[mar, 1])
    rolling = cohort_retention(_tables(rows), as_of="2024-04-01", cumulative=True)
    assert rolling.shares.loc[jan].tolist() == [1.0, 0.75, 0.5]  # bought in period k or any later one


def test_weekly_cohorts_start_on_monday():
    rows = [("a", "2024-05-06"), ("a", "2024-05-13 09:00"), ("b", "2024-05-12 23:00"), ("b", "2024-05-26")]
    c = cohort_retention(_tables(rows), as_of="2024-06-01", period="week")
    week = pd.Timestamp("2024-05-06")  # a Monday; b's Sunday order belongs to the same week
    assert c.sizes[week] == 2
    assert c.counts.loc[week].tolist() == [2, 1, 1, 0]  # 05-26 is a Sunday: week 2; week 3 seen, nobody bought


def test_max_periods_and_csv_png_output(tmp_path):
    rows = [("a", f"2023-{m:02d}-10") for m in range(1, 13)]
    c = cohort_retention(_tables(rows), as_of="2024-01-01", max_periods=3)
    assert list(c.shares.columns) == [0, 1, 2, 3]
    paths = c.write(tmp_path)
    csv = pd.read_csv(paths["csv"])
    assert list(csv.columns) == ["cohort", "cohort_size", "k", "customers", "share"]
    assert len(csv) == 4
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"


def test_bad_period_and_no_orders_are_refused():
    t = _tables([("a", "2024-05-01")])
    with pytest.raises(ValueError, match="period"):
        cohort_retention(t, as_of="2024-06-01", period="day")
    with pytest.raises(ValueError, match="no orders before"):
        cohort_retention(t, as_of="2024-05-01")
