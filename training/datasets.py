"""Rolling cutoffs and time-based splits: the only place that decides which rows train, validate and test.

Cutoffs lie on a grid ``test - k * spacing``. The validation slice is a few
consecutive cutoffs (pooled, so one season's quirks do not set the calibration),
the first at least one horizon after the last training cutoff and the last at
least one horizon before the test cutoff: every training label window closes
before validation begins and every validation label window before the test.
The scoring model repeats the recipe shifted forward so its calibration slice
ends at the test cutoff, the most recent complete labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.build import build_features, feature_columns
from features.config import FeaturesConfig
from features.contract import CUSTOMER_ID, ORDERS, parse_cutoff
from features.labels import LABEL, churn_labels
from features.sources import Tables

CUTOFF = "cutoff"
DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class CutoffPlan:
    """Cutoffs of the evaluation model (train, valid, test) and of the scoring model (refit, recalibrate)."""

    train: tuple[pd.Timestamp, ...]
    valid: tuple[pd.Timestamp, ...]
    test: pd.Timestamp
    refit: tuple[pd.Timestamp, ...]
    recalibrate: tuple[pd.Timestamp, ...]
    horizon_days: int

    @property
    def all(self) -> tuple[pd.Timestamp, ...]:
        return tuple(sorted({*self.train, *self.valid, self.test, *self.refit, *self.recalibrate}))

    def describe(self) -> dict[str, str]:
        def days(cutoffs) -> str:
            return ",".join(f"{c:%Y-%m-%d}" for c in cutoffs)

        return {
            "train_cutoffs": days(self.train),
            "valid_cutoffs": days(self.valid),
            "test_cutoff": f"{self.test:%Y-%m-%d}",
            "refit_cutoffs": days(self.refit),
            "recalibrate_cutoffs": days(self.recalibrate),
            "horizon_days": str(self.horizon_days),
        }


class NotEnoughHistory(ValueError):
    """The data span cannot hold training, validation and test windows with horizon gaps."""


def data_span(tables: Tables) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First order day and the day after the last order: orders are assumed complete up to it."""
    if tables.orders is None or tables.orders.empty:
        raise NotEnoughHistory("churn training needs an orders table with rows")
    at = tables.orders[ORDERS.ordered_at]
    return at.min().normalize(), at.max().normalize() + DAY


def plan_cutoffs(
    tables: Tables, *, horizon_days: int, spacing_days: int, n_train: int, n_valid: int = 3, test_cutoff=None
) -> CutoffPlan:
    """Place the cutoffs; the test cutoff defaults to the last one whose label window is complete."""
    first, end = data_span(tables)
    horizon = pd.Timedelta(days=horizon_days)
    test = parse_cutoff(test_cutoff) if test_cutoff is not None else end - horizon
    if test + horizon > end:
        raise NotEnoughHistory(
            f"test cutoff {test:%Y-%m-%d} + {horizon_days} days passes the last order day {end - DAY:%Y-%m-%d}; "
            "its labels are incomplete"
        )
    step = pd.Timedelta(days=spacing_days)
    gap = math.ceil(horizon_days / spacing_days) * step  # the smallest grid gap >= horizon
    recalibrate = tuple(test - k * step for k in range(n_valid))[::-1]
    valid = tuple(c - gap for c in recalibrate)
    last_train = valid[0] - gap
    earliest = first + step  # at least one spacing of history before any cutoff
    train = tuple(c for c in (last_train - k * step for k in range(n_train)) if c >= earliest)[::-1]
    if not train:
        need = (2 * gap + (n_valid - 1) * step + gap + step).days
        raise NotEnoughHistory(
            f"orders span {first:%Y-%m-%d}..{end - DAY:%Y-%m-%d}; with a {horizon_days}-day horizon and "
            f"{n_valid} validation cutoffs the last training cutoff would be {last_train:%Y-%m-%d}, before the "
            f"first usable cutoff {earliest:%Y-%m-%d}. Need at least {need} days of orders"
        )
    refit = tuple(pd.date_range(train[0], recalibrate[0] - gap, freq=step))
    return CutoffPlan(train, valid, test, refit, recalibrate, horizon_days)


def build_panel(tables: Tables, plan: CutoffPlan, *, config: FeaturesConfig, progress: bool = False) -> pd.DataFrame:
    """Features and the churn label for every planned cutoff, one row per (customer, cutoff).

    Rows are customers with an order before the cutoff (those the label is defined for).
    """
    frames = []
    for cutoff in plan.all:
        x = build_features(tables, cutoff=cutoff, config=config, progress=progress)
        y = churn_labels(tables, cutoff=cutoff, horizon_days=plan.horizon_days)
        rows = x.join(y, how="inner")
        rows.insert(0, CUTOFF, cutoff)
        frames.append(rows.reset_index())
    return pd.concat(frames, ignore_index=True)


def as_model_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Text and boolean columns become pandas ``category`` (LightGBM keeps their levels for scoring)."""
    out = frame.copy()
    for col in out.columns:
        dtype = out[col].dtype
        if isinstance(dtype, pd.CategoricalDtype):
            continue
        if pd.api.types.is_bool_dtype(dtype):
            out[col] = out[col].astype("float64")
        elif not pd.api.types.is_numeric_dtype(dtype):
            out[col] = out[col].astype("string").astype("category")
    return out


@dataclass(frozen=True)
class Rows:
    """Model inputs, labels and the (customer_id, cutoff) of each row."""

    X: pd.DataFrame
    y: np.ndarray
    keys: pd.DataFrame

    def __len__(self) -> int:
        return len(self.y)

    @property
    def churners(self) -> int:
        return int(self.y.sum())


def rows_at(panel: pd.DataFrame, cutoffs) -> Rows:
    """The panel rows at the given cutoffs, features typed for LightGBM."""
    cutoffs = pd.DatetimeIndex([parse_cutoff(c) for c in np.atleast_1d(cutoffs)])
    part = panel[panel[CUTOFF].isin(cutoffs)].reset_index(drop=True)
    cols = feature_columns(part.drop(columns=[CUTOFF]))
    X = as_model_frame(part[cols])
    return Rows(X=X, y=part[LABEL].to_numpy(dtype="int8"), keys=part[[CUSTOMER_ID, CUTOFF]])
