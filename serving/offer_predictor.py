"""The next-best-offer model as an MLflow pyfunc: features in, one offer (or none) out.

No standard MLflow flavour holds several LightGBM boosters combined per offer,
so the fitted uplift learner is stored as plain booster text plus a JSON spec
(which boosters, with which weights, make each arm's conversion probability).
Training scores through these same functions, so there is one scoring path.
This module never imports ``training``.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightgbm as lgb
import mlflow.pyfunc
import numpy as np
import pandas as pd

from features.config import OfferCatalog

ARM_COLUMN = "offer_arm"  # the S-learner's extra input: the arm's index
SPEC_FILE = "spec.json"


def arm_frame(frame: pd.DataFrame, features: list[str], categories: dict[str, list]) -> pd.DataFrame:
    """The model's inputs in training order, with categorical columns typed as in training."""
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise ValueError(f"offer model input: missing feature column(s) {missing[:10]}")
    X = frame[features].copy()
    for col, levels in categories.items():
        X[col] = pd.Categorical(X[col].astype("string"), categories=levels)
    return X


def predict_arm_proba(boosters: list[lgb.Booster], spec: dict, X: pd.DataFrame) -> np.ndarray:
    """P(convert | x, arm) for every arm, shape (n, n_arms); arm 0 is 'none'.

    Each arm's probability is a weighted sum of booster outputs (a classifier's
    probability or a regressor's effect), clipped to [0, 1].
    """
    out = np.zeros((len(X), len(spec["arms"])))
    cache: dict[tuple[int, int | None], np.ndarray] = {}
    for j, arm in enumerate(spec["arms"]):
        for term in spec["terms"][arm]:
            key = (term["booster"], term["arm_code"])
            if key not in cache:
                inputs = X if term["arm_code"] is None else X.assign(**{ARM_COLUMN: term["arm_code"]})
                cache[key] = boosters[term["booster"]].predict(inputs)
            out[:, j] += term["weight"] * cache[key]
    return np.clip(out, 0.0, 1.0)


def cost_arrays(catalog: OfferCatalog) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per offer: cost per send, share of the order given up, fixed cost per redemption."""
    send = np.array([o.cost_per_send for o in catalog.offers])
    share = np.array([o.cost_share_of_order for o in catalog.offers])
    redemption = np.array([o.cost_per_redemption for o in catalog.offers])
    return send, share, redemption


def margin(order_value: np.ndarray, catalog: OfferCatalog) -> np.ndarray:
    """Value of one conversion: the configured margin, else the order value x margin rate."""
    if catalog.margin_per_order is not None:
        return np.full(len(order_value), catalog.margin_per_order)
    return np.asarray(order_value, dtype=float) * catalog.margin_rate


def expected_rewards(proba: np.ndarray, order_value: np.ndarray, catalog: OfferCatalog) -> np.ndarray:
    """Expected profit of each arm, shape (n, 1 + offers): none earns p0 x margin, an offer pays its costs."""
    send, share, redemption = cost_arrays(catalog)
    value = np.asarray(order_value, dtype=float)[:, None]
    m = margin(order_value, catalog)[:, None]
    offers = proba[:, 1:] * (m - share * value - redemption) - send
    return np.column_stack([proba[:, 0] * m[:, 0], offers])


def incremental_profit(proba: np.ndarray, order_value: np.ndarray, catalog: OfferCatalog) -> np.ndarray:
    """Expected profit of each offer minus that of sending nothing, shape (n, offers)."""
    rewards = expected_rewards(proba, order_value, catalog)
    return rewards[:, 1:] - rewards[:, [0]]


def eligible(order_count: np.ndarray | None, catalog: OfferCatalog) -> np.ndarray | None:
    """Which customer may get which offer, shape (n, offers), from each offer's ``min_orders``; None: all."""
    minimum = np.array([o.min_orders for o in catalog.offers])
    if not (minimum > 0).any():
        return None
    if order_count is None:
        raise ValueError("offers with min_orders need the customers' order counts")
    return np.nan_to_num(np.asarray(order_count, dtype=float))[:, None] >= minimum


def choose(profit: np.ndarray, allowed: np.ndarray | None = None) -> np.ndarray:
    """The arm with the largest positive incremental profit per row; 0 ('none') when none is positive."""
    if allowed is not None:
        profit = np.where(allowed, profit, -np.inf)
    best = profit.argmax(axis=1)
    return np.where(profit[np.arange(len(profit)), best] > 0, best + 1, 0)


def order_values(frame: pd.DataFrame, spec: dict) -> np.ndarray:
    """Each customer's expected order value: their own average, else the training average."""
    column = spec.get("order_value_feature")
    default = spec["default_order_value"]
    if column is None or column not in frame.columns:
        return np.full(len(frame), default)
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    return np.where(np.isfinite(values) & (values > 0), values, default)


def score_offers(boosters: list[lgb.Booster], spec: dict, frame: pd.DataFrame) -> pd.DataFrame:
    """Per customer: each arm's conversion probability, each offer's incremental profit, the chosen offer."""
    catalog = OfferCatalog.model_validate(spec["catalog"])
    X = arm_frame(frame, spec["features"], spec["categories"])
    proba = predict_arm_proba(boosters, spec, X)
    value = order_values(frame, spec)
    profit = incremental_profit(proba, value, catalog)
    count_col = spec.get("order_count_feature")
    counts = frame[count_col].to_numpy() if count_col and count_col in frame.columns else None
    arms = np.array(spec["arms"], dtype=object)
    constant = spec.get("constant_offer")
    if constant is None:
        chosen = arms[choose(profit, eligible(counts, catalog))]
    else:  # personalising did not beat one offer for everyone on held-out data
        chosen = np.full(len(frame), constant, dtype=object)
    out = pd.DataFrame({f"p_{a}": proba[:, j] for j, a in enumerate(arms)}, index=frame.index)
    for k, name in enumerate(arms[1:]):
        out[f"profit_{name}"] = profit[:, k]
    out["offer"] = chosen
    return out


def save_model(boosters: list[lgb.Booster], spec: dict, path: str | Path) -> Path:
    """Write the boosters as text and the spec as JSON into a folder."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for i, booster in enumerate(boosters):
        (path / f"booster_{i}.txt").write_text(booster.model_to_string())
    (path / SPEC_FILE).write_text(json.dumps({**spec, "n_boosters": len(boosters)}, indent=1))
    return path


def load_model(path: str | Path) -> tuple[list[lgb.Booster], dict]:
    path = Path(path)
    spec = json.loads((path / SPEC_FILE).read_text())
    boosters = [lgb.Booster(model_str=(path / f"booster_{i}.txt").read_text()) for i in range(spec["n_boosters"])]
    return boosters, spec


class OfferPolicyModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: ``predict(features)`` returns :func:`score_offers`' table."""

    def load_context(self, context) -> None:
        self.boosters_, self.spec_ = load_model(context.artifacts["offer_model"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return score_offers(self.boosters_, self.spec_, model_input)
