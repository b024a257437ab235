"""One self-contained HTML report: KPIs, cohorts, lifecycle, and the models' sections.

Images are embedded as base64 PNG, styles are inline, there is no script and no
external URL, so the file can be mailed or archived and still open as written.
Sections from later stages (churn model card, offer evaluation, churn drivers)
are optional inputs: whatever is given is rendered, nothing else is required.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from analytics.cohorts import cohort_retention
from analytics.config import STAGES, AnalyticsConfig
from analytics.kpis import COHORT, kpis
from analytics.lifecycle import STAGE, lifecycle, risk_band
from analytics.plotting import bar_png, cohort_heatmap_png
from features.contract import CUSTOMER_ID, EVENTS, ORDERS, parse_cutoff
from features.io import write_text_atomic
from features.sources import Tables

MAX_TABLE_ROWS = 50
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
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{border-bottom:2px solid #3b7dd8;padding-bottom:.2rem;margin-top:2.2rem}
.meta{color:#666;margin-top:0}table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}th{background:#f2f5fa}
td:first-child,th:first-child{text-align:left}img{max-width:100%;height:auto;display:block;margin:.6rem 0}
.wide{overflow-x:auto}.note{color:#555;font-size:.85rem}pre{background:#f6f6f6;padding:.6rem;white-space:pre-wrap}
"""


@dataclass(frozen=True)
class Section:
    """An optional report section: markdown text, a table and PNG plots, each optional."""

    title: str
    text: str = ""
    table: pd.DataFrame | pd.Series | dict | None = None
    images: tuple[str | Path, ...] = ()

    @classmethod
    def from_folder(cls, title: str, folder: str | Path, *, text_file: str = "model_card.md") -> Section:
        """Read a model's output folder: ``text_file`` (markdown), ``*.csv`` (first one) and ``*.png``."""
        folder = Path(folder)
        text = (folder / text_file).read_text() if (folder / text_file).exists() else ""
        csvs = sorted(folder.glob("*.csv"))
        table = pd.read_csv(csvs[0]) if csvs else None
        return cls(title=title, text=text, table=table, images=tuple(sorted(folder.glob("*.png"))))


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _fmt(name, v) -> str:
    """Rates as percentages, whole numbers with separators, other numbers to 2 decimals."""
    if isinstance(v, (float, np.floating)):
        if pd.isna(v):
            return "–"
        if str(name).endswith("_rate"):
            return f"{v:.1%}"
        return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.2f}" if abs(v) >= 1 else f"{v:.3g}"
    return str(v)


def _table(frame: pd.DataFrame | pd.Series | dict, *, index: bool = True) -> str:
    """An escaped HTML table; long tables are cut with a note, wide ones scroll."""
    if isinstance(frame, dict):
        frame = pd.Series(frame, name="value")
    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    note = ""
    if len(frame) > MAX_TABLE_ROWS:
        note = f'<p class="note">first {MAX_TABLE_ROWS} of {len(frame):,} rows</p>'
        frame = frame.head(MAX_TABLE_ROWS)
    shown = frame.astype(object).copy()
    by_row = list(frame.columns) == ["value"]  # a metric-per-row table: the row names the metric
    for j, col in enumerate(frame.columns):
        names = frame.index if by_row else [col] * len(frame)
        shown.iloc[:, j] = [_fmt(n, v) for n, v in zip(names, frame.iloc[:, j], strict=True)]
    shown.columns = [str(c).replace("_", " ") for c in shown.columns]  # headers may wrap
    if by_row:
        shown.index = [str(i).replace("_", " ") for i in shown.index]
    body = shown.to_html(index=index, border=0, na_rep="–", escape=True)
    return f'<div class="wide">{body}</div>{note}'


def _markdown(text: str) -> str:
    """Markdown to HTML with raw HTML disabled; plain <pre> if markdown-it is unavailable."""
    try:
        from markdown_it import MarkdownIt
    except ImportError:  # pragma: no cover - markdown-it comes with rich
        return f"<pre>{html.escape(text)}</pre>"
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


def _section(section: Section) -> str:
    parts = [f"<h2>{html.escape(section.title)}</h2>"]
    if section.text:
        parts.append(_markdown(section.text))
    if section.table is not None:
        parts.append(_table(section.table, index=not isinstance(section.table, pd.DataFrame)))
    for path in section.images:
        path = Path(path)
        parts.append(f"<h3>{html.escape(path.stem.replace('_', ' '))}</h3>" + _img(path.read_bytes(), path.stem))
    return "\n".join(parts)


def _cut(tables: Tables, as_of: pd.Timestamp) -> Tables:
    """Orders and events strictly before as_of: the report never looks past it."""
    updates = {}
    if tables.orders is not None:
        updates["orders"] = tables.orders.loc[tables.orders[ORDERS.ordered_at] < as_of]
    if tables.events is not None:
        updates["events"] = tables.events.loc[tables.events[EVENTS.occurred_at] < as_of]
    return replace(tables, **updates)


def render_report(
    *,
    tables: Tables,
    as_of,
    config: AnalyticsConfig,
    horizon_days: int,
    period_days: int | None = None,
    churn_probability: pd.Series | None = None,
    churn_unscored_reason: pd.Series | None = None,
    churn_model: Section | None = None,
    offer_model: Section | None = None,
    drivers: pd.DataFrame | pd.Series | None = None,
    extra: Sequence[Section] = (),
    title: str = "Retain retention report",
) -> str:
    """The report as an HTML string; only ``tables``, ``as_of``, ``config`` and ``horizon_days`` are required.

    KPIs cover [as_of - period_days, as_of) (default: the churn horizon, so churn is observed);
    every section after the lifecycle one is rendered only when given. ``churn_probability`` may be null for
    customers the scorer did not score (prospects, or no churn model); risk bands count only the scored ones and
    the report says how many were not scored, by ``churn_unscored_reason`` (customer_id -> reason) when given.
    """
    as_of = parse_cutoff(as_of)
    tables = _cut(tables, as_of)
    days = period_days or horizon_days
    start = as_of - pd.Timedelta(days=days)
    n_orders = 0 if tables.orders is None else len(tables.orders)
    out = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>",
        f"<p class='meta'>As of {as_of:%Y-%m-%d %H:%M} UTC · {len(tables.customer_ids()):,} customers · "
        f"{n_orders:,} orders before it · KPI period {start:%Y-%m-%d} to {as_of:%Y-%m-%d} ({days} days)</p>",
    ]
    if tables.orders is not None and n_orders:
        k = dict(tables=tables, start=start, end=as_of, horizon_days=horizon_days, data_end=as_of)
        out.append("<h2>Retention KPIs</h2>")
        out.append(
            "<p class='note'>Base = customers who ordered before the period. Churn = no order within "
            f"{horizon_days} days of the period start (the configured horizon); NaN (–) when the period is "
            "shorter than the horizon. Repeat rate = buyers with 2+ orders in the period. Historical CLV = "
            "orders per customer × average order value over all orders to date.</p>"
        )
        out.append(_table(kpis(**k).T.rename(columns={"all": "value"})))
        seg = config.segment
        if seg and tables.customers is not None and seg in tables.customers.columns:
            out.append(f"<h3>By {html.escape(seg)}</h3>" + _table(kpis(**k, by=seg)[list(GROUP_COLUMNS)]))
        by_cohort = kpis(**k, by=COHORT, cohort_period=config.cohorts.period)[list(GROUP_COLUMNS)]
        out.append("<h3>By cohort (first purchase)</h3>" + _table(by_cohort.tail(config.cohorts.max_periods)))
        cohorts = cohort_retention(tables, as_of=as_of, period=config.cohorts.period)
        recent = replace(
            cohorts,
            shares=cohorts.shares.tail(config.cohorts.max_periods + 1).iloc[:, : config.cohorts.max_periods + 1],
        )
        out.append("<h2>Cohort retention</h2>" + _img(cohort_heatmap_png(recent), "cohort retention heatmap"))
    stages = lifecycle(tables, as_of=as_of, churn_probability=churn_probability, config=config.lifecycle)
    sizes = stages[STAGE].value_counts().reindex(list(STAGES), fill_value=0).rename("customers")
    out.append("<h2>Lifecycle stages</h2>")
    out.append(_img(bar_png(sizes, title="Customers per lifecycle stage", xlabel="customers"), "lifecycle stages"))
    out.append(_table(sizes))
    if churn_probability is not None:
        out.append(_risk_bands(stages, churn_probability, churn_unscored_reason, config))
    if churn_model is not None:
        out.append(_section(churn_model))
    if offer_model is not None:
        out.append(_section(offer_model))
    if drivers is not None:
        out.append(_section(Section("Top churn drivers", table=drivers)))
    out.extend(_section(s) for s in extra)
    out.append("</body></html>")
    return "\n".join(out)


def _risk_bands(stages: pd.DataFrame, prob: pd.Series, reasons: pd.Series | None, config: AnalyticsConfig) -> str:
    """Lifecycle stage x risk band over the scored customers, and how many were not scored and why."""
    ids = stages[CUSTOMER_ID].astype(str)
    given = pd.Series(prob).rename(index=str)
    prob = given.reindex(ids)
    scored = prob.notna().to_numpy()
    parts = ["<h3>By churn risk band</h3>"]
    note = f"Risk bands count the {int(scored.sum()):,} customers with a churn probability"
    if not scored.all():
        why = pd.Series("no churn probability", index=ids)
        why[~ids.isin(given.index).to_numpy()] = "no row in the churn scores"
        if reasons is not None:
            stated = pd.Series(reasons).rename(index=str).dropna()
            stated = stated[~stated.index.duplicated()].reindex(ids)
            why[stated.notna().to_numpy()] = stated.dropna().to_numpy()
        counts = why[~scored].value_counts()
        listed = "; ".join(f"{html.escape(str(r))}: {c:,}" for r, c in counts.items())
        note += f"; {int((~scored).sum()):,} customers were not scored ({listed})"
    parts.append(f"<p class='note'>{note}.</p>")
    if scored.any():
        band = risk_band(prob[scored], config.lifecycle.risk_bands)
        stage = stages[STAGE].to_numpy()[scored]
        cross = pd.crosstab(stage, band.to_numpy()).reindex(
            index=[s for s in STAGES if (stage == s).any()], columns=band.cat.categories, fill_value=0
        )
        parts.append(_table(cross.rename_axis(index="stage", columns="risk band")))
    return "".join(parts)


def write_report(out_html: str | Path, **report) -> Path:
    """Write the report atomically; ``report`` holds :func:`render_report`'s keywords."""
    return write_text_atomic(render_report(**report), out_html)
