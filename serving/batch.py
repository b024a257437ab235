"""Score every customer as of a date into one file, and refresh the service's feature snapshot.

Reads: the contract tables, the champions. Writes: ``out`` (Parquet, or CSV on
request), the SQLite feature snapshot the service reads, one MLflow run in the
``retain-scoring`` experiment with counts (customers, churn_scored,
churn_unscored) and the distribution of the churn probabilities that exist.

Features are built once for everyone with the same ``build_features`` call
training uses (only the cutoff differs); scoring and writing then go chunk by
chunk, so the scorer's memory is bounded by ``chunk_size`` whatever the base
size. Both files are written beside their final path and renamed into place
(``features.io.atomic_path``): a killed run leaves the previous file or none,
never half of one. Rows are sorted by customer_id and nothing depends on the
clock, so a rerun on the same inputs writes a byte-identical file.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from analytics.config import LifecycleConfig
from analytics.lifecycle import ACTION, CONTACT_AT, STAGE, lifecycle
from features.build import build_features
from features.config import FeaturesConfig
from features.contract import CUSTOMER_ID, parse_cutoff
from features.io import atomic_path
from features.sources import Tables
from serving.config import ServingConfig
from serving.models import Models
from serving.scoring import BASE_ACTION, BASE_CONTACT, BASE_STAGE, LIFECYCLE_COLUMNS, score_frame
from serving.store import write_snapshot

log = logging.getLogger(__name__)

EXPERIMENT = "retain-scoring"
FORMATS = ("parquet", "csv")


@dataclass(frozen=True)
class BatchResult:
    out: Path
    customers: int
    seconds: float
    summary: dict[str, float]
    store: Path | None
    run_id: str | None


def snapshot_frame(
    tables: Tables,
    *,
    as_of,
    models: Models,
    features: FeaturesConfig,
    lifecycle_config: LifecycleConfig,
    vocabulary: dict | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """What scoring reads: every customer's features as of ``as_of`` plus the base lifecycle stage, its next action
    and when to contact (ISO 8601 UTC text), the ``LIFECYCLE_COLUMNS``.

    ``vocabulary``: the whole population's, when ``tables`` hold only some customers (a Spark partition).
    """
    frame = build_features(tables, cutoff=as_of, config=features, vocabulary=vocabulary, progress=progress)
    models.check_features(frame.columns, source=f"features built as of {as_of}")
    base = lifecycle(tables, as_of=as_of, churn_probability=None, config=lifecycle_config)
    base = base.set_index(CUSTOMER_ID).reindex(frame.index.astype("string"))
    frame[BASE_STAGE] = base[STAGE].to_numpy()
    frame[BASE_ACTION] = base[ACTION].to_numpy()
    contact = base[CONTACT_AT].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame[BASE_CONTACT] = pd.array(contact.to_numpy(dtype=object, na_value=None), dtype="string")
    return frame


def score_chunks(frame: pd.DataFrame, *, as_of, models: Models, config: ServingConfig, reasons: bool, chunk_size: int):
    """Yield scored chunks of ``frame`` in order."""
    for start in range(0, len(frame), chunk_size):
        yield score_frame(
            frame.iloc[start : start + chunk_size], as_of=as_of, models=models, config=config, reasons=reasons
        )


def clean_stale(path: Path) -> None:
    """Remove temporary files a killed run left beside ``path``."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)


def write_scores(chunks, out: Path, fmt: str, total: int, progress: bool = True) -> dict:
    """Stream chunks into ``out`` atomically; returns the distribution summary."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    clean_stale(out)
    summary = _Summary()
    columns = [TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with atomic_path(out) as tmp, Progress(*columns, transient=True, disable=not progress) as bar:
        task = bar.add_task("score", total=total)
        writer = None
        try:
            for chunk in chunks:
                summary.add(chunk)
                if fmt == "parquet":
                    table = pa.Table.from_pandas(chunk, preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table)
                else:
                    chunk.to_csv(tmp, mode="w" if writer is None else "a", header=writer is None, index=False)
                    writer = writer or True
                bar.advance(task, len(chunk))
        finally:
            if fmt == "parquet" and writer is not None:
                writer.close()
    return summary.result()


class _Summary:
    """Counts and the score distribution (over the customers with a churn probability), chunk by chunk."""

    def __init__(self):
        self.n = 0
        self.scored = 0
        self.hist = np.zeros(10, dtype=np.int64)
        self.total = 0.0
        self.counts: dict[str, int] = {}

    def add(self, chunk: pd.DataFrame) -> None:
        p = chunk["churn_probability"].to_numpy(dtype=np.float64)
        self.n += len(p)
        p = p[~np.isnan(p)]
        self.scored += len(p)
        self.total += float(p.sum())
        self.hist += np.histogram(p, bins=10, range=(0, 1))[0]
        for col in ("risk_band", "recommended_offer", "lifecycle_stage"):
            for key, count in chunk[col].fillna("unknown").value_counts().items():
                self.counts[f"{col}_{key}"] = self.counts.get(f"{col}_{key}", 0) + int(count)

    def result(self) -> dict[str, float]:
        out: dict[str, float] = {
            "customers": float(self.n),
            "churn_scored": float(self.scored),
            "churn_unscored": float(self.n - self.scored),
        }
        if self.scored:  # no distribution to report when nobody has a churn probability
            out["churn_probability_mean"] = self.total / self.scored
        cum = np.cumsum(self.hist) / max(self.scored, 1)
        for q in (0.1, 0.5, 0.9) if self.scored else ():  # decile-resolution quantiles from the histogram
            out[f"churn_probability_q{int(q * 100)}"] = float(np.searchsorted(cum, q) + 1) / 10
        out.update({f"churn_probability_bin_{i}": float(v) for i, v in enumerate(self.hist)})
        out.update({f"n_{k}": float(v) for k, v in self.counts.items()})
        return out


def run_batch(
    tables: Tables,
    *,
    as_of,
    models: Models,
    config: ServingConfig,
    features: FeaturesConfig,
    lifecycle_config: LifecycleConfig,
    out: str | Path,
    fmt: str = "parquet",
    reasons: bool = False,
    chunk_size: int | None = None,
    store: str | Path | None = None,
    track: bool = True,
    progress: bool = True,
) -> BatchResult:
    """Score every customer as of ``as_of`` into ``out``; refresh the snapshot at ``store``; log to MLflow."""
    started = time.perf_counter()
    out = Path(out)
    as_of_day = parse_cutoff(as_of).strftime("%Y-%m-%d")
    frame = snapshot_frame(tables, as_of=as_of, models=models, features=features, lifecycle_config=lifecycle_config)
    chunk_size = chunk_size or config.batch.chunk_size
    chunks = score_chunks(frame, as_of=as_of_day, models=models, config=config, reasons=reasons, chunk_size=chunk_size)
    summary = write_scores(chunks, out, fmt, len(frame), progress=progress)
    store_path = None
    if store is not None:
        store_path = Path(store)
        clean_stale(store_path)
        columns = [*models.features, *LIFECYCLE_COLUMNS]
        write_snapshot(frame.reset_index(), store_path, as_of=as_of_day, columns=columns)
    seconds = time.perf_counter() - started
    run_id = (
        _track(summary, out=out, as_of=as_of_day, models=models, reasons=reasons, seconds=seconds) if track else None
    )
    log.info("scored %d customers as of %s into %s in %.1fs", len(frame), as_of_day, out, seconds)
    return BatchResult(out, len(frame), seconds, summary, store_path, run_id)


def _track(summary: dict, *, out: Path, as_of: str, models: Models, reasons: bool, seconds: float) -> str:
    import mlflow

    from features.runtime import artifact_root, tracking_uri

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        mlflow.create_experiment(EXPERIMENT, artifact_location=artifact_root() if uri.startswith("sqlite:") else None)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=f"score-{as_of}") as run:
        mlflow.log_params(
            {
                "as_of": as_of,
                "out": str(out),
                "reasons": reasons,
                "churn_model": models.churn_label,
                "offer_model": models.offer_note,
            }
        )
        mlflow.log_metrics({**summary, "seconds": seconds})
    return run.info.run_id
