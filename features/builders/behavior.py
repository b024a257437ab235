"""Behaviour: visits, page views, carts, e-mail engagement, and their trends.

Cart abandonment is the share of add-to-cart events (last 90 days) with no
order by the same customer within 2 hours and before the cutoff. E-mail rates
are opens and clicks per e-mail sent in the last 90 days.
"""

from __future__ import annotations

import pandas as pd

from features.config import FeaturesConfig
from features.contract import EVENTS, ORDERS
from features.snapshot import KEY, Snapshot

SOURCES = (EVENTS.name,)
CART_WINDOW_HOURS = 2
_COUNTED = ("visit", "page_view", "add_to_cart")


def build(snap: Snapshot, config: FeaturesConfig) -> pd.DataFrame:
    cut = snap.sql_cutoff
    kind, at = EVENTS.event_type, EVENTS.occurred_at
    counts = ",\n".join(
        f"count(*) FILTER (WHERE {kind} = '{k}' AND {at} >= {cut} - INTERVAL {w} DAY) AS behavior_{k}s_{w}d"
        for k in _COUNTED
        for w in (30, 90)
    )
    last90 = f"{at} >= {cut} - INTERVAL 90 DAY"
    query = f"""
    WITH agg AS (
        SELECT {KEY},
            {counts},
            count(*) FILTER (WHERE {kind} = 'visit' AND {at} < {cut} - INTERVAL 90 DAY
                             AND {at} >= {cut} - INTERVAL 180 DAY) AS visits_prev_90d,
            epoch({cut} - max({at}) FILTER (WHERE {kind} = 'visit')) / 86400.0 AS behavior_days_since_last_visit,
            epoch({cut} - max({at}) FILTER (WHERE {kind} <> 'email_sent')) / 86400.0
                AS behavior_days_since_last_activity,
            count(*) FILTER (WHERE {kind} = 'email_sent' AND {last90}) AS sent_90d,
            count(*) FILTER (WHERE {kind} = 'email_open' AND {last90}) AS opens_90d,
            count(*) FILTER (WHERE {kind} = 'email_click' AND {last90}) AS clicks_90d,
            count(*) FILTER (WHERE {kind} = 'email_sent') AS sent_all,
            count(*) FILTER (WHERE {kind} = 'email_open') AS opens_all
        FROM {EVENTS.name} GROUP BY {KEY}
    ),
    carts AS (  -- each add-to-cart of the last 90 days, and whether an order followed within the window
        SELECT c.cart, any_value(c.{KEY}) AS {KEY}, count(o.{ORDERS.ordered_at}) = 0 AS abandoned
        FROM (SELECT row_number() OVER () AS cart, {KEY}, {at} FROM {EVENTS.name}
              WHERE {kind} = 'add_to_cart' AND {last90}) c
        LEFT JOIN (SELECT {KEY}, {ORDERS.ordered_at} FROM {ORDERS.name}
                   WHERE {ORDERS.ordered_at} >= {cut} - INTERVAL 90 DAY) o
          ON c.{KEY} = o.{KEY} AND o.{ORDERS.ordered_at} >= c.{at}
         AND o.{ORDERS.ordered_at} <= c.{at} + INTERVAL {CART_WINDOW_HOURS} HOUR
        GROUP BY c.cart
    ),
    abandonment AS (
        SELECT {KEY}, avg(abandoned::DOUBLE) AS behavior_cart_abandonment_rate_90d FROM carts GROUP BY {KEY}
    )
    SELECT p.{KEY},
        agg.* EXCLUDE ({KEY}, visits_prev_90d, sent_90d, opens_90d, clicks_90d, sent_all, opens_all),
        behavior_visits_90d - visits_prev_90d AS behavior_visits_trend_90d,
        opens_90d / nullif(sent_90d, 0) AS behavior_email_open_rate_90d,
        clicks_90d / nullif(sent_90d, 0) AS behavior_email_ctr_90d,
        opens_all / nullif(sent_all, 0) AS behavior_email_open_rate_all,
        abandonment.behavior_cart_abandonment_rate_90d
    FROM population p
    LEFT JOIN agg USING ({KEY})
    LEFT JOIN abandonment USING ({KEY})
    """
    frame = snap.sql(query).set_index(KEY)
    counts_cols = [c for c in frame.columns if c.endswith(("s_30d", "s_90d", "trend_90d"))]
    if snap.has(EVENTS.name):
        frame[counts_cols] = frame[counts_cols].fillna(0)
    return frame.astype("float64")
