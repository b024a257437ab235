"""Social signals: reviews (count, rating, sentiment, recency) and declared interests.

Interests have no time column, so they are treated as known at every cutoff;
the most common ones (``top_interests`` in configs) get their own 0/1 column.
"""

from __future__ import annotations

import re

import pandas as pd

from features.config import FeaturesConfig
from features.contract import INTERESTS, REVIEWS
from features.snapshot import KEY, Snapshot

SOURCES = (REVIEWS.name, INTERESTS.name)


def build(snap: Snapshot, config: FeaturesConfig) -> pd.DataFrame:
    cut = snap.sql_cutoff
    reviews = snap.sql(f"""
        SELECT p.{KEY},
            count(r.{REVIEWS.created_at}) AS social_reviews_all,
            avg(r.{REVIEWS.rating}) AS social_rating_mean_all,
            avg(r.{REVIEWS.sentiment}) AS social_sentiment_mean_all,
            min(epoch({cut} - r.{REVIEWS.created_at}) / 86400.0) AS social_days_since_last_review
        FROM population p LEFT JOIN {REVIEWS.name} r USING ({KEY})
        GROUP BY p.{KEY}
    """).set_index(KEY)
    if not snap.has(REVIEWS.name):
        reviews["social_reviews_all"] = float("nan")
    interests = _interests(snap, config.top_interests)
    return reviews.join(interests).astype("float64")


def _interests(snap: Snapshot, top: int) -> pd.DataFrame:
    if not snap.has(INTERESTS.name):
        return pd.DataFrame({"social_interests_all": float("nan")}, index=snap.population(key=True))
    rows = snap.sql(f"""
        SELECT p.{KEY}, i.{INTERESTS.interest} AS interest
        FROM population p LEFT JOIN (SELECT DISTINCT * FROM {INTERESTS.name}) i USING ({KEY})
    """)
    counts = rows.groupby(KEY)["interest"].count().astype("float64")
    out = pd.DataFrame({"social_interests_all": counts}, index=counts.index)
    if top == 0:
        return out
    common = rows["interest"].value_counts().index[:top]
    chosen = rows[rows["interest"].isin(common)]
    flags = pd.crosstab(chosen[KEY], chosen["interest"]).clip(upper=1)
    flags.columns = [f"social_interest_{re.sub(r'[^0-9a-z]+', '_', str(c).lower()).strip('_')}" for c in flags.columns]
    return out.join(flags).fillna({c: 0.0 for c in flags.columns})
