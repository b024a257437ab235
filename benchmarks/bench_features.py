"""Benchmark: features for 1,000,000 customers, 20,000,000 orders, 50,000,000 events.

Compares Retain's builders (DuckDB over cut snapshots) with a plain pandas
groupby implementation of the same sales and behaviour features, each in its
own fresh process so peak memory is measured per approach. Run from the repo
root:

    .venv/bin/python -m benchmarks.bench_features --customers 1000000 --orders 20000000 --events 50000000

Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

CUTOFF = pd.Timestamp("2026-01-01")
START = CUTOFF - pd.Timedelta(days=730)


def make_tables(n_customers: int, n_orders: int, n_events: int, out: Path, seed: int = 0) -> None:
    """Random tables in the contract's format, written as Parquet (a day after the cutoff included)."""
    rng = np.random.default_rng(seed)
    ids = pa.array(np.char.add("c", np.arange(n_customers).astype(str)), type=pa.string())
    span = (CUTOFF - START).total_seconds() + 86400 * 30

    def times(n):
        return START + pd.to_timedelta(rng.uniform(0, span, n), unit="s")

    weights = rng.gamma(0.7, 1.0, n_customers)
    weights /= weights.sum()
    who = rng.choice(n_customers, size=n_orders, p=weights)
    pd.DataFrame(
        {
            "customer_id": pd.array(ids, dtype="string"),
            "signed_up_at": START - pd.to_timedelta(rng.uniform(0, 365, n_customers), unit="D"),
            "region": pd.Categorical(rng.choice(["north", "south", "east", "west"], n_customers)),
            "age": rng.integers(18, 80, n_customers).astype(float),
        }
    ).to_parquet(out / "customers.parquet")
    pd.DataFrame(
        {
            "order_id": pd.array(pa.array(np.char.add("o", np.arange(n_orders).astype(str))), dtype="string"),
            "customer_id": pd.array(pc.take(ids, who), dtype="string"),
            "ordered_at": times(n_orders),
            "amount": rng.lognormal(3.5, 0.6, n_orders),
            "discount_amount": np.where(rng.random(n_orders) < 0.3, rng.uniform(1, 10, n_orders), 0.0),
            "shipping_fee": np.where(rng.random(n_orders) < 0.4, 0.0, 4.9),
            "category": pd.Categorical(rng.choice(["shoes", "bags", "hats", "coats", "socks"], n_orders)),
            "n_items": rng.integers(1, 6, n_orders).astype(float),
        }
    ).to_parquet(out / "orders.parquet")
    del who
    who = rng.choice(n_customers, size=n_events, p=weights)
    kinds = np.array(["visit", "page_view", "add_to_cart", "email_sent", "email_open", "email_click"])
    pd.DataFrame(
        {
            "customer_id": pd.array(pc.take(ids, who), dtype="string"),
            "occurred_at": times(n_events),
            "event_type": pd.Categorical(kinds[rng.choice(6, n_events, p=[0.25, 0.35, 0.08, 0.2, 0.09, 0.03])]),
        }
    ).to_parquet(out / "events.parquet")


def peak_gb() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux carries ru_maxrss
    across fork+exec, so a child would report the (large) benchmark parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024**2
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def run_retain(data: Path) -> dict:
    from features.build import build_features
    from features.sources import load_tables

    t0 = time.perf_counter()
    tables = load_tables(data)
    t1 = time.perf_counter()
    frame = build_features(tables, cutoff=CUTOFF)
    t2 = time.perf_counter()
    return {"load_validate_s": t1 - t0, "features_s": t2 - t1, "rows": len(frame), "cols": frame.shape[1]}


def run_pandas(data: Path) -> dict:
    """The same sales and behaviour features with plain pandas groupbys."""
    t0 = time.perf_counter()
    orders = pd.read_parquet(data / "orders.parquet")
    events = pd.read_parquet(data / "events.parquet")
    customers = pd.read_parquet(data / "customers.parquet")
    t1 = time.perf_counter()
    orders = orders[orders["ordered_at"] < CUTOFF].sort_values(["customer_id", "ordered_at"])
    orders["age"] = (CUTOFF - orders["ordered_at"]).dt.total_seconds() / 86400
    g = orders.groupby("customer_id")
    out = pd.DataFrame(
        {
            "days_since_last": g["age"].min(),
            "days_since_first": g["age"].max(),
            "orders_all": g.size(),
            "revenue_all": g["amount"].sum(),
            "aov": g["amount"].mean(),
            "items": g["n_items"].mean(),
            "discount_share": (orders["discount_amount"] > 0).groupby(orders["customer_id"]).mean(),
            "free_ship_share": (orders["shipping_fee"] == 0).groupby(orders["customer_id"]).mean(),
            "categories": g["category"].nunique(),
        }
    )
    for w in (30, 90, 365):
        recent = orders[orders["age"] <= w].groupby("customer_id")
        out[f"orders_{w}d"] = recent.size()
        out[f"revenue_{w}d"] = recent["amount"].sum()
    gap = orders.groupby("customer_id")["age"].diff().abs()
    out["gap_mean"] = gap.groupby(orders["customer_id"]).mean()
    out["gap_std"] = gap.groupby(orders["customer_id"]).std(ddof=0)
    events = events[events["occurred_at"] < CUTOFF]
    events["age"] = (CUTOFF - events["occurred_at"]).dt.total_seconds() / 86400
    for kind in ("visit", "page_view", "add_to_cart"):
        sel = events[events["event_type"] == kind]
        for w in (30, 90):
            out[f"{kind}_{w}d"] = sel[sel["age"] <= w].groupby("customer_id").size()
    visits = events[events["event_type"] == "visit"]
    out["days_since_visit"] = visits.groupby("customer_id")["age"].min()
    e90 = events[events["age"] <= 90]
    by_kind = e90.groupby(["customer_id", "event_type"], observed=True).size().unstack(fill_value=0)
    out["open_rate"] = by_kind["email_open"] / by_kind["email_sent"].replace(0, np.nan)
    out["ctr"] = by_kind["email_click"] / by_kind["email_sent"].replace(0, np.nan)
    carts = e90[e90["event_type"] == "add_to_cart"].sort_values("occurred_at")
    nxt = pd.merge_asof(
        carts,
        orders[["customer_id", "ordered_at"]].sort_values("ordered_at"),
        left_on="occurred_at",
        right_on="ordered_at",
        by="customer_id",
        direction="forward",
    )
    abandoned = nxt["ordered_at"].isna() | (nxt["ordered_at"] > nxt["occurred_at"] + pd.Timedelta(hours=2))
    out["cart_abandonment"] = abandoned.groupby(nxt["customer_id"]).mean()
    out = out.reindex(customers["customer_id"])
    t2 = time.perf_counter()
    return {"load_validate_s": t1 - t0, "features_s": t2 - t1, "rows": len(out), "cols": out.shape[1]}


def child(kind: str, data: str) -> None:
    result = (run_retain if kind == "retain" else run_pandas)(Path(data))
    result["peak_gb"] = peak_gb()
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=20_000_000)
    parser.add_argument("--events", type=int, default=50_000_000)
    parser.add_argument("--skip-pandas", action="store_true", help="only time Retain's builders")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        make_tables(args.customers, args.orders, args.events, Path(tmp))
        print(f"generated data in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        results = {}
        for kind in ("retain", "pandas"):
            if kind == "pandas" and args.skip_pandas:
                continue
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_features", "--child", kind, tmp],
                capture_output=True,
                text=True,
                check=True,
            )
            results[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(kind, results[kind], file=sys.stderr)
    print(f"\nmachine: {platform.machine()}, {platform.python_version()}, 2 cores / 24 GB (this workplace)")
    print(f"data: {args.customers:,} customers, {args.orders:,} orders, {args.events:,} events\n")
    print("| implementation | load + validate (s) | features (s) | peak memory (GB) | columns |")
    print("|---|---|---|---|---|")
    for kind, r in results.items():
        print(f"| {kind} | {r['load_validate_s']:.1f} | {r['features_s']:.1f} | {r['peak_gb']:.2f} | {r['cols']} |")
    if "pandas" in results:
        print(
            f"\nspeed-up of the feature step: {results['pandas']['features_s'] / results['retain']['features_s']:.1f}x"
        )


if __name__ == "__main__":
    main()
