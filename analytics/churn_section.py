"""The report's churn-model section: train-churn's card, its test metrics in words and its top drivers."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from analytics.page import Section, pngs
from features.descriptions import describe

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
            drivers.insert(1, "what it measures", [_described(f) for f in drivers["feature"]])
            drivers = drivers.rename(columns={"mean_abs_shap": "mean |SHAP| (log-odds)"})
            extra.append(Section("Top churn drivers (test cutoff)", table=drivers))
    return Section("Churn model", text=text, table=table, images=pngs(folder), extra=tuple(extra))


def _described(name: str) -> str:
    try:
        return describe(name).text
    except KeyError:
        return "–"


def _with_ci(metric: dict) -> str:
    lo, hi = metric["ci"]
    return f"{metric['value']:.3f} ({lo:.3f}–{hi:.3f})"


def _without_sections(markdown: str, prefixes: tuple[str, ...]) -> str:
    """Markdown without the ``## `` sections whose heading starts with one of ``prefixes`` (shown as tables)."""
    out, skipping = [], False
    for line in markdown.splitlines():
        if line.startswith("## "):
            skipping = line[3:].startswith(prefixes)
        if not skipping:
            out.append(line)
    return "\n".join(out)
