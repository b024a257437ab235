"""What a scoring run logs: the summary of its scores (counts, distribution, value) and its MLflow run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from serving.drift import DriftCheck, table_path
from serving.job import ScoringJob

EXPERIMENT = "retain-scoring"


class Summary:
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


def log_run(summary: dict, job: ScoringJob, *, out: Path, seconds: float, drift: DriftCheck) -> str:
    """Log the run to the ``retain-scoring`` experiment (params, the summary and drift metrics, the drift table)."""
    import mlflow

    from modeling.tracking import use_experiment

    use_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=f"score-{job.day}") as run:
        mlflow.log_params(
            {
                "as_of": job.day,
                "out": str(out),
                "reasons": job.reasons,
                "churn_model": job.models.churn_label,
                "offer_model": job.models.offer_note,
            }
        )
        mlflow.log_metrics({**summary, "seconds": seconds, **drift.metrics()})
        if drift.table is None:
            mlflow.set_tag("drift", f"not checked: {drift.note}")
        else:
            mlflow.log_artifact(str(table_path(out)))
    return run.info.run_id
