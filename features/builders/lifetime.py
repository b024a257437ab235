"""Buy-till-you-die features: each customer's P(alive) and P(no order within the churn horizon) under BG/NBD.

``learn`` fits the population's BG/NBD parameters (``features.bgnbd``) on its
orders before the cutoff; above 50,000 buyers, on a sample of them
chosen by a CRC-32 of the customer id, so the choice does not depend on row
order or on which machine computes it. ``build`` scores every buyer under those
parameters. The parametric model is strong when a shop is small: it carries a
structure (Poisson buying, geometric dropout) that trees need many customers to
learn. The churn model may use it or ignore it. Customers without orders get NaN.
"""

from __future__ import annotations

import logging
import zlib

import numpy as np
import pandas as pd

from features import bgnbd
from features.config import FeaturesConfig
from features.contract import CUSTOMER_ID, ORDERS
from features.snapshot import KEY, Snapshot

log = logging.getLogger(__name__)

SOURCES = (ORDERS.name,)
SAMPLE = 50_000  # buyers the parameters are fitted on, at most (their standard errors are already tiny)
MIN_REPEATERS = 10  # fewer repeat buyers than this: no fit, NaN features


def sample_modulus(buyers: int) -> int:
    """Keep buyers whose CRC-32 of the id is 0 modulo this (1: everyone)."""
    return max(1, -(-buyers // SAMPLE))


def in_sample(ids, modulus: int) -> np.ndarray:
    """Which ids the parameters are fitted on (Spark's ``crc32`` gives the same numbers)."""
    if modulus == 1:
        return np.ones(len(ids), dtype=bool)
    return np.array([zlib.crc32(str(i).encode()) % modulus == 0 for i in ids], dtype=bool)


def _summary(snap: Snapshot) -> pd.DataFrame:
    """x, t_x, T per buyer before the cutoff: repeat orders, weeks from the first order to the last, to the cutoff.

    Orders rather than distinct purchase days (the baseline's convention): one pass over the orders instead
    of a DISTINCT, 2.5x faster on 20M orders; they differ only for customers who order twice in a day.
    """
    week = 86400.0 * bgnbd.WEEK_DAYS
    return snap.memo(
        __name__,
        lambda: snap.sql(f"""
            SELECT p.{KEY}, p.{CUSTOMER_ID}, count(*) - 1 AS x,
                epoch(max(o.{ORDERS.ordered_at}) - min(o.{ORDERS.ordered_at})) / {week} AS t_x,
                epoch({snap.sql_cutoff} - min(o.{ORDERS.ordered_at})) / {week} AS T
            FROM {ORDERS.name} o JOIN population p USING ({KEY})
            GROUP BY p.{KEY}, p.{CUSTOMER_ID}
        """),
    )


def learn(snap: Snapshot, config: FeaturesConfig) -> tuple[float, ...] | None:
    """BG/NBD's (r, alpha, a, b) for the population as of the cutoff; None when too few repeat buyers.

    The sample is sorted by customer_id, so the fit never depends on row order.
    """
    summary = _summary(snap)
    summary = summary[in_sample(summary[CUSTOMER_ID], sample_modulus(len(summary)))].sort_values(CUSTOMER_ID)
    if (summary["x"] > 0).sum() < MIN_REPEATERS:
        return None
    params, converged = bgnbd.fit(summary["x"], summary["t_x"], summary["T"])
    if not converged:
        log.warning("BG/NBD fit as of %s did not converge; lifetime features use its last parameters", snap.cutoff)
    return params


def build(snap: Snapshot, config: FeaturesConfig) -> pd.DataFrame:
    params = snap.learned(__name__, learn, config)
    summary = _summary(snap).set_index(KEY)
    horizon = f"lifetime_p_no_order_{config.horizon_days}d"
    out = pd.DataFrame(index=summary.index, columns=["lifetime_p_alive", horizon], dtype="float64")
    if params is not None:
        x, t_x, T = (summary[c].to_numpy(dtype="float64") for c in ("x", "t_x", "T"))
        out["lifetime_p_alive"] = bgnbd.p_alive(params, x, t_x, T)
        out[horizon] = bgnbd.p_no_purchase(params, x, t_x, T, config.horizon_days / bgnbd.WEEK_DAYS)
    return out
