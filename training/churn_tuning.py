"""Churn's tuning: LightGBM parameters searched by validation AUC with the one tuner (``training.tuning``).

Trials that the median says are losing stop early (pruned on the AUC reported while boosting). The
study is named after the data and the settings (``<study_name>-<digest>``) and kept in a SQLite file,
so rerunning on the same rows with the same settings resumes it and other data starts its own.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import lightgbm as lgb
import mlflow
import optuna
import pandas as pd

from training.churn import fit_booster
from training.config import LgbmParams, Tuning
from training.datasets import Rows
from training.tuning import PRUNE_EVERY, Range, search

CHURN_SPACE = {
    "learning_rate": Range(0.01, 0.2, log=True),
    "num_leaves": Range(8, 255, log=True, integer=True),
    "min_child_samples": Range(10, 500, log=True, integer=True),
    "feature_fraction": Range(0.4, 1.0),
    "bagging_fraction": Range(0.5, 1.0),
    "lambda_l2": Range(1e-3, 30.0, log=True),
}
SEARCH_SPACE = "v1"  # bump when CHURN_SPACE changes, so old trials are not resumed under a new space


def _pruning_callback(trial: optuna.Trial):
    """Report validation AUC to Optuna while boosting; stop trials the median says are losing."""

    def callback(env: lgb.callback.CallbackEnv) -> None:
        if env.iteration % PRUNE_EVERY:
            return
        auc = next(r[2] for r in env.evaluation_result_list if r[1] == "auc")
        trial.report(auc, env.iteration)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at round {env.iteration} with AUC {auc:.4f}")

    return callback


def _rows_digest(rows: Rows) -> bytes:
    frame = rows.keys.reset_index(drop=True).astype(str).join(rows.X.reset_index(drop=True)).assign(_y=rows.y)
    return pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()


def study_name(train: Rows, stop: Rows, *, base: LgbmParams, tuning: Tuning, seed: int) -> str:
    """``<study_name>-<12 hex>``: a digest of the training and early-stopping rows, the base settings and the seed."""
    digest = hashlib.sha256()
    digest.update(_rows_digest(train))
    digest.update(_rows_digest(stop))
    settings = {"base": base.model_dump(), "seed": seed, "space": SEARCH_SPACE, "columns": list(train.X.columns)}
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return f"{tuning.study_name}-{digest.hexdigest()[:12]}"


def tune(
    train: Rows, stop: Rows, *, base: LgbmParams, tuning: Tuning, trials: int, storage: Path, seed: int
) -> LgbmParams:
    """Churn's best parameters by validation AUC (over resumed trials too); call inside the parent MLflow run."""

    def evaluate(values: dict, trial: optuna.Trial) -> dict[str, float]:
        params = base.model_copy(update=values)
        clf = fit_booster(train, stop, params, seed=seed, callbacks=(_pruning_callback(trial),))
        return {
            "valid_roc_auc": float(clf.best_score_["valid_0"]["auc"]),
            "rounds": clf.best_iteration_ or params.max_rounds,
        }

    study = search(
        evaluate,
        space=CHURN_SPACE,
        start=base.model_dump(),
        metric="valid_roc_auc",
        direction="maximize",
        seed=seed,
        trials=trials,
        timeout_s=tuning.timeout_s,
        label="valid AUC",
        study_name=study_name(train, stop, base=base, tuning=tuning, seed=seed),
        storage=storage,
    )
    mlflow.log_metric("tuning_best_valid_roc_auc", study.best_value)
    return base.model_copy(update=study.best_params)
