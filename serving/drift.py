"""Feature drift at scoring time: PSI of the scored population against the churn champion's training rows.

The reference and the statistic are ``modeling.drift``'s; here the scored frame becomes the drift table
(one row per feature, most drifted first), the table is written beside the scores, and the reference is
fetched from the champion's run. A feature drifts only when its PSI exceeds ``modeling.drift.threshold``.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.descriptions import describe
from modeling.drift import REFERENCE_FILE, Reference, psi, threshold

TABLE_SUFFIX = ".drift.csv"
COLUMNS = (
    "feature",
    "description",
    "psi",
    "threshold",
    "drifted",
    "n_scored",
    "n_reference",
    "bins",
    "training_spread",
    "moved_bin",
    "moved_reference_share",
    "moved_scored_share",
)


def drift_table(
    frame: pd.DataFrame, ref: Reference, *, alarm: float, confidence: float, rows: np.ndarray | None = None
) -> pd.DataFrame:
    """One row per reference feature (``COLUMNS``), most drifted first, over ``frame``'s scored ``rows`` (a mask;
    all rows when None). Each column is masked on its own: copying a whole wide frame costs more than the PSI."""
    n = len(frame) if rows is None else int(rows.sum())
    out = []
    for b in ref.bins:
        values = frame[b.feature]
        counts = b.counts(values if rows is None else values[rows])
        value, used = psi(np.asarray(b.shares), ref.n_rows, counts)
        limit = threshold(used, n, ref.n_customers, alarm=alarm, confidence=confidence, spread=b.spread)
        scored = counts / n
        moved = int(np.argmax(np.abs(scored - np.asarray(b.shares))))
        out.append(
            {
                "feature": b.feature,
                "description": describe(b.feature).text,
                "psi": value,
                "threshold": limit,
                "drifted": value > limit,
                "n_scored": n,
                "n_reference": ref.n_customers,
                "bins": used,
                "training_spread": b.spread,
                "moved_bin": b.labels[moved],
                "moved_reference_share": b.shares[moved],
                "moved_scored_share": float(scored[moved]),
            }
        )
    table = pd.DataFrame(out, columns=list(COLUMNS))
    return table.sort_values(["psi", "feature"], ascending=[False, True], kind="stable").reset_index(drop=True)


def table_path(scores: str | Path) -> Path:
    """Where the drift table of a scores file lives: ``scores.parquet`` -> ``scores.drift.csv``."""
    scores = Path(scores)
    return scores.with_name(scores.stem + TABLE_SUFFIX)


@dataclass(frozen=True)
class DriftCheck:
    """The drift table of a scoring run, or why there is none (``note``)."""

    table: pd.DataFrame | None
    note: str = ""
    seconds: float = 0.0

    @property
    def drifted(self) -> pd.DataFrame:
        return self.table[self.table["drifted"]] if self.table is not None else pd.DataFrame(columns=list(COLUMNS))

    def metrics(self) -> dict[str, float]:
        """For the scoring run: the summary, and each feature's PSI (``drift_psi_<feature>``, to chart over runs)."""
        if self.table is None:
            return {}
        return {
            "drift_max_psi": float(self.table["psi"].max()) if len(self.table) else 0.0,
            "drift_features_drifted": float(self.table["drifted"].sum()),
            "drift_features_checked": float(len(self.table)),
            "drift_seconds": self.seconds,
            **{f"drift_psi_{f}": float(v) for f, v in zip(self.table["feature"], self.table["psi"], strict=True)},
        }

    def message(self, where: Path | None = None, top: int = 3) -> str:
        """The CLI's line: the most drifted features in words, or none, or why drift was not checked."""
        if self.table is None:
            return f"drift not checked: {self.note}"
        table = f"; table: {where}" if where is not None else ""
        drifted = self.drifted
        if drifted.empty:
            first = self.table.iloc[0] if len(self.table) else None
            largest = "" if first is None else f" (largest PSI {first['psi']:.2f}, {first['description']})"
            return f"no feature drifted since training{largest}{table}"
        named = ", ".join(f"{r.description} (PSI {r.psi:.2f})" for r in drifted.head(top).itertuples())
        more = f" and {len(drifted) - top} more" if len(drifted) > top else ""
        n = len(drifted)
        return f"{n} feature{'s' if n > 1 else ''} drifted since training: {named}{more}{table}"


def load_reference(name: str, version: str) -> Reference | str:
    """The reference of a registered churn model version (its run's artifact), or why there is none.

    A reference that cannot be read is a reason too: scoring goes on, and the CLI says drift was not checked.
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    run_id = MlflowClient().get_model_version(name, version).run_id
    if not run_id:
        return f"{name} v{version} has no training run to take a reference from"
    try:
        names = {Path(a.path).name for a in MlflowClient().list_artifacts(run_id)}
        if REFERENCE_FILE not in names:
            return (
                f"{name} v{version} was trained before training kept a drift reference ({REFERENCE_FILE}); "
                "train the churn model again (retain train-churn) to check drift"
            )
        with tempfile.TemporaryDirectory() as tmp:
            path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=REFERENCE_FILE, dst_path=tmp)
            return Reference.from_json(Path(path).read_text())
    except (MlflowException, OSError, ValueError, KeyError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        return (
            f"the drift reference of {name} v{version} ({REFERENCE_FILE} in run {run_id}) could not be read "
            f"({type(exc).__name__}: {first}); train the churn model again (retain train-churn) to check drift"
        )


def check(
    frame: pd.DataFrame, rows: np.ndarray, name: str, version: str, *, alarm: float, confidence: float
) -> DriftCheck:
    """Drift of ``frame``'s ``rows`` (those churn model ``name`` v``version`` scores) against its reference, or why
    not."""
    ref = load_reference(name, version)
    if isinstance(ref, str):
        return DriftCheck(None, ref)
    if not rows.any():
        return DriftCheck(None, "no customer has an order before the as-of date, so none was scored for churn")
    started = time.perf_counter()
    table = drift_table(frame, ref, alarm=alarm, confidence=confidence, rows=rows)
    return DriftCheck(table, seconds=time.perf_counter() - started)
