"""Reasons a marketer can read: every feature has a description and unit, values are rounded and point a way."""

from __future__ import annotations

import pytest

from features.build import build_features
from features.descriptions import UNITS, describe, money, sentence
from features.sources import check_tables
from simulator.demo_data import generate


@pytest.fixture(scope="module")
def columns():
    demo = generate(600, days=400, seed=3)
    tables = check_tables(demo.tables, offers=("free_shipping", "discount_20"))
    return list(build_features(tables, cutoff="2026-06-01").columns)


def test_every_built_feature_is_described_with_a_unit(columns):
    assert len(columns) > 40
    for name in columns:
        d = describe(name)
        assert d.text and d.missing and "{v}" in d.says, name
        assert d.unit in UNITS, (name, d.unit)
        assert "_" not in d.text, (name, d.text)


def test_an_unknown_feature_is_refused_not_guessed():
    with pytest.raises(KeyError, match="features/descriptions.py"):
        describe("mystery_score")


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("behavior_days_since_last_activity", 618.1430208333334, "no site or e-mail activity for 618 days"),
        ("behavior_days_since_last_visit", 0.4, "no visit for less than a day"),
        ("sales_days_since_last_order", 1.2, "no order for 1 day"),
        ("sales_orders_90d", 1.0, "1 order in the last 90 days"),
        ("sales_orders_90d", 4.0, "4 orders in the last 90 days"),
        ("behavior_page_views_30d", 1.0, "1 page view in the last 30 days"),
        ("sales_orders_trend_90d", -3.0, "-3 orders in the last 90 days vs the 90 days before"),
        ("sales_revenue_365d", 1234.5678, "spent EUR 1,234.57 in the last 365 days"),
        ("sales_avg_order_value_all", 42.0, "average order EUR 42.00"),
        ("behavior_email_open_rate_90d", 0.1234, "opened 12% of e-mails in the last 90 days"),
        ("lifetime_p_no_order_90d", 0.873, "87% chance of no order in the next 90 days"),
        ("sales_overdue_ratio_all", 3.04, "3.0x the usual gap between orders since the last one"),
        ("social_interest_trail_running", 1.0, "interested in trail running: yes"),
        ("attr_loyalty_tier", "gold", "loyalty tier: gold"),
        ("demo_region", "North", "region North"),
        ("behavior_days_since_last_visit", None, "no visit recorded"),
        ("sales_gap_mean_days_all", float("nan"), "fewer than two orders"),
    ],
)
def test_values_in_words(name, value, words):
    assert sentence(name, value, "EUR") == words


def test_money_is_rounded_to_cents_with_the_currency():
    assert money(3.6712345678901234, "USD") == "USD 3.67"
    assert money(-3.1, "EUR") == "-EUR 3.10"
    assert money(1e6, "GBP") == "GBP 1,000,000.00"
