"""The report's offer-model section: train-offers' card without its text dumps, its policy and learner tables
in words, and the Qini plot."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from analytics.page import Section, dash, pngs


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
    return Section("Offer model", text=text, images=pngs(folder), extra=tuple(extra))


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
            out[label] = [dash(v, lambda x: f"{x:,.2f}") for v in frame[col]]
    for col, label in shares.items():
        if col in frame.columns:
            out[label] = [dash(v, lambda x: f"{x:.0%}") for v in frame[col]]
    if "fit_s" in frame.columns:
        out["fit seconds"] = [dash(v, lambda x: f"{x:.1f}") for v in frame["fit_s"]]
    out.index = [str(i).replace("_", " ") for i in frame.index]
    return out.rename_axis(str(frame.index.name or "").replace("_", " ") or "row")


def _without_code(markdown: str) -> str:
    """Markdown without fenced code blocks (pandas text dumps the report shows as tables instead)."""
    return re.sub(r"```.*?```\n?", "", markdown, flags=re.S)
