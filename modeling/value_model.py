"""The shipped customer-value estimator: expected spend over the horizon after the as-of date.

Training (``training.value``) fits three candidates and saves the one that
predicts held-out spend best; serving loads it and calls :meth:`ValueModel.predict`
on the same columns the churn model reads plus the value columns stored beside
them (``features.value``). The kinds:

- ``lightgbm``: a LightGBM regression on the churn features and the value columns;
- ``bgnbd_gamma_gamma``: BG/NBD's expected orders x Gamma-Gamma's expected order value
  (the ``expected_spend_bgnbd`` column);
- ``historical``: the baseline, the customer's spend per day to date x horizon days, where
  "to date" is at least one horizon (a first order yesterday is not 90 times its amount).

Only buyers get a value (``modeling.churn_model.buyers``); everyone else is NaN, as for churn.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np

from features.io import atomic_path, write_text_atomic
from features.value import EXPECTED_SPEND
from modeling.churn_model import buyers
from modeling.encoding import encode

KINDS = ("lightgbm", "bgnbd_gamma_gamma", "historical")
HISTORICAL_FEATURES = ("sales_revenue_all", "sales_days_since_first_order")
SPEC = "value.json"
BOOSTER = "booster.txt"


@dataclass(frozen=True)
class ValueModel:
    """Expected spend over ``horizon_days``; ``booster`` only for ``lightgbm``, ``metrics`` as measured in training."""

    kind: str
    horizon_days: int
    features: tuple[str, ...]
    booster: lgb.Booster | None = None
    levels: dict[str, dict[str, int]] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"value model kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        if (self.kind == "lightgbm") != (self.booster is not None):
            raise ValueError(f"value model kind {self.kind!r}: a booster is needed for lightgbm and only for it")

    def predict(self, columns: Mapping, n: int) -> np.ndarray:
        """Expected spend over the horizon per row of ``columns`` (a DataFrame or dict of lists); NaN for non-buyers."""

        X = encode(columns, n, self.features, self.levels)
        if self.kind == "lightgbm":
            value = self.booster.predict(X, num_threads=1) if n < 1000 else self.booster.predict(X)
        elif self.kind == "bgnbd_gamma_gamma":
            value = X[:, self.features.index(EXPECTED_SPEND)]
        else:
            revenue, days = (X[:, self.features.index(f)] for f in HISTORICAL_FEATURES)
            value = revenue / np.maximum(days, self.horizon_days) * self.horizon_days
        return np.where(buyers(columns, n), value, np.nan)

    def save(self, folder: str | Path) -> Path:
        """Write ``value.json`` (and ``booster.txt`` for lightgbm) into ``folder``, each file atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.booster is not None:
            with atomic_path(folder / BOOSTER) as tmp:
                self.booster.save_model(str(tmp))
        else:
            (folder / BOOSTER).unlink(missing_ok=True)
        spec = {
            "kind": self.kind,
            "horizon_days": self.horizon_days,
            "features": list(self.features),
            "levels": self.levels,
            "metrics": self.metrics,
        }
        write_text_atomic(json.dumps(spec, indent=2, sort_keys=True) + "\n", folder / SPEC)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> ValueModel:
        """The model ``save`` wrote; a missing or unreadable file raises ValueError naming it."""
        folder = Path(folder)
        path = folder / SPEC
        try:
            spec = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a value model ({exc})") from exc
        booster = None
        if spec.get("kind") == "lightgbm":
            try:
                booster = lgb.Booster(model_file=str(folder / BOOSTER))
            except lgb.basic.LightGBMError as exc:
                raise ValueError(f"{folder / BOOSTER}: the value model's booster does not load ({exc})") from exc
        return cls(
            kind=spec["kind"],
            horizon_days=int(spec["horizon_days"]),
            features=tuple(spec["features"]),
            booster=booster,
            levels={k: dict(v) for k, v in spec["levels"].items()},
            metrics=dict(spec["metrics"]),
        )
