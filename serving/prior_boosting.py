"""The churn model's class: LightGBM boosted from a prior's log-odds (BG/NBD's P(no order in the horizon)).

Trees start from ``logit(prior)`` instead of a constant, so with few trees the
model keeps the prior's fine ranking and the trees only correct it. On small
shops a tree model that stops early gives many customers the same score; the
prior does not. Raw score = trees(X) + logit(clip(X[prior])) (a missing prior
counts as 0.5, log-odds 0); without a prior it is a plain LGBMClassifier.
Training fits it, the registry stores it, serving reads ``prior_`` to add the
same offset on its fast path. Its SHAP contributions put the offset on the
prior's own column, so they still add up to the raw score.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd

CLIP = 1e-4


def prior_log_odds(values) -> np.ndarray:
    """logit of the prior's probability, clipped away from 0 and 1; missing -> 0."""
    p = np.asarray(values, dtype=np.float64)
    p = np.clip(np.where(np.isnan(p), 0.5, p), CLIP, 1 - CLIP)
    return np.log(p) - np.log1p(-p)


class PriorBoostedLGBM(lgb.LGBMClassifier):
    """LGBMClassifier whose raw score adds ``logit(X[prior_])``; ``prior_`` None = plain LightGBM."""

    prior_: str | None = None

    def offset(self, X: pd.DataFrame) -> np.ndarray | float:
        return 0.0 if self.prior_ is None else prior_log_odds(X[self.prior_])

    def fit_from_prior(self, X: pd.DataFrame, y, *, prior: str | None, eval_X=None, eval_y=None, **kwargs):
        """``fit`` with the prior's log-odds as the initial score (training and early-stopping rows)."""
        self.prior_ = prior
        if prior is not None:
            kwargs["init_score"] = self.offset(X)
            if eval_X is not None:
                kwargs["eval_init_score"] = [self.offset(eval_X)]
        evals = {} if eval_X is None else {"eval_X": (eval_X,), "eval_y": (eval_y,)}
        return self.fit(X, y, **evals, **kwargs)

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """The log-odds: trees plus the prior's; what calibration maps to probabilities."""
        return lgb.LGBMModel.predict(self, X, raw_score=True) + self.offset(X)

    def predict_proba(self, X, raw_score=False, start_iteration=0, num_iteration=None, pred_leaf=False,
                      pred_contrib=False, validate_features=False, **kwargs):  # fmt: skip
        if self.prior_ is None or pred_leaf:
            return super().predict_proba(
                X, raw_score, start_iteration, num_iteration, pred_leaf, pred_contrib, validate_features, **kwargs
            )
        out = lgb.LGBMModel.predict(
            self, X, True, start_iteration, num_iteration, False, pred_contrib, validate_features, **kwargs
        )
        if pred_contrib:
            out = np.array(out, dtype=np.float64)
            out[:, list(X.columns).index(self.prior_)] += self.offset(X)
            return out
        raw = out + self.offset(X)
        if raw_score:
            return raw
        p = 1.0 / (1.0 + np.exp(-raw))
        return np.column_stack([1.0 - p, p])
