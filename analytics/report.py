"""One self-contained HTML report: KPIs, cohorts, lifecycle, and the models' sections.

Images are embedded as base64 PNG, styles are inline, there is no script and no
external URL, so the file can be mailed or archived and still open as written.
Sections from later stages (churn model card, offer evaluation, churn drivers)
are optional inputs: whatever is given is rendered, nothing else is required.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from analytics.cohorts import cohort_retention
from analytics.config import AnalyticsConfig
from analytics.kpis import COHORT, kpis
from analytics.plotting import bar_png, cohort_heatmap_png, value_png
from features.contract import CUSTOMER_ID, EVENTS, ORDERS, parse_cutoff
from features.descriptions import money
from features.io import atomic_path, write_text_atomic
from features.sources import Tables
from modeling.lifecycle import ACTION, CONTACT_AT, STAGE, STAGES, lifecycle, risk_band

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
            out[col] = [_na(v, lambda x: f"{x:,.2f}") for v in values]
        elif col.endswith("_rate"):
            out[col] = [_na(v, lambda x: f"{x:.1%}") for v in values]
        elif col == "purchase_frequency":
            out[col] = [_na(v, lambda x: f"{x:.2f}") for v in values]
        else:
            out[col] = [_na(v, lambda x: f"{x:,.0f}") for v in values]
    return out.rename(columns=kpi_labels(currency, horizon_days))


def _na(v, fmt) -> str:
    return "–" if pd.isna(v) else fmt(float(v))


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{border-bottom:2px solid #3b7dd8;padding-bottom:.2rem;margin-top:2.2rem}
.meta{color:#666;margin-top:0}table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}th{background:#f2f5fa}
td:first-child,th:first-child{text-align:left;white-space:nowrap}img{max-width:100%;height:auto;display:block;margin:.6rem 0}
.wide{overflow-x:auto}.note{color:#555;font-size:.85rem}pre{background:#f6f6f6;padding:.6rem;white-space:pre-wrap}
"""


@dataclass(frozen=True)
class Section:
    """An optional report section: markdown text, a table and PNG plots, each optional."""

    title: str
    text: str = ""
    table: pd.DataFrame | pd.Series | dict | None = None
    images: tuple[str | Path, ...] = ()
    extra: tuple[Section, ...] = ()  # subsections (h3), after the table and before the images

    @classmethod
    def from_folder(cls, title: str, folder: str | Path, *, text_file: str = "model_card.md") -> Section:
        """Read a model's output folder: ``text_file`` (markdown) and the PNGs in it and in ``plots/``."""
        folder = Path(folder)
        text = (folder / text_file).read_text() if (folder / text_file).exists() else ""
        return cls(title=title, text=text, images=_pngs(folder))


def _pngs(folder: Path) -> tuple[Path, ...]:
    """A model folder's plots: ``*.png`` beside the card and in ``plots/`` (where train-churn writes them)."""
    return tuple(sorted(folder.glob("*.png"))) + tuple(sorted((folder / "plots").glob("*.png")))


def _without_sections(markdown: str, prefixes: tuple[str, ...]) -> str:
    """Markdown without the ``## `` sections whose heading starts with one of ``prefixes`` (shown as tables)."""
    out, skipping = [], False
    for line in markdown.splitlines():
        if line.startswith("## "):
            skipping = line[3:].startswith(prefixes)
        if not skipping:
            out.append(line)
    return "\n".join(out)


def _without_code(markdown: str) -> str:
    """Markdown without fenced code blocks (pandas text dumps the report shows as tables instead)."""
    return re.sub(r"```.*?```\n?", "", markdown, flags=re.S)


CHURN_METRICS = {
    "roc_auc": "ROC AUC (ranking; 0.5 = chance)",
    "pr_auc": "PR AUC (precision over recall)",
    "brier": "Brier score (lower is better)",
    "ece": "calibration error (lower is better)",
    "lift_top10": "lift in the riskiest 10%",
}


def churn_section(folder: str | Path, *, currency: str) -> Section:
    """train-churn's folder as a report section: the card's text, the test metrics of the model and the baselines
    with readable names, the top drivers in words, and the plots in ``plots/``.

    Lift in the riskiest 10% cannot exceed min(10, 1 / churn rate); at a high churn rate every model reaches it,
    so the table states the ceiling and ROC AUC / PR AUC / Brier are what separate the models.
    """
    import json

    from features.descriptions import describe

    folder = Path(folder)
    card = (folder / "model_card.md").read_text() if (folder / "model_card.md").exists() else ""
    extra: list[Section] = []
    table = None
    report_file = folder / "report.json"
    text = card
    if report_file.exists():
        report = json.loads(report_file.read_text())
        rate = float(report["churn_rate"])
        ceiling = min(10.0, 1.0 / rate) if rate > 0 else float("nan")
        rows = {}
        for name, metrics in report["models"].items():
            rows[name] = {label: _with_ci(metrics[key]) for key, label in CHURN_METRICS.items() if key in metrics}
        table = pd.DataFrame(rows).T.rename_axis("model (test cutoff)")
        table = table.rename(columns={CHURN_METRICS["lift_top10"]: f"lift in the riskiest 10% (at most {ceiling:.2f})"})
        lifts = [m["lift_top10"]["value"] for m in report["models"].values() if "lift_top10" in m]
        note = (
            f"Test metrics with 95% bootstrap intervals, {report['n']:,} customers, churn rate {rate:.1%}. "
            f"Lift in the riskiest 10% is at most {ceiling:.2f} at this churn rate"
        )
        if lifts and min(lifts) >= 0.97 * ceiling:
            note += "; every model is at that ceiling, so lift does not separate them here: compare ROC AUC, PR AUC "
            note += "and the Brier score"
        text = _without_sections(card, ("Test metrics", "Top drivers")) + "\n\n" + note + "."
    drivers_file = folder / "drivers.csv"
    if drivers_file.exists():
        drivers = pd.read_csv(drivers_file).head(10)
        if "feature" in drivers.columns:
            drivers.insert(1, "what it measures", [_described(describe, f) for f in drivers["feature"]])
            drivers = drivers.rename(columns={"mean_abs_shap": "mean |SHAP| (log-odds)"})
            extra.append(Section("Top churn drivers (test cutoff)", table=drivers))
    section = Section("Churn model", text=text, table=table, images=_pngs(folder))
    return replace(section, extra=tuple(extra))


def _described(describe, name: str) -> str:
    try:
        return describe(name).text
    except KeyError:
        return "–"


def _with_ci(metric: dict) -> str:
    lo, hi = metric["ci"]
    return f"{metric['value']:.3f} ({lo:.3f}–{hi:.3f})"


def backtest_section(folder: str | Path) -> Section:
    """retain backtest's folder as a report section: backtest.md with its title as the section's and its headings
    one level up (they sit below it), and its plots."""
    folder = Path(folder)
    title, _, text = (folder / "backtest.md").read_text().partition("\n")
    text = re.sub(r"^#(#+) ", r"\1 ", text, flags=re.M)
    return Section(title.removeprefix("# "), text=text, images=_pngs(folder))


DRIFT_COLUMNS = ("feature", "description", "psi", "threshold", "drifted", "n_scored", "n_reference")
DRIFT_ROWS = 15  # features shown, most drifted first; the file holds them all


def drift_section(path: str | Path) -> Section:
    """retain score's drift table (``<scores stem>.drift.csv``) as a report section: which features moved since the
    churn model was trained, by how much (PSI) against what threshold, and the bin that moved most."""
    from features.contract import ContractError

    path = Path(path)
    table = pd.read_csv(path)
    missing = [c for c in DRIFT_COLUMNS if c not in table.columns]
    if missing:
        raise ContractError(f"{path}: not a drift table from retain score, missing columns {missing}")
    drifted = table[table["drifted"].astype(bool)]
    first = table.iloc[0] if len(table) else None
    verdict = (
        f"**{len(drifted)} of {len(table)} features drifted**: "
        + ", ".join(f"{d} (PSI {p:.2f})" for d, p in zip(drifted["description"], drifted["psi"], strict=True))
        if len(drifted)
        else f"**No feature drifted** of {len(table)}"
    )
    sizes = "" if first is None else f" ({first['n_scored']:,} customers scored, {first['n_reference']:,} in training)"
    text = (
        f"{verdict}. Each feature the churn model reads, over the customers it scored, against the rows it was "
        f"trained on{sizes}: PSI (population stability index) per feature. A feature drifts when its PSI exceeds "
        "the threshold, the largest of 0.25 (the usual alarm level), what chance alone gives for populations of "
        "these sizes (99th percentile) and how much the training cutoffs differed among themselves. "
        f"All {len(table)} features: `{path.name}` beside the scores."
    )
    shown = table.head(DRIFT_ROWS)
    rows = pd.DataFrame(
        {
            "PSI": [f"{v:.3f}" for v in shown["psi"]],
            "threshold": [f"{v:.3f}" for v in shown["threshold"]],
            "drifted": ["yes" if v else "no" for v in shown["drifted"].astype(bool)],
        },
        index=pd.Index(shown["description"].astype(str), name="feature"),
    )
    if {"moved_bin", "moved_reference_share", "moved_scored_share"} <= set(table.columns):
        rows["bin that moved most (training → scored)"] = [
            f"{b}: {r:.0%} → {c:.0%}"
            for b, r, c in zip(
                shown["moved_bin"], shown["moved_reference_share"], shown["moved_scored_share"], strict=True
            )
        ]
    return Section("Feature drift since training", text=text, table=rows)


def offer_section(folder: str | Path, *, offers: Sequence[str], currency: str) -> Section:
    """train-offers' folder as a report section: the card's text without its text dumps, the policies and learners
    as tables with readable column names (each once), and the Qini plot."""
    folder = Path(folder)
    card = (folder / "model_card.md").read_text() if (folder / "model_card.md").exists() else ""
    text = "\n".join(
        line for line in _without_code(card).splitlines() if not line.startswith(("## Policies", "## Learners"))
    )
    extra = []
    for name, title in (("policies.csv", "Policies on held-out sends"), ("learners.csv", "Learners")):
        path = folder / name
        if path.exists():
            frame = pd.read_csv(path, index_col=0)
            extra.append(Section(title, table=_offer_table(frame, offers=offers, currency=currency)))
    return Section("Offer model", text=text, images=_pngs(folder), extra=tuple(extra))


def _offer_table(frame: pd.DataFrame, *, offers: Sequence[str], currency: str) -> pd.DataFrame:
    """Off-policy tables in words: gains per send vs sending nothing in the currency (to cents, with their
    standard error and 95% interval), the share of sends each offer gets (the catalog's order), fit time."""
    money = {
        "dr_gain": f"gain per send vs nothing ({currency}, doubly robust)",
        "dr_gain_se": "± standard error",
        "dr_gain_low": "95% low",
        "dr_gain_high": "95% high",
        "ipw_gain": f"gain per send ({currency}, inverse propensity)",
        "ipw_gain_se": "± standard error (IPW)",
        "true_gain": f"true gain per send ({currency}, known truth)",
        "vs_reference": f"gain over the reference learner ({currency})",
        "vs_reference_se": "± standard error (vs reference)",
    }
    shares = {f"share_arm{i + 1}": f"share sent {o.replace('_', ' ')}" for i, o in enumerate(offers)}
    out = pd.DataFrame(index=frame.index)
    for col, label in money.items():
        if col in frame.columns:
            out[label] = [_na(v, lambda x: f"{x:,.2f}") for v in frame[col]]
    for col, label in shares.items():
        if col in frame.columns:
            out[label] = [_na(v, lambda x: f"{x:.0%}") for v in frame[col]]
    if "fit_s" in frame.columns:
        out["fit seconds"] = [_na(v, lambda x: f"{x:.1f}") for v in frame["fit_s"]]
    out.index = [str(i).replace("_", " ") for i in frame.index]
    return out.rename_axis(str(frame.index.name or "").replace("_", " ") or "row")


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
            "churn probability": [_na(v, lambda x: f"{x:.0%}") for v in top["churn_probability"]],
            f"predicted value ({currency})": [_na(v, lambda x: f"{x:,.2f}") for v in top["predicted_value"]],
            f"value at risk ({currency})": [_na(v, lambda x: f"{x:,.2f}") for v in top["value_at_risk"]],
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
    if index and shown.index.name is not None:  # the index's name heads its column, not a row of its own
        shown = shown.reset_index()
        shown.columns = [str(c).replace("_", " ") for c in shown.columns]
        index = False
    body = shown.to_html(index=index, border=0, na_rep="–", escape=True)
    return f'<div class="wide">{body}</div>{note}'


def _markdown(text: str) -> str:
    """Markdown to HTML with raw HTML disabled; plain <pre> if markdown-it is unavailable."""
    try:
        from markdown_it import MarkdownIt
    except ImportError:  # pragma: no cover - markdown-it comes with rich
        return f"<pre>{html.escape(text)}</pre>"
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


def _section(section: Section, level: int = 2) -> str:
    parts = [f"<h{level}>{html.escape(section.title)}</h{level}>"]
    if section.text:  # the card's own headings sit below the section's
        parts.append(
            _markdown(
                re.sub(r"^(#{1,4}) ", lambda m: "#" * min(len(m.group(1)) + level, 6) + " ", section.text, flags=re.M)
            )
        )
    if section.table is not None:
        table = section.table
        named = isinstance(table, pd.DataFrame) and table.index.name is not None
        parts.append(_table(table, index=not isinstance(table, pd.DataFrame) or named))
    parts.extend(_section(sub, level + 1) for sub in section.extra)
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
    """The report as an HTML string; only ``tables``, ``as_of``, ``config`` and ``horizon_days`` are required.

    KPIs cover [as_of - period_days, as_of) (default: the churn horizon, so churn is observed);
    every section after the lifecycle one is rendered only when given. ``churn_probability`` may be null for
    customers the scorer did not score (prospects, or no churn model); risk bands count only the scored ones and
    the report says how many were not scored, by ``churn_unscored_reason`` (customer_id -> reason) when given.
    ``currency`` names the money columns. ``scores`` (``retain score``'s file, customer_id column) adds the
    campaign plan: each stage's next action, when it goes out and which offer goes with it; ``customer_value``
    (:func:`value_section` of those scores) the predicted value and value at risk. ``cohorts_csv``: the
    name of the cohort file written beside the report, said under the heatmap.
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
        overall = _kpi_shown(kpis(**k), currency, horizon_days).T.rename(columns={"all": "value"})
        out.append(_table(overall.rename_axis("KPI")))
        seg = config.segment
        if seg and tables.customers is not None and seg in tables.customers.columns:
            by_seg = _kpi_shown(kpis(**k, by=seg)[list(GROUP_COLUMNS)], currency, horizon_days)
            out.append(f"<h3>By {html.escape(seg)}</h3>" + _table(by_seg.rename_axis(seg)))
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
            + _table(_kpi_shown(by_cohort, currency, horizon_days).rename_axis("cohort"))
        )
        out.append("<h2>Cohort retention</h2>" + _img(cohort_heatmap_png(recent), "cohort retention heatmap"))
        if cohorts_csv:
            out.append(
                f"<p class='note'>Every cohort and period, with counts: <code>{html.escape(cohorts_csv)}</code> "
                "beside this report.</p>"
            )
    stages = lifecycle(tables, as_of=as_of, churn_probability=churn_probability, config=config.lifecycle)
    sizes = stages[STAGE].value_counts().reindex(list(STAGES), fill_value=0).rename("customers")
    out.append("<h2>Lifecycle stages: who to contact, with what, when</h2>")
    out.append(_img(bar_png(sizes, title="Customers per lifecycle stage", xlabel="customers"), "lifecycle stages"))
    out.append(_contact_plan(stages, as_of, config, scores))
    if churn_probability is not None:
        out.append(_risk_bands(stages, churn_probability, churn_unscored_reason, config))
    if customer_value is not None:
        out.append(_section(customer_value))
    if churn_model is not None:
        out.append(_section(churn_model))
    if offer_model is not None:
        out.append(_section(offer_model))
    if drivers is not None:
        out.append(_section(Section("Top churn drivers", table=drivers)))
    out.extend(_section(s) for s in extra)
    out.append("</body></html>")
    return "\n".join(out)


def _contact_plan(stages: pd.DataFrame, as_of: pd.Timestamp, config: AnalyticsConfig, scores) -> str:
    """Per stage: customers, the next action, when it goes out (now / later, first and last send), and with the
    scores file the recommended offers."""
    due = pd.to_datetime(stages[CONTACT_AT])
    rows = []
    for stage in STAGES:
        mine = (stages[STAGE] == stage).to_numpy()
        if not mine.any():
            continue
        when = due[mine]
        later = when > as_of
        row = {
            "stage": stage.replace("_", " "),
            "customers": f"{int(mine.sum()):,}",
            "next action": str(stages.loc[mine, ACTION].iloc[0]).replace("_", " "),
            "send now": f"{int((~later).sum()):,}",
            "send later": f"{int(later.sum()):,}",
            "last send (UTC)": f"{when.max():%Y-%m-%d %H:%M}",
        }
        rows.append(row)
    table = pd.DataFrame(rows).set_index("stage")
    rules = config.lifecycle
    note = (
        "<p class='note'>The first matching rule wins, in this order (configs/analytics.yaml): abandoned cart "
        f"(reminder {rules.cart_reminder_hours:g} h after the cart, for carts up to {rules.cart_max_age_hours:g} h "
        f"old), new buyer (welcome {rules.welcome_delay_hours:g} h after a first order less than "
        f"{rules.new_buyer_days} days ago), lapsed ({rules.lapsed_days}+ days without an order), at risk (churn "
        f"probability {rules.at_risk_threshold:.0%} or more), inactive ({rules.inactive_days}+ days), active, "
        f"prospect. Send now = at the as-of time ({as_of:%Y-%m-%d %H:%M} UTC). "
        "<code>retain score --campaign FILE</code> writes one row per customer (customer, action, offer, send_at) "
        "for a campaign tool.</p>"
    )
    parts = [_table(table), note]
    if scores is not None and {"recommended_offer", CUSTOMER_ID}.issubset(scores.columns):
        offers = scores.set_index(scores[CUSTOMER_ID].astype(str))["recommended_offer"]
        offer = offers[~offers.index.duplicated()].reindex(stages[CUSTOMER_ID].astype(str)).fillna("not scored")
        plan = pd.crosstab(stages[STAGE].to_numpy(), offer.to_numpy())
        plan = plan.reindex(index=[s for s in STAGES if s in plan.index])
        plan.index = [s.replace("_", " ") for s in plan.index]
        parts.append("<h3>Offers by stage (from the scores)</h3>")
        parts.append(_table(plan.rename_axis(index="stage", columns="recommended offer")))
    return "".join(parts)


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
