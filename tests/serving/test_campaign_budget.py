"""The campaign export's budget on a hand-written scores table: the README's worked example, order by order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serving.campaign import CampaignError, campaign_frame
from serving.config import CampaignConfig


def _scores() -> pd.DataFrame:
    """The README's example: A earns most per offer among buyers, B has most to lose, D is a prospect (no value)."""
    return pd.DataFrame(
        {
            "customer_id": ["A", "B", "C", "D", "E"],
            "next_action": ["retention_offer", "retention_offer", "winback_offer", "first_purchase_offer", None],
            "contact_at": ["2026-06-30T00:00:00Z"] * 4 + [None],
            "lifecycle_stage": ["at_risk", "at_risk", "lapsed", "prospect", None],
            "risk_band": ["medium", "high", "high", None, None],
            "churn_probability": [0.5, 0.8, 0.9, np.nan, np.nan],
            "recommended_offer": ["discount_20", "free_shipping", "discount_20", "free_shipping", None],
            "predicted_value": [20.0, 125.0, 22.22, np.nan, np.nan],
            "value_at_risk": [10.0, 100.0, 20.0, np.nan, np.nan],
            "currency": ["EUR"] * 5,
            "profit_free_shipping": [1.0, 2.0, 1.5, 6.0, np.nan],
            "profit_discount_20": [5.0, 0.5, 4.0, 3.0, np.nan],
        }
    )


def _offers(budget: CampaignConfig) -> dict[str, str]:
    return campaign_frame(_scores(), budget).frame.set_index("customer_id")["offer"].to_dict()


def test_without_a_budget_everyone_keeps_the_recommended_offer():
    campaign = campaign_frame(_scores())
    assert _offers(CampaignConfig()) == {
        "A": "discount_20",
        "B": "free_shipping",
        "C": "discount_20",
        "D": "free_shipping",
    }
    assert (campaign.offers, campaign.over_budget) == (4, 0)


def test_by_profit_the_two_largest_profits_keep_their_offers():
    assert _offers(CampaignConfig(max_offers=2)) == {"A": "discount_20", "B": "none", "C": "none", "D": "free_shipping"}


def test_by_value_at_risk_x_profit_the_customers_with_most_to_lose_go_first():
    """B: 100 x 2.00 = 200, C: 20 x 4.00 = 80, A: 10 x 5.00 = 50; D has no value at risk and comes last."""
    campaign = campaign_frame(_scores(), CampaignConfig(max_offers=2, priority="value_at_risk_x_profit"))
    rows = campaign.frame.set_index("customer_id")
    assert rows["offer"].to_dict() == {"A": "none", "B": "free_shipping", "C": "discount_20", "D": "none"}
    assert rows["expected_profit"].fillna(-1).to_dict() == {"A": -1, "B": 2.0, "C": 4.0, "D": -1}
    assert rows.loc["B", ["predicted_value", "value_at_risk"]].tolist() == [125.0, 100.0]
    assert (campaign.offers, campaign.over_budget) == (2, 2)
    three = _offers(CampaignConfig(max_offers=3, priority="value_at_risk_x_profit"))
    assert [c for c, o in three.items() if o != "none"] == ["A", "B", "C"]  # prospects after every valued buyer


def test_value_at_risk_priority_without_any_value_is_refused_with_the_way_out():
    scores = _scores().assign(value_at_risk=np.nan, predicted_value=np.nan)
    with pytest.raises(CampaignError, match="null for all 4 customers with an offer.*campaign.priority: profit"):
        campaign_frame(scores, CampaignConfig(max_offers=1, priority="value_at_risk_x_profit"))


def test_scores_without_value_columns_are_refused():
    with pytest.raises(CampaignError, match=r"lack \['predicted_value', 'value_at_risk'\]: rescore"):
        campaign_frame(_scores().drop(columns=["predicted_value", "value_at_risk"]))
