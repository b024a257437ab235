"""Rolling cutoffs and time-based splits: the only place that decides which rows train, validate and test.

Cutoffs lie on a grid ``test - k * spacing``, each with at least one horizon of
orders before it. With a long history the split is by time: the validation slice
is a few consecutive cutoffs (pooled, so one season's quirks do not set the
calibration), the first at least one horizon after the last training cutoff and
the last at least one horizon before the test cutoff, so every training label
window closes before validation begins and every validation label window before
the test. The scoring model repeats the recipe shifted forward so its
calibration slice ends at the test cutoff, the most recent complete labels.

A short history (from two horizons up to what the time split needs) is split by
customer instead: every role uses the same recent cutoffs, and a CRC-32 hash of
the customer id puts each customer in one group for good: fit, calibrate
(validation) or test. What that gives up, a test in a later period, is said in
``CutoffPlan.note``.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from features.build import build_features, feature_columns
from features.config import FeaturesConfig
from features.contract import CUSTOMER_ID, ORDERS
from features.dates import parse_cutoff
from features.labels import LABEL, churn_labels
from features.sources import Tables
from training.config import ChurnConfig

CUTOFF = "cutoff"
DAY = pd.Timedelta(days=1)


TIME, CUSTOMERS = "time", "customers"
# customer hash bucket (of 10) -> group, and which groups each role reads under the customer split
BUCKETS = ("calibrate",) * 2 + ("test",) * 3 + ("fit",) * 5
ROLE_GROUPS = {
    "train": {"fit"},
    "valid": {"calibrate"},
    "test": {"test"},
    "refit": {"fit", "test"},
    "recalibrate": {"calibrate"},
}


@dataclass(frozen=True)
class CutoffPlan:
    """Cutoffs of the evaluation model (train, valid, test) and of the scoring model (refit, recalibrate).

    ``holdout`` is ``time`` (later cutoffs validate and test) or ``customers`` (held-out customers at the
    same cutoffs, for short histories); ``note`` says in words what the plan is and what it gave up.
    """

    train: tuple[pd.Timestamp, ...]
    valid: tuple[pd.Timestamp, ...]
    test: pd.Timestamp
    refit: tuple[pd.Timestamp, ...]
    recalibrate: tuple[pd.Timestamp, ...]
    horizon_days: int
    holdout: str = TIME
    note: str = ""

    @property
    def all(self) -> tuple[pd.Timestamp, ...]:
        return tuple(sorted({*self.train, *self.valid, self.test, *self.refit, *self.recalibrate}))

    def rows(self, panel: pd.DataFrame, role: str) -> Rows:
        """The panel rows one role learns or is judged on: its cutoffs, and under the customer split its group."""
        cutoffs = (self.test,) if role == "test" else getattr(self, role)
        part = panel[panel[CUTOFF].isin(pd.DatetimeIndex(cutoffs))]
        if self.holdout == CUSTOMERS:
            part = part[customer_groups(part[CUSTOMER_ID]).isin(ROLE_GROUPS[role]).to_numpy()]
        return model_rows(part)

    def describe(self) -> dict[str, str]:
        def days(cutoffs) -> str:
            return ",".join(f"{c:%Y-%m-%d}" for c in cutoffs)

        return {
            "holdout": self.holdout,
            "train_cutoffs": days(self.train),
            "valid_cutoffs": days(self.valid),
            "test_cutoff": f"{self.test:%Y-%m-%d}",
            "refit_cutoffs": days(self.refit),
            "recalibrate_cutoffs": days(self.recalibrate),
            "horizon_days": str(self.horizon_days),
            "plan": self.note,
        }


def customer_groups(ids: pd.Series) -> pd.Series:
    """fit / calibrate / test per customer, from a CRC-32 of the id: the same at every cutoff and on every run."""
    codes = pd.Series(
        [zlib.crc32(str(i).encode()) % len(BUCKETS) for i in ids.to_numpy()], index=ids.index, dtype="int64"
    )
    return codes.map(dict(enumerate(BUCKETS)))


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
    """Place the cutoffs; the test cutoff defaults to the last one whose label window is complete.

    The time split when the history holds all ``n_train`` training cutoffs; otherwise the customer split
    over up to ``n_train`` recent cutoffs. Refuses below two horizons of orders, naming the nearest setting.
    """
    first, end = data_span(tables)
    span = (end - first).days
    horizon = pd.Timedelta(days=horizon_days)
    test = parse_cutoff(test_cutoff) if test_cutoff is not None else end - horizon
    if test + horizon > end:
        raise NotEnoughHistory(
            f"test cutoff {test:%Y-%m-%d} + {horizon_days} days passes the last order day {end - DAY:%Y-%m-%d}; "
            "its labels are incomplete"
        )
    earliest = first + horizon  # a cutoff needs a horizon of orders before it, as the label needs one after
    if test < earliest:
        raise NotEnoughHistory(
            f"orders span {first:%Y-%m-%d}..{end - DAY:%Y-%m-%d} ({span} days); a {horizon_days}-day horizon needs "
            f"at least {2 * horizon_days} days: {horizon_days} of history before a cutoff and {horizon_days} after "
            f"it for the labels (test cutoff {test:%Y-%m-%d}, first usable cutoff {earliest:%Y-%m-%d}). "
            f"Set horizon_days: {span // 2} in configs/features.yaml, the longest that fits, or add older orders"
        )
    step = pd.Timedelta(days=spacing_days)
    gap = math.ceil(horizon_days / spacing_days) * step  # the smallest grid gap >= horizon
    recalibrate = tuple(test - k * step for k in range(n_valid))[::-1]
    valid = tuple(c - gap for c in recalibrate)
    first_train = valid[0] - gap - (n_train - 1) * step
    if first_train >= earliest:
        train = tuple(pd.date_range(first_train, valid[0] - gap, freq=step))
        refit = tuple(pd.date_range(train[0], recalibrate[0] - gap, freq=step))
        note = (
            f"time split: train on {n_train} cutoffs, validate and calibrate on {n_valid} later ones and test on "
            f"{test:%Y-%m-%d}, each at least {horizon_days} days after the one before"
        )
        return CutoffPlan(train, valid, test, refit, recalibrate, horizon_days, TIME, note)
    need = (end - first_train + horizon).days
    cutoffs = tuple(c for c in (test - k * step for k in range(n_train)) if c >= earliest)[::-1]
    note = (
        f"customer split: {span} days of orders are fewer than the {need} a time split with "
        f"{n_train} training and {n_valid} validation cutoffs needs, so validation (20% of customers) and test "
        f"(30%) are customers held out from training at the same {len(cutoffs)} cutoff(s) "
        f"{cutoffs[0]:%Y-%m-%d}..{test:%Y-%m-%d}. Given up: a test in a later period than training, so the "
        "test does not show how the model ages; retrain every horizon"
    )
    return CutoffPlan(cutoffs, cutoffs, test, cutoffs, (test,), horizon_days, CUSTOMERS, note)


def plan_for(tables: Tables, *, features: FeaturesConfig, config: ChurnConfig, test_cutoff=None) -> CutoffPlan:
    """The plan the settings ask for: the horizon from features.yaml, the cutoffs from churn.yaml."""
    return plan_cutoffs(
        tables,
        horizon_days=features.horizon_days,
        spacing_days=config.spacing_days,
        n_train=config.train_cutoffs,
        n_valid=config.valid_cutoffs,
        test_cutoff=test_cutoff or config.test_cutoff,
    )


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


def model_rows(part: pd.DataFrame) -> Rows:
    """Panel rows as model inputs (features typed for LightGBM), labels and keys."""
    part = part.reset_index(drop=True)
    cols = feature_columns(part.drop(columns=[CUTOFF]))
    return Rows(X=as_model_frame(part[cols]), y=part[LABEL].to_numpy(dtype="int8"), keys=part[[CUSTOMER_ID, CUTOFF]])


def rows_at(panel: pd.DataFrame, cutoffs) -> Rows:
    """Every panel row at the given cutoffs."""
    cutoffs = pd.DatetimeIndex(np.atleast_1d(cutoffs))
    return model_rows(panel[panel[CUTOFF].isin(cutoffs)])


def split_rows(rows: Rows, share: float, seed: int) -> tuple[Rows, Rows]:
    """Split a time slice by customer (all of a customer's cutoffs on one side): early stopping vs calibration."""
    ids = rows.keys[CUSTOMER_ID].unique()
    chosen = ids[np.random.default_rng(seed).random(len(ids)) < share]
    pick = rows.keys[CUSTOMER_ID].isin(chosen).to_numpy()
    return subset(rows, pick), subset(rows, ~pick)


def subset(rows: Rows, mask: np.ndarray) -> Rows:
    return Rows(X=rows.X[mask].reset_index(drop=True), y=rows.y[mask], keys=rows.keys[mask].reset_index(drop=True))


def join_rows(a: Rows, b: Rows) -> Rows:
    """``a``'s rows then ``b``'s; a text feature stays a category with both sides' levels (a plain concat of
    categories that differ gives strings, which LightGBM refuses)."""
    X = pd.concat([a.X, b.X], ignore_index=True)
    for col in a.X.columns:
        if isinstance(a.X[col].dtype, pd.CategoricalDtype) and not isinstance(X[col].dtype, pd.CategoricalDtype):
            X[col] = union_categoricals([a.X[col], b.X[col]], ignore_order=True)
    return Rows(X=X, y=np.r_[a.y, b.y], keys=pd.concat([a.keys, b.keys], ignore_index=True))
