"""Outcomes after the cutoff (churn labels, spend): the only code that looks past it.

Among customers with at least one order before the cutoff, churned = no order
in [cutoff, cutoff + horizon); their spend is what they paid in that window.
Both windows are the snapshot's (``Snapshot.ahead``).
"""

from __future__ import annotations

import pandas as pd

from features.contract import CUSTOMER_ID, ORDERS
from features.snapshot import KEY, Snapshot
from features.sources import Tables

LABEL = "churned"


def _outcomes(tables: Tables, *, cutoff, horizon_days: int) -> pd.DataFrame:
    """Per customer who ordered before ``cutoff``: orders and spend in [cutoff, cutoff + horizon), sorted by id."""
    if tables.orders is None:
        raise ValueError("churn labels need an orders table")
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    with Snapshot(tables, cutoff=cutoff) as snap:
        until = snap.cutoff + pd.Timedelta(days=horizon_days)
        buyers = snap.sql(
            f"SELECT {KEY}, {CUSTOMER_ID} FROM (SELECT DISTINCT {KEY} FROM {ORDERS.name}) JOIN _ids USING ({KEY})"
        )
        window = snap.sql(f"SELECT {KEY}, {ORDERS.amount} FROM {snap.ahead(ORDERS.name, until=until)}")
    keys = pd.Index(buyers[KEY])
    per = window.groupby(KEY)[ORDERS.amount]  # pandas' sum: the same bits as summing the input frame
    return pd.DataFrame(
        {"orders": per.size().reindex(keys, fill_value=0).to_numpy(), "spend": per.sum().reindex(keys).to_numpy()},
        index=pd.Index(buyers[CUSTOMER_ID], name=CUSTOMER_ID).astype("string"),
    ).sort_index()


def churn_labels(tables: Tables, *, cutoff, horizon_days: int) -> pd.Series:
    """A 0/1 Series indexed by customer_id, for customers who ordered before ``cutoff``."""
    outcomes = _outcomes(tables, cutoff=cutoff, horizon_days=horizon_days)
    return (outcomes["orders"] == 0).astype("int8").rename(LABEL)


def spend_after(tables: Tables, *, cutoff, horizon_days: int) -> pd.Series:
    """Spend (``amount`` summed) in [cutoff, cutoff + horizon) per customer who ordered before ``cutoff``, 0.0 for
    those who did not order in it: what a prediction of value over the horizon is measured against."""
    outcomes = _outcomes(tables, cutoff=cutoff, horizon_days=horizon_days)
    return outcomes["spend"].fillna(0.0).astype("float64").rename("spend")


def label_window_end(tables: Tables) -> pd.Timestamp | None:
    """The last instant the orders table covers; cutoffs whose window ends later can't be labelled."""
    if tables.orders is None or tables.orders.empty:
        return None
    return tables.orders[ORDERS.ordered_at].max()
