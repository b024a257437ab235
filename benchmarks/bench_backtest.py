"""Benchmark: a genuine back-test on demo data, through the CLI, graded against the demo's truth.

The churn model is trained on the shop as it was known before ``AS_OF`` (every table cut there, so no label
window of training reaches past it), scores the shop at ``AS_OF``, and ``retain backtest`` grades those scores on
the 90 days that followed. The demo knows each customer's true churn probability and expected spend at ``AS_OF``
(a truth cutoff), so the back-test's AUC and value error sit beside the best achievable from the truth, on the
same customers and outcomes.

    .venv/bin/python -m benchmarks.bench_backtest [--customers N]

Prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from benchmarks.bench_real import cli
from features.contract import CUSTOMER_ID
from features.labels import churn_labels, spend_after
from features.sources import load_tables
from training.evaluate import roc_auc

AS_OF = pd.Timestamp("2026-03-02")  # a truth cutoff of the default demo (end 2026-06-30 minus 120 days)
DAYS = 850  # so the shop known before AS_OF has 730 days of orders: the time split, as a shop with history gets
TIME_COLUMNS = {
    "customers": "signed_up_at",
    "orders": "ordered_at",
    "events": "occurred_at",
    "reviews": "created_at",
    "offers": "sent_at",
}


def known_before(full: Path, out: Path) -> Path:
    """The shop as it was known before AS_OF: rows dated before it, of customers signed up before it."""
    out.mkdir()
    customers = pd.read_parquet(full / "customers.parquet")
    keep = set(customers.loc[customers["signed_up_at"] < AS_OF, CUSTOMER_ID])
    for path in full.glob("*.parquet"):
        frame = pd.read_parquet(path)
        column = TIME_COLUMNS.get(path.stem)
        if column is not None:
            frame = frame[frame[column] < AS_OF]
        frame[frame[CUSTOMER_ID].isin(keep)].to_parquet(out / path.name, index=False)
    return out


def truth_at_as_of(full: Path, scores: pd.DataFrame) -> dict:
    """The best achievable numbers on the back-tested customers: the true churn probabilities' AUC and the true
    expected spend's MAE and Spearman against the realised outcomes."""
    tables = load_tables(full)
    y = churn_labels(tables, cutoff=AS_OF, horizon_days=90)
    spend = spend_after(tables, cutoff=AS_OF, horizon_days=90)
    ids = scores.loc[scores["churn_probability"].notna(), CUSTOMER_ID].astype(str)
    ids = ids[ids.isin(y.index)]
    churn = pd.read_parquet(full / "truth" / "churn.parquet")
    churn = churn[churn["cutoff"] == AS_OF].set_index(CUSTOMER_ID)
    value = pd.read_parquet(full / "truth" / "value.parquet")
    value = value[value["cutoff"] == AS_OF].set_index(CUSTOMER_ID)
    real = spend.reindex(ids).to_numpy()
    true_spend = value["expected_spend"].reindex(ids).to_numpy()
    return {
        "customers": len(ids),
        "roc_auc": roc_auc(y.reindex(ids).to_numpy(), churn["p_churn"].reindex(ids).to_numpy()),
        "value_mae": float(np.mean(np.abs(true_spend - real))),
        "value_spearman": float(spearmanr(true_spend, real).statistic),
        "value_total": float(true_spend.sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="retain-backtest-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
        full = work / "full"
        seconds = {
            "generate-demo": cli(
                "generate-demo", "--out", str(full), "--customers", str(args.customers), "--days", str(DAYS), env=env
            )
        }
        known = known_before(full, work / "known")
        churn_dir = work / "models" / "churn"
        seconds["train-churn"] = cli(
            "train-churn", "--data", str(known), "--out", str(churn_dir), "--trials", "0", env=env
        )
        scores = work / "scores.parquet"
        score = ["score", "--as-of", f"{AS_OF:%Y-%m-%d}", "--data", str(full), "--out", str(scores), "--no-store"]
        seconds["score"] = cli(*score, "--no-track", env=env)
        seconds["backtest"] = cli("backtest", "--scores", str(scores), "--data", str(full), env=env)
        result = json.loads((work / "scores_backtest" / "backtest.json").read_text())
        issued = pd.read_parquet(scores)
        truth = truth_at_as_of(full, issued)
        version_of_value = issued["value_model_version"].dropna().iloc[0] if "value_model_version" in issued else "none"
    cpu = platform.processor() or platform.machine()
    print(
        f"{args.customers:,} demo customers, as of {AS_OF:%Y-%m-%d}; {os.cpu_count()} CPUs ({cpu}), {platform.python_version()}"
    )
    print("\n| step | seconds |\n|---|---:|")
    print("\n".join(f"| {k} | {v:.1f} |" for k, v in seconds.items()))
    for version, v in result["versions"].items():
        m = v["metrics"]
        print(f"\n{version}: {v['customers']:,} customers, horizon {v['horizon_days']} days ({v['horizon_source']})")
        print(f"realised churn {v['churn_rate']['value']:.1%}, predicted {v['predicted_churn_rate']:.1%}\n")
        print("| measure | back-test (95% interval) | from the truth |\n|---|---|---|")
        for key in ("roc_auc", "log_loss", "brier", "ece"):
            lo, hi = m[key]["ci"]
            best = f"{truth['roc_auc']:.3f}" if key == "roc_auc" else ""
            print(f"| {key} | {m[key]['value']:.3f} ({lo:.3f}-{hi:.3f}) | {best} |")
        if "value" in v:
            val = v["value"]
            total = val["realised_total"]
            print(
                f"| value total ({version_of_value}) | {val['predicted_total']:,.0f} predicted, {total['value']:,.0f} "
                f"realised ({total['ci'][0]:,.0f}-{total['ci'][1]:,.0f}) | {truth['value_total']:,.0f} expected |"
            )
            for key in ("mae", "spearman"):
                x = v["value"][key]
                print(
                    f"| value {key} | {x['value']:.3f} ({x['ci'][0]:.3f}-{x['ci'][1]:.3f}) | {truth[f'value_{key}']:.3f} |"
                )
        print("\n| risk band | customers | predicted | realised (95%) |\n|---|---:|---:|---|")
        for b in v["bands"]:
            print(
                f"| {b['group']} | {b['customers']:,} | {b['predicted']:.1%} | {b['realised']:.1%} ({b['ci'][0]:.1%}-{b['ci'][1]:.1%}) |"
            )


if __name__ == "__main__":
    main()
