"""The churn train pipeline: plan -> fit -> baselines -> evaluate -> log -> register -> gate.

One MLflow run holds it all: parameters, data window, the training and test rows
as dataset inputs, metrics with CIs, plots, the model card and the logged model.
``out_dir`` (a DVC output) holds the champion's files, taken from the registry;
this run's files go to ``out_dir/challenger/``. Each set is written into a staging
folder and renamed into place, so a killed run leaves the previous files whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from features.config import ROOT, FeaturesConfig
from features.io import write_text_atomic
from features.sources import Tables
from modeling.drift import REFERENCE_FILE
from training.baselines import baseline_inputs, baseline_valid_auc, fit_and_score_baselines
from training.churn import FittedChurn, check_minimum, fit_churn_model, predict, refit_for_scoring
from training.churn_gate import register_and_gate
from training.churn_outputs import RUN_FILES, log_run_files, log_settings, write_outputs
from training.churn_tuning import tune
from training.config import ChurnConfig, LgbmParams
from training.crossfit import FOLDS, cross_fitted
from training.datasets import CUSTOMERS, CutoffPlan, Rows, join_rows, split_rows
from training.drift_reference import write_reference
from training.evaluate import bootstrap_report, flat_metrics, interval_metrics, slice_reports
from training.gate import Decision
from training.model_card import baseline_verdicts, render
from training.model_format import log_model
from training.plots import write_all
from training.registry import CHALLENGER_DIR, TEST_CUTOFF_TAG, champion_files, champion_model_folder, describe
from training.runs import run_name, tracked_run
from training.staging import clean_staging, staged, staging
from training.value import VALUE_DIR, fit_value


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    report: dict
    decision: Decision | None
    predictions: pd.DataFrame  # test rows: customer_id, churned, one column per model


def slices(summary: pd.DataFrame, config: ChurnConfig) -> dict[str, np.ndarray]:
    """New vs established customers and past-revenue tiers at the test cutoff."""
    new = (summary["tenure_days"] < config.new_customer_days).to_numpy()
    tier = pd.qcut(summary["revenue"].rank(method="first"), config.value_tiers, labels=False).to_numpy()
    out = {"new": new, "established": ~new}
    out.update({f"value_tier_{t + 1}_of_{config.value_tiers}": tier == t for t in range(config.value_tiers)})
    return out


def train_churn(
    tables: Tables,
    panel: pd.DataFrame,
    plan: CutoffPlan,
    *,
    features: FeaturesConfig,
    config: ChurnConfig,
    out_dir: Path,
    trials: int | None = None,
    register_model: bool = True,
    source: str | None = None,
) -> TrainResult:
    """Fit, compare with baselines, log everything to the active experiment, register and gate.

    Call :func:`training.runs.start_tracking` first. ``out_dir`` gets the champion's files and
    ``out_dir/challenger/`` this run's (without ``register_model``, ``out_dir`` gets this run's).
    ``source`` names where the tables came from (the dataset inputs' source).
    """
    train, valid, test = (plan.rows(panel, role) for role in ("train", "valid", "test"))
    check_minimum(train, test, config.minimum)
    trials = config.tuning.trials if trials is None else trials
    test_cutoff = plan.describe()["test_cutoff"]
    window = f"{plan.describe()['train_cutoffs'].split(',')[0]}..{test_cutoff}"
    with tracked_run(run_name("churn", window)) as run:
        mlflow.set_tag(TEST_CUTOFF_TAG, test_cutoff)
        log_settings(train, valid, test, plan, features=features, trials=trials, source=source)
        stop, calib = split_rows(valid, 0.5, config.seed)
        params = tuned(train, stop, config, trials)
        mlflow.log_params({f"lgbm_{k}": v for k, v in params.model_dump().items()})
        bg_nbd = f"lifetime_p_no_order_{features.horizon_days}d"
        bg_nbd = bg_nbd if bg_nbd in train.X.columns else None
        cross_fit = plan.holdout == CUSTOMERS  # few validation customers: choose and calibrate out of fold
        if cross_fit:
            fitted = cross_fitted(join_rows(train, valid), params, config, bg_nbd=bg_nbd)
        else:
            fitted = fit_churn_model(train, stop, calib, params, config, bg_nbd=bg_nbd)
        mlflow.log_params({"calibration": fitted.method, "rounds": fitted.rounds, "start": fitted.start})
        train_summary = baseline_inputs(tables, train.keys)
        valid_auc = {f"start_{k}": v for k, v in fitted.valid_auc.items()}
        valid_auc.update(baseline_valid_auc(tables, train_summary, train.y, valid, features.horizon_days, config.seed))
        mlflow.log_metrics({f"valid_auc_{k}": v for k, v in valid_auc.items()})
        scores, report = evaluate_on_test(
            tables, fitted, train_summary, train.y, test, plan, features=features, config=config, cross_fit=cross_fit
        )
        report["valid_auc"] = valid_auc
        mlflow.log_metrics({**flat_metrics(report), **interval_metrics(report)})
        report["verdicts"] = baseline_verdicts(report)
        mlflow.set_tag("baselines", " ".join(report["verdicts"]).replace("**", ""))

        clean_staging(out_dir)
        target = out_dir / CHALLENGER_DIR if register_model else out_dir
        with staged(target) if register_model else staging(out_dir) as stage:
            drivers = write_all(fitted.booster, test.X, test.y, scores, stage / "plots", seed=config.seed)
            refit, recalibrate = plan.rows(panel, "refit"), plan.rows(panel, "recalibrate")
            if cross_fit:
                final = cross_fitted(join_rows(refit, recalibrate), params, config, bg_nbd=bg_nbd, start=fitted.start)
            else:
                final = refit_for_scoring(
                    refit, recalibrate, params, fitted.rounds, config, start=fitted.start, bg_nbd=bg_nbd
                )
            decision = None
            report["champion"] = None
            model_uri = log_model(final.model, test.X)
            report["value"] = fit_value(tables, panel, plan, features=features, config=config, out=stage)
            write_outputs(stage, final.model, test.X, report, drivers, features=features, config=config)
            write_reference(stage, refit, recalibrate)
            log_run_files(stage)  # before the gate: a champion always has its files in its run
            if register_model:
                version, decision = register_and_gate(
                    model_uri, run_id=run.info.run_id, test=test, report=report, plan=plan, config=config
                )
                report["champion"] = {"promoted": decision.promoted, "reason": decision.reason}
                card = render(report, drivers, features=features, config=config)
                write_text_atomic(card, stage / "model_card.md")
                write_text_atomic(json.dumps(report, indent=2, default=float), stage / "report.json")
                mlflow.log_artifact(str(stage / "model_card.md"))
                mlflow.log_artifact(str(stage / "report.json"))
                describe(config.model_name, version, card)
        if register_model:
            champion_files(
                config.model_name,
                out_dir,
                (*RUN_FILES, VALUE_DIR),
                champion_model_folder,
                optional=(REFERENCE_FILE, VALUE_DIR),
            )
        predictions = test.keys.assign(churned=test.y, **scores)
        return TrainResult(run.info.run_id, report, decision, predictions)


def tuned(train: Rows, stop: Rows, config: ChurnConfig, trials: int) -> LgbmParams:
    """The configured LightGBM parameters, or the best of ``trials`` Optuna trials (0: no search)."""
    if not trials:
        return config.lgbm
    storage = Path(config.tuning.storage)
    storage = storage if storage.is_absolute() else ROOT / storage
    return tune(train, stop, base=config.lgbm, tuning=config.tuning, trials=trials, storage=storage, seed=config.seed)


def evaluate_on_test(
    tables: Tables,
    fitted: FittedChurn,
    train_summary: pd.DataFrame,
    y_train: np.ndarray,
    test: Rows,
    plan: CutoffPlan,
    *,
    features: FeaturesConfig,
    config: ChurnConfig,
    cross_fit: bool,
) -> tuple[dict[str, np.ndarray], dict]:
    """The model and the baselines on the test rows: each one's scores, and the report with CIs and slices."""
    test_summary = baseline_inputs(tables, test.keys)
    scores = {"model": predict(fitted.model, test.X)}
    scores.update(
        fit_and_score_baselines(
            train_summary, y_train, test_summary, horizon_days=features.horizon_days, seed=config.seed
        )
    )
    report = bootstrap_report(test.y, scores, reference="model", n_boot=config.bootstrap, seed=config.seed)
    report["slices"] = slice_reports(
        test.y, scores["model"], slices(test_summary, config), n_boot=config.bootstrap, seed=config.seed
    )
    report["plan"] = plan.describe()
    report["calibration"] = fitted.method
    report["start"] = {
        "chosen": fitted.start,
        "columns": list(fitted.prior.columns) if fitted.prior else [],
        "tree_weight": fitted.prior.tree_weight if fitted.prior else 1.0,
        "chosen_on": f"out-of-fold scores of every non-test customer at the latest cutoff ({FOLDS} folds by customer)"
        if cross_fit
        else "held-out validation rows",
    }
    return scores, report
