"""A churn run's records: its settings and rows in MLflow, and its files (model, metrics, report, card, drivers).

The files are written into a staging folder first (``train_churn``) and logged from there.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd

from features.config import FeaturesConfig
from features.io import write_text_atomic
from modeling.drift import REFERENCE_FILE
from training.config import ChurnConfig
from training.datasets import CutoffPlan, Rows
from training.evaluate import summary_metrics
from training.model_card import render
from training.model_format import save_model
from training.runs import log_dataset

RUN_FILES = ("metrics.json", "report.json", "model_card.md", "drivers.csv", REFERENCE_FILE, "plots")


def log_settings(
    train: Rows, valid: Rows, test: Rows, plan: CutoffPlan, *, features: FeaturesConfig, trials: int, source: str | None
) -> None:
    """The plan, the label's definition, the rows' sizes and churn rates, and the rows as dataset inputs."""
    log_rows(train, "churn-train", source, "training")
    log_rows(test, "churn-test", source, "testing")
    mlflow.set_tag("plan", plan.note)
    mlflow.log_params(
        {
            **{k: v for k, v in plan.describe().items() if k != "plan"},
            "churn_definition": f"no order in [cutoff, cutoff + {features.horizon_days} days)",
            "rows_train": len(train),
            "rows_valid": len(valid),
            "rows_test": len(test),
            "churn_rate_train": round(train.y.mean(), 4),
            "churn_rate_test": round(test.y.mean(), 4),
            "n_features": train.X.shape[1],
            "trials": trials,
        }
    )


def log_rows(rows: Rows, name: str, source: str | None, context: str) -> None:
    """A role's rows (keys, features, label) as a dataset input of the active run."""
    frame = rows.keys.reset_index(drop=True).join(rows.X.reset_index(drop=True)).assign(churned=rows.y)
    log_dataset(frame, name=name, source=source, context=context, targets="churned")


def log_run_files(folder: Path) -> None:
    """The run's files as artifacts (the model is logged on its own)."""
    for name in RUN_FILES[:-1]:
        mlflow.log_artifact(str(folder / name))
    mlflow.log_artifacts(str(folder / "plots"), artifact_path="plots")


def write_outputs(
    out_dir: Path,
    model,
    X: pd.DataFrame,
    report: dict,
    drivers: pd.Series,
    *,
    features: FeaturesConfig,
    config: ChurnConfig,
) -> None:
    """A run's files: model folder, metrics.json, report.json (with CIs), model_card.md, drivers.csv."""
    save_model(model, X, out_dir / "model")
    drivers.rename_axis("feature").rename("mean_abs_shap").reset_index().to_csv(out_dir / "drivers.csv", index=False)
    write_text_atomic(json.dumps(summary_metrics(report), indent=2), out_dir / "metrics.json")
    write_text_atomic(json.dumps(report, indent=2, default=float), out_dir / "report.json")
    write_text_atomic(render(report, drivers, features=features, config=config), out_dir / "model_card.md")
