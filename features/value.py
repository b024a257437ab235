"""Value columns: expected orders and spend after the cutoff, and when the next order is due, per buyer.

BG/NBD (``features.bgnbd``, its parameters and summaries shared with the lifetime builder through the
snapshot, so nothing is refitted) gives the expected number of orders over the churn horizon and over
12 months and the day by which the customer has more likely than not ordered again; Gamma-Gamma
(``features.gamma_gamma``, fitted on the population's repeat buyers as of the cutoff) gives each
customer's expected order value. Spend = orders x value.

These are not churn-model features (the churn model's inputs stay as they were); they are stored beside
the features, as the lifecycle columns are, for the value model (``modeling.value_model``) and the scores.
Only orders before the cutoff are read. Non-buyers, and every buyer when too few repeat buyers support
a fit, get NaN.
"""

from __future__ import annotations

import logging

import pandas as pd

from features import bgnbd, gamma_gamma
from features.builders import lifetime
from features.config import FeaturesConfig
from features.contract import CUSTOMER_ID, ORDERS
from features.snapshot import KEY, Snapshot
from features.sources import Tables

log = logging.getLogger(__name__)

YEAR_DAYS = 365
EXPECTED_ORDERS = "expected_orders"  # over the churn horizon
EXPECTED_ORDERS_12M = "expected_orders_12m"
EXPECTED_SPEND = "expected_spend_bgnbd"  # over the churn horizon: BG/NBD orders x Gamma-Gamma order value
EXPECTED_SPEND_12M = "expected_spend_12m"
NEXT_ORDER = "next_order_in_days"  # P(ordered again) reaches 50% this many days after the cutoff
VALUE_COLUMNS = (EXPECTED_ORDERS, EXPECTED_ORDERS_12M, EXPECTED_SPEND, EXPECTED_SPEND_12M, NEXT_ORDER)


def _spend(snap: Snapshot) -> pd.DataFrame:
    """Orders and mean order value per buyer before the cutoff; the sum is exact (DECIMAL, as in the sales builder),
    so the mean, and Gamma-Gamma's fit on it, do not depend on the order DuckDB adds the rows in."""
    return snap.memo(
        __name__,
        lambda: snap.sql(f"""
            SELECT {KEY}, count(*) AS orders, avg({ORDERS.amount}::DECIMAL(38, 6))::DOUBLE AS mean_value
            FROM {ORDERS.name} GROUP BY {KEY}
        """),
    )


def learn(snap: Snapshot, config: FeaturesConfig) -> tuple[float, ...] | None:
    """Gamma-Gamma's (p, q, gamma) as of the cutoff; None below lifetime's minimum of repeat buyers or when
    q <= 1 (no finite population mean order value). Fitted on lifetime's CRC-32 sample, sorted by id."""
    spend = _spend(snap).merge(snap.sql(f"SELECT {KEY}, {CUSTOMER_ID} FROM population"), on=KEY)
    spend = spend[lifetime.in_sample(spend[CUSTOMER_ID], lifetime.sample_modulus(len(spend)))]
    spend = spend[(spend["orders"] >= 2) & (spend["mean_value"] > 0)].sort_values(CUSTOMER_ID)
    if len(spend) < lifetime.MIN_REPEATERS:
        return None
    params, converged = gamma_gamma.fit(spend["orders"], spend["mean_value"])
    if not converged:
        log.warning("Gamma-Gamma fit as of %s did not converge; value columns use its last parameters", snap.cutoff)
    if params[1] <= 1:
        log.warning(
            "Gamma-Gamma as of %s has q = %.3f <= 1: no finite mean order value, spend is NaN", snap.cutoff, params[1]
        )
        return None
    return params


def value_columns(snap: Snapshot, config: FeaturesConfig) -> pd.DataFrame:
    """The ``VALUE_COLUMNS`` for every customer in the snapshot, indexed by ``cid``; NaN for non-buyers."""
    out = pd.DataFrame(index=snap.population(key=True), columns=list(VALUE_COLUMNS), dtype="float64")
    bg = snap.learned(lifetime.__name__, lifetime.learn, config)
    if bg is None:
        return out
    summary = lifetime._summary(snap).set_index(KEY)
    x, t_x, T = (summary[c].to_numpy(dtype="float64") for c in ("x", "t_x", "T"))
    horizon, year = config.horizon_days / bgnbd.WEEK_DAYS, YEAR_DAYS / bgnbd.WEEK_DAYS
    orders = pd.DataFrame(
        {
            EXPECTED_ORDERS: bgnbd.expected_purchases(bg, x, t_x, T, horizon),
            EXPECTED_ORDERS_12M: bgnbd.expected_purchases(bg, x, t_x, T, year),
            NEXT_ORDER: bgnbd.days_to_next_order(bg, x, t_x, T),
        },
        index=summary.index,
    )
    gg = snap.learned(__name__, learn, config)
    if gg is not None:
        spend = _spend(snap).set_index(KEY).reindex(summary.index)
        value = gamma_gamma.expected_order_value(gg, spend["orders"], spend["mean_value"])
        orders[EXPECTED_SPEND] = orders[EXPECTED_ORDERS] * value
        orders[EXPECTED_SPEND_12M] = orders[EXPECTED_ORDERS_12M] * value
    out.update(orders)
    return out


def value_frame(tables: Tables, *, cutoff, config: FeaturesConfig, vocabulary: dict | None = None) -> pd.DataFrame:
    """``value_columns`` as of ``cutoff`` indexed by customer_id, in ``build_features``' row order."""
    with Snapshot(tables, cutoff=cutoff, vocabulary=vocabulary) as snap:
        ids = snap.population()
        out = value_columns(snap, config)
    out.index = ids
    return out
