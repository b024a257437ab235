"""Optuna search over LightGBM parameters: TPE, median pruning, one nested MLflow run per trial.

The study lives in a SQLite file, so rerunning with the same study name resumes it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightgbm as lgb
import mlflow
import optuna

from training.churn import fit_booster
from training.config import LgbmParams, Tuning
from training.datasets import Rows

log = logging.getLogger(__name__)
PRUNE_EVERY = 10


def _suggest(trial: optuna.Trial, base: LgbmParams) -> LgbmParams:
    return base.model_copy(
        update={
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 8, 255, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 10, 500, log=True),
            "feature_fraction": trial.suggest_float("feature_fraction", 0.4, 1.0),
            "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
            "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 30.0, log=True),
        }
    )


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


def storage_url(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.resolve()}"


def tune(
    train: Rows, stop: Rows, *, base: LgbmParams, tuning: Tuning, trials: int, storage: Path, seed: int
) -> LgbmParams:
    """Best parameters found (over resumed trials too); call inside the parent MLflow run."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=tuning.study_name,
        storage=storage_url(storage),
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=PRUNE_EVERY * 3),
        load_if_exists=True,
    )

    def objective(trial: optuna.Trial) -> float:
        params = _suggest(trial, base)
        with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True):
            mlflow.log_params({**trial.params, "trial": trial.number})
            try:
                clf = fit_booster(train, stop, params, seed=seed, callbacks=(_pruning_callback(trial),))
            except optuna.TrialPruned:
                mlflow.set_tag("state", "pruned")
                raise
            auc = float(clf.best_score_["valid_0"]["auc"])
            mlflow.log_metrics({"valid_roc_auc": auc, "rounds": clf.best_iteration_ or params.max_rounds})
            return auc

    study.optimize(objective, n_trials=trials, timeout=tuning.timeout_s)
    best = study.best_trial
    log.info("tuning: best validation AUC %.4f from trial %d of %d", best.value, best.number, len(study.trials))
    mlflow.log_metric("tuning_best_valid_roc_auc", best.value)
    return base.model_copy(update=best.params)
