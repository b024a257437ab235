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
carry, so callers pass the *base* stage (``modeling.lifecycle.lifecycle``
without probabilities, which the batch job stores in the snapshot); the scorer
adds the one rule that needs the model: a buyer whose base stage is inactive or
active becomes ``at_risk`` at ``at_risk_threshold`` or above. That is exactly the
rule order of ``modeling.lifecycle`` (at_risk comes after abandoned_cart,
new_buyer and lapsed, and needs an order). Without a base stage the stage is null.

Customer value (``Models.value``, :func:`value_fields`) follows the churn rule: only
buyers get one. predicted_value is the value model's expected spend over the
horizon, value_at_risk that times the churn probability; expected orders, 12-month
spend and the next order's date come from the value columns (``features.value``)
the batch job stores beside the features, so a request that sends features
without them gets those fields null, and value_unscored_reason says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract import CUSTOMER_ID, NO_OFFER
from features.descriptions import sentences
from features.value import EXPECTED_ORDERS, EXPECTED_ORDERS_12M, EXPECTED_SPEND_12M, NEXT_ORDER
from modeling.churn_model import buyers
from modeling.encoding import is_null
from modeling.lifecycle import AT_RISK, at_risk, risk_bands
from serving.config import ServingConfig
from serving.models import Models

BASE_STAGE = "lifecycle_base_stage"  # the stage without the churn rule, stored beside the features
BASE_ACTION = "lifecycle_next_action"  # the base stage's next action (analytics.yaml lifecycle.actions)
BASE_CONTACT = "lifecycle_contact_at"  # when to send it, ISO 8601 UTC text ("2026-06-30T02:00:00Z")
LIFECYCLE_COLUMNS = (BASE_STAGE, BASE_ACTION, BASE_CONTACT)  # stored beside the features; not model inputs
NO_FEATURES = "no usable features: every feature the models read is missing"
NO_ORDER = "no order before the as-of date"


def stages(base: Sequence | None, p: np.ndarray, threshold: float) -> np.ndarray:
    """The lifecycle stage: the base stage, or at_risk where the churn rule fires first (never for a null p)."""
    if base is None:
        return np.full(len(p), None, dtype=object)
    return at_risk(np.array([None if is_null(s) else str(s) for s in base], dtype=object), p, threshold)


def _value(v):
    """A feature value for output: numbers as float, NaN as None, text as text."""
    if is_null(v):
        return None
    if isinstance(v, (bool, int, float, np.integer, np.floating)):
        return float(v)
    return str(v)


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


# The one output schema: a file row (batch, Spark) and an HTTP score carry these fields, in this order, with the
# same names and values. Between recommended_offer's reason and the reasons come the per-offer profits,
# ``profit_<offer>``; the reasons are ``reason_<k>``/``_text``/``_value``/``_contribution`` columns in files and a
# list of {feature, text, value, contribution} over HTTP, where ``known`` is added.
FIELDS = {
    CUSTOMER_ID: "the customer",
    "as_of": "the date the features were built for (YYYY-MM-DD)",
    "churn_probability": "calibrated probability of no order within the horizon; null when not scored (see reason)",
    "risk_band": "low / medium / high; null when churn_probability is",
    "churn_unscored_reason": "why churn_probability is null: no order before the as-of date, or no churn model",
    "lifecycle_stage": "the first matching lifecycle rule (configs/analytics.yaml); null without lifecycle columns",
    "next_action": "what to send for the stage: cart_reminder, welcome_offer, retention_offer, ...",
    "contact_at": "when to send next_action, ISO 8601 UTC (never before as_of)",
    "recommended_offer": "the offer with the largest expected incremental profit, 'none' when none pays; "
    "null when the row has no usable features",
    "offer_unscored_reason": "why recommended_offer is null (no usable features); null otherwise",
    "predicted_value": "expected spend over the churn horizon after as_of (currency), to cents; null for "
    "non-buyers (see value_unscored_reason)",
    "value_at_risk": "churn_probability x predicted_value (currency), to cents: the spend the customer's churn "
    "would lose; null when either is",
    "expected_orders": "expected orders over the churn horizon after as_of; null with predicted_value",
    "expected_orders_12m": "expected orders over the 365 days after as_of; null with predicted_value",
    "expected_spend_12m": "expected spend over the 365 days after as_of (currency), to cents",
    "next_order_expected_by": "the date (YYYY-MM-DD) as_of + the expected days to the next order falls on; null "
    "when there is none",
    "value_unscored_reason": "why predicted_value is null: no order before the as-of date, no value model, or its "
    "inputs missing from the request; null otherwise",
    "currency": "the currency of predicted_value, value_at_risk, expected_spend_12m and every profit_<offer> "
    "(currency in configs/serving.yaml)",
    "churn_model_version": "the churn model used, or why there is none",
    "offer_model_version": "the offer model used, or why there is none",
    "value_model_version": "the value model used (it comes with the churn model), or why there is none",
}
VALUE_FIELDS = (  # the fields value_fields fills, in FIELDS order
    "predicted_value",
    "value_at_risk",
    "expected_orders",
    "expected_orders_12m",
    "expected_spend_12m",
    "next_order_expected_by",
    "value_unscored_reason",
)
VALUE_TEXT = ("next_order_expected_by", "value_unscored_reason")
PROFIT = "profit_{offer}"  # expected incremental profit of sending the offer vs none, rounded to cents


@dataclass
class Scores:
    """Scores for n customers, column-wise; ``frame()`` for files, ``records()`` for HTTP: one schema, ``FIELDS``."""

    customer_id: np.ndarray
    as_of: np.ndarray
    churn_probability: np.ndarray  # NaN where not scored
    risk_band: np.ndarray  # None where not scored
    churn_unscored_reason: np.ndarray  # None where scored, else why not
    lifecycle_stage: np.ndarray
    next_action: np.ndarray
    contact_at: np.ndarray  # ISO text or None
    recommended_offer: np.ndarray  # None where the row has no usable features
    offer_unscored_reason: np.ndarray
    value: dict[str, np.ndarray]  # VALUE_FIELDS: floats (NaN = null) or texts (None = null)
    currency: str
    offer_profit: dict[str, np.ndarray]  # rounded to cents; NaN where no usable features
    reasons: Reasons | None
    churn_model_version: str
    offer_model_version: str
    value_model_version: str

    def __len__(self) -> int:
        return len(self.customer_id)

    def frame(self) -> pd.DataFrame:
        """Flat columns in ``FIELDS`` order: profit_<offer> after currency, reason_<k>_* before the versions."""
        n = len(self)
        out = {
            CUSTOMER_ID: pd.array(self.customer_id, dtype="string"),
            "as_of": pd.array(self.as_of, dtype="string"),
            "churn_probability": self.churn_probability,
            "risk_band": pd.array(self.risk_band, dtype="string"),
            "churn_unscored_reason": pd.array(self.churn_unscored_reason, dtype="string"),
            "lifecycle_stage": pd.array(self.lifecycle_stage, dtype="string"),
            "next_action": pd.array(self.next_action, dtype="string"),
            "contact_at": pd.array(self.contact_at, dtype="string"),
            "recommended_offer": pd.array(self.recommended_offer, dtype="string"),
            "offer_unscored_reason": pd.array(self.offer_unscored_reason, dtype="string"),
            **{k: pd.array(v, dtype="string") if k in VALUE_TEXT else v for k, v in self.value.items()},
            "currency": pd.array([self.currency] * n, dtype="string"),
        }
        for offer, profit in self.offer_profit.items():
            out[PROFIT.format(offer=offer)] = profit
        if self.reasons is not None:
            r = self.reasons
            for k in range(r.feature.shape[1]):
                out[f"reason_{k + 1}"] = pd.array(r.feature[:, k], dtype="string")
                out[f"reason_{k + 1}_text"] = pd.array(r.text[:, k], dtype="string")
                out[f"reason_{k + 1}_value"] = pd.array(_text(r.value[:, k]), dtype="string")
                out[f"reason_{k + 1}_contribution"] = r.contribution[:, k]
        out["churn_model_version"] = pd.array([self.churn_model_version] * n, dtype="string")
        out["offer_model_version"] = pd.array([self.offer_model_version] * n, dtype="string")
        out["value_model_version"] = pd.array([self.value_model_version] * n, dtype="string")
        return pd.DataFrame(out)

    def records(self, *, known: bool | None) -> list[dict]:
        """One dict per customer, the shape of ``service.Score``; ``known``: True from the snapshot, None when the
        caller sent the features."""
        offers = list(self.offer_profit)
        profits = np.column_stack([self.offer_profit[o] for o in offers]) if offers else np.empty((len(self), 0))
        keys = [PROFIT.format(offer=o) for o in offers]
        value = {k: v.tolist() for k, v in self.value.items()}
        out = []
        for i in range(len(self)):
            p = float(self.churn_probability[i])
            record = {
                CUSTOMER_ID: self.customer_id[i],
                "known": known,
                "as_of": self.as_of[i],
                "churn_probability": None if p != p else p,
                "risk_band": self.risk_band[i],
                "churn_unscored_reason": self.churn_unscored_reason[i],
                "lifecycle_stage": self.lifecycle_stage[i],
                "next_action": self.next_action[i],
                "contact_at": self.contact_at[i],
                "recommended_offer": self.recommended_offer[i],
                "offer_unscored_reason": self.offer_unscored_reason[i],
            }
            record.update({k: None if is_null(v[i]) else v[i] for k, v in value.items()})
            record["currency"] = self.currency
            record.update({k: None if v != v else v for k, v in zip(keys, profits[i].tolist(), strict=True)})
            record["reasons"] = None if self.reasons is None else self.reasons.row(i)
            record["churn_model_version"] = self.churn_model_version
            record["offer_model_version"] = self.offer_model_version
            record["value_model_version"] = self.value_model_version
            out.append(record)
        return out


def unknown_record(customer_id: str, models: Models, config: ServingConfig) -> dict:
    """An id the snapshot does not hold: marked unknown, every other field null, the request still succeeds."""
    record = {name: None for name in FIELDS}
    offers = () if models.offer is None else models.offer.offers
    record.update({CUSTOMER_ID: customer_id, "known": False, "currency": config.currency})
    record.update({PROFIT.format(offer=o): None for o in offers})
    record.update(
        {
            "reasons": None,
            "churn_model_version": models.churn_label,
            "offer_model_version": models.offer_note,
            "value_model_version": models.value_label,
        }
    )
    return record


def _text(values: np.ndarray) -> list:
    return [None if v is None else str(v) for v in values]


def no_reasons(n: int, k: int) -> Reasons:
    """k empty reason slots per row: what unscored customers (and every customer without a churn model) get."""
    empty = np.full((n, k), None, dtype=object)
    return Reasons(empty, empty.copy(), np.full((n, k), np.nan), empty.copy())


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
    """Refuse what a caller made up: a text feature's value outside the trained levels, a number that is not one.

    For requests (the service); batch and Spark build their features with the builders, where a level unseen in
    training reads as missing.
    """
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


def usable(columns: Mapping, n: int, features: Sequence[str]) -> np.ndarray:
    """Rows with at least one feature the models read present (not null)."""
    if isinstance(columns, pd.DataFrame):
        present = [f for f in features if f in columns.columns]
        if not present:
            return np.zeros(n, dtype=bool)
        return columns[present].notna().any(axis=1).to_numpy()
    out = np.zeros(n, dtype=bool)
    for f in features:
        values = columns.get(f)
        if values is not None:
            out |= np.array([not is_null(v) for v in values], dtype=bool)
    return out


def _iso(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _texts(columns: Mapping, name: str, n: int) -> np.ndarray:
    """A text column as an object array with None for missing (vectorised for pandas)."""
    if name not in columns:
        return np.full(n, None, dtype=object)
    values = columns[name]
    if isinstance(values, pd.Series):
        return values.astype("string").to_numpy(dtype=object, na_value=None)
    return np.array([None if is_null(v) else str(v) for v in values], dtype=object)


def lifecycle_fields(columns: Mapping, n: int, stage: np.ndarray, as_of_values: np.ndarray, config: ServingConfig):
    """next_action and contact_at for the final stage: the base stage's from the lifecycle columns; at_risk (the
    scorer's rule) gets ``lifecycle.actions.at_risk``, at the base stage's time (the as-of instant), else the as-of date."""
    action, contact = _texts(columns, BASE_ACTION, n), _texts(columns, BASE_CONTACT, n)
    risky = stage == AT_RISK
    if risky.any():  # the base stage was inactive or active, contacted at the as-of instant: keep that time
        action[risky] = config.lifecycle.actions.at_risk
        unknown = risky & np.array([c is None for c in contact], dtype=bool)
        contact[unknown] = [None if d is None else _iso(pd.Timestamp(d)) for d in as_of_values[unknown]]
    return action, contact


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
    start = pd.to_datetime(pd.Series(as_of_values, dtype=object), format="%Y-%m-%d").to_numpy()
    ok = np.isfinite(days) & (days >= 0) & ~pd.isna(start)
    if ok.any():
        when = pd.DatetimeIndex(start[ok]) + pd.to_timedelta(days[ok], unit="D")
        out[ok] = when.strftime("%Y-%m-%d").to_numpy(dtype=object)
    return out


def value_fields(columns: Mapping, n: int, p: np.ndarray, as_of_values: np.ndarray, models: Models) -> dict:
    """VALUE_FIELDS for n rows: the value model's spend, its product with the churn probability, and the value
    columns' orders, 12-month spend and next order date; buyers only (:func:`buyers`), money to cents."""
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
    ``customer_ids`` order, or a dict of lists), optionally with the lifecycle columns
    (``LIFECYCLE_COLUMNS``); ``as_of`` is one date for all or one per row; ``base_stage``
    the lifecycle stage without the churn rule (or None: then the column ``BASE_STAGE`` if present).
    A row where every feature the models read is missing gets no churn probability, no offer and
    ``offer_unscored_reason`` saying so.
    """
    n = len(customer_ids)
    if n == 0:
        raise ValueError("nothing to score: the customer list is empty")
    if base_stage is None and BASE_STAGE in columns:
        base_stage = columns[BASE_STAGE]
    p = np.full(n, np.nan)
    unscored = np.full(n, None, dtype=object)
    why = no_reasons(n, config.reasons_top_k) if reasons else None
    some = usable(columns, n, models.features)
    if models.churn is None:
        unscored[:] = models.churn_label
    else:
        X = models.churn.encode(columns, n)
        scored = buyers(columns, n) & some
        unscored[~scored] = NO_ORDER
        unscored[~some] = NO_FEATURES
        if scored.all():
            p = models.churn.predict(X)
        elif scored.any():
            p[scored] = models.churn.predict(X[scored])
        if reasons:
            contributions = np.zeros(X.shape)
            if scored.any():
                contributions[scored] = models.churn.contributions(X[scored])
            why = top_reasons(contributions, X, columns, models, config.reasons_top_k, config.currency)
    offer_why = np.full(n, None, dtype=object)
    if models.offer is not None:
        _, profit, chosen = models.offer.score(columns, n)
        profit = np.round(profit, 2)
        if not some.all():
            profit[~some] = np.nan
            chosen = chosen.astype(object)
            chosen[~some] = None
            offer_why[~some] = NO_FEATURES
        offer_profit = {o: profit[:, k] for k, o in enumerate(models.offer.offers)}
    else:
        offer_profit, chosen = {}, np.full(n, NO_OFFER, dtype=object)
    as_of_values = np.full(n, _day(as_of), dtype=object) if np.ndim(as_of) == 0 else np.array([_day(a) for a in as_of])
    bands = risk_bands(np.nan_to_num(p), config.lifecycle.risk_bands)
    bands[np.isnan(p)] = None
    stage = stages(base_stage, p, config.lifecycle.at_risk_threshold)
    action, contact = lifecycle_fields(columns, n, stage, as_of_values, config)
    value = value_fields(columns, n, p, as_of_values, models)
    return Scores(
        customer_id=np.asarray(customer_ids, dtype=object),
        as_of=as_of_values,
        churn_probability=p,
        risk_band=bands,
        churn_unscored_reason=unscored,
        lifecycle_stage=stage,
        next_action=action,
        contact_at=contact,
        recommended_offer=chosen,
        offer_unscored_reason=offer_why,
        value=value,
        currency=config.currency,
        offer_profit=offer_profit,
        reasons=why,
        churn_model_version=models.churn_label,
        offer_model_version=models.offer_note,
        value_model_version=models.value_label,
    )


def _day(value) -> str | None:
    if is_null(value):
        return None
    return pd.Timestamp(value).strftime("%Y-%m-%d") if not isinstance(value, str) else value


def score_frame(
    frame: pd.DataFrame, *, as_of, models: Models, config: ServingConfig, reasons: bool = False
) -> pd.DataFrame:
    """Batch/Spark form: a feature frame (customer_id index or column, optional lifecycle columns) -> flat scores."""
    if CUSTOMER_ID in frame.columns:
        frame = frame.set_index(CUSTOMER_ID)
    ids = frame.index.astype("string").to_numpy(dtype=object)
    return score(frame, ids, as_of=as_of, models=models, config=config, reasons=reasons).frame()
