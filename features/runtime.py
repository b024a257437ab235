"""Process-wide settings for the tools Retain starts: telemetry off, local homes, no noise."""

from __future__ import annotations

import os

from features.config import ROOT

TELEMETRY_OFF = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",  # MLflow ignores DO_NOT_TRACK=1
    "BENTOML_DO_NOT_TRACK": "true",
    "DVC_NO_ANALYTICS": "1",
    "OPTUNA_DISABLE_TELEMETRY": "true",
}


def quiet_telemetry() -> None:
    """Turn every tool's telemetry off, keep BentoML's home inside the project, hide artifact-copy bars."""
    for key, value in TELEMETRY_OFF.items():
        os.environ[key] = value
    os.environ.setdefault("BENTOML_HOME", str(ROOT / ".bentoml"))
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # copies of local files, not progress


TRACKING_DIR = ROOT / "mlruns"


def tracking_uri() -> str:
    """MLflow's store: ``MLFLOW_TRACKING_URI`` if set (a team server), else a SQLite file in the project."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{TRACKING_DIR / 'mlflow.db'}"
