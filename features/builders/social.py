"""Social signals: reviews (count, rating, sentiment, recency) and declared interests.

Interests have no time column, so they are treated as known at every cutoff;
the most common ones in the whole population (``top_interests`` in configs,
chosen by ``learn``) get their own 0/1 column.
"""

from __future__ import annotations

import re

import pandas as pd

from features.builders.demographics import most_common
from features.config import FeaturesConfig
from features.contract import INTERESTS, REVIEWS
from features.snapshot import KEY, Snapshot

SOURCES = (REVIEWS.name, INTERESTS.name)


def build(snap: Snapshot, config: FeaturesConfig) -> pd.DataFrame:
    cut = snap.sql_cutoff
    reviews = snap.sql(f"""
        SELECT p.{KEY},
            count(r.{REVIEWS.created_at}) AS social_reviews_all,
            sum(r.{REVIEWS.rating}::DECIMAL(38, 12))::DOUBLE / nullif(count(r.{REVIEWS.rating}), 0)
                AS social_rating_mean_all,  -- exact sums: the same bits whatever order DuckDB's threads add in
            sum(r.{REVIEWS.sentiment}::DECIMAL(38, 12))::DOUBLE / nullif(count(r.{REVIEWS.sentiment}), 0)
                AS social_sentiment_mean_all,
            min(epoch({cut} - r.{REVIEWS.created_at}) / 86400.0) AS social_days_since_last_review
        FROM population p LEFT JOIN {REVIEWS.name} r USING ({KEY})
        GROUP BY p.{KEY}
    """).set_index(KEY)
    if not snap.has(REVIEWS.name):
        reviews["social_reviews_all"] = float("nan")
    interests = _interests(snap, snap.learned(__name__, learn, config))
    return reviews.join(interests).astype("float64")


def _rows(snap: Snapshot) -> pd.DataFrame:
    """(cid, interest) per customer of the population; a customer without interests has one null row."""
    return snap.sql(f"""
        SELECT p.{KEY}, i.{INTERESTS.interest} AS interest
        FROM population p LEFT JOIN (SELECT DISTINCT * FROM {INTERESTS.name}) i USING ({KEY})
    """)


def learn(snap: Snapshot, config: FeaturesConfig) -> tuple[str, ...]:
    """The ``top_interests`` most common interests in the whole population: the ones with a 0/1 column."""
    if not snap.has(INTERESTS.name) or config.top_interests == 0:
        return ()
    return tuple(most_common(_rows(snap)["interest"]).index[: config.top_interests])


def _interests(snap: Snapshot, common: tuple[str, ...]) -> pd.DataFrame:
    if not snap.has(INTERESTS.name):
        return pd.DataFrame({"social_interests_all": float("nan")}, index=snap.population(key=True))
    rows = _rows(snap)
    counts = rows.groupby(KEY)["interest"].count().astype("float64")
    out = pd.DataFrame({"social_interests_all": counts}, index=counts.index)
    if not common:
        return out
    chosen = rows[rows["interest"].isin(common)]
    flags = pd.crosstab(chosen[KEY], chosen["interest"]).clip(upper=1).reindex(columns=sorted(common), fill_value=0)
    flags.columns = [f"social_interest_{re.sub(r'[^0-9a-z]+', '_', str(c).lower()).strip('_')}" for c in flags.columns]
    return out.join(flags).fillna({c: 0.0 for c in flags.columns})
