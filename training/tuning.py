"""The one Optuna tuner: ``search``, which the churn model (``training.churn_tuning``) and the offer model
(``training.offers.tuning``) both use, each with its own search space and objective.

Every study samples with a seeded TPE and starts with the configured parameters as trial 0, so the
search returns them unless a trial beats them on the validation rows. Each trial is a nested MLflow
run under the active one and is logged as it ends (``tuning: trial 3 (3 of 10 this run): ...``).
A named study lives in a SQLite file: churn names it after its data and settings
(``<study_name>-<digest>``), so rerunning on the same rows with the same settings resumes it and
trials on other data or settings never leak in. An unnamed study (the offer model's) lives in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import mlflow
import optuna

from training.progress import progress

log = logging.getLogger(__name__)
PRUNE_EVERY = 10  # steps (churn: boosting rounds) between the reports a trial may be pruned on


@dataclass(frozen=True)
class Range:
    """Where one parameter is searched: ``low``..``high``, on a log scale or not, whole numbers or not."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    def suggest(self, trial: optuna.Trial, name: str) -> float | int:
        if self.integer:
            return trial.suggest_int(name, self.low, self.high, log=self.log)
        return trial.suggest_float(name, self.low, self.high, log=self.log)


def storage_url(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.resolve()}"


def search(
    evaluate: Callable[[dict, optuna.Trial], dict[str, float]],
    *,
    space: Mapping[str, Range],
    start: Mapping[str, float | int],
    metric: str,
    direction: str,
    seed: int,
    trials: int,
    timeout_s: float | None,
    label: str,
    study_name: str | None = None,
    storage: Path | None = None,
) -> optuna.Study:
    """Run (or resume) a study; returns it, its best trial over resumed trials too.

    ``evaluate(values, trial)`` fits with the suggested ``values`` and returns metrics that the trial's
    nested run logs; ``metric`` among them is the objective. ``start`` (the configured settings) is trial 0.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name,
        storage=None if storage is None else storage_url(storage),
        direction=direction,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=PRUNE_EVERY * 3),
        load_if_exists=storage is not None,
    )
    if not study.trials:  # a new study: the configured parameters first
        study.enqueue_trial({k: start[k] for k in space})
    if study_name is not None:
        mlflow.set_tag("optuna_study", study_name)

    def objective(trial: optuna.Trial) -> float:
        values = {name: r.suggest(trial, name) for name, r in space.items()}
        if mlflow.active_run() is None:
            return evaluate(values, trial)[metric]
        with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True):
            mlflow.log_params({**trial.params, "trial": trial.number})
            try:
                metrics = evaluate(values, trial)
            except optuna.TrialPruned:
                mlflow.set_tag("state", "pruned")
                raise
            mlflow.log_metrics(metrics)
            return metrics[metric]

    study.optimize(objective, n_trials=trials, timeout=timeout_s, callbacks=[progress(trials, label)])
    best = study.best_trial
    log.info("tuning: best %s %.4f from trial %d of %d", label, best.value, best.number, len(study.trials))
    return study
