"""Churn reasons: per customer, the features that push the churn risk up most, with their values in words."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from features.descriptions import sentences
from modeling.encoding import is_null
from serving.champions import Models


@dataclass
class Reasons:
    """Top-k churn reasons per row: feature name, the value in words, its raw value, SHAP contribution (log-odds).

    None/NaN past the last reason of a row.
    """

    feature: np.ndarray  # (n, k) object
    value: np.ndarray  # (n, k) object: float, str or None
    contribution: np.ndarray  # (n, k) float
    text: np.ndarray  # (n, k) object: features.descriptions.sentence of the value

    def row(self, i: int) -> list[dict]:
        return [
            {"feature": f, "text": t, "value": v, "contribution": float(c)}
            for f, t, v, c in zip(self.feature[i], self.text[i], self.value[i], self.contribution[i], strict=True)
            if f is not None
        ]


def no_reasons(n: int, k: int) -> Reasons:
    """k empty reason slots per row: what unscored customers (and every customer without a churn model) get."""
    empty = np.full((n, k), None, dtype=object)
    return Reasons(empty, empty.copy(), np.full((n, k), np.nan), empty.copy())


def _value(v):
    """A feature value for output: numbers as float, NaN as None, text as text."""
    if is_null(v):
        return None
    if isinstance(v, (bool, int, float, np.integer, np.floating)):
        return float(v)
    return str(v)


def top_reasons(
    contributions: np.ndarray, X: np.ndarray, columns: Mapping, models: Models, k: int, currency: str
) -> Reasons:
    """Per row, up to k features with the largest positive contribution to churn risk, with their values in words.

    Numeric values come from the model matrix; a text feature's value is the caller's own text. A row whose
    contributions are all <= 0 (an unscored row holds zeros) gets no reasons. Words are made per feature over
    the rows it explains (one description lookup per feature, not per row).
    """
    n, f = contributions.shape
    k = min(k, f)
    top = np.argsort(-contributions, axis=1, kind="stable")[:, :k]
    contrib = np.take_along_axis(contributions, top, axis=1)
    keep = contrib > 0
    names = np.array(models.churn.features, dtype=object)
    feature = np.where(keep, names[top], None)
    numbers = np.take_along_axis(X, top, axis=1)
    value = np.empty(numbers.shape, dtype=object)
    value[:] = numbers.tolist()  # Python floats, as JSON wants them
    value[~keep | np.isnan(numbers)] = None
    text = np.full(numbers.shape, None, dtype=object)
    rows = np.arange(n)
    for j, name in enumerate(models.churn.features):
        hit = keep & (top == j)
        if not hit.any():
            continue
        where = np.nonzero(hit)
        if name in models.churn.levels:
            raw = np.asarray(list(columns[name]) if name in columns else [None] * n, dtype=object)
            value[where] = [_value(v) for v in raw[rows[where[0]]]]
        text[where] = sentences(name, value[where], currency)
    return Reasons(feature, value, np.where(keep, contrib, np.nan), text)
