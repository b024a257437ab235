"""Customer value: BG/NBD expectations, Gamma-Gamma, value columns, the shipped ValueModel and its training."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from serving.value_model import ValueModel


def _rows():
    return pd.DataFrame(
        {
            "sales_orders_all": [2.0, 0.0, 1.0, np.nan],
            "sales_revenue_all": [200.0, 0.0, 30.0, np.nan],
            "sales_days_since_first_order": [180.0, np.nan, 10.0, np.nan],
            "demo_region": pd.array(["north", None, "south", None], dtype="string"),
            "expected_spend_bgnbd": [55.0, np.nan, 12.5, np.nan],
        }
    )


def test_historical_value_is_spend_per_day_to_date_times_horizon_and_nan_for_non_buyers():
    model = ValueModel("historical", 90, ("sales_revenue_all", "sales_days_since_first_order"))
    value = model.predict(_rows(), 4)
    # 200 over 180 days -> 100 in 90; a first order 10 days ago counts as one horizon: 30
    np.testing.assert_allclose(value, [100.0, np.nan, 30.0, np.nan])


def test_bgnbd_gamma_gamma_value_is_its_column():
    model = ValueModel("bgnbd_gamma_gamma", 90, ("expected_spend_bgnbd",))
    np.testing.assert_allclose(model.predict(_rows(), 4), [55.0, np.nan, 12.5, np.nan])


def test_value_model_save_load_round_trip_predicts_identically(tmp_path):
    rows = _rows()
    features = ("sales_revenue_all", "sales_days_since_first_order", "demo_region")
    levels = {"demo_region": {"north": 0, "south": 1}}
    from serving.models import encode

    X = np.tile(encode(rows, 4, features, levels), (20, 1))
    y = np.tile([120.0, 0.0, 10.0, 0.0], 20)
    booster = lgb.train(
        {"objective": "tweedie", "min_data_in_leaf": 2, "verbose": -1},
        lgb.Dataset(X, y, categorical_feature=[2]),
        num_boost_round=5,
    )
    model = ValueModel("lightgbm", 90, features, booster, levels, {"test_rmse": 1.5})
    model.save(tmp_path / "value")
    loaded = ValueModel.load(tmp_path / "value")
    assert (loaded.kind, loaded.horizon_days, loaded.features, loaded.levels, loaded.metrics) == (
        "lightgbm",
        90,
        features,
        levels,
        {"test_rmse": 1.5},
    )
    np.testing.assert_array_equal(loaded.predict(rows, 4), model.predict(rows, 4))
    assert np.isnan(loaded.predict(rows, 4)[[1, 3]]).all()
    assert loaded.predict(rows, 4)[0] > loaded.predict(rows, 4)[2]


def test_value_model_load_names_the_missing_file(tmp_path):
    with pytest.raises(ValueError, match="value.json"):
        ValueModel.load(tmp_path)
    ValueModel("historical", 90, ("sales_revenue_all", "sales_days_since_first_order")).save(tmp_path)
    assert not (tmp_path / "booster.txt").exists()
