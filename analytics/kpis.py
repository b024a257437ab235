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

from analytics._duck import connect, ts
from features.contract import CUSTOMER_ID, CUSTOMERS, ORDERS, parse_cutoff
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
    start,
    end,
    horizon_days: int,
    by: str | None = None,
    cohort_period: str = "month",
    data_end=None,
) -> pd.DataFrame:
    """One row of KPIs per group; ``by`` is None (one row 'all'), 'cohort' or a customers column.

    ``data_end`` is where the data stops (default: the last order) and decides whether
    the churn horizon is fully observed.
    """
    if tables.orders is None:
        raise ValueError("KPIs need an orders table")
    start, end = parse_cutoff(start), parse_cutoff(end)
    if end <= start:
        raise ValueError(f"the period is empty: start {start} must be before end {end}")
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    orders = tables.orders[[CUSTOMER_ID, ORDERS.ordered_at, ORDERS.amount]]
    data_end = parse_cutoff(data_end) if data_end is not None else orders[ORDERS.ordered_at].max()
    churn_end = start + pd.Timedelta(days=horizon_days)
    frames = {"orders": orders}
    key = "'all'"
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
    join = f"LEFT JOIN seg ON seg.{CUSTOMER_ID} = per.c" if "seg" in frames else ""
    s, e, h = ts(start), ts(end), ts(churn_end)
    t, a = ORDERS.ordered_at, ORDERS.amount
    query = f"""
        WITH per AS (
            SELECT {CUSTOMER_ID} AS c,
                min({t}) AS first_at,
                count(*) FILTER ({t} < {s}) AS n_before,
                count(*) FILTER ({t} >= {s} AND {t} < {e}) AS n_in,
                coalesce(sum({a}) FILTER ({t} >= {s} AND {t} < {e}), 0) AS rev_in,
                count(*) FILTER ({t} < {e}) AS n_life,
                coalesce(sum({a}) FILTER ({t} < {e}), 0) AS rev_life,
                count(*) FILTER ({t} >= {s} AND {t} < {h}) AS n_horizon
            FROM orders GROUP BY 1
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
    """
    con = connect(**frames)
    raw = con.execute(query).df().set_index("grp")
    con.close()
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
