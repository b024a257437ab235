"""Hand-computed features for every builder on the tiny tables (cutoff 2024-05-10)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from features.build import build_features
from features.builders import REGISTRY
from features.config import FeaturesConfig
from features.sources import check_tables
from tests.conftest import CUTOFF, tiny_frames


@pytest.fixture
def feats(frames):
    return build_features(check_tables(frames), cutoff=CUTOFF)


def test_population_is_customers_known_before_cutoff(feats):
    assert list(feats.index) == ["a", "b"]  # c signs up on 2024-06-01


def test_sales_features_by_hand(feats):
    a, b = feats.loc["a"], feats.loc["b"]
    # a's orders before 2024-05-10: 03-01 (10), 04-01 (20); the 05-10 order is at the cutoff: future
    assert a.sales_orders_all == 2 and a.sales_revenue_all == 30
    assert a.sales_days_since_last_order == 39 and a.sales_days_since_first_order == 70
    assert a.sales_orders_30d == 0 and a.sales_orders_90d == 2 and a.sales_revenue_90d == 30
    assert a.sales_gap_mean_days_all == 31 and a.sales_gap_std_days_all == 0
    assert a.sales_overdue_ratio_all == pytest.approx(39 / 31)
    assert a.sales_avg_order_value_all == 15 and a.sales_avg_items_all == 1.5
    assert a.sales_discount_order_share_all == 0.5
    assert a.sales_discount_rate_all == pytest.approx(5 / 35)
    assert a.sales_free_shipping_share_all == 0.5
    assert a.sales_categories_all == 2
    assert a.sales_orders_trend_90d == 2  # 2 in the last 90 days, 0 in the 90 before
    assert b.sales_orders_all == 1 and b.sales_days_since_last_order == 25
    assert math.isnan(b.sales_gap_mean_days_all)  # one order: no gap yet


def test_behavior_features_by_hand(feats):
    a, b = feats.loc["a"], feats.loc["b"]
    assert a.behavior_visits_30d == 1  # the visit at the cutoff instant is future
    assert a.behavior_add_to_carts_90d == 1
    assert a.behavior_cart_abandonment_rate_90d == 1.0  # no order within 2 h of the cart
    assert b.behavior_cart_abandonment_rate_90d == 1.0  # the 04-15 order came 9 h before the cart, not after
    assert a.behavior_days_since_last_visit == pytest.approx(9 + 14 / 24)
    assert a.behavior_email_open_rate_90d == 0.0 and b.behavior_email_open_rate_90d == 1.0
    assert a.behavior_email_ctr_90d == 0.0


def test_demographics_and_custom_attributes_by_hand(feats):
    a = feats.loc["a"]
    assert a.demo_region == "north" and a.demo_gender == "f"
    assert a.demo_household_income == 50_000 and a.demo_age == 30
    assert a.demo_days_since_signup == 130
    assert a.attr_loyalty_tier == "gold" and a.attr_newsletter_opt_in == 1.0
    assert isinstance(feats["attr_loyalty_tier"].dtype, pd.CategoricalDtype)


def test_social_features_by_hand(feats):
    a, b = feats.loc["a"], feats.loc["b"]
    assert a.social_reviews_all == 2 and a.social_rating_mean_all == 3
    assert a.social_sentiment_mean_all == pytest.approx(0.1)
    assert a.social_days_since_last_review == 35
    assert b.social_reviews_all == 0  # b's review is after the cutoff
    assert a.social_interests_all == 2 and a.social_interest_yoga == 1 and b.social_interest_yoga == 0


def test_missing_tables_give_missing_features_not_errors(frames):
    feats = build_features(check_tables({"orders": frames["orders"]}), cutoff=CUTOFF)
    assert list(feats.index) == ["a", "b"]
    assert feats.filter(like="behavior_").isna().all().all()
    assert feats.filter(like="social_").isna().all().all()
    assert feats.loc["a", "sales_orders_all"] == 2


def test_cart_abandonment_counts_an_order_within_two_hours(frames):
    frames["events"].loc[1, "occurred_at"] = "2024-04-01 00:00"  # a's cart, then the 04-01 order...
    frames["orders"].loc[1, "ordered_at"] = "2024-04-01 01:59"  # ...within 2 hours
    feats = build_features(check_tables(frames), cutoff=CUTOFF)
    assert feats.loc["a", "behavior_cart_abandonment_rate_90d"] == 0.0
    frames["orders"].loc[1, "ordered_at"] = "2024-04-01 02:01"
    feats = build_features(check_tables(frames), cutoff=CUTOFF)
    assert feats.loc["a", "behavior_cart_abandonment_rate_90d"] == 1.0


def test_rare_attribute_levels_fold_into_other(frames):
    frames["customers"]["Loyalty Tier"] = ["gold", "silver", "bronze"]
    feats = build_features(check_tables(frames), cutoff="2024-07-01", config=FeaturesConfig(max_category_levels=2))
    assert set(feats["attr_loyalty_tier"].astype(str)) <= {"gold", "silver", "bronze", "other"}
    assert feats["attr_loyalty_tier"].nunique() <= 2


@pytest.mark.parametrize("as_text", [False, True])
def test_date_attributes_become_days_before_the_cutoff(frames, as_text):
    """Typed dates (Parquet) and ISO-8601 text (a CSV export) alike."""
    dates = ["2024-05-01 00:00", "2024-05-09 12:00", "2024-06-01 00:00"]
    frames["customers"]["Last Login"] = dates if as_text else pd.to_datetime(dates)
    feats = build_features(check_tables(frames), cutoff=CUTOFF)
    assert feats.loc["a", "attr_last_login"] == 9 and feats.loc["b", "attr_last_login"] == 0.5


def test_date_attributes_in_the_declared_format_become_days():
    frames = tiny_frames()
    frames["customers"]["Last Login"] = ["05/01/2024", "05/09/2024", "06/01/2024"]  # day and month: unknowable
    as_category = build_features(check_tables(frames), cutoff=CUTOFF)
    assert as_category.loc["a", "attr_last_login"] == "05/01/2024"
    month_first = build_features(check_tables(frames), cutoff=CUTOFF, config=FeaturesConfig(date_format="%m/%d/%Y"))
    assert month_first.loc["a", "attr_last_login"] == 9 and month_first.loc["b", "attr_last_login"] == 1


def test_every_builder_module_is_registered():
    import pkgutil

    import features.builders as pkg

    modules = {m.name for m in pkgutil.iter_modules(pkg.__path__)}
    assert modules == {b.__name__.rsplit(".", 1)[1] for b in REGISTRY}


def test_feature_names_follow_source_prefix(feats):
    prefixes = ("sales_", "lifetime_", "behavior_", "demo_", "attr_", "social_")
    assert all(c.startswith(prefixes) for c in feats.columns)


def test_odd_attribute_names_become_safe_feature_names():
    from features.builders.demographics import attribute_name

    assert attribute_name("Loyalty Tier") == "attr_loyalty_tier"
    assert attribute_name("  newsletter opt-in? ") == "attr_newsletter_opt_in"
    assert attribute_name("Ünïcode Färbe") == "attr_unicode_farbe"
    assert attribute_name("#") == "attr_unnamed"
