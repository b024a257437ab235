"""Diagnostic charts as PNG files: calibration, ROC, cumulative gain, importance, SHAP summary, value deciles.

Drawn with matplotlib's Figure API (no pyplot state), so importing this module chooses no backend.

The calibration and gain curves are also written as CSV (``calibration.csv``, ``gain.csv``) for
``dvc plots show`` / ``dvc plots diff`` (the ``plots:`` section of dvc.yaml).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

TOP_FEATURES = 15
GRID = 101  # points of the CSV curves: 0%, 1%, ..., 100% of customers


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def calibration(y: np.ndarray, scores: dict[str, np.ndarray], path: Path, bins: int = 10) -> Path:
    """Observed churn rate against predicted probability, by predicted-probability decile."""
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1)
    for name, p in scores.items():
        q = pd.qcut(p, bins, duplicates="drop")
        g = pd.DataFrame({"p": p, "y": y}).groupby(q, observed=True).mean()
        ax.plot(g["p"], g["y"], marker="o", label=name)
    ax.set(xlabel="predicted churn probability", ylabel="observed churn rate", title="Calibration (test)")
    ax.legend()
    return _save(fig, path)


def calibration_table(y: np.ndarray, scores: dict[str, np.ndarray], bins: int = 10) -> pd.DataFrame:
    """Per predicted-probability decile: each model's mean prediction and observed rate (wide, one row a decile)."""
    cols = {"decile": np.arange(1, bins + 1)}
    for name, p in scores.items():
        q = pd.qcut(pd.Series(p).rank(method="first"), bins, labels=False)
        g = pd.DataFrame({"p": p, "y": y}).groupby(q.to_numpy()).mean().reindex(range(bins))
        cols[f"predicted_{name}"], cols[f"observed_{name}"] = g["p"].to_numpy(), g["y"].to_numpy()
    return pd.DataFrame(cols)


def gain_table(y: np.ndarray, scores: dict[str, np.ndarray]) -> pd.DataFrame:
    """Share of churners captured at 0%, 1%, ..., 100% of customers contacted, one column per model."""
    share = np.linspace(0, 1, GRID)
    out = {"share_contacted": share}
    n = len(y)
    for name, p in scores.items():
        captured = np.concatenate([[0.0], np.cumsum(y[np.argsort(-p, kind="stable")]) / y.sum()])
        out[name] = captured[np.round(share * n).astype(int)]
    return pd.DataFrame(out)


def roc(y: np.ndarray, scores: dict[str, np.ndarray], path: Path) -> Path:
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1)
    for name, p in scores.items():
        order = np.argsort(-p, kind="stable")
        hits = y[order]
        tpr = np.concatenate([[0], np.cumsum(hits) / hits.sum()])
        fpr = np.concatenate([[0], np.cumsum(1 - hits) / (1 - hits).sum()])
        ax.plot(fpr, tpr, label=name)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test)")
    ax.legend()
    return _save(fig, path)


def gain(y: np.ndarray, scores: dict[str, np.ndarray], path: Path) -> Path:
    """Share of churners captured when contacting the top x% by risk; the lift is the ratio to the diagonal."""
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="random")
    share = np.arange(1, len(y) + 1) / len(y)
    for name, p in scores.items():
        captured = np.cumsum(y[np.argsort(-p, kind="stable")]) / y.sum()
        ax.plot(share, captured, label=name)
    ax.set(xlabel="share of customers contacted", ylabel="share of churners captured", title="Cumulative gain (test)")
    ax.legend()
    return _save(fig, path)


def value_deciles(y: np.ndarray, scores: dict[str, np.ndarray], path: Path) -> Path:
    """Mean predicted and realised spend per decile of each value model's predictions (test rows)."""
    fig = Figure(figsize=(4 * len(scores), 4))
    axes = fig.subplots(1, len(scores), sharey=True, squeeze=False)
    for ax, (name, p) in zip(axes[0], scores.items(), strict=True):
        decile = pd.qcut(pd.Series(p).rank(method="first"), 10, labels=False).to_numpy() + 1
        g = pd.DataFrame({"predicted": p, "realised": y, "decile": decile}).groupby("decile").mean()
        ax.plot(g.index, g["predicted"], marker="o", label="predicted")
        ax.plot(g.index, g["realised"], marker="s", label="realised")
        ax.set(title=name, xlabel="decile of predicted spend", ylabel="mean spend over the horizon (test)")
        ax.legend()
    return _save(fig, path)


def importance(gains: pd.Series, path: Path) -> Path:
    top = gains.sort_values().tail(TOP_FEATURES)
    fig = Figure(figsize=(6, 0.3 * len(top) + 1))
    ax = fig.subplots()
    ax.barh(top.index, top.to_numpy())
    ax.set(xlabel="total gain", title="Feature importance (LightGBM gain)")
    return _save(fig, path)


def shap_summary(contrib: pd.DataFrame, values: pd.DataFrame, path: Path, seed: int = 0) -> Path:
    """Beeswarm-style summary: each dot one customer's SHAP value, coloured by the feature's rank."""
    top = contrib.abs().mean().sort_values().tail(TOP_FEATURES).index
    rng = np.random.default_rng(seed)
    fig = Figure(figsize=(7, 0.35 * len(top) + 1))
    ax = fig.subplots()
    for i, col in enumerate(top):
        v = values[col]
        colour = v.rank(pct=True).to_numpy() if pd.api.types.is_numeric_dtype(v) else np.full(len(v), 0.5)
        ax.scatter(contrib[col], i + rng.uniform(-0.3, 0.3, len(v)), c=colour, cmap="coolwarm", s=3, alpha=0.5)
    ax.set_yticks(range(len(top)), top)
    ax.axvline(0, c="grey", lw=1)
    ax.set(xlabel="SHAP value (log-odds of churn); red = high feature value", title="SHAP summary (test sample)")
    return _save(fig, path)


def write_all(
    booster,
    X: pd.DataFrame,
    y: np.ndarray,
    scores: dict[str, np.ndarray],
    out: Path,
    *,
    seed: int,
    shap_rows: int = 2000,
) -> pd.Series:
    """Every chart for one run; returns the mean |SHAP| per feature (the top drivers)."""
    calibration(y, scores, out / "calibration.png")
    calibration_table(y, scores).round(6).to_csv(out / "calibration.csv", index=False)
    roc(y, scores, out / "roc.png")
    gain(y, scores, out / "gain.png")
    gain_table(y, scores).round(6).to_csv(out / "gain.csv", index=False)
    gains = pd.Series(booster.booster_.feature_importance("gain"), index=X.columns)
    importance(gains, out / "importance.png")
    sample = X.sample(min(shap_rows, len(X)), random_state=seed)
    contrib = pd.DataFrame(booster.predict(sample, pred_contrib=True)[:, :-1], columns=X.columns, index=sample.index)
    shap_summary(contrib, sample, out / "shap_summary.png", seed=seed)
    return contrib.abs().mean().sort_values(ascending=False)


def reliability(curves: dict[str, list[dict]], path: Path) -> Path:
    """Back-test: realised churn rate against the predicted probability by decile, with 95% intervals, one line a
    model version (``curves``: version -> rows with predicted, realised and ci)."""
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfect calibration")
    for name, rows in curves.items():
        x = np.array([r["predicted"] for r in rows])
        y = np.array([r["realised"] for r in rows])
        ci = np.array([r["ci"] for r in rows], dtype="float64").reshape(-1, 2)
        ax.errorbar(x, y, yerr=[y - ci[:, 0], ci[:, 1] - y], marker="o", capsize=3, label=name)
    ax.set(xlabel="predicted churn probability (decile mean)", ylabel="realised churn rate", title="Back-test")
    ax.set(xlim=(0, 1), ylim=(0, 1))
    ax.legend()
    return _save(fig, path)


def value_by_decile(curves: dict[str, list[dict]], path: Path, *, currency: str) -> Path:
    """Back-test: mean realised against mean predicted spend by decile of the prediction, one line a version."""
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    top = max(max(r["predicted"], r["realised"]) for rows in curves.values() for r in rows) or 1.0
    ax.plot([0, top], [0, top], ls="--", c="grey", lw=1, label="predicted = realised")
    for name, rows in curves.items():
        ax.plot([r["predicted"] for r in rows], [r["realised"] for r in rows], marker="o", label=name)
    ax.set(
        xlabel=f"predicted spend over the horizon ({currency}, decile mean)",
        ylabel=f"realised spend ({currency})",
        title="Back-test: value",
    )
    ax.legend()
    return _save(fig, path)
