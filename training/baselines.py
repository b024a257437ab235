"""Classic churn baselines the model must beat: recency, RFM logistic regression, BG/NBD.

All three read only orders strictly before the cutoff. BG/NBD's math is in
``features.bgnbd`` (the ``lifetime`` feature builder uses it too).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from features import bgnbd
from features.bgnbd import WEEK_DAYS
from features.contract import CUSTOMER_ID, ORDERS
from features.snapshot import KEY, Snapshot
from features.sources import Tables
from training.datasets import CUTOFF, Rows
from training.evaluate import roc_auc

RFM_COLUMNS = ("recency_days", "frequency", "monetary", "tenure_days")


def rfm(tables: Tables, *, cutoff) -> pd.DataFrame:
    """Recency, frequency, monetary value and tenure per customer from orders strictly before ``cutoff``.

    Also the BG/NBD summary: ``x`` repeat purchase days, ``t_x`` and ``T`` in weeks since the first purchase.
    Amounts are summed as decimals, as the sales features sum them, so the order of the rows does not matter.
    """
    with Snapshot(tables, cutoff=cutoff) as snap:
        cutoff = snap.cutoff
        out = snap.sql(f"""
            SELECT p.{CUSTOMER_ID}, min(o.day) AS first, max(o.day) AS last, count(*)::DOUBLE AS frequency,
                count(DISTINCT o.day)::DOUBLE AS purchase_days, coalesce(sum(o.amount), 0)::DOUBLE AS revenue
            FROM (
                SELECT {KEY}, date_trunc('day', {ORDERS.ordered_at}) AS day, {ORDERS.amount}::DECIMAL(38, 6) AS amount
                FROM {ORDERS.name}
            ) o JOIN population p USING ({KEY})
            GROUP BY p.{CUSTOMER_ID}
        """)
    out = out.set_index(out[CUSTOMER_ID].astype("string")).drop(columns=CUSTOMER_ID)
    out["recency_days"] = (cutoff - out["last"]).dt.total_seconds() / 86400
    out["tenure_days"] = (cutoff - out["first"]).dt.total_seconds() / 86400
    out["monetary"] = out["revenue"] / out["frequency"]
    out["x"] = out["purchase_days"] - 1
    out["t_x"] = (out["last"] - out["first"]).dt.total_seconds() / 86400 / WEEK_DAYS
    out["T"] = out["tenure_days"] / WEEK_DAYS
    return out.drop(columns=["first", "last", "purchase_days"]).sort_index()


def baseline_inputs(tables: Tables, keys: pd.DataFrame) -> pd.DataFrame:
    """RFM summaries aligned row by row to (customer_id, cutoff) keys."""
    parts = [rfm(tables, cutoff=c).assign(**{CUTOFF: c}) for c in keys[CUTOFF].unique()]
    summary = pd.concat(parts).rename_axis(CUSTOMER_ID).reset_index()
    merged = keys.astype({CUSTOMER_ID: "string"}).merge(summary, on=[CUSTOMER_ID, CUTOFF], how="left")
    return merged.fillna({c: 0.0 for c in summary.columns if c not in (CUSTOMER_ID, CUTOFF)})


@dataclass
class RecencyHeuristic:
    """Churn risk = the training churn rate of customers with the same recency (monotone in recency)."""

    def fit(self, summary: pd.DataFrame, y: np.ndarray) -> RecencyHeuristic:
        self.iso_ = IsotonicRegression(increasing=True, out_of_bounds="clip", y_min=1e-4, y_max=1 - 1e-4)
        self.iso_.fit(summary["recency_days"].to_numpy(), y)
        return self

    def predict_proba(self, summary: pd.DataFrame) -> np.ndarray:
        return self.iso_.predict(summary["recency_days"].to_numpy())


def _rfm_matrix(summary: pd.DataFrame) -> np.ndarray:
    return np.log1p(summary[list(RFM_COLUMNS)].to_numpy(dtype="float64"))


@dataclass
class RfmLogistic:
    """Logistic regression on log recency, frequency, monetary value and tenure."""

    random_state: int = 0

    def fit(self, summary: pd.DataFrame, y: np.ndarray) -> RfmLogistic:
        self.model_ = make_pipeline(StandardScaler(), LogisticRegression(random_state=self.random_state))
        self.model_.fit(_rfm_matrix(summary), y)
        return self

    def predict_proba(self, summary: pd.DataFrame) -> np.ndarray:
        return self.model_.predict_proba(_rfm_matrix(summary))[:, 1]


@dataclass
class BgNbd:
    """BG/NBD fitted by maximum likelihood; risk = P(no purchase in the next ``horizon_days``).

    Unsupervised: it needs no labels, so it is fitted on the history before the scoring cutoff.
    """

    horizon_days: int

    def fit(self, summary: pd.DataFrame, y: np.ndarray | None = None) -> BgNbd:
        params, self.converged_ = bgnbd.fit(*_xtT(summary))
        self.params_ = dict(zip(bgnbd.PARAMS, params, strict=True))
        return self

    def p_alive(self, summary: pd.DataFrame) -> np.ndarray:
        return bgnbd.p_alive(tuple(self.params_.values()), *_xtT(summary))

    def predict_proba(self, summary: pd.DataFrame) -> np.ndarray:
        weeks = self.horizon_days / bgnbd.WEEK_DAYS
        return bgnbd.p_no_purchase(tuple(self.params_.values()), *_xtT(summary), weeks)


def _xtT(summary: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(summary[c].to_numpy(dtype="float64") for c in ("x", "t_x", "T"))


BASELINES = ("recency", "rfm_logistic", "bg_nbd")


def fit_and_score_baselines(
    train: pd.DataFrame, y_train: np.ndarray, test: pd.DataFrame, *, horizon_days: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """Churn probabilities on the test summary from each baseline.

    Supervised baselines learn from the training rows; BG/NBD is fitted on the test cutoff's own
    history (no labels), the way it is used in practice.
    """
    return {
        "recency": RecencyHeuristic().fit(train, y_train).predict_proba(test),
        "rfm_logistic": RfmLogistic(random_state=seed).fit(train, y_train).predict_proba(test),
        "bg_nbd": BgNbd(horizon_days=horizon_days).fit(test).predict_proba(test),
    }


def baseline_valid_auc(
    tables: Tables, train_summary: pd.DataFrame, y_train: np.ndarray, calib: Rows, horizon_days: int, seed: int
) -> dict[str, float]:
    """Each baseline's AUC on the validation rows, beside the model's candidates."""
    summary = baseline_inputs(tables, calib.keys)
    scores = fit_and_score_baselines(train_summary, y_train, summary, horizon_days=horizon_days, seed=seed)
    return {name: roc_auc(calib.y, p) for name, p in scores.items()}
