"""Benchmark: churn training for 1,000,000 customers at one cutoff, no tuning.

Real feature rows and labels come from the demo generator (features at one cutoff
for training and a later one for validation); they are resampled with a little
jitter up to the requested size so the model meets realistic distributions.
Timed: LightGBM with early stopping plus calibration (``fit_churn_model``, from
each candidate start: a constant, BG/NBD, the RFM logistic prior), the same call
the pipeline makes. Run from the repo root:

    .venv/bin/python -m benchmarks.bench_churn_train --customers 1000000

Prints a Markdown row for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time

import numpy as np
import pandas as pd

from features.config import FeaturesConfig
from features.sources import check_tables
from simulator.demo_data import generate
from training.churn import fit_churn_model
from training.config import ChurnConfig
from training.datasets import Rows, build_panel, plan_cutoffs, rows_at, split_rows


def resample(rows: Rows, n: int, seed: int) -> Rows:
    """``n`` rows drawn with replacement, numeric features jittered by 1% so rows are not exact copies."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(rows), n)
    X = rows.X.iloc[pick].reset_index(drop=True)
    for col in X.columns:
        if pd.api.types.is_float_dtype(X[col]):
            X[col] = X[col] * (1 + 0.01 * rng.standard_normal(n))
    keys = pd.DataFrame({"customer_id": np.arange(n).astype(str), "cutoff": rows.keys["cutoff"].iloc[0]})
    return Rows(X=X, y=rows.y[pick], keys=keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000, help="training rows (customers at one cutoff)")
    parser.add_argument("--valid-share", type=float, default=0.2, help="validation rows as a share of training rows")
    parser.add_argument("--seed-customers", type=int, default=20_000, help="demo customers the rows are drawn from")
    args = parser.parse_args()

    demo = generate(n_customers=args.seed_customers, seed=7)
    tables = check_tables(demo.tables)
    plan = plan_cutoffs(tables, horizon_days=90, spacing_days=30, n_train=1, n_valid=1)
    plan = dataclasses.replace(plan, test=plan.valid[0], refit=(), recalibrate=())  # two cutoffs are enough
    panel = build_panel(tables, plan, config=FeaturesConfig())
    train = resample(rows_at(panel, plan.train), args.customers, seed=1)
    valid = resample(rows_at(panel, plan.valid), int(args.customers * args.valid_share), seed=2)

    config = ChurnConfig()
    start = time.perf_counter()
    stop, calib = split_rows(valid, 0.5, config.seed)
    bg_nbd = "lifetime_p_no_order_90d"  # as the pipeline does: fit every start, keep the best on held-out rows
    fitted = fit_churn_model(train, stop, calib, config.lgbm, config, bg_nbd=bg_nbd)
    seconds = time.perf_counter() - start
    print(
        f"| churn training, {len(train):,} customers x {train.X.shape[1]} features, one cutoff, no tuning "
        f"| {seconds:.1f} s | {fitted.rounds} rounds, start {fitted.prior.name if fitted.prior else 'none'}, {fitted.method} calibration on "
        f"{len(valid) // 2:,} rows, "
        f"{os.cpu_count()} cores, {platform.processor() or platform.machine()} |"
    )


if __name__ == "__main__":
    main()
