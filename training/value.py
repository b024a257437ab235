"""Fit and choose the customer-value model: expected spend over the horizon after the cutoff.

Three candidates predict each buyer's spend in [cutoff, cutoff + horizon) (``features.labels.spend_after``)
on the churn model's cutoff plan: a LightGBM regression (Tweedie: most buyers spend nothing in a window,
the rest a skewed amount) on the churn features plus the value columns (``features.value``), stopped
early on the validation rows; BG/NBD x Gamma-Gamma; and the historical baseline (spend per day to date
x horizon). The one with the lowest validation RMSE is shipped, so it is never worse than the baseline
on validation. Every candidate is measured on the test rows with bootstrap intervals and paired
differences against the baseline. The shipped LightGBM is refit, with the rounds early stopping chose,
on the plan's refit and recalibration cutoffs, as the churn model is.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
from scipy.stats import rankdata

from features.config import FeaturesConfig
from features.contract import CUSTOMER_ID
from features.labels import spend_after
from features.sources import Tables
from features.value import EXPECTED_SPEND, VALUE_COLUMNS, value_frame
from modeling.encoding import encode
from modeling.value_model import HISTORICAL_FEATURES, ValueModel
from training.config import ChurnConfig, LgbmParams
from training.datasets import CUTOFF, CutoffPlan, Rows
from training.evaluate import resampled, top_share
from training.plots import value_deciles

log = logging.getLogger(__name__)

SPEND = "spend"
VALUE_DIR = "value"  # the ValueModel folder among a churn run's artifacts and files
PLOT = "value_deciles.png"
BASELINE = "historical"
LOWER_IS_BETTER = {"mae": True, "rmse": True, "spearman": False, "top10_share": False}
TWEEDIE_POWER = 1.5  # between Poisson (1) and Gamma (2): a point mass at zero plus a skewed positive part
# one thread: on a busy 2-core machine (load 8) 150 rounds on 25,000 x 60 took 3.3 s, 21 s with two threads
THREADS = 1


def value_table(tables: Tables, plan: CutoffPlan, *, config: FeaturesConfig) -> pd.DataFrame:
    """The value columns and the realised spend for every buyer at every planned cutoff."""
    frames = []
    for cutoff in plan.all:
        spend = spend_after(tables, cutoff=cutoff, horizon_days=plan.horizon_days)
        values = value_frame(tables, cutoff=cutoff, config=config).reindex(spend.index)
        frames.append(values.assign(**{SPEND: spend, CUTOFF: cutoff}).rename_axis(CUSTOMER_ID).reset_index())
    return pd.concat(frames, ignore_index=True)


def inputs(rows: Rows, table: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """A role's churn features with the value columns beside them, and its realised spend, row by row."""
    keys = rows.keys.astype({CUSTOMER_ID: "string"})
    extra = keys.merge(table.astype({CUSTOMER_ID: "string"}), on=[CUSTOMER_ID, CUTOFF], how="left")
    if extra[SPEND].isna().any():
        raise ValueError(f"{int(extra[SPEND].isna().sum())} panel rows have no spend label; the panel and plan differ")
    frame = pd.concat([rows.X.reset_index(drop=True), extra[list(VALUE_COLUMNS)]], axis=1)
    return frame, extra[SPEND].to_numpy(dtype="float64")


def category_levels(frame: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Category -> code for every category column, in the frame's (training) order, as ``encode`` reads them."""
    return {
        c: {str(v): i for i, v in enumerate(frame[c].cat.categories)}
        for c in frame.columns
        if isinstance(frame[c].dtype, pd.CategoricalDtype)
    }


def regressor_params(params: LgbmParams, seed: int) -> dict:
    return {
        "objective": "tweedie",
        "tweedie_variance_power": TWEEDIE_POWER,
        "metric": "rmse",
        "learning_rate": params.learning_rate,
        "num_leaves": params.num_leaves,
        "min_data_in_leaf": params.min_child_samples,
        "feature_fraction": params.feature_fraction,
        "bagging_fraction": params.bagging_fraction,
        "bagging_freq": params.bagging_freq,
        "lambda_l2": params.lambda_l2,
        "seed": seed,
        "deterministic": True,
        "num_threads": THREADS,
        "verbose": -1,
    }


def fit_lightgbm(
    frame: pd.DataFrame,
    y: np.ndarray,
    params: LgbmParams,
    *,
    seed: int,
    horizon_days: int,
    stop: tuple | None = None,
    rounds: int = 0,
) -> ValueModel:
    """A LightGBM value model on ``frame``; early stopping on ``stop`` = (frame, y), else ``rounds`` rounds."""
    features = tuple(frame.columns)
    levels = category_levels(frame)
    X = encode(frame, len(frame), features, levels)
    cats = [j for j, f in enumerate(features) if f in levels]
    train = lgb.Dataset(X, y, feature_name=list(features), categorical_feature=cats, free_raw_data=False)
    if stop is None:
        booster = lgb.train(regressor_params(params, seed), train, num_boost_round=max(rounds, 1))
    else:
        valid = lgb.Dataset(encode(stop[0], len(stop[0]), features, levels), stop[1], reference=train)
        booster = lgb.train(
            regressor_params(params, seed),
            train,
            num_boost_round=params.max_rounds,
            valid_sets=[valid],
            callbacks=[lgb.early_stopping(params.early_stopping_rounds, verbose=False)],
        )
        booster = booster if booster.best_iteration <= 0 else _truncate(booster, booster.best_iteration)
    return ValueModel("lightgbm", horizon_days, features, booster, levels)


def _truncate(booster: lgb.Booster, rounds: int) -> lgb.Booster:
    """The booster with only its first ``rounds`` trees, so saving and predicting use the early-stopped model."""
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=rounds))


def value_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, Spearman rank correlation, and the share of realised spend in the top decile of predictions."""
    err = p - y
    ry, rp = rankdata(y), rankdata(p)
    spearman = np.corrcoef(ry, rp)[0, 1] if ry.std() > 0 and rp.std() > 0 else float("nan")
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "spearman": float(spearman),
        "top10_share": top_share(y, p, 0.10)[1],
    }


def value_report(y: np.ndarray, scores: dict[str, np.ndarray], *, n_boot: int, seed: int, level: float = 0.95) -> dict:
    """Metrics with percentile intervals per candidate, and paired differences candidate - historical."""
    point, draws = resampled(y, scores, value_metrics, n_boot=n_boot, seed=seed)

    def interval(samples) -> list[float]:
        return [float(v) for v in np.nanpercentile(samples, [50 * (1 - level), 50 * (1 + level)])]

    report = {"n": int(len(y)), "spend_mean": float(np.mean(y)), "models": {}, "differences": {}}
    for name in scores:
        report["models"][name] = {m: {"value": v, "ci": interval(draws[name][m])} for m, v in point[name].items()}
        if name == BASELINE:
            continue
        report["differences"][name] = {}
        for m, v in point[name].items():
            lo, hi = interval(np.array(draws[name][m]) - np.array(draws[BASELINE][m]))
            good, bad = (hi < 0, lo > 0) if LOWER_IS_BETTER[m] else (lo > 0, hi < 0)
            report["differences"][name][m] = {
                "value": v - point[BASELINE][m],
                "ci": [lo, hi],
                "better": "model" if good else BASELINE if bad else "tie",
            }
    return report


def choose(valid_rmse: dict[str, float]) -> str:
    """The candidate with the lowest validation RMSE (the baseline on a tie); NaN (no fit) never wins."""
    usable = {k: v for k, v in valid_rmse.items() if v == v}
    return min(usable, key=lambda k: (usable[k], k != BASELINE))


def candidates(train: tuple, stop: tuple, config: ChurnConfig, horizon_days: int) -> dict[str, ValueModel]:
    """The three value models, LightGBM fitted on ``train`` and stopped on ``stop`` ((frame, spend) pairs)."""
    return {
        "lightgbm": fit_lightgbm(*train, config.lgbm, seed=config.seed, horizon_days=horizon_days, stop=stop),
        "bgnbd_gamma_gamma": ValueModel("bgnbd_gamma_gamma", horizon_days, (EXPECTED_SPEND,)),
        BASELINE: ValueModel(BASELINE, horizon_days, HISTORICAL_FEATURES),
    }


def predictions(models: dict[str, ValueModel], frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each model's predicted spend; a model with NaN for some buyer (no BG/NBD fit at a cutoff) is left out."""
    out = {}
    for name, model in models.items():
        p = model.predict(frame, len(frame))
        if np.isnan(p).any():
            log.warning("value model %s: no prediction for %d of %d rows; left out", name, np.isnan(p).sum(), len(p))
            continue
        out[name] = p
    return out


def flat(report: dict) -> dict[str, float]:
    """MLflow metric names: value_<model>_<m>(_lo/_hi), value_diff_<model>_<m>, value_valid_rmse_<model>."""
    out = {f"value_valid_rmse_{k}": v for k, v in report["valid_rmse"].items()}
    for name, values in report["models"].items():
        for m, v in values.items():
            out[f"value_{name}_{m}"] = v["value"]
            out[f"value_{name}_{m}_lo"], out[f"value_{name}_{m}_hi"] = v["ci"]
    for name, values in report["differences"].items():
        out.update({f"value_diff_{name}_{m}": v["value"] for m, v in values.items()})
    return {k: float(v) for k, v in out.items() if v == v}


def fit_value(
    tables: Tables, panel: pd.DataFrame, plan: CutoffPlan, *, features: FeaturesConfig, config: ChurnConfig, out: Path
) -> dict:
    """Choose, measure and save the value model into ``out/value/`` (its plot into ``out/plots/``); log it all
    to the active MLflow run. Returns the report (also in the churn report under ``value``)."""
    table = value_table(tables, plan, config=features)
    train, valid, test = (inputs(plan.rows(panel, role), table) for role in ("train", "valid", "test"))
    models = candidates(train, valid, config, plan.horizon_days)
    valid_rmse = {name: float("nan") for name in models}
    valid_rmse.update({k: value_metrics(valid[1], p)["rmse"] for k, p in predictions(models, valid[0]).items()})
    chosen = choose(valid_rmse)
    scores = predictions(models, test[0])
    report = value_report(test[1], scores, n_boot=config.bootstrap, seed=config.seed)
    report.update({"chosen": chosen, "valid_rmse": valid_rmse, "horizon_days": plan.horizon_days})
    report["rounds"] = models["lightgbm"].booster.current_iteration()
    shipped = models[chosen]
    if chosen == "lightgbm":
        refit = [inputs(plan.rows(panel, role), table) for role in ("refit", "recalibrate")]
        frame = pd.concat([f for f, _ in refit], ignore_index=True)
        frame = frame.astype({c: "category" for c in shipped.levels})  # union of both roles' levels
        y = np.concatenate([y for _, y in refit])
        shipped = fit_lightgbm(
            frame, y, config.lgbm, seed=config.seed, horizon_days=plan.horizon_days, rounds=report["rounds"]
        )
    metrics = {m: v["value"] for m, v in report["models"][chosen].items()}
    ValueModel(chosen, plan.horizon_days, shipped.features, shipped.booster, shipped.levels, metrics).save(
        out / VALUE_DIR
    )
    value_deciles(test[1], scores, out / "plots" / PLOT)
    mlflow.log_metrics(flat(report))
    mlflow.set_tag("value_model", chosen)
    mlflow.log_artifacts(str(out / VALUE_DIR), artifact_path=VALUE_DIR)
    return report
