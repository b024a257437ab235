"""Sales history: recency, frequency, monetary value, rhythm, trend, discounts, baskets.

Windows are the last 30/90/365 days before the cutoff; ``all`` is the whole
history. Gaps are inter-purchase times in days; ``overdue_ratio`` is days since
the last order over the customer's usual gap (above 1: later than usual).

Every sum is exact, so a rerun gives the same bits: DuckDB adds a group's rows
in whatever order its threads meet them, and float addition is not associative
(reruns on 100,000 demo customers differed in the last bits of sales_revenue_all,
sales_avg_order_value_all, sales_gap_std_days_all). Money is summed as
DECIMAL(38, 6) (a millionth of a currency unit, amounts are at most 1e12 by the
contract), gaps as integer microseconds in HUGEINT, mean and deviation formed
from those exact sums and only then turned into floats.
"""

from __future__ import annotations

import pandas as pd

from features.config import FeaturesConfig
from features.contract import ORDERS
from features.snapshot import KEY, Snapshot

WINDOWS = (30, 90, 365)
US_PER_DAY = 86_400_000_000.0
SOURCES = (ORDERS.name,)


def build(snap: Snapshot, config: FeaturesConfig) -> pd.DataFrame:
    cut = snap.sql_cutoff
    windows = ",\n".join(
        f"count(*) FILTER (WHERE age <= {w}) AS sales_orders_{w}d, "
        f"coalesce(sum(amount) FILTER (WHERE age <= {w}), 0)::DOUBLE AS sales_revenue_{w}d"
        for w in WINDOWS
    )
    query = f"""
    WITH o AS (
        SELECT {KEY}, {ORDERS.amount}::DECIMAL(38, 6) AS amount,
               {ORDERS.discount_amount}::DECIMAL(38, 6) AS discount,
               {ORDERS.shipping_fee} AS shipping, {ORDERS.category} AS category, {ORDERS.n_items} AS n_items,
               epoch({cut} - {ORDERS.ordered_at}) / 86400.0 AS age,
               (epoch_us({ORDERS.ordered_at})
                - lag(epoch_us({ORDERS.ordered_at})) OVER (PARTITION BY {KEY} ORDER BY {ORDERS.ordered_at}))::HUGEINT
                AS gap_us
        FROM {ORDERS.name}
    ),
    agg AS (
        SELECT {KEY},
            min(age) AS sales_days_since_last_order,
            max(age) AS sales_days_since_first_order,
            count(*) AS sales_orders_all,
            sum(amount)::DOUBLE AS sales_revenue_all,
            {windows},
            count(*) FILTER (WHERE age > 90 AND age <= 180) AS orders_prev_90d,
            coalesce(sum(amount) FILTER (WHERE age > 90 AND age <= 180), 0)::DOUBLE AS revenue_prev_90d,
            (sum(amount)::DOUBLE / nullif(count(amount), 0)) AS sales_avg_order_value_all,
            avg(n_items) AS sales_avg_items_all,
            avg(CASE WHEN discount IS NULL THEN NULL WHEN discount > 0 THEN 1.0 ELSE 0.0 END)
                AS sales_discount_order_share_all,
            sum(discount)::DOUBLE / nullif(sum(amount) + sum(discount), 0)::DOUBLE AS sales_discount_rate_all,
            avg(CASE WHEN shipping IS NULL THEN NULL WHEN shipping = 0 THEN 1.0 ELSE 0.0 END)
                AS sales_free_shipping_share_all,
            count(DISTINCT category) AS n_categories,
            count(category) AS n_with_category,
            count(gap_us) AS n_gaps,
            sum(gap_us) AS gap_sum,
            sum(gap_us * gap_us) AS gap_sum_sq
        FROM o GROUP BY {KEY}
    )
    SELECT p.{KEY}, agg.* EXCLUDE ({KEY}, orders_prev_90d, revenue_prev_90d,
                                           n_categories, n_with_category, n_gaps, gap_sum, gap_sum_sq),
        sales_orders_90d - orders_prev_90d AS sales_orders_trend_90d,
        sales_revenue_90d - revenue_prev_90d AS sales_revenue_trend_90d,
        CASE WHEN n_with_category > 0 THEN n_categories END AS sales_categories_all,
        gap_sum::DOUBLE / nullif(n_gaps, 0) / {US_PER_DAY} AS sales_gap_mean_days_all,
        sqrt(greatest((n_gaps * gap_sum_sq - gap_sum * gap_sum)::DOUBLE, 0) / nullif(n_gaps * n_gaps, 0)::DOUBLE)
            / {US_PER_DAY} AS sales_gap_std_days_all,
        sales_days_since_last_order / nullif(gap_sum::DOUBLE / nullif(n_gaps, 0) / {US_PER_DAY}, 0)
            AS sales_overdue_ratio_all
    FROM population p
    LEFT JOIN agg USING ({KEY})
    """
    frame = snap.sql(query).set_index(KEY)
    counts = [c for c in frame.columns if c.startswith(("sales_orders_", "sales_revenue_"))]
    if snap.has(ORDERS.name):  # a customer with no orders bought nothing; without the table we don't know
        frame[counts] = frame[counts].fillna(0)
    return frame.astype("float64")
