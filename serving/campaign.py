"""The campaign export: who to contact, with what, and when, as one CSV a campaign tool loads.

Reads a scores file (``retain score``'s Parquet or CSV, the schema of ``serving.schema.FIELDS``) and writes one
row per customer with a next action, sorted by send time then customer:

``customer_id, action, offer, send_at, lifecycle_stage, risk_band, churn_probability, predicted_value,
value_at_risk, expected_profit, currency``

``action`` is the lifecycle rule's next action (``configs/analytics.yaml``), ``offer`` the recommended offer
(``none``: send the action without an incentive), ``send_at`` when to send it (ISO 8601 UTC, never before the
as-of date), ``expected_profit`` the recommended offer's expected incremental profit (empty for ``none``).
Customers without a next action (no lifecycle stage) are left out.

A budget (``campaign`` in ``configs/serving.yaml``: ``max_offers``) keeps the incentives of the customers ranked
first by ``priority`` and sends the others their action with offer ``none``: by ``profit`` (the offer's expected
incremental profit), or by ``value_at_risk_x_profit`` (value at risk x that profit, so a customer with much to
lose goes before one who is merely cheap to convert; customers without a value at risk, prospects, come after
every customer with one, by profit). Ties go to the smaller customer_id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract import CUSTOMER_ID, NO_OFFER
from features.io import read_scores, write_csv_atomic
from serving.config import CampaignConfig

VALUE_FIELDS = ("predicted_value", "value_at_risk")
COLUMNS = (
    CUSTOMER_ID,
    "action",
    "offer",
    "send_at",
    "lifecycle_stage",
    "risk_band",
    "churn_probability",
    "predicted_value",
    "value_at_risk",
    "expected_profit",
    "currency",
)


class CampaignError(ValueError):
    """The scores cannot make the export as configured (a missing column, a priority without values); exit 2."""


@dataclass(frozen=True)
class Campaign:
    """The export's rows and what the budget did: ``offers`` incentives kept, ``over_budget`` sent without one."""

    frame: pd.DataFrame
    offers: int
    over_budget: int

    def __len__(self) -> int:
        return len(self.frame)


def campaign_frame(scores: pd.DataFrame, budget: CampaignConfig | None = None) -> Campaign:
    """Scores (one row per customer) -> the export's rows, in send order, within the budget."""
    budget = budget or CampaignConfig()
    needed = [CUSTOMER_ID, "next_action", "contact_at", "recommended_offer", "currency", *VALUE_FIELDS]
    missing = [c for c in needed if c not in scores.columns]
    if missing:
        raise CampaignError(f"the scores lack {missing}: rescore with this version of retain score")
    rows = scores[scores["next_action"].notna()]
    offer = rows["recommended_offer"].astype("string").fillna(NO_OFFER).to_numpy(dtype=object)
    profit = np.full(len(rows), np.nan)
    for name in pd.unique(offer):
        column = f"profit_{name}"
        if name != NO_OFFER and column in rows.columns:
            hit = offer == name
            profit[hit] = rows.loc[hit, column].to_numpy(dtype=np.float64)
    value_at_risk = rows["value_at_risk"].to_numpy(dtype=np.float64)
    ids = rows[CUSTOMER_ID].astype("string").to_numpy(dtype=object)
    over = _over_budget(ids, offer != NO_OFFER, profit, value_at_risk, budget)
    offer[over], profit[over] = NO_OFFER, np.nan
    out = pd.DataFrame(
        {
            CUSTOMER_ID: ids,
            "action": rows["next_action"].astype("string").to_numpy(),
            "offer": offer,
            "send_at": rows["contact_at"].astype("string").to_numpy(),
            "lifecycle_stage": rows["lifecycle_stage"].astype("string").to_numpy(),
            "risk_band": rows["risk_band"].astype("string").to_numpy(),
            "churn_probability": rows["churn_probability"].to_numpy(dtype=np.float64).round(4),
            "predicted_value": rows["predicted_value"].to_numpy(dtype=np.float64).round(2),
            "value_at_risk": value_at_risk.round(2),
            "expected_profit": profit.round(2),
            "currency": rows["currency"].astype("string").to_numpy(),
        }
    )
    out[CUSTOMER_ID] = out[CUSTOMER_ID].astype("string")
    frame = out.sort_values(["send_at", CUSTOMER_ID], kind="stable").reset_index(drop=True)[list(COLUMNS)]
    return Campaign(frame, int((frame["offer"] != NO_OFFER).sum()), int(over.sum()))


def _over_budget(ids, paid, profit, value_at_risk, budget: CampaignConfig) -> np.ndarray:
    """Which incentives the budget drops: all but the first ``max_offers`` by the priority (see the module)."""
    over = np.zeros(len(ids), dtype=bool)
    if budget.max_offers is None or paid.sum() <= budget.max_offers:
        return over
    rows = np.flatnonzero(paid)
    if budget.priority == "value_at_risk_x_profit":
        valued = np.isfinite(value_at_risk[rows])
        if not valued.any():
            raise CampaignError(
                f"campaign.priority value_at_risk_x_profit needs value_at_risk, but it is null for all {len(rows):,} "
                "customers with an offer (value_model_version says why); score with a value model, or set "
                "campaign.priority: profit in configs/serving.yaml"
            )
        first = np.where(valued, 0, 1)  # customers with a value at risk before those without
        key = np.where(valued, value_at_risk[rows] * profit[rows], profit[rows])
    else:
        first, key = np.zeros(len(rows), dtype=int), profit[rows]
    order = np.lexsort((ids[rows].astype(str), -np.nan_to_num(key, nan=-np.inf), first))
    over[rows[order[budget.max_offers :]]] = True
    return over


def write_campaign(scores: str | Path, out: str | Path, budget: CampaignConfig | None = None) -> Campaign:
    """Write the export for the scores file ``scores`` to ``out`` (CSV, atomically), within ``budget``."""
    campaign = campaign_frame(read_scores(scores), budget)
    write_csv_atomic(campaign.frame, Path(out))
    return campaign
