"""The report's customer-value section: the scores' predicted value and value at risk in a marketer's words."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analytics.page import Section, dash
from analytics.plotting import value_png
from features.contract import CUSTOMER_ID
from features.descriptions import money
from features.io import atomic_path

VALUE_PLOT = "predicted_value.png"  # the value distribution, written beside the report
TOP_AT_RISK = 20  # customers listed by value at risk


def value_section(scores: pd.DataFrame, *, currency: str, horizon_days: int, folder: str | Path) -> Section:
    """The scores' customer value in a marketer's words: what the buyers are expected to spend over the horizon,
    how much of it their churn would lose (value at risk = churn probability x predicted value) and who holds most
    of it. The distribution plot is written to ``folder`` (``VALUE_PLOT``) and embedded."""
    value = scores["predicted_value"].to_numpy(dtype=np.float64)
    valued = scores[np.isfinite(value)]
    if valued.empty:
        why = scores["value_model_version"].dropna() if "value_model_version" in scores.columns else pd.Series()
        reason = f" ({why.iloc[0]})" if len(why) else ""
        return Section("Customer value", text=f"No customer in the scores has a predicted value{reason}.")
    at_risk = valued["value_at_risk"].to_numpy(dtype=np.float64)
    total, risk = float(valued["predicted_value"].sum()), float(np.nansum(at_risk))
    order = np.argsort(-np.nan_to_num(at_risk, nan=-np.inf), kind="stable")
    decile = order[: max(1, len(order) // 10)]
    share = risk / total if total > 0 else 0.0
    text = (
        f"{len(valued):,} buyers are expected to spend **{money(total, currency)}** over the next {horizon_days} "
        f"days (predicted value). If their churn probabilities hold, **{money(risk, currency)}** of it "
        f"({share:.0%}) is at risk: a customer's value at risk is the churn probability times the predicted "
        "value, what the shop loses if the customer stops buying. "
    )
    if risk > 0:
        top_share = float(np.nansum(at_risk[decile])) / risk
        text += f"The {len(decile):,} buyers with most value at risk (the top 10%) hold {top_share:.0%} of it; "
    text += (
        f"the table lists the first {min(TOP_AT_RISK, len(valued))} by value at risk. "
        f"{len(scores) - len(valued):,} customers have no predicted value (no order before the as-of date)."
    )
    top = valued.iloc[order[:TOP_AT_RISK]]
    table = pd.DataFrame(
        {
            "churn probability": [dash(v, lambda x: f"{x:.0%}") for v in top["churn_probability"]],
            f"predicted value ({currency})": [dash(v, lambda x: f"{x:,.2f}") for v in top["predicted_value"]],
            f"value at risk ({currency})": [dash(v, lambda x: f"{x:,.2f}") for v in top["value_at_risk"]],
            "recommended offer": top["recommended_offer"].astype("string").fillna("–").str.replace("_", " ").to_numpy(),
            "next order expected by": top["next_order_expected_by"].astype("string").fillna("–").to_numpy(),
        },
        index=pd.Index(top[CUSTOMER_ID].astype(str), name="customer"),
    )
    png = value_png(valued["predicted_value"].to_numpy(dtype=np.float64), currency=currency, horizon_days=horizon_days)
    path = Path(folder) / VALUE_PLOT
    with atomic_path(path) as tmp:
        tmp.write_bytes(png)
    return Section("Customer value", text=text, table=table, images=(path,))
