"""Benchmark: what customer value adds to batch scoring (the value columns' build and the value fields).

The test champions (``tests.serving_champions``: churn with its value model, offers; trained on 2,500 demo
customers) score a larger demo shop as of 2026-06-01, once with the value model and once without it (the same
champions, ``Models.value`` removed), each step timed in wall and CPU seconds. Run from the repo root:

    .venv/bin/python -m benchmarks.bench_value_scoring --customers 20000

Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

AS_OF = "2026-06-01"


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    args = parser.parse_args()

    from features.runtime import quiet_telemetry
    from features.sources import check_tables
    from serving.batch import score_chunks
    from serving.config import ServingConfig
    from serving.inputs import snapshot_frame
    from serving.models import load_models
    from simulator.demo_data import generate
    from tests.serving_champions import champions, scoring_job

    quiet_telemetry()
    root = Path(tempfile.mkdtemp(prefix="bench-value-"))
    champions(root)
    models = load_models(ServingConfig())
    assert models.value is not None, "the champions' churn run has no value model"
    without = dataclasses.replace(models, value=None, value_note="no value model: removed for the benchmark")
    tables = check_tables(generate(args.customers, days=730, seed=7).tables, offers=("free_shipping", "discount_20"))
    config = ServingConfig()
    print(f"{args.customers:,} demo customers, value model {models.value_label}, as of {AS_OF}\n")
    print("| value model | snapshot_frame s (CPU s) | scoring s (CPU s) | total s (CPU s) |")
    print("|---|---|---|---|")
    for label, m in (("without", without), ("with", models)) * 2:  # twice, alternating: warm-up counts once
        frame, build_s, build_cpu = _timed(lambda m=m: snapshot_frame(tables, scoring_job(m, config), progress=False))
        _, score_s, score_cpu = _timed(
            lambda m=m, frame=frame: list(score_chunks(frame, scoring_job(m, config), 100_000))
        )
        print(
            f"| {label} | {build_s:.2f} ({build_cpu:.2f}) | {score_s:.2f} ({score_cpu:.2f}) | "
            f"{build_s + score_s:.2f} ({build_cpu + score_cpu:.2f}) |"
        )


if __name__ == "__main__":
    main()
