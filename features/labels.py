"""Outcomes after the cutoff (churn labels, spend): the only code that looks past it.

Among customers with at least one order before the cutoff, churned = no order
in [cutoff, cutoff + horizon); their spend is what they paid in that window.
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


def spend_after(tables: Tables, *, cutoff, horizon_days: int) -> pd.Series:
    """Spend (``amount`` summed) in [cutoff, cutoff + horizon) per customer who ordered before ``cutoff``, 0.0 for
    those who did not order in it: what a prediction of value over the horizon is measured against."""
    labels = churn_labels(tables, cutoff=cutoff, horizon_days=horizon_days)
    cutoff = parse_cutoff(cutoff)
    orders = tables.orders
    at = orders[ORDERS.ordered_at]
    window = orders.loc[(at >= cutoff) & (at < cutoff + pd.Timedelta(days=horizon_days))]
    spent = window.groupby(window[CUSTOMER_ID].astype("string"))[ORDERS.amount].sum()
    return spent.reindex(labels.index, fill_value=0.0).astype("float64").rename("spend")


def label_window_end(tables: Tables) -> pd.Timestamp | None:
    """The last instant the orders table covers; cutoffs whose window ends later can't be labelled."""
    if tables.orders is None or tables.orders.empty:
        return None
    return tables.orders[ORDERS.ordered_at].max()
