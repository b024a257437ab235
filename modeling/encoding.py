"""Feature columns to the float matrix LightGBM reads, one way for every model and every caller.

Categories become the booster's own codes (``levels``, learned from its training frame); an unknown
category or an absent feature is missing. Columns are a DataFrame (batch, training) or a dict of lists
(one HTTP request), so small requests skip pandas.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import lightgbm as lgb
import numpy as np
import pandas as pd

from modeling.errors import ModelError


def booster_levels(booster: lgb.Booster, categorical: list[str], what: str) -> dict[str, dict[str, int]]:
    """Category -> code per categorical feature, in the booster's own (training) order."""
    cats = booster.pandas_categorical or []
    if len(cats) != len(categorical):
        raise ModelError(
            f"{what}: {len(categorical)} text features {categorical} but the booster knows "
            f"{len(cats)} categorical columns; the model and its signature disagree"
        )
    return {name: {str(v): i for i, v in enumerate(levels)} for name, levels in zip(categorical, cats, strict=True)}


def column(columns: Mapping, name: str, n: int):
    if name in columns:
        return columns[name]
    return [None] * n


def encode(columns: Mapping, n: int, features: Iterable[str], levels: Mapping[str, Mapping[str, int]]) -> np.ndarray:
    """Feature columns -> the float matrix LightGBM sees (categories as the booster's codes, unknown -> NaN).

    ``columns`` maps a feature name to its values: a DataFrame, or a dict of lists
    (the HTTP path). An absent feature is missing for every row. A value that is
    not a number where the model wants one raises ValueError naming the feature.
    """
    features = list(features)
    X = np.empty((n, len(features)), dtype=np.float64)
    frame = isinstance(columns, pd.DataFrame)
    if not frame:  # small requests: one conversion for all numeric columns
        numeric = [j for j, f in enumerate(features) if f not in levels]
        try:
            X[:, numeric] = np.array([column(columns, features[j], n) for j in numeric], dtype=np.float64).T
        except (TypeError, ValueError):
            numeric = []  # find and name the offending feature below
        done = set(numeric)
    else:
        done = set()
    for j, name in enumerate(features):
        if j in done:
            continue
        values = column(columns, name, n)
        lookup = levels.get(name)
        if lookup is None:
            if isinstance(values, pd.Series):
                X[:, j] = pd.to_numeric(values, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                try:
                    X[:, j] = np.asarray(values, dtype=np.float64)
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"feature {name!r}: expected a number or null ({exc})") from exc
        elif isinstance(values, pd.Series) and n > 64:
            codes = pd.Categorical(values.astype("string"), categories=list(lookup)).codes
            X[:, j] = np.where(codes < 0, np.nan, codes)
        else:
            get, nan = lookup.get, np.nan
            X[:, j] = [get(v, nan) if type(v) is str else (nan if is_null(v) else get(str(v), nan)) for v in values]
    return X


def is_null(v) -> bool:
    return v is None or (isinstance(v, float) and v != v) or v is pd.NA
