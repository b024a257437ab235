"""THE scoring function: feature rows in, one score per customer out. HTTP, batch and Spark call it.

A score holds customer_id, as_of, churn_probability, risk_band,
churn_unscored_reason, lifecycle_stage, recommended_offer (``none`` when no offer
pays or no offer model is loaded), the expected incremental profit of each
offer, optionally the top reasons (the features that push this customer's churn
risk up most, with their values and SHAP contributions in log-odds), and the
versions of the models used.

Only buyers get a churn probability: the churn model learned from customers with
an order before the cutoff (``features.labels``), so a customer with none (the
feature ``sales_orders_all`` is 0 or missing, :func:`buyers`, the one place this
is decided) gets churn_probability and risk_band null, no reasons, and
churn_unscored_reason ``"no order before the as-of date"``. Without a churn
model every customer is unscored and the reason is the model's absence
(``Models.churn_note``). Offers do not depend on the churn model: prospects and
shops without a churn champion still get them.

The lifecycle stage needs order and cart timestamps that a feature row does not
carry, so callers pass the *base* stage (``analytics.lifecycle.lifecycle``
without probabilities, which the batch job stores in the snapshot); the scorer
adds the one rule that needs the model: a buyer whose base stage is inactive or
active becomes ``at_risk`` at ``at_risk_threshold`` or above. That is exactly the
rule order of ``analytics.lifecycle`` (at_risk comes after abandoned_cart,
new_buyer and lapsed, and needs an order). Without a base stage the stage is null.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analytics.lifecycle import RISK_BANDS
from features.contract import CUSTOMER_ID, NO_OFFER
from serving.config import ServingConfig
from serving.models import ORDER_COUNT, Models

BASE_STAGE = "lifecycle_base_stage"  # the stage without the churn rule, stored beside the features
OVERRIDABLE = frozenset({"inactive", "active"})  # buyers' stages after at_risk in analytics' rule order
AT_RISK = "at_risk"
NO_ORDER = "no order before the as-of date"


def band_labels(edges: Sequence[float]) -> list[str]:
    """analytics.lifecycle.risk_band's labels: low/medium/high for two edges, band_i otherwise."""
    return list(RISK_BANDS) if len(edges) == 2 else [f"band_{i}" for i in range(len(edges) + 1)]


def risk_bands(p: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Same bands as ``analytics.lifecycle.risk_band`` (left-closed), without pandas' per-call cost."""
    labels = np.array(band_labels(edges), dtype=object)
    return labels[np.searchsorted(np.asarray(edges, dtype=float), p, side="right")]


def stages(base: Sequence | None, p: np.ndarray, threshold: float) -> np.ndarray:
    """The lifecycle stage: the base stage, or at_risk where the churn rule fires first (never for a null p)."""
    if base is None:
        return np.full(len(p), None, dtype=object)
    base = np.array([None if _missing(s) else str(s) for s in base], dtype=object)
    late = np.isin(base, list(OVERRIDABLE))
    return np.where(late & (np.nan_to_num(p, nan=-np.inf) >= threshold), AT_RISK, base)


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
            counts = np.array([np.nan if _missing(v) else v for v in values], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"feature {ORDER_COUNT!r}: expected a number or null ({exc})") from exc
    return np.nan_to_num(counts, nan=0.0) > 0


def _missing(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and v != v)


def _value(v):
    """A feature value for output: numbers as float, NaN as None, text as text."""
    if _missing(v):
        return None
    if isinstance(v, (bool, int, float, np.integer, np.floating)):
        return float(v)
    return str(v)


@dataclass
class Reasons:
    """Top-k churn reasons per row: feature name, its value, SHAP contribution (log-odds); None/NaN past the last."""

    feature: np.ndarray  # (n, k) object
    value: np.ndarray  # (n, k) object: float, str or None
    contribution: np.ndarray  # (n, k) float

    def row(self, i: int) -> list[tuple[str, object, float]]:
        return [
            (f, v, float(c))
            for f, v, c in zip(self.feature[i], self.value[i], self.contribution[i], strict=True)
            if f is not None
        ]


@dataclass
class Scores:
    """Scores for n customers, column-wise; ``frame()`` for files, ``records()`` for HTTP."""

    customer_id: np.ndarray
    as_of: np.ndarray
    churn_probability: np.ndarray  # NaN where not scored
    risk_band: np.ndarray  # None where not scored
    churn_unscored_reason: np.ndarray  # None where scored, else why not
    lifecycle_stage: np.ndarray
    recommended_offer: np.ndarray
    offer_profit: dict[str, np.ndarray]
    reasons: Reasons | None
    churn_model_version: str
    offer_model_version: str

    def __len__(self) -> int:
        return len(self.customer_id)

    def frame(self) -> pd.DataFrame:
        """Flat columns: profit_<offer>, reason_<k> / reason_<k>_value / reason_<k>_contribution."""
        n = len(self)
        out = {
            CUSTOMER_ID: pd.array(self.customer_id, dtype="string"),
            "as_of": pd.array(self.as_of, dtype="string"),
            "churn_probability": self.churn_probability,
            "risk_band": pd.array(self.risk_band, dtype="string"),
            "churn_unscored_reason": pd.array(self.churn_unscored_reason, dtype="string"),
            "lifecycle_stage": pd.array(self.lifecycle_stage, dtype="string"),
            "recommended_offer": pd.array(self.recommended_offer, dtype="string"),
        }
        for offer, profit in self.offer_profit.items():
            out[f"profit_{offer}"] = profit
        if self.reasons is not None:
            r = self.reasons
            for k in range(r.feature.shape[1]):
                out[f"reason_{k + 1}"] = pd.array(r.feature[:, k], dtype="string")
                out[f"reason_{k + 1}_value"] = pd.array(_text(r.value[:, k]), dtype="string")
                out[f"reason_{k + 1}_contribution"] = r.contribution[:, k]
        out["churn_model_version"] = pd.array([self.churn_model_version] * n, dtype="string")
        out["offer_model_version"] = pd.array([self.offer_model_version] * n, dtype="string")
        return pd.DataFrame(out)

    def records(self) -> list[dict]:
        """One dict per customer, the shape of ``service.Score``."""
        offers = list(self.offer_profit)
        profits = np.column_stack([self.offer_profit[o] for o in offers]) if offers else None
        out = []
        for i in range(len(self)):
            p = float(self.churn_probability[i])
            out.append(
                {
                    CUSTOMER_ID: self.customer_id[i],
                    "known": True,
                    "as_of": self.as_of[i],
                    "churn_probability": None if p != p else p,
                    "risk_band": self.risk_band[i],
                    "churn_unscored_reason": self.churn_unscored_reason[i],
                    "lifecycle_stage": self.lifecycle_stage[i],
                    "recommended_offer": self.recommended_offer[i],
                    "offer_profit": {} if profits is None else dict(zip(offers, profits[i].tolist(), strict=True)),
                    "reasons": None
                    if self.reasons is None
                    else [{"feature": f, "value": v, "contribution": c} for f, v, c in self.reasons.row(i)],
                    "churn_model_version": self.churn_model_version,
                    "offer_model_version": self.offer_model_version,
                }
            )
        return out


def unknown_record(customer_id: str, models: Models) -> dict:
    """An id the snapshot does not hold: marked unknown, the request still succeeds."""
    return {
        CUSTOMER_ID: customer_id,
        "known": False,
        "as_of": None,
        "churn_probability": None,
        "risk_band": None,
        "churn_unscored_reason": None,
        "lifecycle_stage": None,
        "recommended_offer": None,
        "offer_profit": {},
        "reasons": None,
        "churn_model_version": models.churn_label,
        "offer_model_version": models.offer_note,
    }


def _text(values: np.ndarray) -> list:
    return [None if v is None else str(v) for v in values]


def no_reasons(n: int, k: int) -> Reasons:
    """k empty reason slots per row: what unscored customers (and every customer without a churn model) get."""
    return Reasons(np.full((n, k), None, dtype=object), np.full((n, k), None, dtype=object), np.full((n, k), np.nan))


def top_reasons(contributions: np.ndarray, X: np.ndarray, columns: Mapping, models: Models, k: int) -> Reasons:
    """Per row, up to k features with the largest positive contribution to churn risk, with their values.

    Numeric values come from the model matrix; a text feature's value is the caller's own text. A row whose
    contributions are all <= 0 (an unscored row holds zeros) gets no reasons.
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
    rows = np.arange(n)
    for j, name in enumerate(models.churn.features):
        if name not in models.churn.levels:
            continue
        hit = keep & (top == j)
        if hit.any():
            raw = np.asarray(list(columns[name]) if name in columns else [None] * n, dtype=object)
            where = np.nonzero(hit)
            value[where] = [_value(v) for v in raw[rows[where[0]]]]
    return Reasons(feature, value, np.where(keep, contrib, np.nan))


def score(
    columns: Mapping,
    customer_ids: Sequence[str],
    *,
    as_of,
    models: Models,
    config: ServingConfig,
    base_stage: Sequence | None = None,
    reasons: bool = False,
) -> Scores:
    """Score n customers from their feature columns.

    ``columns`` maps each feature name to n values (a DataFrame whose rows are in
    ``customer_ids`` order, or a dict of lists); ``as_of`` is one date for all or
    one per row; ``base_stage`` the lifecycle stage without the churn rule (or None).
    """
    n = len(customer_ids)
    if n == 0:
        raise ValueError("nothing to score: the customer list is empty")
    p = np.full(n, np.nan)
    unscored = np.full(n, None, dtype=object)
    why = no_reasons(n, config.reasons_top_k) if reasons else None
    if models.churn is None:
        unscored[:] = models.churn_label
    else:
        X = models.churn.encode(columns, n)
        scored = buyers(columns, n)
        unscored[~scored] = NO_ORDER
        if scored.all():
            p = models.churn.predict(X)
        elif scored.any():
            p[scored] = models.churn.predict(X[scored])
        if reasons:
            contributions = np.zeros(X.shape)
            if scored.any():
                contributions[scored] = models.churn.contributions(X[scored])
            why = top_reasons(contributions, X, columns, models, config.reasons_top_k)
    if models.offer is not None:
        profit, chosen = models.offer.score(columns, n)
        offer_profit = {o: profit[:, k] for k, o in enumerate(models.offer.offers)}
    else:
        offer_profit, chosen = {}, np.full(n, NO_OFFER, dtype=object)
    as_of_values = np.full(n, _day(as_of), dtype=object) if np.ndim(as_of) == 0 else np.array([_day(a) for a in as_of])
    bands = risk_bands(np.nan_to_num(p), config.risk_bands)
    bands[np.isnan(p)] = None
    return Scores(
        customer_id=np.asarray(customer_ids, dtype=object),
        as_of=as_of_values,
        churn_probability=p,
        risk_band=bands,
        churn_unscored_reason=unscored,
        lifecycle_stage=stages(base_stage, p, config.at_risk_threshold),
        recommended_offer=chosen,
        offer_profit=offer_profit,
        reasons=why,
        churn_model_version=models.churn_label,
        offer_model_version=models.offer_note,
    )


def _day(value) -> str | None:
    if _missing(value):
        return None
    return pd.Timestamp(value).strftime("%Y-%m-%d") if not isinstance(value, str) else value


def score_frame(
    frame: pd.DataFrame, *, as_of, models: Models, config: ServingConfig, reasons: bool = False
) -> pd.DataFrame:
    """Batch/Spark form: a feature frame (customer_id index or column, optional base stage) -> flat scores."""
    if CUSTOMER_ID in frame.columns:
        frame = frame.set_index(CUSTOMER_ID)
    ids = frame.index.astype("string").to_numpy(dtype=object)
    base = frame[BASE_STAGE].to_numpy(dtype=object) if BASE_STAGE in frame.columns else None
    return score(frame, ids, as_of=as_of, models=models, config=config, base_stage=base, reasons=reasons).frame()
