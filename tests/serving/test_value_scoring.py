"""Customer value in the scores, on a hand-written feature table: buyers only, value at risk = p x value, the next
order's date, and every value field null (with the reason) without a value model."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from features.config import FeaturesConfig
from features.value import EXPECTED_ORDERS, EXPECTED_ORDERS_12M, EXPECTED_SPEND, EXPECTED_SPEND_12M, NEXT_ORDER
from modeling.churn_model import ChurnModel, Interpolated
from modeling.value_model import HISTORICAL_FEATURES, ValueModel
from serving.champions import Models
from serving.config import ServingConfig
from serving.job import ScoringJob
from serving.schema import NO_ORDER, VALUE_FIELDS
from serving.scoring import score, score_frame
from serving.value_fields import next_order_dates

FEATURES = ("sales_orders_all", *HISTORICAL_FEATURES)
NO_VALUE = "no value model: retain-churn v1 was trained without one"


@pytest.fixture(scope="module")
def churn() -> ChurnModel:
    """A real two-tree booster on a toy table, mapped to probabilities by a straight line over its raw scores."""
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 400, size=(200, len(FEATURES)))
    y = (X[:, 2] > 200).astype(float)
    booster = lgb.train(
        {"objective": "binary", "min_data_in_leaf": 5, "verbose": -1},
        lgb.Dataset(X, y, feature_name=list(FEATURES)),
        num_boost_round=2,
    )
    return ChurnModel(
        "retain-churn", "1", FEATURES, {}, booster, (Interpolated(np.array([-5.0, 5.0]), np.array([0.0, 1.0])),)
    )


def _models(churn: ChurnModel, value: ValueModel | None) -> Models:
    return Models(churn, None, "none: no offer model configured", None, value, None if value else NO_VALUE)


def _job(churn: ChurnModel, value: ValueModel | None) -> ScoringJob:
    return ScoringJob("2026-06-01", _models(churn, value), ServingConfig(), FeaturesConfig())


def _table() -> pd.DataFrame:
    """a: 300 spent over 180 days (90-day value 150.00); b: never ordered; c: 100 in 30 days, counted over one
    horizon (100.00), no next order date; d: ordered, next order due on the as-of date itself."""
    return pd.DataFrame(
        {
            "sales_orders_all": [3.0, 0.0, 1.0, 2.0],
            "sales_revenue_all": [300.0, np.nan, 100.0, 50.0],
            "sales_days_since_first_order": [180.0, np.nan, 30.0, 365.0],
            EXPECTED_ORDERS: [1.234, np.nan, 0.5, 0.25],
            EXPECTED_ORDERS_12M: [4.5678, np.nan, 2.0, 1.0],
            EXPECTED_SPEND: [140.0, np.nan, 90.0, 12.0],
            EXPECTED_SPEND_12M: [512.346, np.nan, 360.0, 48.0],
            NEXT_ORDER: [10.4, np.nan, np.nan, 0.0],
        },
        index=pd.Index(["a", "b", "c", "d"], name="customer_id"),
    )


def test_value_fields_for_buyers_only_with_value_at_risk_exactly_p_times_value(churn):
    value = ValueModel("historical", 90, HISTORICAL_FEATURES)
    scored = score_frame(_table(), _job(churn, value))
    s = scored.set_index("customer_id")
    assert s["predicted_value"].tolist()[::2] == [150.0, 100.0]
    assert s.loc["d", "predicted_value"] == round(50 / 365 * 90, 2) == 12.33
    p = s["churn_probability"].to_numpy()
    buyer = ["a", "c", "d"]
    np.testing.assert_array_equal(
        s.loc[buyer, "value_at_risk"], np.round(p[[0, 2, 3]] * s.loc[buyer, "predicted_value"], 2)
    )
    assert s.loc[buyer, "value_at_risk"].gt(0).all()
    assert s.loc["a", ["expected_orders", "expected_orders_12m", "expected_spend_12m"]].tolist() == [1.23, 4.57, 512.35]
    assert s["next_order_expected_by"].fillna("-").tolist() == ["2026-06-11", "-", "-", "2026-06-01"]
    assert s["value_unscored_reason"].fillna("-").tolist() == ["-", NO_ORDER, "-", "-"]
    assert s.loc["b", list(VALUE_FIELDS[:-2])].isna().all()  # the non-buyer: every number null
    assert (s["value_model_version"] == "historical value model of retain-churn v1").all()
    ordered = list(scored.columns)
    assert ordered.index("offer_unscored_reason") + 1 == ordered.index("predicted_value")
    assert ordered[ordered.index("predicted_value") : ordered.index("currency")] == list(VALUE_FIELDS)


def test_http_records_carry_the_same_value_fields_with_nulls(churn):
    value = ValueModel("historical", 90, HISTORICAL_FEATURES)
    table = _table()
    columns = {c: table[c].tolist() for c in table.columns}  # the service's dict of lists
    records = score(
        columns, list(table.index), as_of="2026-06-01", models=_models(churn, value), config=ServingConfig()
    )
    flat = score_frame(table, _job(churn, value))
    for record, (_, row) in zip(records.records(known=True), flat.iterrows(), strict=True):
        for field in VALUE_FIELDS:
            assert record[field] == (None if pd.isna(row[field]) else row[field]), field
    assert records.records(known=True)[1]["predicted_value"] is None


def test_a_request_without_the_bgnbd_column_gets_no_value_and_says_which_input_is_missing(churn):
    value = ValueModel("bgnbd_gamma_gamma", 90, (EXPECTED_SPEND,))
    table = _table()
    full = score_frame(table, _job(churn, value))
    assert full["predicted_value"].tolist()[::2] == [140.0, 90.0]
    bare = score_frame(table[list(FEATURES)], _job(churn, value))
    assert bare["predicted_value"].isna().all() and bare["next_order_expected_by"].isna().all()
    missing = f"the value model's inputs are missing ({EXPECTED_SPEND})"
    assert bare["value_unscored_reason"].tolist() == [missing, NO_ORDER, missing, missing]


def test_without_a_value_model_every_value_field_is_null_and_says_why(churn):
    scored = score_frame(_table(), _job(churn, None))
    assert scored[list(VALUE_FIELDS[:-1])].isna().all().all()
    assert (scored["value_unscored_reason"] == NO_VALUE).all() and (scored["value_model_version"] == NO_VALUE).all()
    assert scored["churn_probability"].notna().sum() == 3  # churn is scored as before


def test_next_order_dates_cross_months_and_years_and_skip_what_is_missing():
    as_of = np.array(["2026-12-15", "2026-01-31", "2026-06-01", None], dtype=object)
    days = np.array([30.0, 28.9, np.inf, 5.0])
    assert next_order_dates(as_of, days).tolist() == ["2027-01-14", "2026-02-28", None, None]
