"""The churn champion's hot path: booster, prior and calibrators as plain numpy (the sklearn object costs ms).

It computes exactly what the registered scikit-learn model (``modeling.prior_boosting``) predicts: the
registry's loader checks that on the model's own input example before anything is served.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from modeling.encoding import encode, is_null
from modeling.prior_boosting import Prior

ORDER_COUNT = "sales_orders_all"  # orders before the as-of date: 0 or missing = not a buyer, no churn score


def buyers(columns: Mapping, n: int) -> np.ndarray:
    """Which rows have an order before the as-of date (``sales_orders_all`` > 0): the ones the churn model scores.

    The one place this rule lives; a missing count (no orders table, or a request without it) is no order.
    """
    if ORDER_COUNT not in columns:
        return np.zeros(n, dtype=bool)
    values = columns[ORDER_COUNT]
    if isinstance(values, pd.Series):
        counts = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    elif isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
        counts = values.astype(np.float64, copy=False)
    else:
        try:
            counts = np.array([np.nan if is_null(v) else v for v in values], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"feature {ORDER_COUNT!r}: expected a number or null ({exc})") from exc
    return np.nan_to_num(counts, nan=0.0) > 0


@dataclass(frozen=True)
class Interpolated:
    """A fitted IsotonicRegression(out_of_bounds="clip") as one ``np.interp`` (sklearn's predict costs ~0.5 ms)."""

    x: np.ndarray
    y: np.ndarray

    def predict(self, raw: np.ndarray) -> np.ndarray:
        return np.interp(raw, self.x, self.y)


def fast_calibrator(calibrator):
    """The same mapping without sklearn's per-call input checks, where we know it exactly; else unchanged."""
    from sklearn.isotonic import IsotonicRegression

    exact = isinstance(calibrator, IsotonicRegression) and calibrator.out_of_bounds == "clip"
    if exact and calibrator.increasing_ and len(calibrator.X_thresholds_) > 1:
        return Interpolated(calibrator.X_thresholds_.astype(float), calibrator.y_thresholds_.astype(float))
    return calibrator


@dataclass(frozen=True)
class ChurnModel:
    """The churn champion's hot path: booster -> calibrator, plus contributions for reasons."""

    name: str
    version: str
    features: tuple[str, ...]
    levels: dict[str, dict[str, int]]
    booster: lgb.Booster
    calibrators: tuple = ()
    raw_score: bool = True  # sklearn calibrates decision_function (log-odds) when the classifier has one
    prior: Prior | None = None  # the log-odds the trees were boosted from (modeling.prior_boosting)
    prior_index: tuple[int, ...] = ()  # the prior's columns in ``features``
    run_id: str | None = None  # the training run (its ``value/`` artifacts hold the value model)

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"

    def encode(self, columns: Mapping, n: int) -> np.ndarray:
        return encode(columns, n, self.features, self.levels)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Calibrated churn probability; the mean over calibrators as CalibratedClassifierCV does."""
        threads = {"num_threads": 1} if len(X) < 1000 else {}
        raw = self.booster.predict(X, raw_score=self.raw_score, **threads)
        if self.prior is not None:
            raw = self.prior.tree_weight * raw + self.prior.log_odds(self._prior_inputs(X))
        return np.mean([c.predict(raw) for c in self.calibrators], axis=0)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per-feature SHAP contributions to the log-odds, shape (n, features); the bias (trees' and the
        prior's constant) left out."""
        out = self.booster.predict(X, pred_contrib=True)[:, :-1]
        if self.prior is not None:
            out = self.prior.tree_weight * out
            out[:, list(self.prior_index)] += self.prior.terms(self._prior_inputs(X))
        return out

    def _prior_inputs(self, X: np.ndarray) -> dict[str, np.ndarray]:
        return {name: X[:, j] for name, j in zip(self.prior.columns, self.prior_index, strict=True)}
