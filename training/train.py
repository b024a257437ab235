"""The churn train pipeline: plan -> fit -> baselines -> evaluate -> log -> register -> gate.

One MLflow run holds it all: parameters, data window, metrics with CIs, plots,
the model card and the logged model; the same files land in ``out_dir`` for DVC.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from features.config import ROOT, FeaturesConfig
from features.contract import CUSTOMER_ID
from features.io import write_text_atomic
from features.sources import Tables
from training.baselines import fit_and_score_baselines, rfm
from training.churn import check_minimum, fit_churn_model, predict, refit_for_scoring, split_rows
from training.config import ChurnConfig
from training.datasets import CUTOFF, CutoffPlan, Rows
from training.evaluate import bootstrap_report, flat_metrics, roc_auc, slice_reports, summary_metrics
from training.model_card import baseline_verdicts, render
from training.plots import write_all
from training.registry import TEST_CUTOFF_TAG, Decision, champion_score, gate, log_model, register, save_model
from training.tuning import tune


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    report: dict
    decision: Decision | None
    predictions: pd.DataFrame  # test rows: customer_id, churned, one column per model


def baseline_inputs(tables: Tables, keys: pd.DataFrame) -> pd.DataFrame:
    """RFM summaries aligned row by row to (customer_id, cutoff) keys."""
    parts = [rfm(tables, cutoff=c).assign(**{CUTOFF: c}) for c in keys[CUTOFF].unique()]
    summary = pd.concat(parts).rename_axis(CUSTOMER_ID).reset_index()
    merged = keys.astype({CUSTOMER_ID: "string"}).merge(summary, on=[CUSTOMER_ID, CUTOFF], how="left")
    return merged.fillna({c: 0.0 for c in summary.columns if c not in (CUSTOMER_ID, CUTOFF)})


def baseline_valid_auc(
    tables: Tables, train_summary: pd.DataFrame, y_train: np.ndarray, calib: Rows, horizon_days: int, seed: int
) -> dict[str, float]:
    """Each baseline's AUC on the validation rows, beside the model's candidates."""
    summary = baseline_inputs(tables, calib.keys)
    scores = fit_and_score_baselines(train_summary, y_train, summary, horizon_days=horizon_days, seed=seed)
    return {name: roc_auc(calib.y, p) for name, p in scores.items()}


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
) -> TrainResult:
    """Fit, compare with baselines, log everything to the active experiment, register and gate.

    Call :func:`training.registry.start_tracking` first; artifacts also land in ``out_dir``.
    """
    train, valid, test = (plan.rows(panel, role) for role in ("train", "valid", "test"))
    check_minimum(train, test, config.minimum)
    trials = config.tuning.trials if trials is None else trials
    test_cutoff = plan.describe()["test_cutoff"]
    with mlflow.start_run(run_name=f"churn-{test_cutoff}") as run:
        mlflow.set_tag(TEST_CUTOFF_TAG, test_cutoff)
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
        stop, calib = split_rows(valid, 0.5, config.seed)
        params = config.lgbm
        if trials:
            storage = Path(config.tuning.storage)
            storage = storage if storage.is_absolute() else ROOT / storage
            params = tune(
                train, stop, base=params, tuning=config.tuning, trials=trials, storage=storage, seed=config.seed
            )
        mlflow.log_params({f"lgbm_{k}": v for k, v in params.model_dump().items()})
        bg_nbd = f"lifetime_p_no_order_{features.horizon_days}d"
        bg_nbd = bg_nbd if bg_nbd in train.X.columns else None
        fitted = fit_churn_model(train, stop, calib, params, config, bg_nbd=bg_nbd)
        start = fitted.start
        mlflow.log_params({"calibration": fitted.method, "rounds": fitted.rounds, "start": start})
        train_summary = baseline_inputs(tables, train.keys)
        valid_auc = {f"start_{k}": v for k, v in fitted.valid_auc.items()}
        valid_auc.update(baseline_valid_auc(tables, train_summary, train.y, valid, features.horizon_days, config.seed))
        mlflow.log_metrics({f"valid_auc_{k}": v for k, v in valid_auc.items()})

        test_summary = baseline_inputs(tables, test.keys)
        scores = {"model": predict(fitted.model, test.X)}
        scores.update(
            fit_and_score_baselines(
                train_summary, train.y, test_summary, horizon_days=features.horizon_days, seed=config.seed
            )
        )
        report = bootstrap_report(test.y, scores, reference="model", n_boot=config.bootstrap, seed=config.seed)
        report["slices"] = slice_reports(
            test.y, scores["model"], slices(test_summary, config), n_boot=config.bootstrap, seed=config.seed
        )
        report["plan"] = plan.describe()
        report["calibration"] = fitted.method
        report["start"] = {"chosen": start, "columns": list(fitted.prior.columns) if fitted.prior else []}
        report["valid_auc"] = valid_auc
        mlflow.log_metrics(flat_metrics(report))
        report["verdicts"] = baseline_verdicts(report)
        mlflow.set_tag("baselines", " ".join(report["verdicts"]).replace("**", ""))

        out_dir.mkdir(parents=True, exist_ok=True)
        drivers = write_all(fitted.booster, test.X, test.y, scores, out_dir / "plots", seed=config.seed)
        final = refit_for_scoring(
            plan.rows(panel, "refit"),
            plan.rows(panel, "recalibrate"),
            params,
            fitted.rounds,
            config,
            start=start,
            bg_nbd=bg_nbd,
        )
        decision = None
        model_uri = log_model(final.model, test.X)
        if register_model:
            version = register(model_uri, config.model_name, run_id=run.info.run_id, test_cutoff=test_cutoff)
            decision = gate(
                config.model_name,
                version,
                gate=config.gate,
                test_cutoff=test_cutoff,
                challenger_score=report["models"]["model"][config.gate.metric]["value"],
                score_champion=lambda uri: champion_score(uri, test.X, test.y, config.gate.metric),
            )
        report["champion"] = None if decision is None else {"promoted": decision.promoted, "reason": decision.reason}
        write_outputs(out_dir, final.model, test.X, report, drivers, features=features, config=config)
        for name in ("metrics.json", "report.json", "model_card.md", "drivers.csv"):
            mlflow.log_artifact(str(out_dir / name))
        mlflow.log_artifacts(str(out_dir / "plots"), artifact_path="plots")
        predictions = test.keys.assign(churned=test.y, **scores)
        return TrainResult(run.info.run_id, report, decision, predictions)


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
    """The DVC outputs: model folder, metrics.json, report.json (with CIs), model_card.md, drivers.csv."""
    save_model(model, X, out_dir / "model")
    drivers.rename_axis("feature").rename("mean_abs_shap").reset_index().to_csv(out_dir / "drivers.csv", index=False)
    write_text_atomic(json.dumps(summary_metrics(report), indent=2), out_dir / "metrics.json")
    write_text_atomic(json.dumps(report, indent=2, default=float), out_dir / "report.json")
    write_text_atomic(render(report, drivers, features=features, config=config), out_dir / "model_card.md")
