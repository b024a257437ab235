"""Behaviour: visits, page views, carts, e-mail engagement, and their trends.

Cart abandonment is the share of add-to-cart events (last 90 days) with no
order by the same customer within 2 hours and before the cutoff. E-mail rates
are opens and clicks per e-mail sent in the last 90 days.
"""

from __future__ import annotations

import pandas as pd

from features.config import FeaturesConfig
from features.contract import CUSTOMER_ID, EVENTS, ORDERS
from features.snapshot import Snapshot

SOURCES = (EVENTS.name,)
CART_WINDOW_HOURS = 2
_COUNTED = ("visit", "page_view", "add_to_cart")


def build(snap: Snapshot, config: FeaturesConfig) -> pd.DataFrame:
    cut = f"TIMESTAMP '{snap.cutoff.isoformat(sep=' ')}'"
    kind, at = EVENTS.event_type, EVENTS.occurred_at
    counts = ",\n".join(
        f"count(*) FILTER (WHERE {kind} = '{k}' AND age <= {w}) AS behavior_{k}s_{w}d"
        for k in _COUNTED
        for w in (30, 90)
    )
    query = f"""
    WITH e AS (
        SELECT {CUSTOMER_ID}, {kind}, {at}, epoch({cut} - {at}) / 86400.0 AS age FROM {EVENTS.name}
    ),
    carts AS (
        SELECT c.{CUSTOMER_ID},
               avg(CASE WHEN o.{ORDERS.ordered_at} IS NULL
                        OR o.{ORDERS.ordered_at} > c.{at} + INTERVAL {CART_WINDOW_HOURS} HOUR
                   THEN 1.0 ELSE 0.0 END) AS behavior_cart_abandonment_rate_90d
        FROM (SELECT * FROM e WHERE {kind} = 'add_to_cart' AND age <= 90) c
        ASOF LEFT JOIN {ORDERS.name} o
          ON c.{CUSTOMER_ID} = o.{CUSTOMER_ID} AND o.{ORDERS.ordered_at} >= c.{at}
        GROUP BY c.{CUSTOMER_ID}
    ),
    agg AS (
        SELECT {CUSTOMER_ID},
            {counts},
            count(*) FILTER (WHERE {kind} = 'visit' AND age > 90 AND age <= 180) AS visits_prev_90d,
            min(age) FILTER (WHERE {kind} = 'visit') AS behavior_days_since_last_visit,
            min(age) FILTER (WHERE {kind} <> 'email_sent') AS behavior_days_since_last_activity,
            count(*) FILTER (WHERE {kind} = 'email_sent' AND age <= 90) AS sent_90d,
            count(*) FILTER (WHERE {kind} = 'email_open' AND age <= 90) AS opens_90d,
            count(*) FILTER (WHERE {kind} = 'email_click' AND age <= 90) AS clicks_90d,
            count(*) FILTER (WHERE {kind} = 'email_sent') AS sent_all,
            count(*) FILTER (WHERE {kind} = 'email_open') AS opens_all
        FROM e GROUP BY {CUSTOMER_ID}
    )
    SELECT p.{CUSTOMER_ID},
        agg.* EXCLUDE ({CUSTOMER_ID}, visits_prev_90d, sent_90d, opens_90d, clicks_90d, sent_all, opens_all),
        behavior_visits_90d - visits_prev_90d AS behavior_visits_trend_90d,
        opens_90d / nullif(sent_90d, 0) AS behavior_email_open_rate_90d,
        clicks_90d / nullif(sent_90d, 0) AS behavior_email_ctr_90d,
        opens_all / nullif(sent_all, 0) AS behavior_email_open_rate_all,
        carts.behavior_cart_abandonment_rate_90d
    FROM population p
    LEFT JOIN agg USING ({CUSTOMER_ID})
    LEFT JOIN carts USING ({CUSTOMER_ID})
    """
    frame = snap.sql(query).set_index(CUSTOMER_ID)
    counts_cols = [c for c in frame.columns if c.endswith(("s_30d", "s_90d", "trend_90d"))]
    if snap.has(EVENTS.name):
        frame[counts_cols] = frame[counts_cols].fillna(0)
    return frame.astype("float64")
