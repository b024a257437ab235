"""The churn model's class: LightGBM boosted from a prior's log-odds.

Trees start from the prior's log-odds instead of a constant, so with few trees
the model keeps the prior's fine ranking and the trees only correct it. On small
shops a tree model that stops early gives many customers the same score; a
prior does not. A :class:`Prior` is a linear score on a few features:
``constant + sum(coef_j * (f_j(x_j) - center_j))`` with ``f`` the logit for
probabilities and ``log1p`` for counts, days and money; a missing value adds 0.
BG/NBD's P(no order in the horizon) is the prior with one term of weight 1; an
RFM logistic regression (recency, frequency, value, tenure and BG/NBD) is the
prior with several. Raw score = w * trees(X) + prior(X), where ``w`` (the
prior's ``tree_weight``) is 1, 0 when validation showed that the trees only
add noise and the prior alone ships, or in between when out-of-fold scores
showed that they are partly noise; without a prior it is a plain
LGBMClassifier. Training fits it, the registry stores it (plain lists and
floats, so skops can load it), serving reads ``prior`` to add the same offset on
its fast path. SHAP contributions put each term on its own column and the
constant beside the trees' bias, so they still add up to the raw score.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

CLIP = 1e-4
TRANSFORMS = ("logit", "log1p")


def prior_log_odds(values) -> np.ndarray:
    """logit of a probability, clipped away from 0 and 1; missing -> 0."""
    p = np.asarray(values, dtype=np.float64)
    p = np.clip(np.where(np.isnan(p), 0.5, p), CLIP, 1 - CLIP)
    return np.log(p) - np.log1p(-p)


def transform(values, kind: str) -> np.ndarray:
    """A prior input on its linear scale; missing stays NaN."""
    x = np.asarray(values, dtype=np.float64)
    if kind == "logit":
        p = np.clip(x, CLIP, 1 - CLIP)
        return np.log(p) - np.log1p(-p)
    return np.log1p(np.maximum(x, 0.0))


@dataclass(frozen=True)
class Prior:
    """A linear log-odds score on a few named features; ``name`` says which (``bg_nbd``, ``rfm``)."""

    name: str
    columns: tuple[str, ...]
    transforms: tuple[str, ...]
    coef: tuple[float, ...]
    center: tuple[float, ...]
    constant: float = 0.0
    tree_weight: float = 1.0  # the trees' share of the raw score: 1, or 0 for the prior alone

    @classmethod
    def single(cls, column: str) -> Prior:
        """A probability column taken as it is: its own log-odds (missing -> 0.5)."""
        return cls("bg_nbd", (column,), ("logit",), (1.0,), (0.0,), 0.0)

    def terms(self, columns) -> np.ndarray:
        """Each feature's share of the log-odds, shape (n, len(columns)); ``columns`` maps a name to values."""
        out = np.column_stack(
            [
                c * (transform(columns[name], kind) - m)
                for name, kind, c, m in zip(self.columns, self.transforms, self.coef, self.center, strict=True)
            ]
        )
        return np.nan_to_num(out, nan=0.0)

    def log_odds(self, columns) -> np.ndarray:
        return self.constant + self.terms(columns).sum(axis=1)


class PriorBoostedLGBM(lgb.LGBMClassifier):
    """LGBMClassifier whose raw score adds a :class:`Prior`'s log-odds; no prior = plain LightGBM."""

    prior_fields_: dict | None = None  # Prior's fields as plain values (what skops stores)

    @property
    def prior(self) -> Prior | None:
        fields = self.prior_fields_
        return (
            None if fields is None else Prior(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
        )

    def offset(self, X: pd.DataFrame) -> np.ndarray | float:
        prior = self.prior
        return 0.0 if prior is None else prior.log_odds(X)

    def fit_from_prior(self, X: pd.DataFrame, y, *, prior: Prior | None, eval_X=None, eval_y=None, **kwargs):
        """``fit`` with the prior's log-odds as the initial score (training and early-stopping rows)."""
        self.prior_fields_ = None if prior is None else {k: _plain(v) for k, v in prior.__dict__.items()}
        if prior is not None:
            kwargs["init_score"] = self.offset(X)
            if eval_X is not None:
                kwargs["eval_init_score"] = [self.offset(eval_X)]
        evals = {} if eval_X is None else {"eval_X": (eval_X,), "eval_y": (eval_y,)}
        return self.fit(X, y, **evals, **kwargs)

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """The log-odds: (weighted) trees plus the prior's; what calibration maps to probabilities."""
        prior = self.prior
        trees = lgb.LGBMModel.predict(self, X, raw_score=True)
        return trees if prior is None else prior.tree_weight * trees + prior.log_odds(X)

    def alone(self) -> PriorBoostedLGBM:
        """A copy that scores with the prior alone (tree weight 0); the trees stay, unused."""
        return self.weighted(0.0)

    def weighted(self, tree_weight: float) -> PriorBoostedLGBM:
        """A copy whose trees count ``tree_weight`` times: shrunk toward the prior where they are partly noise."""
        other = copy.copy(self)
        other.prior_fields_ = {**self.prior_fields_, "tree_weight": float(tree_weight)}
        return other

    def predict_proba(self, X, raw_score=False, start_iteration=0, num_iteration=None, pred_leaf=False,
                      pred_contrib=False, validate_features=False, **kwargs):  # fmt: skip
        prior = self.prior
        if prior is None or pred_leaf:
            return super().predict_proba(
                X, raw_score, start_iteration, num_iteration, pred_leaf, pred_contrib, validate_features, **kwargs
            )
        out = lgb.LGBMModel.predict(
            self, X, True, start_iteration, num_iteration, False, pred_contrib, validate_features, **kwargs
        )
        out = prior.tree_weight * np.asarray(out, dtype=np.float64)
        if pred_contrib:
            out[:, [list(X.columns).index(c) for c in prior.columns]] += prior.terms(X)
            out[:, -1] += prior.constant
            return out
        raw = out + prior.log_odds(X)
        if raw_score:
            return raw
        p = 1.0 / (1.0 + np.exp(-raw))
        return np.column_stack([1.0 - p, p])


def _plain(value):
    return [float(v) if isinstance(v, float | np.floating) else v for v in value] if isinstance(value, tuple) else value
