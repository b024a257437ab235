"""Every feature in words: a plain description, its unit, and how a value reads in a sentence.

The one place feature names meet people: churn reasons (``serving.scoring``) and the
report use it. ``describe(name)`` matches the builders' names (``<source>_<measure>_<window>``,
``attr_<slug>``, ``social_interest_<slug>``); ``sentence(name, value, currency)`` turns one
value into words that say which way it points ("no visit for 618 days", "opened 12% of
e-mails in the last 90 days"). Values are rounded for people; callers keep the raw value
beside the sentence for machines. A name no rule knows is refused with ``KeyError`` by
``describe`` (a test checks that every builder column is described).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

UNITS = ("days", "count", "money", "share", "probability", "ratio", "number", "rating", "flag", "category", "years")


@dataclass(frozen=True)
class Description:
    """``text``: what the feature measures; ``unit``; ``says``: a sentence template over ``{v}`` (the value in words);
    ``missing``: the sentence for a missing value."""

    text: str
    unit: str
    says: str
    missing: str


def _window(w: str) -> str:
    return "in total" if w == "all" else f"in the last {int(w)} days"


_EVENTS = {"visit": ("visits", "visit"), "page_view": ("page views", "page view"), "add_to_cart": ("add-to-carts", "")}


def describe(name: str) -> Description:
    """The description of a feature column, from its name."""
    fixed = _FIXED.get(name)
    if fixed is not None:
        return fixed
    if m := re.fullmatch(r"sales_orders_(\d+d|all)", name):
        w = _window(m.group(1).rstrip("d"))
        return Description(f"orders {w}", "count", "{v} orders " + w, f"no order count {w}")
    if m := re.fullmatch(r"sales_revenue_(\d+d|all)", name):
        w = _window(m.group(1).rstrip("d"))
        return Description(f"amount spent {w}", "money", "spent {v} " + w, f"amount spent {w} not known")
    if m := re.fullmatch(r"behavior_(visit|page_view|add_to_cart)s_(\d+)d", name):
        w = _window(m.group(2))
        plural = _EVENTS[m.group(1)][0]
        return Description(f"{plural} {w}", "count", "{v} " + plural + " " + w, f"no {plural} recorded {w}")
    if m := re.fullmatch(r"lifetime_p_no_order_(\d+)d", name):
        h = m.group(1)
        return Description(
            f"chance of no order in the next {h} days (BG/NBD model)",
            "probability",
            "{v} chance of no order in the next " + h + " days",
            "no purchase-rhythm estimate",
        )
    if m := re.fullmatch(r"social_interest_(.+)", name):
        topic = m.group(1).replace("_", " ")
        return Description(f"interested in {topic}", "flag", "interested in " + topic + ": {v}", "interests not known")
    if m := re.fullmatch(r"attr_(.+)", name):
        label = m.group(1).replace("_", " ")
        return Description(f"shop attribute '{label}'", "category", label + ": {v}", f"{label} not known")
    if m := re.fullmatch(r"demo_(.+)", name):
        label = m.group(1).replace("_", " ")
        return Description(label, "category", label + " {v}", f"{label} not known")
    raise KeyError(f"no description for feature {name!r}: add it to features/descriptions.py")


_FIXED = {
    "sales_days_since_last_order": Description(
        "days since the last order", "days", "no order for {v}", "no order before the as-of date"
    ),
    "sales_days_since_first_order": Description(
        "days since the first order", "days", "first order {v} ago", "no order before the as-of date"
    ),
    "sales_avg_order_value_all": Description(
        "average order value", "money", "average order {v}", "no order to average"
    ),
    "sales_avg_items_all": Description("items per order on average", "number", "{v} items per order", "no items"),
    "sales_discount_order_share_all": Description(
        "share of orders with a discount", "share", "{v} of orders had a discount", "no order"
    ),
    "sales_discount_rate_all": Description(
        "average discount as a share of the order", "share", "average discount {v} of the order", "no order"
    ),
    "sales_free_shipping_share_all": Description(
        "share of orders shipped free", "share", "{v} of orders shipped free", "no order"
    ),
    "sales_orders_trend_90d": Description(
        "orders in the last 90 days minus the 90 days before",
        "count",
        "{v} orders in the last 90 days vs the 90 days before",
        "no order trend",
    ),
    "sales_revenue_trend_90d": Description(
        "amount spent in the last 90 days minus the 90 days before",
        "money",
        "{v} spent in the last 90 days vs the 90 days before",
        "no spending trend",
    ),
    "sales_categories_all": Description(
        "product categories bought", "count", "bought from {v} categories", "no category known"
    ),
    "sales_gap_mean_days_all": Description(
        "average days between orders", "days", "orders {v} apart on average", "fewer than two orders"
    ),
    "sales_gap_std_days_all": Description(
        "spread of the days between orders", "days", "gaps between orders vary by {v}", "fewer than three orders"
    ),
    "sales_overdue_ratio_all": Description(
        "days since the last order over the usual gap",
        "ratio",
        "{v} the usual gap between orders since the last one",
        "no usual gap yet (fewer than two orders)",
    ),
    "lifetime_p_alive": Description(
        "chance of still being an active buyer (BG/NBD model)",
        "probability",
        "{v} chance of still being an active buyer",
        "no purchase-rhythm estimate",
    ),
    "behavior_days_since_last_visit": Description(
        "days since the last site visit", "days", "no visit for {v}", "no visit recorded"
    ),
    "behavior_days_since_last_activity": Description(
        "days since the last site or e-mail activity", "days", "no site or e-mail activity for {v}", "no activity"
    ),
    "behavior_visits_trend_90d": Description(
        "visits in the last 90 days minus the 90 days before",
        "count",
        "{v} visits in the last 90 days vs the 90 days before",
        "no visit trend",
    ),
    "behavior_email_open_rate_90d": Description(
        "share of e-mails opened in the last 90 days",
        "share",
        "opened {v} of e-mails in the last 90 days",
        "no e-mail sent in the last 90 days",
    ),
    "behavior_email_ctr_90d": Description(
        "share of e-mails clicked in the last 90 days",
        "share",
        "clicked {v} of e-mails in the last 90 days",
        "no e-mail sent in the last 90 days",
    ),
    "behavior_email_open_rate_all": Description(
        "share of all e-mails opened", "share", "opened {v} of all e-mails", "no e-mail sent"
    ),
    "behavior_cart_abandonment_rate_90d": Description(
        "share of carts left without an order in the last 90 days",
        "share",
        "left {v} of carts without ordering in the last 90 days",
        "no cart in the last 90 days",
    ),
    "demo_household_income": Description("household income", "money", "household income {v}", "income not known"),
    "demo_age": Description("age", "years", "age {v}", "age not known"),
    "demo_days_since_signup": Description("days since sign-up", "days", "signed up {v} ago", "sign-up date not known"),
    "social_reviews_all": Description("reviews written", "count", "{v} reviews written", "no review"),
    "social_rating_mean_all": Description(
        "average review rating (1-5)", "rating", "average rating {v} of 5", "no rating"
    ),
    "social_sentiment_mean_all": Description(
        "average review sentiment (-1 to 1)", "number", "review sentiment {v} (-1 to 1)", "no review"
    ),
    "social_days_since_last_review": Description(
        "days since the last review", "days", "no review for {v}", "no review"
    ),
    "social_interests_all": Description("interests given", "count", "{v} interests given", "no interests given"),
}


def _days(v: float) -> str:
    if v < 1:
        return "less than a day"
    d = round(v)
    return "1 day" if d == 1 else f"{d:,} days"


def money(v: float, currency: str) -> str:
    """An amount rounded to cents with the currency code: ``EUR 1,234.50``, ``-EUR 3.10``."""
    sign = "-" if v < 0 else ""
    return f"{sign}{currency} {abs(v):,.2f}"


def _number(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}" if abs(v) >= 10 else f"{v:,.2f}"


def value_words(d: Description, v, currency: str) -> str:
    """A value in the feature's unit, rounded for people."""
    if isinstance(v, str):
        return v
    v = float(v)
    unit = d.unit
    if unit == "days":
        return _days(v)
    if unit == "money":
        return money(v, currency)
    if unit in ("share", "probability"):
        return f"{v:.0%}"
    if unit == "ratio":
        return f"{v:.1f}x"
    if unit == "flag":
        return "yes" if v >= 0.5 else "no"
    if unit == "count":
        return f"{v:+,.0f}" if d.text.endswith("before") else f"{v:,.0f}"
    if unit == "years":
        return f"{v:.0f}"
    return _number(v)


_SINGULAR = {
    "orders": "order",
    "visits": "visit",
    "page views": "page view",
    "add-to-carts": "add-to-cart",
    "reviews": "review",
    "interests": "interest",
    "categories": "category",
}


# Units whose words depend only on a rounded key: each value is first rounded to its key, so many values share
# one sentence and ``sentences`` formats each distinct key once (vectorised), with the same words as ``sentence``.
_KEY = {
    "days": (lambda a: np.where(a < 1, -1.0, np.round(a)), lambda k: 0.5 if k < 0 else k),
    "money": (lambda a: np.round(a * 100), lambda k: k / 100),
    "share": (lambda a: np.round(a * 100), lambda k: k / 100),
    "probability": (lambda a: np.round(a * 100), lambda k: k / 100),
    "ratio": (lambda a: np.round(a * 10), lambda k: k / 10),
    "count": (np.round, lambda k: k),
    "years": (np.round, lambda k: k),
    "flag": (lambda a: (a >= 0.5).astype(np.float64), lambda k: k),
}


def sentence(name: str, value, currency: str) -> str:
    """One value of one feature in words, e.g. ``no visit for 618 days``; the missing sentence for null."""
    d = describe(name)
    if d.unit in _KEY and isinstance(value, (int, float, np.number)) and not math.isnan(value):
        key, back = _KEY[d.unit]
        value = float(back(float(key(np.array([float(value)]))[0])))
    return _words(d, value, currency)


def sentences(name: str, values, currency: str) -> list[str]:
    """:func:`sentence` for many values of one feature: one description lookup, each distinct rounded value
    formatted once."""
    d = describe(name)
    values = list(values)
    if d.unit not in _KEY or any(isinstance(v, str) for v in values):
        return [sentence(name, v, currency) for v in values]
    numbers = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
    missing = np.isnan(numbers)
    key, back = _KEY[d.unit]
    distinct, where = np.unique(key(np.nan_to_num(numbers)), return_inverse=True)
    words = np.array([_words(d, float(back(k)), currency) for k in distinct], dtype=object)
    out = words[where]
    out[missing] = d.missing
    return out.tolist()


def _words(d: Description, value, currency: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return d.missing
    words = d.says.format(v=value_words(d, value, currency))
    if d.unit == "count" and not isinstance(value, str) and round(abs(float(value))) == 1:
        for plural, one in _SINGULAR.items():
            if plural in words:
                return words.replace(plural, one, 1)
    return words
