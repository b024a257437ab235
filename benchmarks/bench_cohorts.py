"""Cohort report + KPIs on synthetic orders: DuckDB path vs a plain-pandas baseline.

    .venv/bin/python benchmarks/bench_cohorts.py --orders 20000000 --customers 1000000

Each step runs in a forked child so its peak memory (resource.getrusage ru_maxrss)
is its own; the data (generated once with numpy, typed as the contract types it)
is shared and reported separately. The two paths' cohort counts must agree.
"""

from __future__ import annotations

import argparse
import os
import pickle
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics.cohorts import cohort_retention  # noqa: E402
from analytics.kpis import kpis  # noqa: E402
from features.sources import Tables  # noqa: E402

END = pd.Timestamp("2025-01-01")
DAYS = 730
HORIZON = 90


def make_tables(n_orders: int, n_customers: int, seed: int = 0) -> Tables:
    """Customers join uniformly over two years and order uniformly between joining and END."""
    rng = np.random.default_rng(seed)
    joined = rng.uniform(0, DAYS * 86400, n_customers)
    cust = rng.integers(0, n_customers, n_orders).astype(np.int32)
    secs = joined[cust] + rng.uniform(0, 1, n_orders) * (DAYS * 86400 - joined[cust])
    start = END - pd.Timedelta(days=DAYS)
    names = pa.array([f"c{i:07d}" for i in range(n_customers)])
    ids = pa.DictionaryArray.from_arrays(pa.array(cust), names).cast(pa.string())
    orders = pd.DataFrame(
        {
            "customer_id": pd.Series(pd.arrays.ArrowStringArray(ids)),
            "ordered_at": (start.to_datetime64() + (secs * 1e6).astype("timedelta64[us]")).astype("datetime64[us]"),
            "amount": rng.gamma(2.0, 25.0, n_orders).round(2),
        }
    )
    customers = pd.DataFrame(
        {
            "customer_id": pd.Series(pd.arrays.ArrowStringArray(names)),
            "region": pd.Series(rng.choice(["north", "south", "east", "west"], n_customers)).astype("string"),
        }
    )
    return Tables(customers=customers, orders=orders)


def retain_path(tables: Tables):
    """The shipped code: DuckDB over the pandas frames."""
    start = END - pd.Timedelta(days=HORIZON)
    cohorts = cohort_retention(tables, as_of=END, period="month")
    k = dict(start=start, end=END, horizon_days=HORIZON, data_end=END)
    out = [kpis(tables, **k), kpis(tables, **k, by="cohort"), kpis(tables, **k, by="region")]
    return cohorts.counts.fillna(0).astype("int64"), out[0]


def pandas_path(tables: Tables):
    """Plain pandas, written the obvious way: groupby, drop_duplicates, unstack."""
    o = tables.orders
    t = o["ordered_at"]
    month = (t.dt.year * 12 + t.dt.month - 1).astype("int32")
    first = month.groupby(o["customer_id"]).transform("min")
    pairs = pd.DataFrame({"c": o["customer_id"], "cohort": first, "k": month - first}).drop_duplicates()
    counts = pairs.groupby(["cohort", "k"]).size().unstack(fill_value=0)
    start = END - pd.Timedelta(days=HORIZON)
    before, inside = t < start, (t >= start) & (t < END)
    g = pd.DataFrame({"c": o["customer_id"], "b": before, "i": inside, "a": o["amount"].where(inside, 0.0)})
    per = g.groupby("c").agg(n_before=("b", "sum"), n_in=("i", "sum"), rev_in=("a", "sum"))
    per = per.join(tables.customers.set_index("customer_id")["region"])
    per["cohort"] = first.groupby(o["customer_id"]).first()
    rows = []
    for key in (None, "cohort", "region"):
        grp = per.groupby(key) if key else per.groupby(lambda _: "all")
        base = grp["n_before"].apply(lambda s: (s > 0).sum())
        retained = grp.apply(lambda d: ((d.n_before > 0) & (d.n_in > 0)).sum())
        buyers = grp["n_in"].apply(lambda s: (s > 0).sum())
        rows.append(pd.DataFrame({"retention_rate": retained / base, "aov": grp.rev_in.sum() / grp.n_in.sum(),
                                  "frequency": grp.n_in.sum() / buyers}))  # fmt: skip
    return counts, rows[0]


def measure(func, tables: Tables) -> dict:
    """Run ``func`` in a forked child; return wall time, peak RSS and the result."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read)
        t0 = time.perf_counter()
        result = func(tables)
        wall = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        with os.fdopen(write, "wb") as f:
            pickle.dump({"wall_s": wall, "peak_mb": peak, "result": result}, f)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        out = pickle.load(f)
    os.waitpid(pid, 0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=20_000_000, help="synthetic orders")
    ap.add_argument("--customers", type=int, default=1_000_000, help="synthetic customers")
    ap.add_argument("--skip-pandas", action="store_true", help="skip the plain-pandas baseline")
    args = ap.parse_args()
    t0 = time.perf_counter()
    tables = make_tables(args.orders, args.customers)
    gen = time.perf_counter() - t0
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"generated {args.orders:,} orders for {args.customers:,} customers in {gen:.1f} s; RSS {base:,.0f} MB")
    print(f"cpus={os.cpu_count()} pandas={pd.__version__} numpy={np.__version__}")
    ours = measure(retain_path, tables)
    print(f"retain (DuckDB): {ours['wall_s']:.2f} s, peak RSS {ours['peak_mb']:,.0f} MB")
    print(ours["result"][1].T.to_string())
    if not args.skip_pandas:
        plain = measure(pandas_path, tables)
        print(f"plain pandas:    {plain['wall_s']:.2f} s, peak RSS {plain['peak_mb']:,.0f} MB")
        a, b = ours["result"][0], plain["result"][0]
        assert a.to_numpy().sum() == b.to_numpy().sum(), "cohort counts differ"
        assert np.array_equal(a.to_numpy(), b.reindex(columns=range(a.shape[1]), fill_value=0).to_numpy())
        print(f"speed-up: {plain['wall_s'] / ours['wall_s']:.1f}x; cohort counts identical")


if __name__ == "__main__":
    main()
