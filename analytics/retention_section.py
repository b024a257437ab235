"""The report's retention sections: KPIs over the period (overall, by segment, by cohort) and the cohort heatmap."""

from __future__ import annotations

import html
from dataclasses import replace

import pandas as pd

from analytics.cohorts import cohort_retention
from analytics.config import AnalyticsConfig
from analytics.kpis import COHORT, kpis
from analytics.page import dash, img_html, table_html
from analytics.plotting import cohort_heatmap_png
from features.sources import Tables

GROUP_COLUMNS = (  # KPIs shown per segment and per cohort; the overall table has them all
    "customers_base",
    "retention_rate",
    "churn_rate",
    "buyers",
    "repeat_purchase_rate",
    "purchase_frequency",
    "aov",
    "historical_clv",
    "revenue_new",
    "revenue_returning",
)


def kpi_labels(currency: str, horizon_days: int) -> dict[str, str]:
    """KPI column -> what a reader sees: words, the churn horizon, the currency of money columns."""
    return {
        "customers_base": "customers who ordered before the period",
        "retained": "of them, ordered again in the period",
        "retention_rate": "retention rate",
        "churned": f"of them, no order within {horizon_days} days",
        "churn_rate": f"churn rate (no order within {horizon_days} days)",
        "buyers": "buyers in the period",
        "new_buyers": "first-time buyers in the period",
        "repeat_purchase_rate": "repeat-purchase rate (2+ orders in the period)",
        "orders": "orders in the period",
        "revenue": f"revenue ({currency})",
        "purchase_frequency": "orders per buyer",
        "aov": f"average order value ({currency})",
        "historical_clv": f"historical CLV per customer ({currency})",
        "revenue_new": f"revenue from first-time buyers ({currency})",
        "revenue_returning": f"revenue from returning customers ({currency})",
    }


MONEY = ("revenue", "aov", "historical_clv", "revenue_new", "revenue_returning")


def _kpi_shown(frame: pd.DataFrame, currency: str, horizon_days: int) -> pd.DataFrame:
    """KPIs with readable names: rates as %, money to cents, counts whole."""
    out = frame.astype(object).copy()
    for col in frame.columns:
        values = frame[col]
        if col in MONEY:
            out[col] = [dash(v, lambda x: f"{x:,.2f}") for v in values]
        elif col.endswith("_rate"):
            out[col] = [dash(v, lambda x: f"{x:.1%}") for v in values]
        elif col == "purchase_frequency":
            out[col] = [dash(v, lambda x: f"{x:.2f}") for v in values]
        else:
            out[col] = [dash(v, lambda x: f"{x:,.0f}") for v in values]
    return out.rename(columns=kpi_labels(currency, horizon_days))


def retention_html(
    tables: Tables,
    start: pd.Timestamp,
    as_of: pd.Timestamp,
    horizon_days: int,
    config: AnalyticsConfig,
    *,
    currency: str,
    cohorts_csv: str | None,
) -> str:
    """KPIs over [start, as_of) and the cohort heatmap; the cohort table shows the heatmap's cohorts."""
    k = dict(tables=tables, start=start, end=as_of, horizon_days=horizon_days, data_end=as_of)
    out = [
        "<h2>Retention KPIs</h2>",
        "<p class='note'>Base = customers who ordered before the period. Churn = no order within "
        f"{horizon_days} days of the period start (the configured horizon); NaN (–) when the period is "
        "shorter than the horizon. Repeat rate = buyers with 2+ orders in the period. Historical CLV = "
        "orders per customer × average order value over all orders to date.</p>",
    ]
    overall = _kpi_shown(kpis(**k), currency, horizon_days).T.rename(columns={"all": "value"})
    out.append(table_html(overall.rename_axis("KPI")))
    seg = config.segment
    if seg and tables.customers is not None and seg in tables.customers.columns:
        by_seg = _kpi_shown(kpis(**k, by=seg)[list(GROUP_COLUMNS)], currency, horizon_days)
        out.append(f"<h3>By {html.escape(seg)}</h3>" + table_html(by_seg.rename_axis(seg)))
    cohorts = cohort_retention(tables, as_of=as_of, period=config.cohorts.period)
    recent = replace(
        cohorts,
        shares=cohorts.shares.tail(config.cohorts.max_periods + 1).iloc[:, : config.cohorts.max_periods + 1],
    )
    by_cohort = kpis(**k, by=COHORT, cohort_period=config.cohorts.period)[list(GROUP_COLUMNS)]
    shown = [c.strftime("%Y-%m-%d") for c in recent.shares.index]  # the heatmap's cohorts, no more, no less
    by_cohort = by_cohort.reindex([c for c in shown if c in by_cohort.index])
    out.append(
        f"<h3>By cohort (first purchase; the {len(shown)} cohorts of the heatmap)</h3>"
        + table_html(_kpi_shown(by_cohort, currency, horizon_days).rename_axis("cohort"))
    )
    out.append("<h2>Cohort retention</h2>" + img_html(cohort_heatmap_png(recent), "cohort retention heatmap"))
    if cohorts_csv:
        out.append(
            f"<p class='note'>Every cohort and period, with counts: <code>{html.escape(cohorts_csv)}</code> "
            "beside this report.</p>"
        )
    return "\n".join(out)
