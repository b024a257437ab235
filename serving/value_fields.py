"""Customer value in a score (``schema.VALUE_FIELDS``): buyers only, as the churn probability.

predicted_value is the value model's expected spend over the horizon, value_at_risk that times the churn
probability; expected orders, 12-month spend and the next order's date come from the value columns
(``features.value``) the batch job stores beside the features, so a request that sends features without them
gets those fields null, and value_unscored_reason says why.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from features.value import EXPECTED_ORDERS, EXPECTED_ORDERS_12M, EXPECTED_SPEND_12M, NEXT_ORDER
from modeling.churn_model import buyers
from modeling.encoding import is_null
from serving.champions import Models
from serving.schema import DAY, NO_ORDER, VALUE_FIELDS, VALUE_TEXT


def _numbers(columns: Mapping, name: str, n: int) -> np.ndarray:
    """A numeric column as float64 with NaN for missing (absent: all NaN)."""
    if name not in columns:
        return np.full(n, np.nan)
    values = columns[name]
    if isinstance(values, pd.Series):
        return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return np.array([np.nan if is_null(v) else v for v in values], dtype=np.float64)


def next_order_dates(as_of_values: np.ndarray, days: np.ndarray) -> np.ndarray:
    """The date (YYYY-MM-DD) each as-of date + that many days falls on; None where either is missing."""
    out = np.full(len(days), None, dtype=object)
    start = pd.to_datetime(pd.Series(as_of_values, dtype=object), format=DAY).to_numpy()
    ok = np.isfinite(days) & (days >= 0) & ~pd.isna(start)
    if ok.any():
        when = pd.DatetimeIndex(start[ok]) + pd.to_timedelta(days[ok], unit="D")
        out[ok] = when.strftime(DAY).to_numpy(dtype=object)
    return out


def value_fields(columns: Mapping, n: int, p: np.ndarray, as_of_values: np.ndarray, models: Models) -> dict:
    """VALUE_FIELDS for n rows: the value model's spend, its product with the churn probability, and the value
    columns' orders, 12-month spend and next order date; buyers only (``buyers``), money to cents."""
    nan = np.full(n, np.nan)
    out = {k: np.full(n, None, dtype=object) if k in VALUE_TEXT else nan.copy() for k in VALUE_FIELDS}
    why = out["value_unscored_reason"]
    if models.value is None:
        why[:] = models.value_label
        return out
    buyer = buyers(columns, n)
    value = np.round(models.value.predict(columns, n), 2)
    value[~buyer] = np.nan
    missing = [c for c in models.value.features if c not in columns]
    why[buyer & np.isnan(value)] = f"the value model's inputs are missing ({', '.join(missing) or 'null values'})"
    why[~buyer] = NO_ORDER
    out["predicted_value"] = value
    out["value_at_risk"] = np.round(p * value, 2)
    for field, column, digits in (
        ("expected_orders", EXPECTED_ORDERS, 2),
        ("expected_orders_12m", EXPECTED_ORDERS_12M, 2),
        ("expected_spend_12m", EXPECTED_SPEND_12M, 2),
    ):
        out[field] = np.where(buyer, np.round(_numbers(columns, column, n), digits), np.nan)
    out["next_order_expected_by"] = next_order_dates(
        as_of_values, np.where(buyer, _numbers(columns, NEXT_ORDER, n), np.nan)
    )
    return out
