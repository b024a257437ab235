"""One self-contained HTML report: KPIs, cohorts, lifecycle, and the models' sections.

The entry point the CLI calls. The sections live in their own modules (``retention_section``,
``lifecycle_section``, ``value_section``, ``churn_section``, ``offer_section``, ``monitoring_sections``) and the
page's HTML in ``page``. Sections from later stages are optional inputs: whatever is given is rendered, nothing
else is required.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from analytics.config import AnalyticsConfig
from analytics.lifecycle_section import lifecycle_html
from analytics.page import Section, page_head, section_html
from analytics.retention_section import retention_html
from features.contract import ORDERS
from features.dates import parse_cutoff
from features.io import write_text_atomic
from features.snapshot import Snapshot
from features.sources import Tables


def render_report(
    *,
    tables: Tables,
    as_of,
    config: AnalyticsConfig,
    horizon_days: int,
    period_days: int | None = None,
    churn_probability: pd.Series | None = None,
    churn_unscored_reason: pd.Series | None = None,
    customer_value: Section | None = None,
    churn_model: Section | None = None,
    offer_model: Section | None = None,
    drivers: pd.DataFrame | pd.Series | None = None,
    extra: Sequence[Section] = (),
    title: str = "Retain retention report",
    currency: str,
    scores: pd.DataFrame | None = None,
    cohorts_csv: str | None = None,
) -> str:
    """The report as an HTML string; only ``tables``, ``as_of``, ``config``, ``horizon_days`` and ``currency``
    are required.

    KPIs cover [as_of - period_days, as_of) (default: the churn horizon, so churn is observed);
    every section after the lifecycle one is rendered only when given. ``churn_probability`` may be null for
    customers the scorer did not score (prospects, or no churn model); risk bands count only the scored ones and
    the report says how many were not scored, by ``churn_unscored_reason`` (customer_id -> reason) when given.
    ``currency`` names the money columns. ``scores`` (``retain score``'s file, customer_id column) adds the
    campaign plan: each stage's next action, when it goes out and which offer goes with it; ``customer_value``
    (:func:`~analytics.value_section.value_section` of those scores) the predicted value and value at risk.
    ``cohorts_csv``: the name of the cohort file written beside the report, said under the heatmap.
    """
    as_of = parse_cutoff(as_of)
    n_customers, n_orders = _counts(tables, as_of)
    days = period_days or horizon_days
    start = as_of - pd.Timedelta(days=days)
    out = [
        page_head(title),
        f"<p class='meta'>As of {as_of:%Y-%m-%d %H:%M} UTC · {n_customers:,} customers · "
        f"{n_orders:,} orders before it · KPI period {start:%Y-%m-%d} to {as_of:%Y-%m-%d} ({days} days)</p>",
    ]
    if n_orders:
        out.append(
            retention_html(tables, start, as_of, horizon_days, config, currency=currency, cohorts_csv=cohorts_csv)
        )
    out.append(
        lifecycle_html(
            tables,
            as_of=as_of,
            rules=config.lifecycle,
            churn_probability=churn_probability,
            churn_unscored_reason=churn_unscored_reason,
            scores=scores,
        )
    )
    given = (customer_value, churn_model, offer_model)
    if drivers is not None:
        given += (Section("Top churn drivers", table=drivers),)
    out.extend(section_html(s) for s in (*given, *extra) if s is not None)
    out.append("</body></html>")
    return "\n".join(out)


def _counts(tables: Tables, as_of: pd.Timestamp) -> tuple[int, int]:
    """The header's customers (the customers table, else the buyers before ``as_of``) and orders before ``as_of``,
    read through the features' snapshot; every section reads its own rows the same way, so none looks past it."""
    with Snapshot(tables, cutoff=as_of) as snap:
        n_orders = int(snap.sql(f"SELECT count(*) AS n FROM {ORDERS.name}")["n"].iloc[0])
        n_customers = len(tables.customers) if tables.customers is not None else len(snap.population())
    return n_customers, n_orders


def write_report(out_html: str | Path, **report) -> Path:
    """Write the report atomically; ``report`` holds :func:`render_report`'s keywords."""
    return write_text_atomic(render_report(**report), out_html)
