"""The churn train pipeline: plan -> fit -> baselines -> evaluate -> log -> register -> gate.

One MLflow run holds it all: parameters, data window, the training and test rows
as dataset inputs, metrics with CIs, plots, the model card and the logged model.
``out_dir`` (a DVC output) holds the champion's files, taken from the registry;
this run's files go to ``out_dir/challenger/``. Each set is written into a staging
folder and renamed into place, so a killed run leaves the previous files whole.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from features.config import ROOT, FeaturesConfig
from features.contract import CUSTOMER_ID
from features.io import write_text_atomic
from features.sources import Tables
from modeling.drift import REFERENCE_FILE
from training.baselines import fit_and_score_baselines, rfm
from training.churn import (
    FOLDS,
    check_minimum,
    cross_fitted,
    fit_churn_model,
    join_rows,
    predict,
    refit_for_scoring,
    split_rows,
)
from training.config import ChurnConfig
from training.datasets import CUSTOMERS, CUTOFF, CutoffPlan, Rows
from training.drift_reference import write_reference
from training.evaluate import bootstrap_report, flat_metrics, roc_auc, slice_reports, summary_metrics
from training.model_card import baseline_verdicts, render
from training.plots import write_all
from training.registry import (
    CHALLENGER_DIR,
    FITTED_TAG,
    TEST_CUTOFF_TAG,
    Decision,
    Rescore,
    champion_files,
    champion_model_folder,
    champion_score,
    clean_staging,
    deciding,
    describe,
    gate,
    log_dataset,
    log_model,
    register,
    run_name,
    save_model,
    staged,
    staging,
    tracked_run,
)
from training.tuning import tune
from training.value import VALUE_DIR, fit_value


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
    source: str | None = None,
) -> TrainResult:
    """Fit, compare with baselines, log everything to the active experiment, register and gate.

    Call :func:`training.registry.start_tracking` first. ``out_dir`` gets the champion's files and
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
        cross_fit = plan.holdout == CUSTOMERS  # few validation customers: choose and calibrate out of fold
        if cross_fit:
            fitted = cross_fitted(join_rows(train, valid), params, config, bg_nbd=bg_nbd)
        else:
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
        report["start"] = {
            "chosen": start,
            "columns": list(fitted.prior.columns) if fitted.prior else [],
            "tree_weight": fitted.prior.tree_weight if fitted.prior else 1.0,
            "chosen_on": f"out-of-fold scores of every non-test customer at the latest cutoff ({FOLDS} folds by customer)"
            if cross_fit
            else "held-out validation rows",
        }
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
                final = cross_fitted(join_rows(refit, recalibrate), params, config, bg_nbd=bg_nbd, start=start)
            else:
                final = refit_for_scoring(refit, recalibrate, params, fitted.rounds, config, start=start, bg_nbd=bg_nbd)
            decision = None
            report["champion"] = None
            model_uri = log_model(final.model, test.X)
            report["value"] = fit_value(tables, panel, plan, features=features, config=config, out=stage)
            write_outputs(stage, final.model, test.X, report, drivers, features=features, config=config)
            write_reference(stage, plan.rows(panel, "refit"), plan.rows(panel, "recalibrate"))
            log_run_files(stage)  # before the gate: a champion always has its files in its run
            if register_model:
                metric = f"test_{config.gate.metric}"
                score = report["models"]["model"][config.gate.metric]["value"]
                fitted_cutoffs = plan.describe()["refit_cutoffs"].split(",") + plan.describe()[
                    "recalibrate_cutoffs"
                ].split(",")
                held_out = held_out_key(test, test_cutoff)
                version = register(
                    model_uri,
                    config.model_name,
                    run_id=run.info.run_id,
                    test_cutoff=held_out,
                    metric=metric,
                    score=score,
                    fitted_through=max(c for c in fitted_cutoffs if c),
                )
                with deciding(config.model_name, version):
                    decision = gate(
                        config.model_name,
                        version,
                        gate=config.gate,
                        test_cutoff=held_out,
                        challenger_score=score,
                        score_champion=lambda champ: rescore_champion(champ, test, score, test_cutoff, config),
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


RUN_FILES = ("metrics.json", "report.json", "model_card.md", "drivers.csv", REFERENCE_FILE, "plots")


def held_out_key(test: Rows, test_cutoff: str) -> str:
    """Names the test rows for the gate: the cutoff, and a checksum of which customers with which labels.

    Two runs share a recorded score only when they were tested on these very rows (the same cutoff date on
    other data is other rows).
    """
    keys = test.keys[CUSTOMER_ID].astype(str).to_numpy()
    order = np.argsort(keys, kind="stable")
    text = "\n".join(f"{k}:{int(v)}" for k, v in zip(keys[order], np.asarray(test.y)[order], strict=True))
    return f"{test_cutoff} ({len(keys):,} customers, crc32 {zlib.crc32(text.encode()):08x})"


def interval_metrics(report: dict) -> dict[str, float]:
    """The 95% bounds of every difference and slice metric: ``diff_<name>_<m>_lo/hi``, ``slice_<s>_<m>_lo/hi``."""
    out = {}
    for name, values in report["differences"].items():
        for m, v in values.items():
            out[f"diff_{name}_{m}_lo"], out[f"diff_{name}_{m}_hi"] = v["ci"]
    for name, values in report.get("slices", {}).items():
        for m, v in values.items():
            if isinstance(v, dict) and "ci" in v:
                out[f"slice_{name}_{m}_lo"], out[f"slice_{name}_{m}_hi"] = v["ci"]
    return {k: float(v) for k, v in out.items() if v == v}


def log_rows(rows: Rows, name: str, source: str | None, context: str) -> None:
    """A role's rows (keys, features, label) as a dataset input of the active run."""
    frame = rows.keys.reset_index(drop=True).join(rows.X.reset_index(drop=True)).assign(churned=rows.y)
    log_dataset(frame, name=name, source=source, context=context, targets="churned")


def log_run_files(folder: Path) -> None:
    for name in RUN_FILES[:-1]:
        mlflow.log_artifact(str(folder / name))
    mlflow.log_artifacts(str(folder / "plots"), artifact_path="plots")


def rescore_champion(champ, test: Rows, challenger_score: float, test_cutoff: str, config: ChurnConfig) -> Rescore:
    """The champion on this run's test rows, unless it was fitted on rows at (or after) this cutoff."""
    through = champ.tags.get(FITTED_TAG)
    if through is not None and through >= test_cutoff:
        return Rescore(
            None,
            None,
            f"v{champ.version} was fitted on cutoffs up to {through}, not before the test cutoff {test_cutoff}",
        )
    uri = f"models:/{champ.name}/{champ.version}"
    champion = champion_score(uri, test.X, test.y, config.gate.metric)
    return Rescore(champion, challenger_score, f"the {len(test.y):,} customers of test cutoff {test_cutoff}")


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
