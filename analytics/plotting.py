"""PNG charts as bytes, drawn with matplotlib's Figure API (Agg, no pyplot state)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def cohort_heatmap_png(cohorts) -> bytes:
    """Share of each cohort buying in each later period; blank where not yet observed."""
    shares = cohorts.shares
    fmt = "%Y-%m" if cohorts.period == "month" else "%Y-%m-%d"
    labels = [f"{c.strftime(fmt)} (n={cohorts.sizes[c]:,})" for c in shares.index]
    values = shares.to_numpy(dtype="float64")
    fig = Figure(figsize=(min(2 + 0.7 * shares.shape[1], 16), min(1.5 + 0.35 * len(shares), 14)))
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(values), cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(shares.shape[1]), [str(k) for k in shares.columns])
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel(f"{cohorts.period}s after the first purchase")
    ax.set_ylabel("cohort (first purchase)")
    kind = "bought in this period or later" if cohorts.cumulative else "bought in this period"
    ax.set_title(f"Cohort retention: share of the cohort that {kind}")
    if values.size <= 400:
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.0%}", ha="center", va="center", fontsize=7, color="white" if v > 0.5 else "black")
    fig.colorbar(image, ax=ax, format=lambda x, _: f"{x:.0%}")
    return _png(fig)


def bar_png(values: pd.Series, *, title: str, xlabel: str) -> bytes:
    """Horizontal bars, e.g. customers per lifecycle stage."""
    fig = Figure(figsize=(7, 0.5 + 0.4 * max(len(values), 1)))
    ax = fig.subplots()
    ax.barh([str(i) for i in values.index][::-1], values.to_numpy()[::-1], color="#3b7dd8")
    for y, v in enumerate(values.to_numpy()[::-1]):
        ax.text(v, y, f" {v:,.0f}" if float(v).is_integer() else f" {v:.3g}", va="center", fontsize=8)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    return _png(fig)


def value_png(values: np.ndarray, *, currency: str, horizon_days: int, bins: int = 40) -> bytes:
    """Buyers per bin of predicted value over the horizon (skewed, so bins end at the 99th percentile and the last
    bar holds the rest)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    xlabel = f"predicted value ({currency})"
    fig = Figure(figsize=(7, 3.5))
    ax = fig.subplots()
    if len(values):
        top = float(np.quantile(values, 0.99))
        top = top if top > values.min() else float(values.max()) + 1.0
        ax.hist(np.clip(values, None, top), bins=bins, range=(min(0.0, float(values.min())), top), color="#3b7dd8")
        clipped = int((values > top).sum())
        if clipped:
            xlabel += f"; the last bar also holds the {clipped:,} above {top:,.2f}"
    ax.set_title(f"Predicted value per buyer over the next {horizon_days} days")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("buyers")
    return _png(fig)


def log_value_plot(run_id: str, scores: Path, horizon_days: int) -> None:
    """The predicted values' distribution as ``plots/predicted_value.png`` in the scoring run (the report's plot)."""
    import tempfile

    import mlflow

    columns = ["predicted_value", "currency"]
    frame = (
        pd.read_parquet(scores, columns=columns)
        if scores.suffix == ".parquet"
        else pd.read_csv(scores, usecols=columns)
    )
    values = frame["predicted_value"].to_numpy(dtype=np.float64)
    png = value_png(values, currency=str(frame["currency"].iloc[0]), horizon_days=horizon_days)
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_id=run_id):
        path = Path(tmp) / "predicted_value.png"
        path.write_bytes(png)
        mlflow.log_artifact(str(path), artifact_path="plots")
