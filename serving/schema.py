"""The one output schema of a score (a batch or Spark file row, an HTTP score) and how its dates are written.

Every path writes ``as_of`` through :func:`as_of_text` and ``contact_at`` through :func:`instant_texts`, so
batch, HTTP and Spark give the same text for the same input.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from features.contract import CUSTOMER_ID
from features.dates import parse_cutoff
from modeling.encoding import is_null

BASE_STAGE = "lifecycle_base_stage"  # the stage without the churn rule, stored beside the features
BASE_ACTION = "lifecycle_next_action"  # the base stage's next action (lifecycle.yaml actions)
BASE_CONTACT = "lifecycle_contact_at"  # when to send it, ISO 8601 UTC text ("2026-06-30T02:00:00Z")
LIFECYCLE_COLUMNS = (BASE_STAGE, BASE_ACTION, BASE_CONTACT)  # stored beside the features; not model inputs
NO_FEATURES = "no usable features: every feature the models read is missing"
NO_ORDER = "no order before the as-of date"
DAY = "%Y-%m-%d"  # as_of, next_order_expected_by
INSTANT = "%Y-%m-%dT%H:%M:%SZ"  # contact_at, lifecycle_contact_at

# A file row (batch, Spark) and an HTTP score carry these fields, in this order, with the same names and values.
# Between currency and the versions come the per-offer profits, ``profit_<offer>``, then the reasons:
# ``reason_<k>``/``_text``/``_value``/``_contribution`` columns in files, a list of {feature, text, value,
# contribution} over HTTP, where ``known`` is added.
FIELDS = {
    CUSTOMER_ID: "the customer",
    "as_of": "the date the features were built for (YYYY-MM-DD)",
    "churn_probability": "calibrated probability of no order within the horizon; null when not scored (see reason)",
    "risk_band": "low / medium / high; null when churn_probability is",
    "churn_unscored_reason": "why churn_probability is null: no order before the as-of date, or no churn model",
    "lifecycle_stage": "the first matching lifecycle rule (configs/lifecycle.yaml); null without lifecycle columns",
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
VALUE_FIELDS = (  # the fields serving.value_fields fills, in FIELDS order
    "predicted_value",
    "value_at_risk",
    "expected_orders",
    "expected_orders_12m",
    "expected_spend_12m",
    "next_order_expected_by",
    "value_unscored_reason",
)
VALUE_TEXT = ("next_order_expected_by", "value_unscored_reason")
SMALL = 1000  # rows up to which instant_texts formats value by value (an HTTP request is at most 1,000)
PROFIT = "profit_{offer}"  # expected incremental profit of sending the offer vs none, rounded to cents


@functools.lru_cache(maxsize=64)  # one parse per distinct as_of, not per HTTP request
def as_of_text(value) -> str | None:
    """The as_of field: the UTC date of the cutoff (text, a date or an instant, any time zone) as YYYY-MM-DD."""
    if is_null(value):
        return None
    return parse_cutoff(value).strftime(DAY)


def instant_texts(instants) -> np.ndarray:
    """contact_at fields: naive UTC instants (datetimes, or dates as text) as ISO 8601 text; None where missing.

    A request's few rows share one or two instants: formatted once each (pandas costs ~1 ms a call); a batch
    chunk goes through pandas at once.
    """
    if len(instants) <= SMALL:
        return np.array([_instant_text(v) for v in instants], dtype=object)
    when = pd.Series(pd.to_datetime(instants))
    return when.dt.strftime(INSTANT).to_numpy(dtype=object, na_value=None)


@functools.lru_cache(maxsize=1024)
def _instant_text(value) -> str | None:
    return None if pd.isna(value) else pd.Timestamp(value).strftime(INSTANT)
