"""Demographics and custom customer attributes as model-ready values.

Contract columns become ``demo_*``. Every other customers column is a custom
attribute: numbers and flags stay numeric, text becomes a category (rare
levels folded into "other"), and id-like columns (almost one value per
customer) are dropped with a warning because a model can only memorise them.
"""

from __future__ import annotations

import logging
import re
import unicodedata

import pandas as pd

from features.config import FeaturesConfig
from features.contract import CUSTOMER_ID, CUSTOMERS
from features.snapshot import Snapshot

log = logging.getLogger(__name__)

SOURCES = (CUSTOMERS.name,)
OTHER = "other"
_CATEGORIES = (CUSTOMERS.region, CUSTOMERS.gender)
_NUMBERS = (CUSTOMERS.household_income, CUSTOMERS.age)


def attribute_name(column: str) -> str:
    """A safe feature name for a custom attribute: 'Loyalty Tier' -> 'attr_loyalty_tier', 'Färbe' -> 'attr_farbe'."""
    ascii_name = unicodedata.normalize("NFKD", str(column)).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^0-9a-z]+", "_", ascii_name.lower()).strip("_")
    return f"attr_{slug or 'unnamed'}"


def build(snap: Snapshot, config: FeaturesConfig) -> pd.DataFrame:
    customers = snap.frame(CUSTOMERS.name).set_index(CUSTOMER_ID)
    out = pd.DataFrame(index=customers.index)
    for col in _CATEGORIES:
        out[f"demo_{col}"] = _as_category(customers[col], config.max_category_levels)
    for col in _NUMBERS:
        out[f"demo_{col}"] = customers[col].astype("float64")
    signed_up = customers[CUSTOMERS.signed_up_at]
    out["demo_days_since_signup"] = (snap.cutoff - signed_up).dt.total_seconds() / 86400.0
    contract_cols = {c.name for c in CUSTOMERS.columns}
    for col in customers.columns:
        if col in contract_cols:
            continue
        name = attribute_name(col)
        while name in out.columns:
            name += "_"
        values = _attribute(customers[col], config.max_category_levels, col)
        if values is not None:
            out[name] = values
    return out


def _attribute(values: pd.Series, max_levels: int, column: str) -> pd.Series | None:
    if pd.api.types.is_bool_dtype(values):
        return values.astype("float64")
    numeric = pd.to_numeric(values, errors="coerce")
    if values.notna().sum() > 0 and numeric.notna().sum() == values.notna().sum():
        return numeric.astype("float64")
    text = values.astype("string")
    distinct = text.nunique()
    if distinct > 50 and distinct > 0.5 * text.notna().sum():
        log.warning("custom attribute %r looks like an identifier (%d distinct values); not used", column, distinct)
        return None
    return _as_category(text, max_levels)


def _as_category(values: pd.Series, max_levels: int) -> pd.Series:
    """Keep the most common levels; fold the rest into 'other' so levels stay stable."""
    text = values.astype("string")
    top = text.value_counts().index[: max_levels - 1]
    if text.nunique() > max_levels - 1:
        text = text.where(text.isin(top) | text.isna(), OTHER)
    levels = sorted(set(text.dropna().unique()))
    return pd.Categorical(text, categories=levels)
