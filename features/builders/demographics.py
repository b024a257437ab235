"""Demographics and custom customer attributes as model-ready values.

Contract columns become ``demo_*``. Every other customers column is a custom
attribute: numbers and flags stay numeric, dates (typed, ISO 8601 text, or text
in the configured ``date_format``) become days before the cutoff, text becomes a category (rare levels folded into "other"), and id-like columns
(almost one value per customer) are dropped with a warning because a model can
only memorise them.
Those choices are made over the whole population (``learn``), so a build over a
slice of the customers (a Spark partition) can reuse them.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Levels:
    """A text column's named levels; ``folded``: other values become "other" (else unknown, NaN)."""

    kept: tuple[str, ...]
    folded: bool

    @classmethod
    def learn(cls, values: pd.Series, max_levels: int) -> Levels:
        """The ``max_levels - 1`` most common levels when there are more, else all of them."""
        counts = most_common(values.astype("string"))
        if len(counts) > max_levels - 1:
            return cls(tuple(counts.index[: max_levels - 1]), True)
        return cls(tuple(counts.index), False)

    def apply(self, values: pd.Series) -> pd.Categorical:
        text = values.astype("string")
        text = text.where(text.isin(self.kept) | text.isna(), OTHER if self.folded else pd.NA)
        return pd.Categorical(text, categories=sorted({*self.kept, *([OTHER] if self.folded else [])}))


def most_common(values: pd.Series) -> pd.Series:
    """Counts per value, most common first, ties by value: never by row order, which differs between machines."""
    counts = values.value_counts()
    return counts.sort_index(kind="stable").sort_values(ascending=False, kind="stable")


NUMBER, DAYS, DROPPED = "number", "days", "dropped"


@dataclass(frozen=True)
class Choices:
    """What this builder decides over the whole population: levels per text column, each attribute's kind."""

    categories: dict[str, Levels]
    attributes: dict[str, str | Levels]  # custom column -> NUMBER, DAYS, DROPPED or its Levels


def learn(snap: Snapshot, config: FeaturesConfig) -> Choices:
    customers = snap.frame(CUSTOMERS.name)
    contract_cols = {c.name for c in CUSTOMERS.columns}
    levels = config.max_category_levels
    return Choices(
        categories={c: Levels.learn(customers[c], levels) for c in _CATEGORIES},
        attributes={
            c: _kind(customers[c], levels, c, config.date_format) for c in customers.columns if c not in contract_cols
        },
    )


def build(snap: Snapshot, config: FeaturesConfig) -> pd.DataFrame:
    choices = snap.learned(__name__, learn, config)
    customers = snap.frame(CUSTOMERS.name).set_index(CUSTOMER_ID)
    out = pd.DataFrame(index=customers.index)
    for col in _CATEGORIES:
        out[f"demo_{col}"] = choices.categories[col].apply(customers[col])
    for col in _NUMBERS:
        out[f"demo_{col}"] = customers[col].astype("float64")
    signed_up = customers[CUSTOMERS.signed_up_at]
    out["demo_days_since_signup"] = (snap.cutoff - signed_up).dt.total_seconds() / 86400.0
    for col, kind in choices.attributes.items():
        if kind == DROPPED:
            continue
        name = attribute_name(col)
        while name in out.columns:
            name += "_"
        values = customers[col]
        if isinstance(kind, Levels):
            out[name] = kind.apply(values)
        elif kind == DAYS:
            out[name] = (snap.cutoff - _naive(values, config.date_format)).dt.total_seconds() / 86400.0
        elif pd.api.types.is_bool_dtype(values):
            out[name] = values.astype("float64")
        else:
            out[name] = pd.to_numeric(values, errors="coerce").astype("float64")
    return out


def _kind(values: pd.Series, max_levels: int, column: str, date_format: str | None = None) -> str | Levels:
    """Numbers and flags stay numbers, dates become days before the cutoff, text is a category unless it
    looks like an identifier."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return DAYS
    if pd.api.types.is_bool_dtype(values):
        return NUMBER
    numeric = pd.to_numeric(values, errors="coerce")
    if values.notna().sum() > 0 and numeric.notna().sum() == values.notna().sum():
        return NUMBER
    text = values.astype("string")
    if text.notna().any() and _dates(text, date_format).notna().sum() == text.notna().sum():
        return DAYS  # dates in a CSV: "2024-05-01", "2024-05-01 09:30", or "5/1/2024" with date_format "%m/%d/%Y"
    distinct = text.nunique()
    if distinct > 50 and distinct > 0.5 * text.notna().sum():
        log.warning("custom attribute %r looks like an identifier (%d distinct values); not used", column, distinct)
        return DROPPED
    return Levels.learn(text, max_levels)


def _dates(text: pd.Series, date_format: str | None = None) -> pd.Series:
    """ISO-8601 text (or text in ``date_format``) as naive UTC timestamps; anything else NaT."""
    out = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True).dt.tz_localize(None)
    if date_format is not None and out.isna().any():
        declared = pd.to_datetime(text, format=date_format, errors="coerce", utc=True).dt.tz_localize(None)
        out = out.fillna(declared)
    return out


def _naive(values: pd.Series, date_format: str | None = None) -> pd.Series:
    """Dates as naive UTC, in one resolution (Parquet and Spark hand them over in different ones)."""
    if not pd.api.types.is_datetime64_any_dtype(values):
        values = _dates(values.astype("string"), date_format)
    if getattr(values.dt, "tz", None) is not None:
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values.astype("datetime64[us]")
