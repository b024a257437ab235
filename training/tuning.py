"""Optuna search over LightGBM parameters: TPE, median pruning, one nested MLflow run per trial.

Trial 0 of every study is the configured parameters, so the search returns them unless a
trial beats them on the validation rows. The study lives in a SQLite file under a name keyed
to the data and the settings (``<study_name>-<digest>``): rerunning on the same rows with the
same settings resumes it, and trials on other data or settings never leak in. Each trial is
logged as it ends (``tuning: trial 3/10 ...``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import lightgbm as lgb
import mlflow
import optuna
import pandas as pd

from training.churn import fit_booster
from training.config import LgbmParams, Tuning
from training.datasets import Rows
from training.progress import progress

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


def _suggest_names() -> tuple[str, ...]:
    return ("learning_rate", "num_leaves", "min_child_samples", "feature_fraction", "bagging_fraction", "lambda_l2")


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


SEARCH_SPACE = "v1"  # bump when _suggest changes, so old trials are not resumed under a new space


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
    """Best parameters found (over resumed trials too); call inside the parent MLflow run.

    The configured ``base`` parameters are trial 0, so the result is never worse than them on the validation rows.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = study_name(train, stop, base=base, tuning=tuning, seed=seed)
    study = optuna.create_study(
        study_name=name,
        storage=storage_url(storage),
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=PRUNE_EVERY * 3),
        load_if_exists=True,
    )
    if not study.trials:  # a new study: the configured parameters first
        study.enqueue_trial({k: getattr(base, k) for k in _suggest_names()})
    mlflow.set_tag("optuna_study", name)

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

    study.optimize(objective, n_trials=trials, timeout=tuning.timeout_s, callbacks=[progress(trials)])
    best = study.best_trial
    log.info("tuning: best validation AUC %.4f from trial %d of %d", best.value, best.number, len(study.trials))
    mlflow.log_metric("tuning_best_valid_roc_auc", best.value)
    return base.model_copy(update=best.params)
