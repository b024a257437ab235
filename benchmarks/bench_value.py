"""Benchmark: the shipped customer-value model against historical CLV and BG/NBD + Gamma-Gamma on held-out spend.

Two shops, each judged on spend the models never saw:

* **demo** (known truth): ``train_churn`` on 20,000 simulated customers with the test cutoff one month
  before the last truth cutoff; the shipped value model then predicts every buyer's 90-day spend at that
  last cutoff (a cutoff it was not fitted on), graded against the realised spend and against the
  simulator's true expected spend (``truth/value.parquet``).
* **Ta-Feng** (a real grocery log): ``retain train-churn`` through the CLI on 70% of the customers, as
  ``benchmarks.bench_real`` runs it (28-day horizon, known rows until 2001-01-31); the shipped value model
  predicts the other 30%'s spend in 2001-02-01..2001-02-28.

Both print every candidate with 95% bootstrap intervals and the paired differences against historical CLV
(the customer's spend per day to date x horizon, to date being at least one horizon)::

    bash ../shared/realdata/fetch_tafeng.sh
    .venv/bin/python -m benchmarks.bench_value [--csv PATH] [--customers 20000] [--bootstrap 1000]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from benchmarks.bench_real import AS_OF, DEFAULT_CSV, HORIZON, cli, configs, user_folders
from benchmarks.bench_real import table as real_table
from features.build import build_features
from features.config import FeaturesConfig, load_config
from features.labels import spend_after
from features.sources import check_tables, load_tables
from features.value import EXPECTED_SPEND, value_frame
from modeling.value_model import HISTORICAL_FEATURES, ValueModel
from simulator.demo_data import generate
from training.config import ChurnConfig
from training.datasets import build_panel, plan_for
from training.runs import start_tracking
from training.train import train_churn
from training.value import VALUE_DIR, value_metrics, value_report

SHOWN = ("mae", "rmse", "spearman", "top10_share")


def scored(model: ValueModel, tables, *, cutoff, features: FeaturesConfig, ids: pd.Index) -> dict[str, np.ndarray]:
    """The shipped model, BG/NBD + Gamma-Gamma and historical CLV for ``ids`` as of ``cutoff``."""
    frame = build_features(tables, cutoff=cutoff, config=features)
    frame = frame.join(value_frame(tables, cutoff=cutoff, config=features)).loc[ids]
    horizon = features.horizon_days
    others = {
        "bgnbd_gamma_gamma": ValueModel("bgnbd_gamma_gamma", horizon, (EXPECTED_SPEND,)),
        "historical": ValueModel("historical", horizon, HISTORICAL_FEATURES),
    }
    return {f"shipped ({model.kind})": model.predict(frame, len(frame))} | {
        name: m.predict(frame, len(frame)) for name, m in others.items()
    }


def table(report: dict) -> list[str]:
    return real_table(report, SHOWN, digits=3, minus="minus historical")


def demo(customers: int, n_boot: int, work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    data = generate(n_customers=customers, seed=7)
    tables = check_tables(data.tables)
    features, config = FeaturesConfig(), ChurnConfig(model_name="bench-value", experiment="bench-value")
    graded = data.end - pd.Timedelta(days=data.horizon_days)  # the last cutoff with a known 90-day window
    plan = plan_for(tables, features=features, config=config, test_cutoff=graded - pd.Timedelta(days=30))
    start_tracking(config.experiment, uri=f"sqlite:///{work}/mlflow.db", artifacts=(work / "art").as_uri())
    started = time.perf_counter()
    result = train_churn(
        tables, build_panel(tables, plan, config=features), plan, features=features, config=config, out_dir=work / "out"
    )
    seconds = time.perf_counter() - started
    mlflow.set_tracking_uri(None)
    model = ValueModel.load(work / "out" / VALUE_DIR)
    spend = spend_after(tables, cutoff=graded, horizon_days=data.horizon_days)
    scores = scored(model, tables, cutoff=graded, features=features, ids=spend.index)
    truth = data.truth_value[data.truth_value["cutoff"] == graded].set_index("customer_id")["expected_spend"]
    truth = truth.reindex(spend.index.astype(str)).to_numpy()
    value = result.report["value"]
    print(f"### Demo, {customers:,} customers: {len(spend):,} buyers at {graded:%Y-%m-%d}, mean 90-day spend "
          f"{spend.mean():.2f}; train-churn (churn + value) {seconds:.0f} s\n")  # fmt: skip
    print(f"train-churn's own test cutoff {plan.test:%Y-%m-%d} ({value['n']:,} buyers, evaluation models), "
          f"chosen {value['chosen']} by validation RMSE {value['valid_rmse']}:\n")  # fmt: skip
    print("\n".join(table(value)) + "\n")
    print(f"The shipped model at {graded:%Y-%m-%d} (not a fitted cutoff), against realised spend:\n")
    print("\n".join(table(value_report(spend.to_numpy(), scores, n_boot=n_boot, seed=0))) + "\n")
    print("Against the simulator's true expected spend (no bootstrap: the truth is not a sample):\n")
    print("| model | " + " | ".join(SHOWN) + " |\n|---|" + "---|" * len(SHOWN))
    for name, p in scores.items():
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in value_metrics(truth, p).values()) + " |")
    print()


def ta_feng(csv: Path, n_boot: int, work: Path) -> None:
    train_dir, score_dir, outcome = user_folders(csv, work)
    cfg = configs(work)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.update(DO_NOT_TRACK="true", BENTOML_DO_NOT_TRACK="true", DVC_NO_ANALYTICS="1")
    seconds = cli("train-churn", "--data", str(train_dir), "--configs", str(cfg), "--out", str(work / "churn"), env=env)
    model = ValueModel.load(work / "churn" / VALUE_DIR)
    features = load_config(FeaturesConfig, cfg / "features.yaml")
    raw = pd.read_csv(csv, dtype={"CUSTOMER_ID": str}, encoding="utf-8-sig")
    day = pd.to_datetime(raw["TRANSACTION_DT"], format="%m/%d/%Y")
    window = raw[(day >= AS_OF) & (day < AS_OF + pd.Timedelta(days=HORIZON))]
    spend = window.groupby("CUSTOMER_ID")["SALES_PRICE"].sum().reindex(outcome.index, fill_value=0.0)
    tables = load_tables(score_dir, orphans="drop", date_format=features.date_format)
    ids = pd.Index(outcome.index.astype(str), dtype="string", name="customer_id")
    scores = scored(model, tables, cutoff=AS_OF, features=features, ids=ids)
    print(f"### Ta-Feng: {len(spend):,} held-out buyers at {AS_OF:%Y-%m-%d}, mean {HORIZON}-day spend "
          f"{spend.mean():.1f}; retain train-churn {seconds:.0f} s (shipped: {model.kind}, "
          f"test metrics {model.metrics})\n")  # fmt: skip
    print("\n".join(table(value_report(spend.to_numpy(dtype=float), scores, n_boot=n_boot, seed=0))) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV, help="ta_feng_all_months_merged.csv")
    parser.add_argument("--customers", type=int, default=20_000, help="demo customers")
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    if not args.csv.exists():
        sys.exit(f"{args.csv} not found: run bash ../shared/realdata/fetch_tafeng.sh first")
    print(f"{os.cpu_count()} cores, {platform.machine()}, {platform.processor() or platform.platform()}; "
          f"{args.bootstrap} paired bootstrap resamples\n")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="retain-value-") as tmp:
        demo(args.customers, args.bootstrap, Path(tmp) / "demo")
    with tempfile.TemporaryDirectory(prefix="retain-value-") as tmp:
        ta_feng(args.csv, args.bootstrap, Path(tmp))


if __name__ == "__main__":
    main()
