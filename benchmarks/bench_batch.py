"""Benchmark: batch scoring of 1,000,000 customers (churn + offer), with and without reasons, and on Spark.

Feature rows are the champions' real feature snapshot resampled to N customers
with fresh ids (building features for a million customers is bench_features'
subject). Each variant runs in its own process so peak memory (max RSS) is its
own: the scoring loop of ``serving.batch`` (chunks, atomic Parquet) and Spark
``local[2]`` mapInPandas over the same Parquet features. Run from the repo root:

    .venv/bin/python -m benchmarks.bench_batch --customers 1000000

Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AS_OF = "2026-06-01"


def make_features(n: int, out: Path, seed: int = 0) -> None:
    import numpy as np

    from benchmarks.bench_service import prepare

    _, configs, _ = prepare(ROOT / "outputs" / "bench_serving")
    store = Path(json.loads((ROOT / "outputs" / "bench_serving" / "ready.json").read_text())["configs"]).parent
    from serving.store import SQLiteStore

    base = SQLiteStore(store / "store.sqlite").frame()
    rng = np.random.default_rng(seed)
    frame = base.iloc[rng.integers(0, len(base), n)].reset_index(drop=True)
    frame["customer_id"] = np.char.add("b", np.char.zfill(np.arange(n).astype(str), 8))
    frame.to_parquet(out, index=False)


def child(kind: str, features: Path, out: Path, reasons: bool, chunk: int) -> None:
    """One measured run; prints JSON with seconds and peak RSS."""
    import pandas as pd

    info = json.loads((ROOT / "outputs" / "bench_serving" / "ready.json").read_text())
    os.environ["MLFLOW_TRACKING_URI"] = info["uri"]
    from features.config import FeaturesConfig
    from serving.config import ServingConfig
    from serving.job import ScoringJob
    from serving.models import load_models

    config = ServingConfig.load(Path(info["configs"]))
    models = load_models(config)
    job = ScoringJob(AS_OF, models, config, FeaturesConfig(), reasons=reasons)

    def cpu() -> float:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime

    if kind == "batch":
        from serving.batch import score_chunks
        from serving.writer import write_scores

        frame = pd.read_parquet(features).set_index("customer_id")
        cpu0 = cpu()
        started = time.perf_counter()
        chunks = score_chunks(frame, job, chunk)
        write_scores(chunks, out, "parquet", len(frame), progress=False)
        seconds = time.perf_counter() - started
        cpu_s = cpu() - cpu0
        n = len(frame)
    else:
        from serving.spark import local_session, score_spark

        spark = local_session(2)
        cpu_s = float("nan")  # the work runs in Spark's Python workers and the JVM, not here
        started = time.perf_counter()
        sdf = spark.read.parquet(str(features))
        score_spark(sdf, job, partitions=8).write.mode("overwrite").parquet(str(out))
        seconds = time.perf_counter() - started
        n = spark.read.parquet(str(out)).count()
        spark.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    trees = (models.churn.booster.num_trees(), sum(b.num_trees() for b in models.offer.boosters) if models.offer else 0)
    print(json.dumps({"customers": n, "seconds": seconds, "cpu_s": cpu_s, "peak_rss_mb": rss, "trees": trees}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000, help="customers to score")
    parser.add_argument("--chunk-size", type=int, default=100_000, help="customers per chunk")
    parser.add_argument("--no-spark", action="store_true", help="skip the Spark local[2] run")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, features, out, reasons = args.child
        child(kind, Path(features), Path(out), reasons == "1", args.chunk_size)
        return
    with tempfile.TemporaryDirectory() as tmp:
        features = Path(tmp) / "features.parquet"
        t = time.perf_counter()
        make_features(args.customers, features)
        print(f"made {args.customers:,} feature rows in {time.perf_counter() - t:.1f}s")
        runs = [("batch", False), ("batch", True)] + ([] if args.no_spark else [("spark", False)])
        rows = []
        for kind, reasons in runs:
            out = Path(tmp) / f"scores-{kind}-{int(reasons)}.parquet"
            cmd = [sys.executable, "-m", "benchmarks.bench_batch", "--chunk-size", str(args.chunk_size)]
            cmd += ["--child", kind, str(features), str(out), "1" if reasons else "0"]
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if done.returncode != 0:
                print(done.stderr[-3000:])
                raise SystemExit(f"{kind} run failed")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append((kind, reasons, result))
    load = os.getloadavg()
    print(
        f"\n{os.cpu_count()} cores, load average {load[0]:.1f} at the end; trees (churn, offer) = {rows[0][2]['trees']}\n"
    )
    print("| path | reasons | customers | seconds | customers/s | CPU s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for kind, reasons, r in rows:
        label = "serving.batch (chunks, Parquet)" if kind == "batch" else "Spark local[2] mapInPandas"
        rate = r["customers"] / r["seconds"]
        print(
            f"| {label} | {'yes' if reasons else 'no'} | {r['customers']:,} | {r['seconds']:.1f} | {rate:,.0f} "
            f"| {r['cpu_s']:.1f} | {r['peak_rss_mb']:,.0f} |"
        )


if __name__ == "__main__":
    main()
