"""The one place MLflow is pointed at a store: the tracking URI, where artifacts go, experiments, pinned needs.

Training, scoring and the registry loader all start here, so a store on this machine keeps artifacts in
``artifacts/`` beside it (never MLflow's default ``./mlruns`` under whatever folder the process started
in) and a team server keeps its own. Registered models list :data:`REQUIREMENTS`, pinned from the running
environment: MLflow's inference of them costs seconds per model.
"""

from __future__ import annotations

import importlib.metadata as md
from pathlib import Path
from urllib.parse import urlparse

from features.runtime import quiet_telemetry, tracking_uri

# What a registered churn or offer model needs to load where only its folder is (one list for both).
REQUIREMENTS = (
    "mlflow",
    "lightgbm",
    "scikit-learn",
    "scipy",
    "skops",
    "pandas",
    "numpy",
    "pydantic",
    "pyyaml",
    "duckdb",
    "pyarrow",
)


def pip_requirements() -> list[str]:
    """:data:`REQUIREMENTS` pinned to the versions this process runs."""
    return [f"{name}=={md.version(name)}" for name in REQUIREMENTS]


def local_artifacts(uri: str) -> str | None:
    """Artifact root for a store on this machine (SQLite or a folder): ``artifacts/`` beside it.

    A team server (http, databricks) keeps its own artifact location, so None.
    """
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        db = uri.split(":///", 1)[1] if ":///" in uri else parsed.path
        return (Path(db).resolve().parent / "artifacts").as_uri()
    if parsed.scheme in ("", "file"):
        return (Path(parsed.path or uri).resolve() / "artifacts").as_uri()
    return None


def use_store(uri: str | None = None) -> str:
    """Telemetry off and MLflow pointed at ``uri`` (default: ``MLFLOW_TRACKING_URI``, else the project's)."""
    import mlflow

    quiet_telemetry()
    uri = uri or tracking_uri()
    mlflow.set_tracking_uri(uri)
    return uri


def use_experiment(name: str, *, uri: str | None = None, artifacts: str | None = None) -> str:
    """:func:`use_store`, then the experiment ``name`` (created with its artifact root when new); its id."""
    import mlflow

    uri = use_store(uri)
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        experiment_id = existing.experiment_id
    else:
        experiment_id = mlflow.create_experiment(name, artifact_location=artifacts or local_artifacts(uri))
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id
