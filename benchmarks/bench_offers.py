"""Benchmark: offer model training and policy on 1,000,000 offer-log rows with synthetic features.

    .venv/bin/python -m benchmarks.bench_offers --rows 1000000 --features 30

Features are synthetic (feature building is benchmarked in bench_features.py):
numbers, one category and an order value; three arms assigned at random; the
effect of each offer depends on two features. Times, per learner, the fit on
the training campaigns, then the policy on the held-out ones (probabilities for
every arm, profit, choice, budget) and the IPW/DR evaluation of every policy.
Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

from features.config import CONFIG_DIR, OfferCatalog, load_config
from serving.offer_predictor import expected_rewards
from training.offers import ROW, OfferModelConfig, OfferRows, logged_propensity, realized_order_value, split_by_time
from training.offpolicy import evaluate_policies, realized_reward
from training.policy import check_against_constant, decide
from training.uplift import make_learner

ARMS = ["none", "free_shipping", "discount_20"]


def make_rows(n: int, n_features: int, seed: int = 0) -> OfferRows:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.standard_normal((n, n_features)), columns=[f"f{i}" for i in range(n_features)])
    X["sales_avg_order_value_all"] = rng.gamma(8.0, 8.0, n)
    X["demo_region"] = pd.Categorical(rng.choice(["north", "south", "east"], n))
    arm = rng.integers(0, 3, n)
    effect = np.column_stack([np.zeros(n), 0.15 * (X["f0"] > 0.5), 0.2 * (X["f1"] > 0.8)])
    p = 0.05 + 0.03 * (X["f2"] > 0) + effect[np.arange(n), arm]
    y = (rng.random(n) < p).astype(int)
    sent = pd.Timestamp("2026-01-05") + pd.to_timedelta(np.sort(rng.integers(0, 10, n)) * 14, unit="D")
    frame = X.assign(
        customer_id=np.arange(n).astype(str),
        sent_at=sent,
        offer=np.array(ARMS)[arm],
        arm=arm,
        converted=y,
        propensity=1 / 3,
        revenue=np.where(y == 1, X["sales_avg_order_value_all"], 0.0),
        **{ROW: np.arange(n)},
    )
    return OfferRows(frame, [*X.columns], ARMS, {"demo_region": ["east", "north", "south"]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="offer-log rows")
    parser.add_argument("--features", type=int, default=30, help="numeric synthetic features")
    parser.add_argument("--learners", default="s,t,x,dr", help="comma-separated learners to time")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="LightGBM threads")
    args = parser.parse_args()
    catalog = load_config(OfferCatalog, CONFIG_DIR / "offers.yaml")
    config = OfferModelConfig(n_jobs=args.threads)
    rows = make_rows(args.rows, args.features)
    frame = rows.frame
    held = split_by_time(rows, config.holdout_share)
    t0 = time.perf_counter()
    propensity, _ = logged_propensity(rows, config)
    prep_s = time.perf_counter() - t0
    arm, y = frame["arm"].to_numpy(), frame["converted"].to_numpy()
    value = frame["sales_avg_order_value_all"].to_numpy()
    reward = realized_reward(y, arm, realized_order_value(rows, value), catalog)
    lines = [
        f"{args.rows:,} offer-log rows ({int((~held).sum()):,} train / {int(held.sum()):,} held out), "
        f"{len(rows.features)} features, {args.threads} threads; propensity + randomisation check {prep_s:.1f} s",
        "",
        "| learner | fit (s) | policy on held-out (s) | evaluation (s) | held-out DR gain / send |",
        "|---|---|---|---|---|",
    ]
    for kind in args.learners.split(","):
        t0 = time.perf_counter()
        learner = make_learner(kind, 3, None, config.seed, args.threads)
        learner.fit(rows.X(~held), arm[~held], y[~held], propensity[~held])
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        proba = learner.predict_proba(rows.X(held))
        chosen = decide(proba, value[held], catalog, max_offers=int(held.sum()) // 2)
        policy_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        q = expected_rewards(proba, value[held], catalog)
        args_ = reward[held], arm[held], propensity[held]
        table = evaluate_policies({"learned": chosen, "random": np.full((held.sum(), 3), 1 / 3)}, *args_, q)
        check_against_constant(chosen, *args_, q, ARMS)
        eval_s = time.perf_counter() - t0
        gain = table.loc["learned"]
        lines.append(
            f"| {kind} | {fit_s:.1f} | {policy_s:.1f} | {eval_s:.1f} | {gain['dr_gain']:.3f} ± {gain['dr_gain_se']:.3f} |"
        )
        print(lines[-1], flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
