"""The offer log as training rows: one per logged send, with the customer's features as of that send,
and the order value each send actually realised."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.build import build_features, feature_columns
from features.config import FeaturesConfig, OfferCatalog
from features.contract import CUSTOMER_ID, NO_OFFER, OFFERS
from features.sources import Tables
from training.offers.errors import OfferLogError

ARM = "arm"
ROW = "log_row"  # position of the row in the offers table, to align known truth


@dataclass
class OfferRows:
    """Offer-log rows with the customer's features as of each send; ``features`` names the model inputs."""

    frame: pd.DataFrame
    features: list[str]
    arms: list[str]
    categories: dict[str, list] = field(default_factory=dict)

    def X(self, mask=None) -> pd.DataFrame:
        frame = self.frame if mask is None else self.frame.loc[mask]
        return frame[self.features]


def offer_training_rows(
    tables: Tables, *, catalog: OfferCatalog, features_config: FeaturesConfig | None = None, progress=None
) -> OfferRows:
    """One row per logged send: features as of the send's day (built once per distinct day), arm and outcome.

    The cutoff is the start of the send's day, so nothing from that day leaks in. ``progress``: a rich
    ``Progress`` to show the send days on (None: quiet).
    """
    if tables.offers is None:
        raise OfferLogError("offer training needs an offers table (offers.csv or offers.parquet in the data folder)")
    offers = tables.offers.reset_index(drop=True).assign(**{ROW: np.arange(len(tables.offers))})
    arms = [NO_OFFER, *catalog.names]
    unknown = sorted(set(offers[OFFERS.offer]) - set(arms))
    if unknown:
        raise OfferLogError(
            f"offers table: offers {unknown} are not in the catalog {list(catalog.names)}; add them to configs/offers.yaml"
        )
    day = offers[OFFERS.sent_at].dt.normalize()
    parts = []
    days = progress.add_task("feature rows per send day", total=day.nunique()) if progress is not None else None
    for cutoff, group in offers.groupby(day, sort=True):
        feats = build_features(tables, cutoff=cutoff, config=features_config)
        parts.append(group.join(feats, on=CUSTOMER_ID))
        if progress is not None:
            progress.update(days, advance=1, description=f"feature rows as of {cutoff:%Y-%m-%d}")
    frame = pd.concat(parts, ignore_index=True)
    feats_cols = [c for c in feature_columns(feats) if c in frame.columns]
    categories = {}
    for col in feats_cols:  # levels differ between snapshots: use their union, sorted, everywhere
        if not (pd.api.types.is_numeric_dtype(frame[col]) or pd.api.types.is_bool_dtype(frame[col])):
            levels = sorted(set(frame[col].dropna().astype(str)))
            categories[col] = levels
            frame[col] = pd.Categorical(frame[col].astype("string"), categories=levels)
    frame[ARM] = frame[OFFERS.offer].map({a: i for i, a in enumerate(arms)}).astype(int)
    frame = frame.sort_values([OFFERS.sent_at, ROW], kind="stable").reset_index(drop=True)
    return OfferRows(frame, feats_cols, arms, categories)


def realized_order_value(rows: OfferRows, estimate: np.ndarray) -> np.ndarray:
    """Order value per row for the realised profit: the logged revenue when it converted, else the estimate."""
    frame = rows.frame
    if OFFERS.revenue not in frame.columns:
        return estimate
    revenue = frame[OFFERS.revenue].to_numpy(dtype=float)
    ok = (frame[OFFERS.converted].to_numpy() == 1) & np.isfinite(revenue) & (revenue > 0)
    return np.where(ok, revenue, estimate)
