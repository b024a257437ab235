"""Refuse what an HTTP caller made up: a text feature's value outside the trained levels, a number that is not one.

Only for requests: batch and Spark build their features with the builders, where a level unseen in training
reads as missing.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from modeling.encoding import is_null
from serving.champions import Models


class FeatureValueError(ValueError):
    """A request's feature value the models cannot read: ``row``, ``feature`` and what was expected."""

    def __init__(self, row: int, feature: str, detail: str):
        super().__init__(f"row {row}, feature {feature!r}: {detail}")
        self.row, self.feature, self.detail = row, feature, detail


def category_levels(models: Models) -> dict[str, list[str]]:
    """The levels each text feature may take: those the models were trained on (union over the models)."""
    out: dict[str, list[str]] = {}
    tables = [] if models.churn is None else [models.churn.levels]
    tables += [] if models.offer is None else list(models.offer.levels)
    tables += [] if models.value is None else [models.value.levels]
    for levels in tables:
        for name, codes in levels.items():
            seen = out.setdefault(name, [])
            seen.extend(level for level in codes if level not in seen)
    return out


def check_request(columns: Mapping, n: int, models: Models) -> None:
    """Raise :class:`FeatureValueError` for the first value of ``columns`` (n rows) the models cannot read."""
    levels = category_levels(models)
    for name in models.inputs:
        values = columns.get(name)
        if values is None:
            continue
        allowed = levels.get(name)
        for i, v in enumerate(values):
            if is_null(v):
                continue
            if allowed is not None:
                if not isinstance(v, str) or v not in allowed:
                    shown = ", ".join(repr(x) for x in allowed[:20])
                    given = int(v) if isinstance(v, float) and v.is_integer() else v  # JSON 5 arrives as 5.0
                    raise FeatureValueError(i, name, f"{given!r} is not a known category; expected one of {shown}")
            elif isinstance(v, str) or not np.isfinite(float(v)):
                raise FeatureValueError(i, name, f"{v!r} is not a number")
