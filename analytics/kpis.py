"""Retention KPIs for a period [start, end), overall, by cohort or by a customers column.

Definitions (customers = customers with at least one order):

- base: customers who ordered before ``start``.
- retention_rate: share of the base who ordered again in [start, end).
- churn_rate: the configured churn definition (``FeaturesConfig.horizon_days``, as in
  ``features.labels``): share of the base with no order in [start, start + horizon).
  It looks ``horizon_days`` past ``start`` whatever the period length, so it is not
  1 - retention_rate unless the period is exactly the horizon; NaN when the data
  (up to ``data_end``) does not cover the whole horizon yet.
- repeat_purchase_rate: share of the period's buyers with 2+ orders in the period.
- purchase_frequency: orders in the period per buyer in the period.
- aov: revenue / orders in the period.
- historical_clv: over all orders before ``end``, orders per customer x their average
  order value (= revenue per customer to date).
- revenue_new / revenue_returning: period revenue from customers whose first order falls
  in the period vs customers who had ordered before ``start``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import CUSTOMER_ID, CUSTOMERS, ORDERS
from features.labels import label_window_end
from features.snapshot import KEY, Snapshot
from features.sources import Tables

COHORT = "cohort"
ALL = "all"
KPI_COLUMNS = (
    "customers_base",
    "retained",
    "retention_rate",
    "churned",
    "churn_rate",
    "buyers",
    "new_buyers",
    "repeat_purchase_rate",
    "orders",
    "revenue",
    "purchase_frequency",
    "aov",
    "historical_clv",
    "revenue_new",
    "revenue_returning",
)


def kpis(
    tables: Tables,
    *,
    start: pd.Timestamp,
    end: pd.Timestamp,
    horizon_days: int,
    by: str | None = None,
    cohort_period: str = "month",
    data_end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """One row of KPIs per group; ``by`` is None (one row 'all'), 'cohort' or a customers column.

    ``data_end`` is where the data stops (default: the last order) and decides whether
    the churn horizon is fully observed. Instants are naive UTC, parsed where they come in.
    """
    if tables.orders is None:
        raise ValueError("KPIs need an orders table")
    if end <= start:
        raise ValueError(f"the period is empty: start {start} must be before end {end}")
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    data_end = label_window_end(tables) if data_end is None else data_end
    churn_end = start + pd.Timedelta(days=horizon_days)
    frames, key = {}, "'all'"
    if by == COHORT:
        if cohort_period not in ("month", "week"):
            raise ValueError(f"cohort_period must be 'month' or 'week', got {cohort_period!r}")
        key = f"strftime(date_trunc('{cohort_period}', first_at), '%Y-%m-%d')"
    elif by is not None:
        if tables.customers is None or by not in tables.customers.columns:
            found = [] if tables.customers is None else list(tables.customers.columns)
            raise ValueError(f"KPIs by {by!r}: no such customers column (found {found})")
        frames["seg"] = tables.customers[[CUSTOMERS.customer_id, by]].rename(columns={by: "_seg"})
        key = "coalesce(CAST(seg._seg AS VARCHAR), 'unknown')"
    join = f"JOIN _ids i USING ({KEY}) LEFT JOIN seg ON seg.{CUSTOMER_ID} = i.{CUSTOMER_ID}" if frames else ""
    t, a = ORDERS.ordered_at, ORDERS.amount
    with Snapshot(tables, cutoff=start) as snap:  # before start: the base; the period and horizon lie ahead
        period, horizon = snap.ahead(ORDERS.name, until=end), snap.ahead(ORDERS.name, until=churn_end)
        raw = snap.sql(
            f"""
            WITH parts AS (
                SELECT {KEY}, min({t}) AS first_at, count(*) AS n_before, sum({a}) AS rev_before,
                    0 AS n_in, 0.0 AS rev_in, 0 AS n_horizon
                FROM {ORDERS.name} GROUP BY {KEY}
                UNION ALL
                SELECT {KEY}, min({t}), 0, 0.0, count(*), sum({a}), 0 FROM {period} GROUP BY {KEY}
                UNION ALL
                SELECT {KEY}, NULL, 0, 0.0, 0, 0.0, count(*) FROM {horizon} GROUP BY {KEY}
            ), per AS (
                SELECT {KEY}, min(first_at) AS first_at, sum(n_before) AS n_before, sum(n_in) AS n_in,
                    sum(rev_in) AS rev_in, sum(n_before) + sum(n_in) AS n_life,
                    sum(rev_before) + sum(rev_in) AS rev_life, sum(n_horizon) AS n_horizon
                FROM parts GROUP BY {KEY}
            )
            SELECT {key} AS grp,
                count(*) FILTER (n_before > 0) AS customers_base,
                count(*) FILTER (n_before > 0 AND n_in > 0) AS retained,
                count(*) FILTER (n_before > 0 AND n_horizon = 0) AS churned,
                count(*) FILTER (n_in > 0) AS buyers,
                count(*) FILTER (n_before = 0 AND n_in > 0) AS new_buyers,
                count(*) FILTER (n_in >= 2) AS repeat_buyers,
                sum(n_in) AS orders,
                sum(rev_in) AS revenue,
                count(*) FILTER (n_life > 0) AS customers_to_date,
                sum(n_life) AS orders_to_date,
                sum(rev_life) AS revenue_to_date,
                sum(rev_in) FILTER (n_before = 0) AS revenue_new,
                sum(rev_in) FILTER (n_before > 0) AS revenue_returning
            FROM per {join}
            WHERE n_life > 0
            GROUP BY 1 ORDER BY 1
        """,
            **frames,
        ).set_index("grp")
    raw.index.name = by or ALL
    return _rates(raw, churn_observed=churn_end <= data_end)


def _rates(raw: pd.DataFrame, *, churn_observed: bool) -> pd.DataFrame:
    """Counts to rates; a rate over zero customers is NaN, not 0."""
    raw = raw.astype("float64")

    def ratio(num, den):
        return (raw[num] / raw[den].where(raw[den] > 0)).astype("float64")

    out = pd.DataFrame(index=raw.index)
    out["customers_base"] = raw["customers_base"]
    out["retained"] = raw["retained"]
    out["retention_rate"] = ratio("retained", "customers_base")
    out["churned"] = raw["churned"] if churn_observed else np.nan
    out["churn_rate"] = ratio("churned", "customers_base") if churn_observed else np.nan
    out["buyers"] = raw["buyers"]
    out["new_buyers"] = raw["new_buyers"]
    out["repeat_purchase_rate"] = ratio("repeat_buyers", "buyers")
    out["orders"] = raw["orders"]
    out["revenue"] = raw["revenue"]
    out["purchase_frequency"] = ratio("orders", "buyers")
    out["aov"] = ratio("revenue", "orders")
    out["historical_clv"] = ratio("orders_to_date", "customers_to_date") * ratio("revenue_to_date", "orders_to_date")
    out["revenue_new"] = raw["revenue_new"].fillna(0.0)
    out["revenue_returning"] = raw["revenue_returning"].fillna(0.0)
    return out[list(KPI_COLUMNS)]
