"""A small offer log with known truth, for the offer tests until (and beside) the demo generator.

Region decides the response: north buys more with free shipping, south with
the discount, east with neither. Assignment is uniformly random per campaign.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.sources import Tables, check_tables

ARMS = ("none", "free_shipping", "discount_20")
EFFECT = {"north": (0.0, 0.15, 0.0), "south": (0.0, 0.0, 0.2), "east": (0.0, 0.0, 0.0)}


def offer_log(n_customers: int = 3000, campaigns: int = 4, seed: int = 0, effect_scale: float = 1.0):
    """(tables, truth): contract tables and per-send true conversion probabilities and order value."""
    rng = np.random.default_rng(seed)
    ids = [f"c{i:05d}" for i in range(n_customers)]
    region = rng.choice(list(EFFECT), n_customers)
    aov = rng.gamma(8.0, 8.0, n_customers)
    customers = pd.DataFrame({"customer_id": ids, "signed_up_at": "2024-01-01", "region": region})
    n_orders = rng.integers(1, 6, n_customers)
    cust = np.repeat(np.arange(n_customers), n_orders)
    orders = pd.DataFrame(
        {
            "order_id": [f"o{i}" for i in range(len(cust))],
            "customer_id": np.array(ids)[cust],
            "ordered_at": pd.Timestamp("2024-01-02") + pd.to_timedelta(rng.integers(0, 300, len(cust)), unit="D"),
            "amount": aov[cust] * rng.uniform(0.9, 1.1, len(cust)),
        }
    )
    rows, truth = [], []
    for c in range(campaigns):
        sent = pd.Timestamp("2024-11-01") + pd.Timedelta(days=14 * c, hours=9)
        arm = rng.integers(0, 3, n_customers)
        base = 0.04 + 0.04 * (n_orders >= 3)
        p = np.column_stack([base + effect_scale * np.array([EFFECT[r][a] for r in region]) for a in range(3)])
        y = rng.random(n_customers) < p[np.arange(n_customers), arm]
        rows.append(
            pd.DataFrame(
                {
                    "customer_id": ids,
                    "sent_at": sent,
                    "offer": np.array(ARMS)[arm],
                    "propensity": 1 / 3,
                    "converted": y.astype(int),
                    "revenue": np.where(y, aov, 0.0),
                }
            )
        )
        truth.append(
            pd.DataFrame({f"p_convert_{a}": p[:, j] for j, a in enumerate(ARMS)}).assign(
                order_value=aov, segment=region
            )
        )
    frames = {"customers": customers, "orders": orders, "offers": pd.concat(rows, ignore_index=True)}
    tables: Tables = check_tables(frames, offers=ARMS[1:])
    return tables, pd.concat(truth, ignore_index=True)
