"""Where a conversion's value comes from, on tables small enough to check by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.config import Offer, OfferCatalog
from training.offers.conversion_value import conversion_value
from training.offers.errors import OfferLogError

CATALOG = OfferCatalog(
    offers=(
        Offer(name="free_shipping", cost_per_send=0.05, cost_per_redemption=5.0),
        Offer(name="discount_20", cost_per_send=0.05, cost_share_of_order=0.2),
    ),
    margin_rate=0.3,
)
AOV = "sales_avg_order_value_all"


def _log(own, converted, revenue=None) -> pd.DataFrame:
    frame = pd.DataFrame({AOV: own, "converted": converted})
    if revenue is not None:
        frame["revenue"] = revenue
    return frame


def test_customers_own_order_value_for_everyone_and_the_log_mean_for_new_ones_at_scoring():
    frame = _log([50.0, 70.0, 90.0], [1, 0, 1], [40.0, 0.0, 100.0])
    v = conversion_value(frame, order_value_feature=AOV, catalog=CATALOG)
    assert v.source == "own_order_value" and v.own_share == 1.0
    assert v.default_order_value == pytest.approx(70.0)  # mean revenue of the two conversions
    assert "own average order (sales_avg_order_value_all) x margin_rate 0.3 for every send" in v.description


def test_no_order_history_uses_the_logs_mean_revenue_not_the_median():
    # a skewed log: median 20, mean 50
    frame = _log([np.nan] * 4, [1, 1, 1, 0], [10.0, 20.0, 120.0, 0.0])
    v = conversion_value(frame, order_value_feature=AOV, catalog=CATALOG)
    assert v.source == "log_revenue" and v.default_order_value == pytest.approx(50.0)
    assert "the log's mean revenue per conversion (3 conversions) 50.00 x margin_rate 0.3 for every send" in (
        v.description
    )
    median = conversion_value(frame, order_value_feature=AOV, catalog=CATALOG, statistic="median")
    assert median.default_order_value == pytest.approx(20.0) and "median revenue" in median.description


def test_mixed_log_says_how_many_sends_each_source_covers():
    frame = _log([80.0, np.nan, 0.0, 40.0], [1, 1, 0, 0], [60.0, 30.0, 0.0, 0.0])
    v = conversion_value(frame, order_value_feature=AOV, catalog=CATALOG)
    assert v.own_share == 0.5 and v.default_order_value == pytest.approx(45.0)
    assert "for 50% of sends; the log's mean revenue per conversion (2 conversions) 45.00" in v.description
    assert "for the other 2 (no orders yet)" in v.description


def test_margin_per_order_values_a_conversion_without_any_order_value():
    catalog = OfferCatalog(offers=(Offer(name="promo", cost_per_send=0.15),), margin_per_order=10.0)
    v = conversion_value(_log([np.nan, np.nan], [1, 0]), order_value_feature=AOV, catalog=catalog)
    assert v.source == "margin_per_order" and "worth margin_per_order 10 (configs/offers.yaml) for every send" in (
        v.description
    )


def test_no_value_at_all_is_refused_with_the_ways_out():
    with pytest.raises(OfferLogError, match="nothing says what a conversion is worth") as err:
        conversion_value(_log([np.nan, 0.0], [1, 0]), order_value_feature=AOV, catalog=CATALOG)
    assert "none of the 2 sends' customers" in str(err.value) and "set margin_per_order" in str(err.value)
    # a fixed margin still cannot price a share-of-order discount
    fixed = CATALOG.model_copy(update={"margin_per_order": 10.0})
    with pytest.raises(OfferLogError, match=r"offers \['discount_20'\] cost a share of the order value"):
        conversion_value(_log([np.nan], [1]), order_value_feature=None, catalog=fixed)
