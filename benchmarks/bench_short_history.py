"""Benchmark: churn training with the defaults on simulated orders-only shops with 6 and 9 months of orders.

Each shop is the demo simulator's orders table alone (no customers, events or
reviews), as an export of its last 180 or 273 days of orders (the simulated shop
is two years old), for several sizes and seeds. Training runs
exactly as ``retain train-churn`` does with the shipped configs (90-day horizon,
so these histories get the customer split); the model is judged on its own
held-out test customers against recency, RFM logistic and BG/NBD, with paired
bootstrap differences. Run from the repo root:

    .venv/bin/python -m benchmarks.bench_short_history [--sizes 3000,10000,30000] [--seeds 1,2]

Prints one Markdown row per shop for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd

from features.config import CONFIG_DIR, FeaturesConfig, load_config
from features.sources import check_tables
from simulator.demo_data import generate
from training.churn import InsufficientData
from training.config import ChurnConfig
from training.datasets import build_panel, plan_for
from training.runs import start_tracking
from training.train import train_churn

BASELINES = ("recency", "rfm_logistic", "bg_nbd")


def run(n: int, days: int, seed: int, work: Path) -> str:
    features = load_config(FeaturesConfig, CONFIG_DIR / "features.yaml")
    config = load_config(ChurnConfig, CONFIG_DIR / "churn.yaml").model_copy(update={"experiment": "short-history"})
    orders = generate(n_customers=n, seed=seed).tables["orders"]
    orders = orders[orders["ordered_at"] >= orders["ordered_at"].max().normalize() - pd.Timedelta(days=days - 1)]
    tables = check_tables({"orders": orders})
    started = time.perf_counter()
    plan = plan_for(tables, features=features, config=config)
    panel = build_panel(tables, plan, config=features)
    try:
        result = train_churn(
            tables,
            panel,
            plan,
            features=features,
            config=config,
            out_dir=work / f"{n}-{days}-{seed}",
            register_model=False,
        )
    except InsufficientData as exc:  # what `retain train-churn` answers with exit 2
        return f"| {n:,} | {days} | {seed} | refused: {exc} |" + " |" * 8
    seconds = time.perf_counter() - started
    report = result.report
    model = report["models"]["model"]
    diffs = report["differences"]
    best = min(BASELINES, key=lambda b: report["models"][b]["log_loss"]["value"])
    best_loss = report["models"][best]["log_loss"]["value"]
    loss_diff = diffs[best]["log_loss"]
    auc_cells = []
    for b in BASELINES:
        d = diffs[b]["roc_auc"]
        auc_cells.append(f"{d['value']:+.3f} ({d['ci'][0]:+.3f} to {d['ci'][1]:+.3f})")
    ranks_ok = all(diffs[b]["roc_auc"]["better"] != "baseline" for b in BASELINES)
    loss_ok = model["log_loss"]["value"] <= best_loss
    return (
        f"| {n:,} | {days} | {seed} | {report['n']:,} | {model['roc_auc']['value']:.3f} | "
        + " | ".join(auc_cells)
        + f" | {model['log_loss']['value']:.4f} vs {best_loss:.4f} {best} "
        f"({loss_diff['value']:+.4f}, {loss_diff['ci'][0]:+.4f} to {loss_diff['ci'][1]:+.4f}) | {report['start']['chosen']} | "
        f"{'yes' if ranks_ok and loss_ok else 'NO'} | {seconds:.0f} s |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="3000,10000,30000", help="customers per shop")
    parser.add_argument("--days", default="180,273", help="days of orders")
    parser.add_argument("--seeds", default="1,2", help="simulator seeds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="retain-short-") as tmp:
        work = Path(tmp)
        start_tracking("short-history", uri=f"sqlite:///{work / 'mlflow.db'}", artifacts=(work / "a").as_uri())
        print(f"{os.cpu_count()} cores, {platform.machine()}; 90-day horizon, shipped configs\n")
        print(
            "| customers | days | seed | test customers | model AUC | vs recency | vs rfm_logistic | vs bg_nbd "
            "| log-loss vs best baseline (difference, 95% CI) | start | at least every baseline | time |\n|"
            + "---|"
            * 12
        )
        for n in map(int, args.sizes.split(",")):
            for days in map(int, args.days.split(",")):
                for seed in map(int, args.seeds.split(",")):
                    print(run(n, days, seed, work), flush=True)


if __name__ == "__main__":
    main()
