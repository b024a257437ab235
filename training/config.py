"""Typed settings for churn training (configs/churn.yaml), loaded once at the edge."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from features.config import Frozen


class LgbmParams(Frozen):
    """Starting LightGBM parameters; tuning searches around them."""

    learning_rate: float = Field(0.05, gt=0, le=1)
    num_leaves: int = Field(31, ge=2)
    min_child_samples: int = Field(50, ge=1)
    feature_fraction: float = Field(0.8, gt=0, le=1)
    bagging_fraction: float = Field(0.8, gt=0, le=1)
    bagging_freq: int = Field(1, ge=0)
    lambda_l2: float = Field(1.0, ge=0)
    max_rounds: int = Field(2000, ge=1, description="upper bound; early stopping picks the number")
    early_stopping_rounds: int = Field(50, ge=1)


class Tuning(Frozen):
    """Optuna study: TPE sampler, median pruning, storage kept so a study resumes."""

    trials: int = Field(0, ge=0, description="0 = no tuning, use lgbm as given")
    timeout_s: float | None = Field(None, gt=0, description="stop the study after this many seconds")
    study_name: str = "churn"
    storage: str = Field("models/churn/optuna.db", description="SQLite file, relative to the project root")


class Gate(Frozen):
    """When the challenger replaces the champion."""

    metric: str = Field(
        "roc_auc", pattern="^(roc_auc|pr_auc|dr_gain)$", description="higher is better; dr_gain for offers"
    )
    margin: float = Field(0.002, ge=0, description="the challenger must beat the champion by at least this")


class MinimumData(Frozen):
    """Refuse to train below these counts."""

    customers: int = Field(200, ge=1, description="labelled customers at the test cutoff")
    churners: int = Field(50, ge=1, description="churners (and non-churners) at the test cutoff and in training")


class ChurnConfig(Frozen):
    """How the churn model is trained, evaluated and registered."""

    model_name: str = "retain-churn"
    experiment: str = "retain-churn"
    spacing_days: int = Field(30, gt=0, description="days between consecutive cutoffs")
    train_cutoffs: int = Field(8, ge=1, description="rolling cutoffs that give training rows")
    valid_cutoffs: int = Field(3, ge=1, description="consecutive cutoffs pooled for early stopping and calibration")
    test_cutoff: dt.date | None = Field(None, description="None = the last cutoff whose label window is complete")
    calibration: str = Field(
        "sigmoid", pattern="^(isotonic|sigmoid)$", description="sigmoid (Platt) keeps the ranking; isotonic has steps"
    )
    new_customer_days: int = Field(90, gt=0, description="slice 'new' = first order within this many days")
    value_tiers: int = Field(3, ge=2, description="slices by past revenue quantiles")
    bootstrap: int = Field(200, ge=10, description="resamples for confidence intervals")
    seed: int = 7
    lgbm: LgbmParams = LgbmParams()
    tuning: Tuning = Tuning()
    gate: Gate = Gate()
    minimum: MinimumData = MinimumData()
