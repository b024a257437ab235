"""Log, register and promote: the champion alias moves only through the gate.

Consumers load ``models:/NAME@champion``. Every new version gets ``challenger``;
``champion`` moves when the challenger beats the champion on the same test cutoff
by the configured margin, or when there is no champion. The decision and its reason
are written to the run and to the model version.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema

from features.runtime import artifact_root, quiet_telemetry, tracking_uri
from training.config import Gate
from training.evaluate import metrics

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
TEST_CUTOFF_TAG = "test_cutoff"
REQUIREMENTS = ("lightgbm", "scikit-learn", "pandas", "numpy", "scipy", "skops")
# What a calibrated LightGBM pickles into; MLflow's skops format loads only listed types.
TRUSTED_TYPES = [
    "collections.OrderedDict",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "serving.prior_boosting.PriorBoostedLGBM",  # LightGBM boosted from BG/NBD's log-odds
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",  # Platt scaling, chosen on small calibration slices
]


def start_tracking(experiment: str, *, uri: str | None = None, artifacts: str | None = None) -> str:
    """Point MLflow at the store and make sure the experiment exists; returns its id.

    With the embedded store, artifacts go to the project's folder unless ``artifacts`` says otherwise;
    a team server keeps its own artifact location.
    """
    quiet_telemetry()
    embedded = uri is None and "MLFLOW_TRACKING_URI" not in os.environ
    mlflow.set_tracking_uri(uri or tracking_uri())
    existing = mlflow.get_experiment_by_name(experiment)
    if existing is not None:
        experiment_id = existing.experiment_id
    else:
        location = artifacts or (artifact_root() if embedded else None)
        experiment_id = mlflow.create_experiment(experiment, artifact_location=location)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def pip_requirements() -> list[str]:
    """Pinned from the running environment: inference would cost seconds per model."""
    return [f"{name}=={md.version(name)}" for name in REQUIREMENTS]


def signature(X: pd.DataFrame) -> ModelSignature:
    """Inputs are exactly the feature list; categorical features travel as strings."""
    kind = {True: "double", False: "string"}
    cols = [ColSpec(kind[pd.api.types.is_numeric_dtype(X[c])], c, required=False) for c in X.columns]
    return ModelSignature(inputs=Schema(cols), outputs=Schema([ColSpec("double", "p_churn")]))


def input_example(X: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    out = X.head(n).copy()
    for c in out.columns:
        if not pd.api.types.is_numeric_dtype(out[c]):
            out[c] = out[c].astype(object)
    return out


@dataclass(frozen=True)
class Decision:
    promoted: bool
    reason: str
    version: str
    challenger_score: float
    champion_score: float | None


def register(model_uri: str, name: str, *, run_id: str, test_cutoff: str) -> str:
    """A new version of ``name`` with alias ``challenger``; returns the version number."""
    client = MlflowClient()
    version = mlflow.register_model(model_uri, name, tags={"run_id": run_id, TEST_CUTOFF_TAG: test_cutoff}).version
    client.set_registered_model_alias(name, CHALLENGER, version)
    return str(version)


def current_champion(name: str):
    try:
        return MlflowClient().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def gate(
    name: str,
    version: str,
    *,
    gate: Gate,
    test_cutoff: str,
    challenger_score: float,
    score_champion: Callable[[str], float],
) -> Decision:
    """Move ``champion`` to ``version`` only if it wins on the same test cutoff by ``gate.margin``.

    When the champion was tested on this cutoff its recorded score is used; otherwise
    ``score_champion(model_uri)`` scores it on the challenger's test rows.
    """
    client = MlflowClient()
    champ = current_champion(name)
    metric = f"test_{gate.metric}"
    if champ is None:
        decision = Decision(True, "no current champion", version, challenger_score, None)
    else:
        champ_run = client.get_run(champ.run_id)
        if champ_run.data.tags.get(TEST_CUTOFF_TAG) == test_cutoff and metric in champ_run.data.metrics:
            champion_score, how = champ_run.data.metrics[metric], "its recorded score"
        else:
            champion_score, how = score_champion(f"models:/{name}@{CHAMPION}"), "rescored on this test cutoff"
        wins = challenger_score >= champion_score + gate.margin
        verdict = "beats" if wins else "does not beat"
        reason = (
            f"{gate.metric} {challenger_score:.4f} {verdict} champion v{champ.version} ({how}) "
            f"{champion_score:.4f} + margin {gate.margin:g} on test cutoff {test_cutoff}"
        )
        decision = Decision(wins, reason, version, challenger_score, champion_score)
    if decision.promoted:
        client.set_registered_model_alias(name, CHAMPION, version)
    _record(name, decision)
    log.info("champion gate: %s (%s)", "promoted" if decision.promoted else "kept champion", decision.reason)
    return decision


def _record(name: str, decision: Decision) -> None:
    """The decision goes on the active run and on the model version."""
    tags = {"champion_decision": "promoted" if decision.promoted else "kept", "champion_reason": decision.reason}
    mlflow.set_tags(tags)
    mlflow.log_params(
        {"gate_challenger_score": decision.challenger_score, "gate_champion_score": decision.champion_score}
    )
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(name, decision.version, key, value)


def log_model(model, X: pd.DataFrame) -> str:
    """Log a fitted sklearn model under the active run with a feature-list signature; returns its URI."""
    # MLflow replays the JSON input example through pyfunc, which hands LightGBM text instead of
    # category columns and warns; scorers convert text to category first, so the warning is noise.
    quiet = logging.getLogger("mlflow.models.model")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature(X),
            input_example=input_example(X),
            pip_requirements=pip_requirements(),
            pyfunc_predict_fn="predict_proba",
            skops_trusted_types=TRUSTED_TYPES,
        )
    finally:
        quiet.setLevel(level)
    return info.model_uri


def save_model(model, X: pd.DataFrame, path: Path) -> Path:
    """The same model as a plain MLflow folder (a DVC output), loadable with ``mlflow.sklearn.load_model``."""
    shutil.rmtree(path, ignore_errors=True)
    mlflow.sklearn.save_model(
        model,
        str(path),
        signature=signature(X),
        input_example=input_example(X),
        pip_requirements=pip_requirements(),
        pyfunc_predict_fn="predict_proba",
        skops_trusted_types=TRUSTED_TYPES,
    )
    return path


def champion_score(model_uri: str, X: pd.DataFrame, y, metric: str) -> float:
    """Score a registered model on the challenger's test rows."""
    model = mlflow.sklearn.load_model(model_uri)
    return metrics(y, model.predict_proba(X[list(model.feature_names_in_)])[:, 1])[metric]
