"""Back-test of issued scores: what happened to the customers a scores file ranked, once its horizon has passed.

Reads a scores file written by ``retain score`` at its as-of date (:mod:`training.scores_file`) and the shop's
tables; :mod:`training.backtest_report` writes the folder (``backtest.json``, ``backtest.md``, ``reliability.png``
and, when the scores carry ``predicted_value``, ``value.png``) and one MLflow run per churn model version.

A scored customer's outcome is the churn label at the as-of date (``features.labels``, the one rule): no order
in [as_of, as_of + horizon). The horizon is the one the model version was trained for (``horizon_days`` of its
training run in the registry), else ``horizon_days`` in configs/features.yaml, and the output says which. The
orders are read as complete through their last day (training's ``data_span``): data that simply end cannot tell
a customer who stopped from an export that stopped, so a window reaching past that day is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from scipy.stats import spearmanr

from features.contract import CUSTOMER_ID
from features.labels import churn_labels, spend_after
from features.sources import Tables
from modeling.tracking import use_store
from training.datasets import DAY, data_span
from training.evaluate import bootstrap_interval, bootstrap_report, rate_interval
from training.scores_file import BAND, PROBABILITY, VALUE, VERSION, Issued

METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_top10")
LABEL = re.compile(r"^(?P<name>.+) v(?P<version>\d+)$")  # serving.models' label of a registered version
DECILES = 10


class BacktestError(ValueError):
    """A back-test that cannot be done yet or on these tables; the message has the dates or counts."""


def recorded_horizons(versions, *, default: int) -> dict[str, tuple[int, str]]:
    """Each version's horizon and where it comes from: ``horizon_days`` of the version's training run in the
    registry, else ``default`` (configs/features.yaml) with the reason the registry had none."""
    client = MlflowClient(use_store())
    out = {}
    for version in versions:
        match = LABEL.match(version)
        reason = f"{version!r} does not name a registered version"
        if match:
            try:
                run_id = client.get_model_version(match["name"], match["version"]).run_id
                days = client.get_run(run_id).data.params.get("horizon_days")
            except MlflowException:
                days, reason = None, f"{version} is not in the registry at {client.tracking_uri}"
            else:
                reason = f"{version}'s training run records no horizon_days"
            if days is not None:
                out[version] = (int(days), f"{version}'s training run")
                continue
        out[version] = (default, f"horizon_days in configs/features.yaml ({reason})")
    return out


def check_window(issued: Issued, horizon_days: int, source: str, tables: Tables) -> pd.Timestamp:
    """The end of the outcome window (exclusive); BacktestError with the dates while it is still open."""
    if tables.orders is None or tables.orders.empty:
        raise BacktestError(
            f"{issued.path}: a back-test needs the shop's orders table, with the orders after {issued.as_of:%Y-%m-%d}"
        )
    _, data_end = data_span(tables)
    end = issued.as_of + pd.Timedelta(days=horizon_days)
    if end > data_end:
        raise BacktestError(
            f"{issued.path}: scored as of {issued.as_of:%Y-%m-%d} with a {horizon_days}-day horizon ({source}); "
            f"the window [{issued.as_of:%Y-%m-%d}, {end:%Y-%m-%d}) closes on {end - DAY:%Y-%m-%d}, but the orders "
            f"end on {data_end - DAY:%Y-%m-%d} ({(end - data_end).days} days short): rerun after "
            f"{end - DAY:%Y-%m-%d} with the orders through that day"
        )
    return end


def run_backtest(issued: Issued, tables: Tables, *, horizons: Mapping[str, tuple[int, str]], n_boot: int, seed: int):
    """What happened to the scored customers, per churn model version: a JSON-ready dict.

    Refuses (BacktestError) while any version's window is open, or when no scored customer is a buyer before
    the as-of date in ``tables`` (the tables of another shop)."""
    frame = issued.frame
    versions = issued.versions()
    if not versions:
        raise BacktestError(f"{issued.path}: no customer has a {PROBABILITY}; nothing to back-test")
    ends = {v: check_window(issued, *horizons[v], tables) for v in versions}
    _, data_end = data_span(tables)
    unscored = frame.loc[frame[PROBABILITY].isna()]
    reasons = unscored.get("churn_unscored_reason", pd.Series("unknown", index=unscored.index))
    result = {
        "scores": str(issued.path),
        "as_of": f"{issued.as_of:%Y-%m-%d}",
        "data_last_order_day": f"{data_end - DAY:%Y-%m-%d}",
        "customers": len(frame),
        "not_scored": {str(k): int(n) for k, n in reasons.fillna("unknown").value_counts().items()},
        "versions": {},
    }
    for version in versions:
        days, source = horizons[version]
        rows = frame.loc[frame[PROBABILITY].notna() & (frame[VERSION] == version)]
        labels = churn_labels(tables, cutoff=issued.as_of, horizon_days=days)
        found = rows[CUSTOMER_ID].isin(labels.index).to_numpy()
        rows = rows.loc[found]
        entry = {
            "horizon_days": days,
            "horizon_source": source,
            "window": [result["as_of"], f"{ends[version]:%Y-%m-%d}"],
            "scored": int(len(found)),
            "not_found": int((~found).sum()),
        }
        if len(rows):
            y = labels.reindex(rows[CUSTOMER_ID]).to_numpy(dtype="float64")
            entry.update(outcomes(y, rows[PROBABILITY].to_numpy(), rows[BAND].astype(str).to_numpy(), n_boot, seed))
            if VALUE in rows.columns and rows[VALUE].notna().any():
                spend = spend_after(tables, cutoff=issued.as_of, horizon_days=days).reindex(rows[CUSTOMER_ID])
                has = rows[VALUE].notna().to_numpy()
                entry["value"] = value_outcomes(rows[VALUE].to_numpy()[has], spend.to_numpy()[has], n_boot, seed)
        result["versions"][version] = entry
    if not any(v.get("customers") for v in result["versions"].values()):
        n = sum(v["scored"] for v in result["versions"].values())
        raise BacktestError(
            f"{issued.path}: none of the {n:,} scored customers has an order before {result['as_of']} in these "
            "tables; pass with --data the shop the scores were made from"
        )
    return result


def outcomes(y: np.ndarray, p: np.ndarray, band: np.ndarray, n_boot: int, seed: int) -> dict:
    """Ranking and calibration metrics with 95% bootstrap intervals, the reliability table by decile of the
    prediction and the churn rate by risk band, each realised rate with its Wilson interval."""
    report = bootstrap_report(y, {"model": p}, reference="model", n_boot=n_boot, seed=seed)["models"]["model"]
    deciles = pd.qcut(pd.Series(p).rank(method="first"), min(DECILES, len(p)), labels=False).to_numpy() + 1
    bands = sorted(np.unique(band), key=lambda b: p[band == b].mean())
    return {
        "customers": int(len(y)),
        "churners": int(y.sum()),
        "predicted_churn_rate": float(p.mean()),
        "churn_rate": {"value": float(y.mean()), "ci": rate_interval(int(y.sum()), len(y))},
        "metrics": {m: report[m] for m in METRICS},
        "reliability": [_group(f"{d}", y[deciles == d], p[deciles == d]) for d in np.unique(deciles)],
        "bands": [_group(b, y[band == b], p[band == b]) for b in bands],
    }


def _group(name: str, y: np.ndarray, p: np.ndarray) -> dict:
    lo, hi = rate_interval(int(y.sum()), len(y))
    predicted = float(p.mean())
    return {
        "group": name,
        "customers": int(len(y)),
        "predicted": predicted,
        "realised": float(y.mean()),
        "ci": (lo, hi),
        "within": bool(lo <= predicted <= hi),
    }


def _mae(pred, real) -> float:
    return float(np.mean(np.abs(pred - real)))


def _spearman(pred, real) -> float:
    if np.ptp(pred) == 0 or np.ptp(real) == 0:  # a constant has no rank order
        return float("nan")
    return float(spearmanr(pred, real).statistic)


def _top_decile_share(pred, real) -> float:
    """Share of the realised spend made by the 10% with the highest predicted value."""
    k = max(int(round(0.1 * len(pred))), 1)
    total = real.sum()
    return float(real[np.argsort(-pred, kind="stable")[:k]].sum() / total) if total > 0 else float("nan")


def value_outcomes(pred: np.ndarray, real: np.ndarray, n_boot: int, seed: int) -> dict:
    """Realised spend in the window against ``predicted_value``: MAE, Spearman rank correlation, the share of the
    spend made by the top decile of the predictions and the realised total, with 95% bootstrap intervals."""
    out = {"customers": int(len(pred)), "predicted_total": float(pred.sum())}
    stats = {"realised_total": lambda _, r: float(r.sum()), "mae": _mae, "spearman": _spearman}
    stats["top_decile_share"] = _top_decile_share
    for name, stat in stats.items():
        out[name] = {"value": stat(pred, real), "ci": bootstrap_interval(stat, pred, real, n_boot=n_boot, seed=seed)}
    deciles = pd.qcut(pd.Series(pred).rank(method="first"), min(DECILES, len(pred)), labels=False).to_numpy() + 1
    out["by_decile"] = [
        {
            "group": f"{d}",
            "customers": int((deciles == d).sum()),
            "predicted": float(pred[deciles == d].mean()),
            "realised": float(real[deciles == d].mean()),
        }
        for d in np.unique(deciles)
    ]
    return out
