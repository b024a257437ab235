"""The report's monitoring sections: feature drift since training (retain score) and the back-test (retain backtest)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from analytics.page import Section, pngs
from features.contract import ContractError

DRIFT_COLUMNS = ("feature", "description", "psi", "threshold", "drifted", "n_scored", "n_reference")
DRIFT_ROWS = 15  # features shown, most drifted first; the file holds them all


def drift_section(path: str | Path) -> Section:
    """retain score's drift table (``<scores stem>.drift.csv``) as a report section: which features moved since the
    churn model was trained, by how much (PSI) against what threshold, and the bin that moved most."""
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


def backtest_section(folder: str | Path) -> Section:
    """retain backtest's folder as a report section: backtest.md with its title as the section's and its headings
    one level up (they sit below it), and its plots."""
    folder = Path(folder)
    title, _, text = (folder / "backtest.md").read_text().partition("\n")
    text = re.sub(r"^#(#+) ", r"\1 ", text, flags=re.M)
    return Section(title.removeprefix("# "), text=text, images=pngs(folder))
