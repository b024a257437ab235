"""The campaign export: who to contact, with what, and when, as one CSV a campaign tool loads.

Reads a scores file (``retain score``'s Parquet or CSV, the schema of ``serving.scoring.FIELDS``) and writes one
row per customer with a next action, sorted by send time then customer:

``customer_id, action, offer, send_at, lifecycle_stage, risk_band, churn_probability, expected_profit, currency``

``action`` is the lifecycle rule's next action (``configs/analytics.yaml``), ``offer`` the recommended offer
(``none``: send the action without an incentive), ``send_at`` when to send it (ISO 8601 UTC, never before the
as-of date), ``expected_profit`` the recommended offer's expected incremental profit (empty for ``none``).
Customers without a next action (no lifecycle stage) are left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.contract import CUSTOMER_ID, NO_OFFER
from features.io import write_csv_atomic

COLUMNS = (
    CUSTOMER_ID,
    "action",
    "offer",
    "send_at",
    "lifecycle_stage",
    "risk_band",
    "churn_probability",
    "expected_profit",
    "currency",
)


def campaign_frame(scores: pd.DataFrame) -> pd.DataFrame:
    """Scores (one row per customer) -> the export's rows, in send order."""
    needed = [CUSTOMER_ID, "next_action", "contact_at", "recommended_offer", "currency"]
    missing = [c for c in needed if c not in scores.columns]
    if missing:
        raise ValueError(f"the scores lack {missing}: rescore with this version of retain score")
    rows = scores[scores["next_action"].notna()]
    offer = rows["recommended_offer"].astype("string")
    profit = np.full(len(rows), np.nan)
    for name in offer.dropna().unique():
        column = f"profit_{name}"
        if name != NO_OFFER and column in rows.columns:
            hit = (offer == name).fillna(False).to_numpy()
            profit[hit] = rows.loc[hit, column].to_numpy(dtype=np.float64)
    out = pd.DataFrame(
        {
            CUSTOMER_ID: rows[CUSTOMER_ID].astype("string").to_numpy(),
            "action": rows["next_action"].astype("string").to_numpy(),
            "offer": offer.fillna(NO_OFFER).to_numpy(),
            "send_at": rows["contact_at"].astype("string").to_numpy(),
            "lifecycle_stage": rows["lifecycle_stage"].astype("string").to_numpy(),
            "risk_band": rows["risk_band"].astype("string").to_numpy(),
            "churn_probability": rows["churn_probability"].to_numpy(dtype=np.float64).round(4),
            "expected_profit": profit.round(2),
            "currency": rows["currency"].astype("string").to_numpy(),
        }
    )
    return out.sort_values(["send_at", CUSTOMER_ID], kind="stable").reset_index(drop=True)[list(COLUMNS)]


def read_scores(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype={CUSTOMER_ID: "string"}, keep_default_na=False, na_values=[""])
    return pd.read_parquet(path)


def write_campaign(scores: str | Path, out: str | Path) -> int:
    """Write the export for the scores file ``scores`` to ``out`` (CSV, atomically); returns the number of sends."""
    frame = campaign_frame(read_scores(scores))
    write_csv_atomic(frame, Path(out))
    return len(frame)
