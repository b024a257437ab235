"""Sales history: recency, frequency, monetary value, rhythm, trend, discounts, baskets.

Windows are the last 30/90/365 days before the cutoff; ``all`` is the whole
history. Gaps are inter-purchase times in days; ``overdue_ratio`` is days since
the last order over the customer's usual gap (above 1: later than usual).
"""

from __future__ import annotations

import pandas as pd

from features.config import FeaturesConfig
from features.contract import ORDERS
from features.snapshot import KEY, Snapshot

WINDOWS = (30, 90, 365)
SOURCES = (ORDERS.name,)


def build(snap: Snapshot, config: FeaturesConfig) -> pd.DataFrame:
    cut = snap.sql_cutoff
    windows = ",\n".join(
        f"count(*) FILTER (WHERE age <= {w}) AS sales_orders_{w}d, "
        f"coalesce(sum({ORDERS.amount}) FILTER (WHERE age <= {w}), 0) AS sales_revenue_{w}d"
        for w in WINDOWS
    )
    query = f"""
    WITH o AS (
        SELECT {KEY}, {ORDERS.amount} AS amount, {ORDERS.discount_amount} AS discount,
               {ORDERS.shipping_fee} AS shipping, {ORDERS.category} AS category, {ORDERS.n_items} AS n_items,
               epoch({cut} - {ORDERS.ordered_at}) / 86400.0 AS age,
               lead(age) OVER (PARTITION BY {KEY} ORDER BY age) - age AS gap
        FROM {ORDERS.name}
    ),
    agg AS (
        SELECT {KEY},
            min(age) AS sales_days_since_last_order,
            max(age) AS sales_days_since_first_order,
            count(*) AS sales_orders_all,
            sum(amount) AS sales_revenue_all,
            {windows},
            count(*) FILTER (WHERE age > 90 AND age <= 180) AS orders_prev_90d,
            coalesce(sum(amount) FILTER (WHERE age > 90 AND age <= 180), 0) AS revenue_prev_90d,
            avg(amount) AS sales_avg_order_value_all,
            avg(n_items) AS sales_avg_items_all,
            avg(CASE WHEN discount IS NULL THEN NULL WHEN discount > 0 THEN 1.0 ELSE 0.0 END)
                AS sales_discount_order_share_all,
            sum(discount) / nullif(sum(amount) + sum(discount), 0) AS sales_discount_rate_all,
            avg(CASE WHEN shipping IS NULL THEN NULL WHEN shipping = 0 THEN 1.0 ELSE 0.0 END)
                AS sales_free_shipping_share_all,
            count(DISTINCT category) AS n_categories,
            count(category) AS n_with_category,
            avg(gap) AS gap_mean,
            stddev_pop(gap) AS gap_std
        FROM o GROUP BY {KEY}
    )
    SELECT p.{KEY}, agg.* EXCLUDE ({KEY}, orders_prev_90d, revenue_prev_90d,
                                           n_categories, n_with_category, gap_mean, gap_std),
        sales_orders_90d - orders_prev_90d AS sales_orders_trend_90d,
        sales_revenue_90d - revenue_prev_90d AS sales_revenue_trend_90d,
        CASE WHEN n_with_category > 0 THEN n_categories END AS sales_categories_all,
        gap_mean AS sales_gap_mean_days_all,
        gap_std AS sales_gap_std_days_all,
        sales_days_since_last_order / nullif(gap_mean, 0) AS sales_overdue_ratio_all
    FROM population p
    LEFT JOIN agg USING ({KEY})
    """
    frame = snap.sql(query).set_index(KEY)
    counts = [c for c in frame.columns if c.startswith(("sales_orders_", "sales_revenue_"))]
    if snap.has(ORDERS.name):  # a customer with no orders bought nothing; without the table we don't know
        frame[counts] = frame[counts].fillna(0)
    return frame.astype("float64")
