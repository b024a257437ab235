"""Churn labels: the only code that looks past the cutoff.

Among customers with at least one order before the cutoff, churned = no order
in [cutoff, cutoff + horizon).
"""

from __future__ import annotations

import pandas as pd

from features.contract import CUSTOMER_ID, ORDERS, parse_cutoff
from features.sources import Tables

LABEL = "churned"


def churn_labels(tables: Tables, *, cutoff, horizon_days: int) -> pd.Series:
    """A 0/1 Series indexed by customer_id, for customers who ordered before ``cutoff``."""
    if tables.orders is None:
        raise ValueError("churn labels need an orders table")
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    cutoff = parse_cutoff(cutoff)
    end = cutoff + pd.Timedelta(days=horizon_days)
    orders = tables.orders
    at = orders[ORDERS.ordered_at]
    before = orders.loc[at < cutoff, CUSTOMER_ID].unique()
    bought = orders.loc[(at >= cutoff) & (at < end), CUSTOMER_ID].unique()
    ids = pd.Index(before, name=CUSTOMER_ID).astype("string").sort_values()
    churned = (~ids.isin(pd.Index(bought).astype("string"))).astype("int8")
    return pd.Series(churned, index=ids, name=LABEL)


def label_window_end(tables: Tables) -> pd.Timestamp | None:
    """The last instant the orders table covers; cutoffs whose window ends later can't be labelled."""
    if tables.orders is None or tables.orders.empty:
        return None
    return tables.orders[ORDERS.ordered_at].max()
