"""Lifecycle stage, next action and contact time per customer, as of an instant.

Point-in-time: only rows strictly before ``as_of`` are read, through a
``features.snapshot.Snapshot``. One stage per customer, the first rule that matches in
this order (``STAGES``):

1. abandoned_cart: the latest add_to_cart (at most ``cart_max_age_hours`` old) has no
   order at or after it. The reminder goes out ``cart_reminder_hours`` after the cart,
   so a cart younger than that is scheduled (contact_at in the future) and an order
   before contact_at cancels it on the next run.
2. new_buyer: first order less than ``new_buyer_days`` ago; welcome offer right after it.
3. lapsed: last order ``lapsed_days`` or more ago.
4. at_risk: a buyer (an order before ``as_of``) whose churn probability is >= ``at_risk_threshold``
   (skipped without probabilities; a prospect is never at risk, and a missing probability never is).
5. inactive: last order ``inactive_days`` or more ago (exactly 30 days counts).
6. active: ordered in the last ``inactive_days``.
7. prospect: known, but no order yet.

``contact_at`` is never before ``as_of``: a due time already past means now.
One DuckDB query on the snapshot's views, then vectorized rules: it runs for every customer in batch scoring.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from features.config import Frozen
from features.contract import CUSTOMER_ID, EVENTS, ORDERS
from features.snapshot import KEY, Snapshot
from features.sources import Tables

STAGES = ("abandoned_cart", "new_buyer", "lapsed", "at_risk", "inactive", "active", "prospect")


class Actions(Frozen):
    """What to send to each lifecycle stage."""

    abandoned_cart: str = "cart_reminder"
    new_buyer: str = "welcome_offer"
    lapsed: str = "winback_offer"
    at_risk: str = "retention_offer"
    inactive: str = "motivating_offer"
    active: str = "new_arrivals"
    prospect: str = "first_purchase_offer"


class LifecycleConfig(Frozen):
    """Lifecycle rules; the first matching stage in ``STAGES`` order wins."""

    new_buyer_days: int = Field(30, gt=0, description="new buyer = first order less than this many days ago")
    welcome_delay_hours: float = Field(0.0, ge=0, description="welcome offer this long after the first order")
    inactive_days: int = Field(30, gt=0, description="inactive = last order at least this many days ago")
    lapsed_days: int = Field(180, gt=0, description="lapsed = last order at least this many days ago")
    at_risk_threshold: float = Field(0.5, gt=0, lt=1, description="at risk = churn probability >= this")
    cart_reminder_hours: float = Field(2.0, gt=0, description="abandoned = no order this long after add_to_cart")
    cart_max_age_hours: float = Field(72.0, gt=0, description="older carts get no reminder")
    risk_bands: tuple[float, ...] = Field((0.3, 0.6), description="churn probability band edges: low|medium|high")
    actions: Actions = Actions()

    @model_validator(mode="after")
    def _order(self):
        if self.lapsed_days <= self.inactive_days:
            raise ValueError(f"lapsed_days ({self.lapsed_days}) must exceed inactive_days ({self.inactive_days})")
        if self.cart_max_age_hours < self.cart_reminder_hours:
            raise ValueError("cart_max_age_hours must be at least cart_reminder_hours")
        if list(self.risk_bands) != sorted(set(self.risk_bands)) or not all(0 < b < 1 for b in self.risk_bands):
            raise ValueError(f"risk_bands must be increasing values in (0, 1), got {self.risk_bands}")
        return self


STAGE = "lifecycle_stage"
ACTION = "next_action"
CONTACT_AT = "contact_at"
ADD_TO_CART = "add_to_cart"
RISK_BANDS = ("low", "medium", "high")
AT_RISK = "at_risk"
OVERRIDABLE = frozenset({"inactive", "active"})  # the buyers' stages after at_risk in STAGES


def _dates(tables: Tables, as_of) -> tuple[pd.Timestamp, pd.DataFrame]:
    """The snapshot's cutoff, and per known customer (customers known before it, buyers, anyone with an event
    before it), sorted by id: first and last order and latest add_to_cart before it (NaT: none)."""
    with Snapshot(tables, cutoff=as_of) as snap:
        dates = snap.sql(f"""
            WITH later AS (SELECT {KEY} FROM _ids ANTI JOIN population USING ({KEY})),
            known AS (  -- the population, and anyone else with an event before the cutoff
                SELECT {KEY} FROM population
                UNION ALL SELECT DISTINCT {KEY} FROM {EVENTS.name} SEMI JOIN later USING ({KEY})
            ),
            o AS (
                SELECT {KEY}, min({ORDERS.ordered_at}) AS first, max({ORDERS.ordered_at}) AS last
                FROM {ORDERS.name} GROUP BY {KEY}
            ),
            c AS (
                SELECT {KEY}, max({EVENTS.occurred_at}) AS cart FROM {EVENTS.name}
                WHERE {EVENTS.event_type} = '{ADD_TO_CART}' GROUP BY {KEY}
            )
            SELECT i.{CUSTOMER_ID}, o.first, o.last, c.cart
            FROM known JOIN _ids i USING ({KEY}) LEFT JOIN o USING ({KEY}) LEFT JOIN c USING ({KEY})
            ORDER BY i.{CUSTOMER_ID}
        """)
        cutoff = snap.cutoff
    ids = pd.Index(dates[CUSTOMER_ID], name=CUSTOMER_ID).astype("string")
    return cutoff, dates.drop(columns=CUSTOMER_ID).set_index(ids).astype("datetime64[us]")


def lifecycle(
    tables: Tables, *, as_of, churn_probability: pd.Series | None = None, config: LifecycleConfig
) -> pd.DataFrame:
    """DataFrame[customer_id, lifecycle_stage, next_action, contact_at], one row per known customer."""
    as_of, dates = _dates(tables, as_of)
    ids, first, last, cart = dates.index, dates["first"], dates["last"], dates["cart"]
    day, hour = pd.Timedelta(days=1), pd.Timedelta(hours=1)
    since_last = as_of - last
    cart_open = cart.notna() & (last.isna() | (last < cart)) & (as_of - cart <= config.cart_max_age_hours * hour)
    rules = {
        "abandoned_cart": cart_open,
        "new_buyer": first.notna() & (as_of - first < config.new_buyer_days * day),
        "lapsed": since_last >= config.lapsed_days * day,
        "inactive": since_last >= config.inactive_days * day,
        "active": last.notna(),
        "prospect": pd.Series(True, index=ids),
    }
    base = [s for s in STAGES if s != AT_RISK]
    stage = np.select([rules[s].fillna(False).to_numpy(dtype=bool) for s in base], base, default="prospect")
    if churn_probability is not None:
        prob = pd.Series(churn_probability, copy=False)
        prob.index = prob.index.astype("string")
        stage = at_risk(stage, prob.reindex(ids).to_numpy(dtype=float, na_value=np.nan), config.at_risk_threshold)
    actions = config.actions.model_dump()
    contact = pd.Series(as_of, index=ids, dtype="datetime64[us]")
    is_cart, is_new = stage == "abandoned_cart", stage == "new_buyer"
    contact[is_cart] = cart[is_cart] + config.cart_reminder_hours * hour
    contact[is_new] = first[is_new] + config.welcome_delay_hours * hour
    contact = contact.clip(lower=as_of)
    return pd.DataFrame(
        {
            CUSTOMER_ID: ids.to_numpy(),
            STAGE: pd.array(stage, dtype="string"),
            ACTION: pd.array([actions[s] for s in stage], dtype="string"),
            CONTACT_AT: contact.to_numpy(),
        }
    )


def at_risk(base: np.ndarray, p: np.ndarray, threshold: float) -> np.ndarray:
    """The at_risk rule on base stages (the stages without probabilities): an inactive or active buyer whose
    churn probability is ``threshold`` or more is at_risk; a null probability never is.

    at_risk comes after abandoned_cart, new_buyer and lapsed in ``STAGES`` and needs an order, so applying
    it to the stages that follow it gives the same stage as ranking it among the rules.
    """
    late = np.isin(base, list(OVERRIDABLE))
    return np.where(late & (np.nan_to_num(p, nan=-np.inf) >= threshold), AT_RISK, base)


def band_labels(edges) -> list[str]:
    """low / medium / high for two edges, band_0..n for other edge counts."""
    return list(RISK_BANDS) if len(edges) == 2 else [f"band_{i}" for i in range(len(edges) + 1)]


def risk_bands(p: np.ndarray, edges) -> np.ndarray:
    """The band of each churn probability, left-closed (``p == edge`` is in the higher band)."""
    labels = np.array(band_labels(edges), dtype=object)
    return labels[np.searchsorted(np.asarray(edges, dtype=float), p, side="right")]


def risk_band(churn_probability: pd.Series, edges) -> pd.Series:
    """``risk_bands`` as a categorical Series (missing stays missing), for the report."""
    p = churn_probability.to_numpy(dtype=float, na_value=np.nan)
    bands = np.where(np.isnan(p), None, risk_bands(np.nan_to_num(p), edges))
    labels = band_labels(edges)
    return pd.Series(pd.Categorical(bands, categories=labels), index=churn_probability.index, name="risk_band")
