"""Benchmark: raw tables to scores, one machine (DuckDB build + batch scorer) against Spark local[2] per partition.

Both start from the same contract tables in Parquet (demo data, N customers)
and end with a Parquet file of scores (churn + offer, no reasons): the
single-machine path is ``retain score``'s (``serving.batch``: load, validate,
build features once, lifecycle, score in chunks); the Spark path is
``serving.spark.score_tables_spark`` (vocabulary on the driver, every partition
of customers validated, built and scored). Each runs in its own process.
Champions: ``outputs/bench_serving`` (see bench_service). Run from the repo root:

    .venv/bin/python -m benchmarks.bench_spark_tables --customers 100000

Prints a Markdown table for docs/benchmarks.md. On one 2-core machine Spark
cannot win (it adds the JVM, Arrow transfers and a shuffle); the number says
what the portability costs, and that the path works at this size.
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
OFFERS = ("free_shipping", "discount_20")


def make_tables(n: int, folder: Path) -> dict[str, int]:
    from simulator.demo_data import generate

    demo = generate(n, days=730, seed=11)
    folder.mkdir(parents=True, exist_ok=True)
    rows = {}
    for name, frame in demo.tables.items():
        if name != "offers":
            frame.to_parquet(folder / f"{name}.parquet", index=False)
            rows[name] = len(frame)
    return rows


def child(kind: str, data: Path, out: Path, partitions: int) -> None:
    """One measured run; prints JSON with seconds and peak RSS of this process."""
    info = json.loads((ROOT / "outputs" / "bench_serving" / "ready.json").read_text())
    os.environ["MLFLOW_TRACKING_URI"] = info["uri"]
    from features.config import FeaturesConfig
    from serving.config import ServingConfig
    from serving.job import ScoringJob
    from serving.models import load_models

    config = ServingConfig.load(Path(info["configs"]))
    job = ScoringJob(AS_OF, load_models(config), config, FeaturesConfig())
    started = time.perf_counter()
    if kind == "one machine":
        from features.sources import load_tables
        from serving.batch import score_chunks
        from serving.inputs import snapshot_frame
        from serving.writer import write_scores

        tables = load_tables(data, offers=OFFERS)
        frame = snapshot_frame(tables, job, progress=False)
        chunks = score_chunks(frame, job, 100_000)
        write_scores(chunks, out, "parquet", len(frame), progress=False)
        seconds = time.perf_counter() - started
        import pandas as pd

        n = len(pd.read_parquet(out, columns=["customer_id"]))
    else:
        from serving.spark import local_session, score_tables_spark
        from serving.spark_tables import read_tables

        spark = local_session(2)
        scores = score_tables_spark(read_tables(spark, str(data)), job, partitions=partitions, offers=OFFERS)
        scores.write.mode("overwrite").parquet(str(out))
        seconds = time.perf_counter() - started
        n = spark.read.parquet(str(out)).count()
        spark.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"customers": n, "seconds": seconds, "peak_rss_mb": rss}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000, help="demo customers")
    parser.add_argument("--partitions", type=int, default=8, help="Spark partitions of customers")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, data, out = args.child
        child(kind, Path(data), Path(out), args.partitions)
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "tables"
        t = time.perf_counter()
        rows = make_tables(args.customers, data)
        print(f"made demo tables {rows} in {time.perf_counter() - t:.1f}s")
        results = []
        for kind in ("one machine", "spark"):
            out = Path(tmp) / f"scores-{kind.replace(' ', '_')}.parquet"
            cmd = [sys.executable, "-m", "benchmarks.bench_spark_tables", "--partitions", str(args.partitions)]
            done = subprocess.run(
                [*cmd, "--child", kind, str(data), str(out)], cwd=ROOT, capture_output=True, text=True
            )
            if done.returncode != 0:
                print(done.stderr[-3000:])
                raise SystemExit(f"{kind} run failed")
            results.append((kind, json.loads(done.stdout.strip().splitlines()[-1])))
    load = os.getloadavg()
    print(f"\n{os.cpu_count()} cores, load average {load[0]:.1f} at the end, {args.partitions} Spark partitions\n")
    print("| path | customers scored | seconds | customers/s | peak RSS MB (this process) |")
    print("|---|---|---|---|---|")
    for kind, r in results:
        line = f"| {kind} | {r['customers']:,} | {r['seconds']:.1f} | {r['customers'] / r['seconds']:,.0f} |"
        print(f"{line} {r['peak_rss_mb']:,.0f} |")
    ratio = results[1][1]["seconds"] / results[0][1]["seconds"]
    print(f"\nSpark / one machine: {ratio:.2f}x the time")


if __name__ == "__main__":
    main()
