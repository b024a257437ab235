"""The report's Customer value section on a hand-written scores table: totals in words with the currency, the
customers with most value at risk first, the distribution plot saved beside the report and embedded."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analytics.config import AnalyticsConfig
from analytics.report import render_report
from analytics.value_section import VALUE_PLOT, value_section
from features.sources import check_tables

AS_OF = "2026-06-30"


def _scores() -> pd.DataFrame:
    """Three buyers (value at risk 10.00, 100.00, 20.00) and one prospect without a value."""
    return pd.DataFrame(
        {
            "customer_id": ["A", "B", "C", "P"],
            "churn_probability": [0.5, 0.8, 0.9, np.nan],
            "recommended_offer": ["discount_20", "free_shipping", "none", "free_shipping"],
            "predicted_value": [20.0, 125.0, 22.22, np.nan],
            "value_at_risk": [10.0, 100.0, 20.0, np.nan],
            "next_order_expected_by": ["2026-07-04", None, "2026-09-01", None],
            "value_model_version": ["lightgbm value model of retain-churn v2"] * 4,
        }
    )


def _tables():
    orders = pd.DataFrame(
        {
            "customer_id": ["A", "B", "B", "C"],
            "ordered_at": pd.to_datetime(["2026-01-05", "2026-02-01", "2026-05-01", "2026-03-03"]),
            "amount": [20.0, 50.0, 75.0, 22.22],
        }
    )
    return check_tables({"orders": orders, "customers": pd.DataFrame({"customer_id": ["A", "B", "C", "P"]})})


def test_value_section_in_words_most_value_at_risk_first(tmp_path):
    section = value_section(_scores(), currency="USD", horizon_days=90, folder=tmp_path)
    assert "3 buyers are expected to spend **USD 167.22** over the next 90 days" in section.text
    assert "**USD 130.00** of it (78%) is at risk" in section.text
    assert (
        "The 1 buyers with most value at risk (the top 10%) hold 77% of it; the table lists the first 3 by value at risk"
        in section.text
    )
    assert "1 customers have no predicted value" in section.text
    table = section.table
    assert list(table.index) == ["B", "C", "A"] and table.index.name == "customer"
    assert table.iloc[0].tolist() == ["80%", "125.00", "100.00", "free shipping", "–"]
    assert list(table.columns) == [
        "churn probability", "predicted value (USD)", "value at risk (USD)", "recommended offer",
        "next order expected by",
    ]  # fmt: skip
    assert section.images == (tmp_path / VALUE_PLOT,) and (tmp_path / VALUE_PLOT).read_bytes()[:4] == b"\x89PNG"


def test_the_report_renders_the_section_with_its_plot(tmp_path):
    section = value_section(_scores(), currency="EUR", horizon_days=90, folder=tmp_path)
    page = render_report(
        tables=_tables(), as_of=AS_OF, config=AnalyticsConfig(), horizon_days=90, currency="EUR", customer_value=section
    )
    assert "<h2>Customer value</h2>" in page and "EUR 167.22" in page and "value at risk (EUR)" in page
    body = page[page.index("<h2>Customer value</h2>") :]
    assert body.count("<img") == 1 and "2026-09-01" in body


def test_scores_without_any_value_say_why():
    scores = _scores().assign(predicted_value=np.nan, value_at_risk=np.nan)
    scores["value_model_version"] = "no value model: retain-churn v1 was trained without one"
    section = value_section(scores, currency="EUR", horizon_days=90, folder="/nonexistent")
    assert section.text == (
        "No customer in the scores has a predicted value (no value model: retain-churn v1 was trained without one)."
    )
    assert section.table is None and section.images == ()


def test_buyers_predicted_to_spend_nothing_are_zero_at_risk_not_an_error(tmp_path):
    scores = _scores().assign(predicted_value=[0.0, 0.0, 0.0, np.nan], value_at_risk=[0.0, 0.0, 0.0, np.nan])
    section = value_section(scores, currency="EUR", horizon_days=90, folder=tmp_path)
    assert "spend **EUR 0.00** over the next 90 days" in section.text and "**EUR 0.00** of it (0%)" in section.text
    assert "top 10%" not in section.text
