"""Lifecycle stage, next action and contact time per customer, as of an instant.

Point-in-time: only rows strictly before ``as_of`` are read, as in
``features.snapshot``. One stage per customer, the first rule that matches in
this order (``config.STAGES``):

1. abandoned_cart: the latest add_to_cart (at most ``cart_max_age_hours`` old) has no
   order at or after it. The reminder goes out ``cart_reminder_hours`` after the cart,
   so a cart younger than that is scheduled (contact_at in the future) and an order
   before contact_at cancels it on the next run.
2. new_buyer: first order less than ``new_buyer_days`` ago; welcome offer right after it.
3. lapsed: last order ``lapsed_days`` or more ago.
4. at_risk: a buyer (an order before ``as_of``) whose churn probability is >= ``at_risk_threshold``
   (skipped without probabilities; a prospect is never at risk, and a missing probability never is).
5. inactive: last order ``inactive_days`` or more ago (exactly 30 days counts).
6. active: ordered in the last ``inactive_days``.
7. prospect: known, but no order yet.

``contact_at`` is never before ``as_of``: a due time already past means now.
Vectorized pandas, so it runs for every customer in batch scoring.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analytics.config import STAGES, LifecycleConfig
from features.contract import CUSTOMER_ID, CUSTOMERS, EVENTS, ORDERS, parse_cutoff
from features.sources import Tables

STAGE = "lifecycle_stage"
ACTION = "next_action"
CONTACT_AT = "contact_at"
ADD_TO_CART = "add_to_cart"
RISK_BANDS = ("low", "medium", "high")


def _known(tables: Tables, as_of: pd.Timestamp) -> pd.Index:
    """Customers known before as_of: signed up (or undated) customers, buyers, cart users."""
    parts = []
    if tables.customers is not None:
        c = tables.customers
        if CUSTOMERS.signed_up_at in c.columns:
            at = c[CUSTOMERS.signed_up_at]
            c = c.loc[at.isna() | (at < as_of)]
        parts.append(c[CUSTOMER_ID])
    for frame, col in ((tables.orders, ORDERS.ordered_at), (tables.events, EVENTS.occurred_at)):
        if frame is not None:
            parts.append(frame.loc[frame[col] < as_of, CUSTOMER_ID])
    if not parts:
        raise ValueError("lifecycle needs a customers, orders or events table")
    ids = pd.concat(parts, ignore_index=True).astype("string").drop_duplicates().sort_values()
    return pd.Index(ids, name=CUSTOMER_ID)


def _by_customer(frame: pd.DataFrame | None, col: str, as_of, how: str, mask=None) -> pd.Series:
    if frame is None:
        return pd.Series(dtype="datetime64[us]")
    keep = frame[col] < as_of
    if mask is not None:
        keep &= mask
    return frame.loc[keep].groupby(CUSTOMER_ID, observed=True)[col].agg(how)


def lifecycle(
    tables: Tables, *, as_of, churn_probability: pd.Series | None = None, config: LifecycleConfig
) -> pd.DataFrame:
    """DataFrame[customer_id, lifecycle_stage, next_action, contact_at], one row per known customer."""
    as_of = parse_cutoff(as_of)
    ids = _known(tables, as_of)
    first = _by_customer(tables.orders, ORDERS.ordered_at, as_of, "min").reindex(ids)
    last = _by_customer(tables.orders, ORDERS.ordered_at, as_of, "max").reindex(ids)
    if tables.events is not None:
        is_cart = tables.events[EVENTS.event_type] == ADD_TO_CART
        cart = _by_customer(tables.events, EVENTS.occurred_at, as_of, "max", mask=is_cart).reindex(ids)
    else:
        cart = pd.Series(pd.NaT, index=ids, dtype="datetime64[us]")
    day, hour = pd.Timedelta(days=1), pd.Timedelta(hours=1)
    since_last = as_of - last
    cart_open = cart.notna() & (last.isna() | (last < cart)) & (as_of - cart <= config.cart_max_age_hours * hour)
    rules = {
        "abandoned_cart": cart_open,
        "new_buyer": first.notna() & (as_of - first < config.new_buyer_days * day),
        "lapsed": since_last >= config.lapsed_days * day,
        "at_risk": pd.Series(False, index=ids),
        "inactive": since_last >= config.inactive_days * day,
        "active": last.notna(),
        "prospect": pd.Series(True, index=ids),
    }
    if churn_probability is not None:
        prob = pd.Series(churn_probability, copy=False)
        prob.index = prob.index.astype("string")
        at_risk = prob.reindex(ids).ge(config.at_risk_threshold).fillna(False).astype(bool)
        rules["at_risk"] = at_risk & last.notna()
    conditions = [rules[s].fillna(False).to_numpy(dtype=bool) for s in STAGES]
    stage = np.select(conditions, STAGES, default="prospect")
    actions = config.actions.model_dump()
    contact = pd.Series(as_of, index=ids, dtype="datetime64[us]")
    is_cart, is_new = stage == "abandoned_cart", stage == "new_buyer"
    contact[is_cart] = cart[is_cart] + config.cart_reminder_hours * hour
    contact[is_new] = first[is_new] + config.welcome_delay_hours * hour
    contact = contact.clip(lower=as_of)
    return pd.DataFrame(
        {
            CUSTOMER_ID: ids.to_numpy(),
            STAGE: pd.array(stage, dtype="string"),
            ACTION: pd.array([actions[s] for s in stage], dtype="string"),
            CONTACT_AT: contact.to_numpy(),
        }
    )


def risk_band(churn_probability: pd.Series, edges: tuple[float, ...]) -> pd.Series:
    """low / medium / high (or band_0..n for other edge counts) from churn probabilities."""
    labels = list(RISK_BANDS) if len(edges) == 2 else [f"band_{i}" for i in range(len(edges) + 1)]
    bins = [-np.inf, *edges, np.inf]
    return pd.cut(churn_probability, bins=bins, labels=labels, right=False).rename("risk_band")
