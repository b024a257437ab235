"""Score every customer as of a date into one file, and refresh the service's feature snapshot.

Reads: the contract tables, the champions. Writes: ``out`` (Parquet, or CSV on
request), the SQLite feature snapshot the service reads, one MLflow run in the
``retain-scoring`` experiment with counts (customers, churn_scored,
churn_unscored), the distribution of the churn probabilities that exist, the
predicted value and value at risk in total with a plot of the predicted values, and
``<out stem>.drift.csv``: the PSI of each churn feature over the customers the
churn model scores against the champion's training rows (``serving.drift``).

Features are built once for everyone with the same ``build_features`` call
training uses (only the cutoff differs); scoring and writing then go chunk by
chunk, so the scorer's memory is bounded by ``chunk_size`` whatever the base
size. Both files are written beside their final path and renamed into place
(``features.io.atomic_path``): a killed run leaves the previous file or none,
never half of one. Rows are sorted by customer_id and nothing depends on the
clock, so a rerun on the same inputs writes a byte-identical file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from features.build import build_features
from features.config import FeaturesConfig
from features.contract import CUSTOMER_ID, parse_cutoff
from features.io import atomic_path
from features.sources import Tables
from features.value import value_columns
from modeling.lifecycle import ACTION, CONTACT_AT, STAGE, LifecycleConfig, lifecycle
from serving.config import ServingConfig
from serving.drift import DriftCheck, check, table_path
from serving.models import Models
from serving.scoring import BASE_ACTION, BASE_CONTACT, BASE_STAGE, LIFECYCLE_COLUMNS, buyers, score_frame
from serving.store import fill_snapshot

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
    drift: DriftCheck | None = None  # the scored features vs the churn champion's training rows


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
    """What scoring reads: every customer's features as of ``as_of``, the value columns (``features.value``) when
    there is a value model, and the base lifecycle stage, its next action and when to contact (ISO 8601 UTC text),
    the ``LIFECYCLE_COLUMNS``.

    ``vocabulary``: the whole population's, when ``tables`` hold only some customers (a Spark partition).
    """
    beside = (value_columns,) if models.value is not None else ()  # the value model's own columns
    frame = build_features(
        tables, cutoff=as_of, config=features, vocabulary=vocabulary, progress=progress, beside=beside
    )
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


class BatchError(RuntimeError):
    """The outputs cannot be written (busy, read-only, full, a folder where a file belongs); exit 2 in the CLI."""


def clean_stale(path: Path) -> None:
    """Remove temporary files a killed run left beside ``path``; call it only while holding ``output_lock``
    (another live run's temporary file looks the same)."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)


@contextlib.contextmanager
def output_lock(*paths: Path):
    """An exclusive lock per output (``.<name>.lock`` beside it) for the whole run; a second run on the same
    outputs stops at once with BatchError instead of deleting the first one's temporary files."""
    held: list[int] = []
    try:
        for path in sorted({Path(p).resolve() for p in paths}):
            if path.is_dir():
                raise BatchError(f"{path}: is a folder; expected a file path for the output")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                raise BatchError(f"{path}: cannot write there ({exc.strerror or exc})") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                os.close(fd)
                raise BatchError(
                    f"{path}: another retain score is writing it now; wait for it to finish, or choose another "
                    "--out / --store"
                ) from exc
            held.append(fd)
        yield
    finally:
        for fd in held:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def write_scores(chunks, out: Path, fmt: str, total: int, progress: bool = True) -> dict:
    """Stream chunks into ``out`` atomically; returns the distribution summary."""
    out = Path(out)
    with output_lock(out):
        clean_stale(out)
        with atomic_path(out) as tmp:
            return fill_scores(chunks, tmp, fmt, total, progress=progress)


def fill_scores(chunks, tmp: Path, fmt: str, total: int, progress: bool = True) -> dict:
    """Stream chunks into the new file ``tmp`` (``write_scores`` without the lock and the rename)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    summary = _Summary()
    columns = [TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, transient=True, disable=not progress) as bar:
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
        self.value = {"value_scored": 0.0, "predicted_value_total": 0.0, "value_at_risk_total": 0.0}

    def add(self, chunk: pd.DataFrame) -> None:
        p = chunk["churn_probability"].to_numpy(dtype=np.float64)
        self.n += len(p)
        p = p[~np.isnan(p)]
        self.scored += len(p)
        self.total += float(p.sum())
        self.hist += np.histogram(p, bins=10, range=(0, 1))[0]
        value = chunk["predicted_value"].to_numpy(dtype=np.float64)
        self.value["value_scored"] += float(np.isfinite(value).sum())
        self.value["predicted_value_total"] += float(np.nansum(value))
        self.value["value_at_risk_total"] += float(np.nansum(chunk["value_at_risk"].to_numpy(dtype=np.float64)))
        for col in ("risk_band", "recommended_offer", "lifecycle_stage"):
            for key, count in chunk[col].fillna("unknown").value_counts().items():
                self.counts[f"{col}_{key}"] = self.counts.get(f"{col}_{key}", 0) + int(count)

    def result(self) -> dict[str, float]:
        out: dict[str, float] = {
            "customers": float(self.n),
            "churn_scored": float(self.scored),
            "churn_unscored": float(self.n - self.scored),
            **{k: round(v, 2) for k, v in self.value.items()},
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
    drift = check_drift(frame, models, config)
    chunk_size = chunk_size or config.batch.chunk_size
    chunks = score_chunks(frame, as_of=as_of_day, models=models, config=config, reasons=reasons, chunk_size=chunk_size)
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
                extra = {"scores_sha256": _sha256(tmp_out), "scores_file": out.name}
                fill_snapshot(tmp_store, frame.reset_index(), as_of=as_of_day, columns=columns, extra=extra)
            if drift.table is None:  # an older table would describe other scores; a failed run keeps the old pair
                drift_path.unlink(missing_ok=True)
    except OSError as exc:
        where = exc.filename or out
        raise BatchError(f"{where}: cannot write ({exc.strerror or exc}); nothing was replaced") from exc
    seconds = time.perf_counter() - started
    run_id = (
        _track(summary, out=out, as_of=as_of_day, models=models, reasons=reasons, seconds=seconds, drift=drift)
        if track
        else None
    )
    log.info("scored %d customers as of %s into %s in %.1fs", len(frame), as_of_day, out, seconds)
    return BatchResult(out, len(frame), seconds, summary, store_path, run_id, drift)


def check_drift(frame: pd.DataFrame, models: Models, config: ServingConfig) -> DriftCheck:
    """The features of the customers the churn model scores (buyers) against its champion's training rows."""
    if models.churn is None:
        return DriftCheck(None, f"{models.churn_label}, so no training population to compare with")
    scored, drift = buyers(frame, len(frame)), config.drift
    return check(frame, scored, models.churn.name, models.churn.version, alarm=drift.psi, confidence=drift.confidence)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _track(
    summary: dict, *, out: Path, as_of: str, models: Models, reasons: bool, seconds: float, drift: DriftCheck
) -> str:
    import mlflow

    from modeling.tracking import use_experiment

    use_experiment(EXPERIMENT)
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
        mlflow.log_metrics({**summary, "seconds": seconds, **drift.metrics()})
        if drift.table is None:
            mlflow.set_tag("drift", f"not checked: {drift.note}")
        else:
            mlflow.log_artifact(str(table_path(out)))
    return run.info.run_id
