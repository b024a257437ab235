"""Score every customer as of a date into one file, and refresh the service's feature snapshot.

Reads: the contract tables, the champions. Writes: ``out`` (Parquet, or CSV on
request), the SQLite feature snapshot the service reads, one MLflow run in the
``retain-scoring`` experiment (``serving.batch_tracking``) with counts (customers,
churn_scored, churn_unscored), the distribution of the churn probabilities that
exist, the predicted value and value at risk in total, and
``<out stem>.drift.csv``: the PSI of each churn feature over the customers the
churn model scores against the champion's training rows (``serving.drift``).

Features are built once for everyone (``serving.inputs``); scoring and writing
then go chunk by chunk, so the scorer's memory is bounded by ``chunk_size``
whatever the base size. Both files are written beside their final path and
renamed into place (``serving.writer``). Rows are sorted by customer_id and
nothing depends on the clock, so a rerun on the same inputs writes a
byte-identical file.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from features.io import atomic_path
from features.sources import Tables
from modeling.churn_model import buyers
from serving.batch_tracking import log_run
from serving.champions import Models
from serving.config import ServingConfig
from serving.drift import DriftCheck, check, table_path
from serving.inputs import snapshot_frame
from serving.job import ScoringJob
from serving.schema import LIFECYCLE_COLUMNS
from serving.scoring import score_frame
from serving.store import fill_snapshot
from serving.writer import BatchError, clean_stale, fill_scores, output_lock, sha256

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchResult:
    out: Path
    customers: int
    seconds: float
    summary: dict[str, float]
    store: Path | None
    run_id: str | None
    drift: DriftCheck | None = None  # the scored features vs the churn champion's training rows


def score_chunks(frame: pd.DataFrame, job: ScoringJob, chunk_size: int):
    """Yield scored chunks of ``frame`` in order."""
    for start in range(0, len(frame), chunk_size):
        yield score_frame(frame.iloc[start : start + chunk_size], job)


def run_batch(
    tables: Tables,
    job: ScoringJob,
    *,
    out: str | Path,
    fmt: str = "parquet",
    chunk_size: int | None = None,
    store: str | Path | None = None,
    track: bool = True,
    progress: bool = True,
) -> BatchResult:
    """Score every customer as of ``job.as_of`` into ``out``; refresh the snapshot at ``store``; log to MLflow."""
    started = time.perf_counter()
    out = Path(out)
    models, config = job.models, job.config
    frame = snapshot_frame(tables, job)
    drift = check_drift(frame, models, config)
    chunks = score_chunks(frame, job, chunk_size or config.batch.chunk_size)
    store_path = None if store is None else Path(store)
    drift_path = table_path(out)
    outputs = [out, drift_path] if store_path is None else [out, drift_path, store_path]
    try:
        with output_lock(*outputs), contextlib.ExitStack() as renames:
            # both files are written beside their final paths first and renamed together at the end (the
            # snapshot first), so a failure or a kill before that leaves the old pair; the snapshot records
            # the scores file it belongs with (scores_sha256 in its meta)
            for path in outputs:
                clean_stale(path)
            tmp_out = renames.enter_context(atomic_path(out))
            tmp_store = None if store_path is None else renames.enter_context(atomic_path(store_path))
            if drift.table is not None:
                drift.table.to_csv(renames.enter_context(atomic_path(drift_path)), index=False)
            summary = fill_scores(chunks, tmp_out, fmt, len(frame), progress=progress)
            if tmp_store is not None:
                columns = [*models.inputs, *LIFECYCLE_COLUMNS]
                extra = {"scores_sha256": sha256(tmp_out), "scores_file": out.name}
                fill_snapshot(tmp_store, frame.reset_index(), as_of=job.day, columns=columns, extra=extra)
            if drift.table is None:  # an older table would describe other scores; a failed run keeps the old pair
                drift_path.unlink(missing_ok=True)
    except OSError as exc:
        where = exc.filename or out
        raise BatchError(f"{where}: cannot write ({exc.strerror or exc}); nothing was replaced") from exc
    seconds = time.perf_counter() - started
    run_id = log_run(summary, job, out=out, seconds=seconds, drift=drift) if track else None
    log.info("scored %d customers as of %s into %s in %.1fs", len(frame), job.day, out, seconds)
    return BatchResult(out, len(frame), seconds, summary, store_path, run_id, drift)


def check_drift(frame: pd.DataFrame, models: Models, config: ServingConfig) -> DriftCheck:
    """The features of the customers the churn model scores (buyers) against its champion's training rows."""
    if models.churn is None:
        return DriftCheck(None, f"{models.churn_label}, so no training population to compare with")
    scored, drift = buyers(frame, len(frame)), config.drift
    return check(frame, scored, models.churn.name, models.churn.version, alarm=drift.psi, confidence=drift.confidence)
