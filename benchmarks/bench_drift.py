"""Benchmark: the drift check of ``retain score`` beside the scoring it rides on, same customers, same process.

Feature rows are the champions' real feature snapshot resampled to N customers with fresh ids (as in
bench_batch). Measured, one after the other: ``serving.batch.check_drift`` (buyers, the reference from the
registry, PSI of every churn feature) and the batch scoring loop (``score_chunks`` + ``write_scores``, Parquet,
no reasons). Then false alarms under no drift: a 300-customer reference and scored populations of each size
drawn from the same distribution (``tests/modeling/test_drift.py``'s shop), the share of feature checks over 0.25 alone
and over the threshold. Run from the repo root:

    .venv/bin/python -m benchmarks.bench_drift --customers 1000000

Prints Markdown tables for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AS_OF = "2026-06-01"
WORK = ROOT / "outputs" / "bench_drift"  # champions trained with a drift reference (bench_serving's may predate it)


def cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def measure(n: int, chunk: int, seed: int = 0) -> dict:
    import numpy as np

    from benchmarks.bench_service import prepare
    from features.config import FeaturesConfig
    from serving.batch import check_drift, score_chunks
    from serving.config import ServingConfig
    from serving.job import ScoringJob
    from serving.models import load_models
    from serving.store import SQLiteStore
    from serving.writer import write_scores

    uri, configs, _ = prepare(WORK)
    os.environ["MLFLOW_TRACKING_URI"] = uri
    config = ServingConfig.load(configs)
    models = load_models(config)
    base = SQLiteStore(Path(json.loads((WORK / "ready.json").read_text())["configs"]).parent / "store.sqlite").frame()
    rng = np.random.default_rng(seed)
    frame = base.iloc[rng.integers(0, len(base), n)].reset_index(drop=True)
    frame["customer_id"] = np.char.add("b", np.char.zfill(np.arange(n).astype(str), 8))
    frame = frame.set_index("customer_id")
    out = {"customers": n, "features": len(models.churn.features)}
    c0, t0 = cpu(), time.perf_counter()
    drift = check_drift(frame, models, config)
    out.update(drift_s=time.perf_counter() - t0, drift_cpu_s=cpu() - c0, psi_s=drift.seconds)
    out["buyers"] = int(drift.table["n_scored"].iloc[0])
    out["drifted"] = int(drift.table["drifted"].sum())
    with tempfile.TemporaryDirectory() as tmp:
        c0, t0 = cpu(), time.perf_counter()
        chunks = score_chunks(frame, ScoringJob(AS_OF, models, config, FeaturesConfig()), chunk)
        write_scores(chunks, Path(tmp) / "scores.parquet", "parquet", len(frame), progress=False)
        out.update(score_s=time.perf_counter() - t0, score_cpu_s=cpu() - c0)
    return out


def false_alarms(sizes: list[int], draws: int, seed: int = 1) -> list[tuple[int, float, float]]:
    """(scored size, share of checks with PSI > 0.25, share flagged by the threshold) under no drift."""
    import numpy as np
    import pandas as pd

    from modeling.drift import reference
    from serving.drift import drift_table
    from tests.modeling.test_drift import _population as population

    rng = np.random.default_rng(seed)
    ref = reference(population(rng, 300), pd.Series(np.arange(300)))
    out = []
    for n in sizes:
        tables = [drift_table(population(rng, n), ref, alarm=0.25, confidence=0.99) for _ in range(draws)]
        checks = sum(len(t) for t in tables)
        fixed = sum(int((t["psi"] > 0.25).sum()) for t in tables) / checks
        out.append((n, fixed, sum(int(t["drifted"].sum()) for t in tables) / checks))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000, 1_000_000], help="population sizes")
    parser.add_argument("--chunk-size", type=int, default=100_000, help="customers per scoring chunk")
    parser.add_argument("--draws", type=int, default=400, help="simulated populations per size (false alarms)")
    args = parser.parse_args()
    rows = [measure(n, args.chunk_size) for n in args.customers]
    load = os.getloadavg()
    print(f"\n{os.cpu_count()} cores, load average {load[0]:.1f} at the end; {rows[0]['features']} churn features\n")
    print(
        "| customers | buyers checked | drift check s (CPU s) | of which PSI s | scoring s (CPU s) | drift / scoring |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['customers']:,} | {r['buyers']:,} | {r['drift_s']:.2f} ({r['drift_cpu_s']:.2f}) | {r['psi_s']:.2f} "
            f"| {r['score_s']:.1f} ({r['score_cpu_s']:.1f}) | {r['drift_s'] / r['score_s']:.1%} |"
        )
    print(f"\nNo drift, 300-customer reference, {args.draws} populations per size, 3 features each:\n")
    print("| scored customers | checks with PSI > 0.25 | checks flagged (threshold) |")
    print("|---|---|---|")
    for n, fixed, flagged in false_alarms([25, 50, 100, 500], args.draws):
        print(f"| {n:,} | {fixed:.1%} | {flagged:.1%} |")


if __name__ == "__main__":
    main()
