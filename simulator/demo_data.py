"""Synthetic shop data with known truth, so every model can be graded against the best possible answer.

Real data never tells us how good a churn model *could* be, nor what an offer
really does to a given customer. Here we simulate a shop from a continuous-time
generative process whose parameters we keep, and then compute, with the true
parameters, the best achievable answers:

* ``truth_churn``: for each truth cutoff and each customer with an order before
  it, ``p_churn`` = P(no order in [cutoff, cutoff + horizon) | true parameters and
  everything observable before the cutoff).  The realized churn labels are draws
  from exactly these probabilities, so their AUC is the ceiling for any model.
* ``truth_value``: for the same rows, the expected number of orders and spend in
  [cutoff, cutoff + horizon) under the true parameters: P(alive) x the integral of
  the purchase rate over the window while alive, x the expected order amount after
  discounts. Value models are graded against it, not against one noisy draw.
* ``truth_offers``: for each logged campaign send, the conversion probability
  under every arm (``none``, ``free_shipping``, ``discount_20``) and the expected
  order value, so uplift models and offer policies can be scored against an oracle.

The process (times are float days since the window start, the data window is
``[end - days, end)``):

* customers sign up (30 % before the window), have a latent engagement ``e``
  correlated with income and age, a purchase rate ``base * season(t)``, a visit
  rate ``visit_mult * base * season(t)``, an e-mail open probability, and die at
  ``signup + Exponential(hazard)``; after death there are no orders, visits,
  opens or clicks (the weekly Tuesday newsletter is still sent);
* orders, visits, opens and clicks are what reveal that a customer is alive;
* campaigns every 3 weeks send a random arm to a random 90 % of the customers active
  recently (an order in the last 120 days, or signed up since), as shops mail their
  live base; a responsive customer, alive at the send and with no natural order in
  the 14-day window, places an induced order (within 2 days, before dying) with
  probability ``tau * offer_effect_scale``, so P(convert | offer) = p_nat + (1 - p_nat) * tau * alive.
  Campaign windows end before the first churn-truth cutoff, so they never touch a
  label window; earlier unanswered offers enter the churn truth as evidence.

Segments (latent, written to ``truth/``) are mostly revealed by what a shop sees, so a
policy built on the features can approach the oracle: free-shipping persuadables mostly
live in the remote ``Delivery Zone`` (96 %, vs 2.5 % of everyone else) and pay no shipping
on most past orders; discount persuadables mostly belong to the ``Coupon Club`` (95 % vs
2.5 %), buy rarely at full price and mostly with a discount; sure things (high engagement)
buy often anyway; lost causes do not respond.  Effect sizes are set so that, with
``configs/offers.yaml``, the oracle (:func:`oracle_policy`) picks each offer for >10 % of
sends and "none" for about half.

Everything is vectorized numpy driven by one ``numpy.random.Generator``; the only
Python loops run over campaigns, cutoffs and fixed-size chunks, never customers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract import CUSTOMER_ID, EVENT_TYPES, NO_OFFER
from features.io import write_parquet_atomic
from modeling.economics import best_arms, true_rewards

END = "2026-06-30"  # the default data window's end: the first instant with no data
SECONDS_PER_DAY = 86_400
HORIZON_DAYS = 90
RESPONSE_DAYS = 14
INDUCED_WITHIN_DAYS = 2.0  # an induced order comes within 2 days of the send: responders act on the mail
CAMPAIGN_EVERY_DAYS = 21
FIRST_CAMPAIGN_DAY = 180
CAMPAIGN_SHARE = 0.90
ACTIVE_DAYS = 120  # campaigns go to customers with an order in the last 120 days, or signed up since
TRUTH_STEP_DAYS = 30
TRUTH_SPAN_DAYS = 180

ARMS = ("free_shipping", "discount_20", NO_OFFER)
ARM_PROBS = (0.35, 0.35, 0.30)
SEGMENTS = ("sure_thing", "free_shipping_persuadable", "discount_persuadable", "lost_cause")
RESPONDS_TO = {1: 0, 2: 1}  # segment code -> arm code it responds to
REGIONS = ("North", "South", "East", "West", "Central")
REGION_P = (0.22, 0.18, 0.20, 0.25, 0.15)
REGION_EFFECT = (0.05, -0.05, 0.0, 0.08, -0.08)
CATEGORIES = ("apparel", "footwear", "equipment", "nutrition", "accessories", "outdoor")
CATEGORY_P = (0.28, 0.20, 0.16, 0.12, 0.14, 0.10)
INTEREST_CATEGORY = {
    "running": "footwear",
    "trail running": "footwear",
    "yoga": "apparel",
    "swimming": "apparel",
    "cycling": "equipment",
    "tennis": "equipment",
    "climbing": "equipment",
    "fitness": "nutrition",
    "wellness": "nutrition",
    "style": "accessories",
    "hiking": "outdoor",
    "camping": "outdoor",
}
TIERS = ("Bronze", "Silver", "Gold", "Platinum")
ZONES = ("urban", "remote")
SHIPPING_FEE = 4.95
NATURAL_DISCOUNT = (0.05, 0.3)  # a discounted natural order's discount share of the basket, uniform


@dataclass
class DemoData:
    """Generated tables in the contract's format plus the truth behind them."""

    tables: dict[str, pd.DataFrame]
    truth_churn: pd.DataFrame
    truth_offers: pd.DataFrame
    truth_value: pd.DataFrame
    params: pd.DataFrame
    end: pd.Timestamp
    horizon_days: int = HORIZON_DAYS
    days: int = 730

    @property
    def start(self) -> pd.Timestamp:
        """The first instant of the data window."""
        return self.end - pd.Timedelta(days=self.days)


# ---------------------------------------------------------------------------
# time grid: a daily piecewise-constant season, so cumulative intensity is exact
# ---------------------------------------------------------------------------


class _Season:
    """season(t) constant within each day; C(t) = integral of season from 0 to t, piecewise linear."""

    def __init__(self, start: pd.Timestamp, n_days: int):
        dates = pd.date_range(start, periods=n_days, freq="D")
        self.s = self.raw(dates) / self._year_mean()
        self.C = np.concatenate([[0.0], np.cumsum(self.s)])
        self.n_days = n_days

    @staticmethod
    def raw(dates: pd.DatetimeIndex) -> np.ndarray:
        doy = dates.dayofyear.to_numpy()
        yearly = 1.0 + 0.15 * np.sin(2 * np.pi * (doy - 100) / 365.25)
        md = dates.month.to_numpy() * 100 + dates.day.to_numpy()
        bump = np.where((md >= 1120) & (md <= 1223), 0.9, 0.0)  # Black Friday to Christmas
        return yearly + bump

    def _year_mean(self) -> float:
        return float(self.raw(pd.date_range("2001-01-01", "2001-12-31", freq="D")).mean())

    def cum(self, t: np.ndarray) -> np.ndarray:
        t = np.clip(t, 0.0, self.n_days - 1e-9)
        d = np.floor(t).astype(np.int64)
        return self.C[d] + self.s[d] * (t - d)

    def inv(self, y: np.ndarray) -> np.ndarray:
        return np.interp(y, self.C, np.arange(self.C.size, dtype=np.float64))


def _poisson_times(rng, rate, lo, hi, season: _Season):
    """Inhomogeneous Poisson process rate*season(t) on [lo, hi) per unit: (owner, times)."""
    clo = season.cum(lo)
    span = np.maximum(season.cum(hi) - clo, 0.0) * (hi > lo)
    n = rng.poisson(rate * span)
    owner = np.repeat(np.arange(rate.size, dtype=np.int32), n)
    t = season.inv(clo[owner] + rng.random(owner.size) * span[owner])
    return owner, np.minimum(np.maximum(t, lo[owner]), np.nextafter(hi[owner], -np.inf))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _ids(prefix: str, n: int) -> np.ndarray:
    width = max(6, len(str(n)))
    return np.array([f"{prefix}{i:0{width}d}" for i in range(1, n + 1)], dtype=object)


def _timestamps(start: pd.Timestamp, t: np.ndarray) -> np.ndarray:
    """Float days since ``start`` -> datetime64[us], floored to the second (never crosses midnight up)."""
    sec = np.floor(t * SECONDS_PER_DAY).astype(np.int64)
    return np.datetime64(start, "us") + (sec * 1_000_000).astype("timedelta64[us]")


# ---------------------------------------------------------------------------
# customers and their latent parameters
# ---------------------------------------------------------------------------


def _customers(rng, n: int, T: float) -> dict[str, np.ndarray]:
    p: dict[str, np.ndarray] = {}
    existing = rng.random(n) < 0.30
    p["signup"] = np.where(existing, -rng.uniform(1.0, 3 * 365.0, n), rng.uniform(0.0, T, n))
    p["region"] = rng.choice(len(REGIONS), n, p=REGION_P)
    z_inc = rng.standard_normal(n)
    p["income"] = np.round(np.exp(np.log(52_000) + 0.45 * z_inc), -2)
    p["age"] = np.clip(np.round(18 + rng.gamma(4.0, 6.0, n)), 18, 95)
    z_age = (p["age"] - 42.0) / 12.0
    p["gender"] = rng.choice(3, n, p=(0.51, 0.47, 0.02))
    ps, ss = rng.standard_normal(n), rng.standard_normal(n)
    p["price_sensitivity"], p["shipping_sensitivity"] = ps, ss
    e = 0.35 * z_inc + 0.25 * np.clip(z_age, -2.5, 2.5) + np.sqrt(1 - 0.35**2 - 0.25**2) * rng.standard_normal(n)
    p["engagement"] = e
    region_eff = np.asarray(REGION_EFFECT)[p["region"]]
    p["base_rate"] = np.exp(
        np.log(1 / 60) + 0.5 * e + 0.10 * z_inc - 0.5 * ps + region_eff + 0.2 * rng.standard_normal(n)
    )
    p["visit_mult"] = 4.0 + 4.0 * _sigmoid(1.2 * e + 0.3 * rng.standard_normal(n))
    p["p_open"] = _sigmoid(-0.7 + 1.1 * e)
    p["p_click"] = _sigmoid(-1.2 + 0.5 * e)
    p["hazard"] = np.exp(np.log(1 / 600) - 0.8 * e)
    p["died"] = p["signup"] + rng.exponential(1.0 / p["hazard"])
    p["basket_mu"] = np.log(55.0) + 0.25 * z_inc - 0.20 * ps + 0.15 * rng.standard_normal(n)
    p["basket_sigma"] = np.full(n, 0.5)
    logits = np.stack([-0.4 + 1.2 * e, -0.3 + 1.4 * ss, -0.3 + 1.4 * ps - 0.6 * e, np.zeros(n)], axis=1)
    gumbel = -np.log(-np.log(rng.random((n, 4))))
    seg = np.argmax(logits + gumbel, axis=1)
    p["segment"] = seg
    # what a shop sees of the segment: remote delivery zones wait for free shipping, coupon-club members for
    # a discount, and sure things simply buy more often; each habit shows in their past orders too
    p["remote"] = (rng.random(n) < np.where(seg == 1, 0.96, 0.025)).astype(np.int8)
    p["coupon_club"] = (rng.random(n) < np.where(seg == 2, 0.95, 0.025)).astype(np.int8)
    p["base_rate"] = p["base_rate"] * np.where(seg == 0, 1.8, np.where(seg == 2, 0.6, 1.0))
    p["p_discount"] = _sigmoid(-2.2 + 0.8 * ps + 3.6 * (seg == 2))
    p["p_free_shipping"] = _sigmoid(-1.6 + 0.8 * ss + 3.8 * (seg == 1))
    responder = np.isin(seg, list(RESPONDS_TO))
    # a discount gives up more margin than free shipping, so where it is the right offer it moves more
    u = rng.random(n)
    tau = np.where(seg == 2, 0.60 + 0.30 * u, np.where(responder, 0.45 + 0.35 * u, 0.0))
    # the fee weighs most on remote customers, a coupon most on those who collect them: the few persuadables
    # the attributes miss are moved half as much
    shows = np.where(seg == 1, p["remote"] == 1, np.where(seg == 2, p["coupon_club"] == 1, True))
    p["tau"] = np.where(shows, tau, 0.5 * tau)
    p["pref_category"] = rng.choice(len(CATEGORIES), n, p=CATEGORY_P)
    tier_latent = 0.6 * e + 0.8 * rng.standard_normal(n)
    p["tier"] = np.searchsorted(np.quantile(tier_latent, [0.5, 0.8, 0.95]), tier_latent)
    p["optin"] = (rng.random(n) < _sigmoid(0.2 + 0.8 * e)).astype(np.int8)
    p["store"] = rng.integers(1, 41, n)
    return p


def _interests(rng, p, ids) -> pd.DataFrame:
    names = np.array(list(INTEREST_CATEGORY))
    cat_of = np.array([CATEGORIES.index(c) for c in INTEREST_CATEGORY.values()])
    n = ids.size
    weights = 1.0 + 2.0 * (cat_of[None, :] == p["pref_category"][:, None])
    keys = np.log(weights) - np.log(-np.log(rng.random((n, names.size))))
    top = np.argsort(-keys, axis=1)[:, :3]
    k = rng.choice([1, 2, 3], n, p=(0.4, 0.35, 0.25))
    keep = np.arange(3)[None, :] < k[:, None]
    rows = np.nonzero(keep)
    return pd.DataFrame({CUSTOMER_ID: ids[rows[0]], "interest": names[top[rows]]})


# ---------------------------------------------------------------------------
# the generator
# ---------------------------------------------------------------------------


def generate(
    n_customers: int = 20_000,
    days: int = 730,
    seed: int = 7,
    offer_effect_scale: float = 1.0,
    end: str | pd.Timestamp = END,
    horizon_days: int = HORIZON_DAYS,
) -> DemoData:
    """Simulate ``n_customers`` over ``[end - days, end)`` and compute churn and offer truth.

    ``end`` is taken at midnight so that every truth cutoff is a midnight; the same
    ``seed`` gives identical frames.  ``offer_effect_scale`` multiplies every true
    offer effect (0: offers change nothing, so every arm converts alike).
    """
    if n_customers <= 0 or days <= 0:
        raise ValueError("n_customers and days must be positive")
    if offer_effect_scale < 0:
        raise ValueError("offer_effect_scale must be >= 0")
    rng = np.random.default_rng(seed)
    end = pd.Timestamp(end).normalize()
    start = end - pd.Timedelta(days=days)
    T = float(days)
    season = _Season(start, days + 2)
    p = _customers(rng, n_customers, T)
    ids = _ids("C", n_customers)
    cid = pd.Categorical.from_codes(np.arange(n_customers), categories=ids)
    lo = np.maximum(p["signup"], 0.0)
    hi = np.minimum(p["died"], T)

    # natural orders, sorted by (customer, time)
    o_own, o_t = _poisson_times(rng, p["base_rate"], lo, hi, season)
    order_ix = np.lexsort((o_t, o_own))
    o_own, o_t = o_own[order_ix], o_t[order_ix]

    # campaigns and induced orders
    campaigns = np.arange(
        FIRST_CAMPAIGN_DAY, T - horizon_days - TRUTH_SPAN_DAYS - RESPONSE_DAYS + 1e-9, CAMPAIGN_EVERY_DAYS
    )
    offers, ind_own, ind_t, ind_arm = _campaigns(rng, p, campaigns, o_own, o_t, offer_effect_scale)

    all_own = np.concatenate([o_own, ind_own])
    all_t = np.concatenate([o_t, ind_t])
    arm_of_order = np.concatenate([np.full(o_own.size, -1, np.int8), ind_arm])
    orders = _order_rows(rng, p, all_own, all_t, arm_of_order)

    # conversion outcome: first order of the customer in [sent, sent + 14)
    if len(offers["own"]):
        srt = np.lexsort((all_t, all_own))
        key = all_own[srt].astype(np.float64) * 4096.0 + all_t[srt]
        q = offers["own"].astype(np.float64) * 4096.0 + offers["sent"]
        pos = np.searchsorted(key, q, side="left")
        pos_c = np.minimum(pos, key.size - 1)
        conv = (pos < key.size) & (key[pos_c] < q + RESPONSE_DAYS)
        offers["converted"] = conv.astype(np.int8)
        offers["revenue"] = np.where(conv, orders["amount"][srt][pos_c], 0.0)

    # behaviour
    ev, reveal, sends = _events(rng, p, lo, hi, T, all_own, all_t, season, start, cid.dtype)

    # reviews on a share of orders
    has_rev = rng.random(all_own.size) < 0.18
    r_own = all_own[has_rev]
    r_t = all_t[has_rev] + 0.05 + rng.exponential(4.0, r_own.size)
    keep = r_t < T
    r_own, r_t = r_own[keep], r_t[keep]
    latent = 3.9 + 0.45 * p["engagement"][r_own] + 0.9 * rng.standard_normal(r_own.size)
    rating = np.clip(np.round(latent), 1, 5)
    sentiment = np.clip(np.tanh((latent - 3.2) / 1.5 + 0.25 * rng.standard_normal(r_own.size)), -1, 1).round(3)

    tables = _frames(p, ids, cid, start, orders, offers, ev, r_own, r_t, rating, sentiment)
    tables["interests"] = _interests(rng, p, ids)
    # the contract refuses an empty table; tiny shops simply lack that table
    tables = {name: frame for name, frame in tables.items() if name == "customers" or len(frame)}

    # truth
    reveal_own = np.concatenate([all_own, reveal[0]])
    reveal_at = np.concatenate([all_t, reveal[1]])
    del reveal
    truth = _Truth(p, season, reveal_own, reveal_at, all_own, all_t, offers, offer_effect_scale)
    del reveal_own, reveal_at
    truth.set_sends(sends)
    cutoffs = truth_cutoffs_days(T, horizon_days)
    truth_churn = truth.churn(cutoffs, horizon_days, ids, start)
    truth_offers = truth.offers_truth(ids, start)
    truth_value = truth.value(truth_churn, horizon_days, ids, start)

    params = _params_frame(p, ids, start)
    return DemoData(tables, truth_churn, truth_offers, truth_value, params, end, horizon_days, days)


def truth_cutoffs_days(T: float, horizon_days: int = HORIZON_DAYS) -> np.ndarray:
    """Every 30 days from end - horizon - 180 up to end - horizon exactly, in days since start."""
    last = T - horizon_days
    c = last - np.arange(TRUTH_SPAN_DAYS // TRUTH_STEP_DAYS, -1, -1) * TRUTH_STEP_DAYS
    return c[c > 0]


def _campaigns(rng, p, campaigns, o_own, o_t, scale):
    """Assign arms at random; add induced orders for responsive, alive customers without a natural order."""
    n = p["signup"].size
    key = o_own.astype(np.float64) * 4096.0 + o_t
    last_induced = np.full(n, -np.inf)
    own, sent, arm, ind_own, ind_t, ind_arm = [], [], [], [], [], []
    for s in campaigns:
        # like a real shop, mail those recently active: an order (natural or induced) in the last
        # ACTIVE_DAYS, or signed up since; a function of the data before s only
        cand = np.flatnonzero((p["signup"] < s) & (rng.random(n) < CAMPAIGN_SHARE))
        before = np.searchsorted(key, cand.astype(np.float64) * 4096.0 + s) - 1
        prev = key[np.maximum(before, 0)] if key.size else np.full(cand.size, -1.0)
        prev = np.where(before >= 0, prev, -1.0)
        prev_t = np.where(np.floor(prev / 4096.0) == cand, prev - cand.astype(np.float64) * 4096.0, -np.inf)
        recent = np.maximum(np.maximum(prev_t, last_induced[cand]), p["signup"][cand]) >= s - ACTIVE_DAYS
        pick = cand[recent]
        a = rng.choice(len(ARMS), pick.size, p=ARM_PROBS).astype(np.int8)
        q = pick.astype(np.float64) * 4096.0 + s
        pos = np.minimum(np.searchsorted(key, q), max(key.size - 1, 0))
        natural = (key[pos] >= q) & (key[pos] < q + RESPONSE_DAYS) if key.size else np.zeros(pick.size, bool)
        seg = p["segment"][pick]
        responsive = ((seg == 1) & (a == 0)) | ((seg == 2) & (a == 1))
        alive = p["died"][pick] > s
        induced = responsive & alive & ~natural & (rng.random(pick.size) < p["tau"][pick] * scale)
        who = pick[induced]
        stop = np.minimum(p["died"][who], s + INDUCED_WITHIN_DAYS)
        ind_own.append(who.astype(np.int32))
        ind_t.append(s + rng.random(who.size) * (stop - s))
        ind_arm.append(a[induced])
        last_induced[who] = ind_t[-1]
        own.append(pick.astype(np.int32))
        sent.append(np.full(pick.size, s))
        arm.append(a)

    def cat(xs, dtype):
        return np.concatenate(xs).astype(dtype) if xs else np.zeros(0, dtype)

    offers = {"own": cat(own, np.int32), "sent": cat(sent, np.float64), "arm": cat(arm, np.int8)}
    return offers, cat(ind_own, np.int32), cat(ind_t, np.float64), cat(ind_arm, np.int8)


def _order_rows(rng, p, own, t, arm):
    """Order values: lognormal basket, discounts for price-sensitive, free shipping for shipping-sensitive."""
    m = own.size
    gross = np.exp(p["basket_mu"][own] + p["basket_sigma"][own] * rng.standard_normal(m))
    gross = np.maximum(np.round(gross, 2), 1.0)
    has_disc = np.where(arm == 1, True, (arm == -1) & (rng.random(m) < p["p_discount"][own]))
    share = np.where(arm == 1, 0.2, rng.uniform(*NATURAL_DISCOUNT, m))
    discount = np.where(has_disc, np.round(gross * share, 2), 0.0)
    free = np.where(arm == 0, True, rng.random(m) < p["p_free_shipping"][own])
    fee = np.where(free, 0.0, SHIPPING_FEE)
    pref = rng.random(m) < 0.6
    category = np.where(pref, p["pref_category"][own], rng.choice(len(CATEGORIES), m, p=CATEGORY_P))
    n_items = 1 + rng.poisson(np.maximum(gross / 45.0 - 0.5, 0.05))
    return {
        "own": own,
        "t": t,
        "amount": gross - discount,
        "discount": discount,
        "fee": fee,
        "category": category,
        "n_items": n_items,
    }


class _EventSink:
    """Collects event parts as (customer code, microseconds) and assembles them without a second full copy.

    At a million customers there are ~250M events; converting each part at once and
    filling one preallocated array keeps peak memory near the size of the result.
    """

    def __init__(self, start: pd.Timestamp, T: float):
        self.start_us = np.datetime64(start, "us").astype(np.int64)
        self.T = T
        self.parts: list[tuple[np.ndarray, np.ndarray, int]] = []

    def add(self, own: np.ndarray, t: np.ndarray, code: int) -> None:
        keep = t < self.T
        if not keep.all():
            own, t = own[keep], t[keep]
        us = np.floor(t * SECONDS_PER_DAY).astype(np.int64)
        us *= 1_000_000
        us += self.start_us
        self.parts.append((own.astype(np.int32, copy=False), us, code))

    def frame(self, id_dtype: pd.CategoricalDtype) -> pd.DataFrame:
        n = sum(o.size for o, _, _ in self.parts)
        own, us, typ = np.empty(n, np.int32), np.empty(n, np.int64), np.empty(n, np.int8)
        i = 0
        while self.parts:
            o, u, code = self.parts.pop(0)
            own[i : i + o.size], us[i : i + o.size], typ[i : i + o.size] = o, u, code
            i += o.size
            del o, u
        return pd.DataFrame(
            {
                CUSTOMER_ID: pd.Categorical.from_codes(own, dtype=id_dtype),
                "occurred_at": us.view("datetime64[us]"),
                "event_type": pd.Categorical.from_codes(typ, categories=list(EVENT_TYPES)),
            },
            copy=False,
        )


def _events(rng, p, lo, hi, T, o_own, o_t, season, start, id_dtype):
    """Visits, page views, carts, e-mails: (events frame, alive-revealing records (own, alive at), send days)."""
    n = lo.size
    sink = _EventSink(start, T)
    V, PV, CART, SENT, OPEN, CLICK = range(6)
    # free-standing visits, a few page views each, sometimes an abandoned cart
    v_own, v_t = _poisson_times(rng, p["base_rate"] * p["visit_mult"], lo, hi, season)
    sink.add(v_own, v_t, V)
    pv_parent = np.repeat(np.arange(v_own.size, dtype=np.int64), 1 + rng.poisson(1.5, v_own.size))
    pv_t = rng.uniform(0.5, 25.0, pv_parent.size)
    pv_t /= 1440
    pv_t += v_t[pv_parent]
    sink.add(v_own[pv_parent], pv_t, PV)
    del pv_parent, pv_t
    cart = rng.random(v_own.size) < 0.12
    sink.add(v_own[cart], v_t[cart] + rng.uniform(1.0, 30.0, int(cart.sum())) / 1440, CART)
    # the session before an order: visit, page views, add_to_cart a few minutes before buying
    sess = rng.random(o_own.size) < 0.65
    s_own, s_o = o_own[sess], o_t[sess]
    s_v = np.maximum(s_o - rng.uniform(15.0, 100.0, s_own.size) / 1440, lo[s_own])
    sink.add(s_own, s_v, V)
    par = np.repeat(np.arange(s_own.size), 1 + rng.poisson(1.5, s_own.size))
    sink.add(s_own[par], s_v[par] + rng.random(par.size) * (s_o[par] - s_v[par]), PV)
    sink.add(s_own, np.maximum(s_o - rng.uniform(1.0, 10.0, s_own.size) / 1440, s_v), CART)
    # the Tuesday newsletter, sent at midnight to everyone signed up
    first = (1 - start.dayofweek) % 7  # Tuesday = 1
    sends = np.arange(first, T, 7.0)
    j0 = np.searchsorted(sends, p["signup"], side="right")
    n_sent = sends.size - j0
    e_own = np.repeat(np.arange(n, dtype=np.int32), n_sent)
    idx = np.arange(e_own.size, dtype=np.int64)
    idx -= np.repeat(np.cumsum(n_sent) - n_sent, n_sent)
    idx += j0[e_own]
    e_t = sends[idx]
    del idx
    sink.add(e_own, e_t, SENT)
    opened = rng.random(e_own.size) < p["p_open"][e_own]
    opened &= e_t < p["died"][e_own]
    op_own, op_sent = e_own[opened], e_t[opened]
    del e_own, e_t, opened
    op_t = op_sent + rng.uniform(5.0, 20 * 60.0, op_own.size) / 1440
    sink.add(op_own, op_t, OPEN)
    clicked = rng.random(op_own.size) < p["p_click"][op_own]
    sink.add(op_own[clicked], op_t[clicked] + rng.uniform(0.5, 60.0, int(clicked.sum())) / 1440, CLICK)
    events = sink.frame(id_dtype)
    r_own = np.concatenate([v_own, s_own, op_own])
    r_at = np.concatenate([v_t, s_v, op_sent])
    return events, (r_own, r_at), sends


def _frames(p, ids, cid, start, orders, offers, ev, r_own, r_t, rating, sentiment) -> dict[str, pd.DataFrame]:
    customers = pd.DataFrame(
        {
            CUSTOMER_ID: ids,
            "signed_up_at": _timestamps(start, p["signup"]),
            "region": np.asarray(REGIONS, dtype=object)[p["region"]],
            "household_income": p["income"],
            "gender": np.array(["female", "male", "other"], dtype=object)[p["gender"]],
            "age": p["age"],
            "Loyalty Tier": np.asarray(TIERS, dtype=object)[p["tier"]],
            "newsletter opt-in?": p["optin"],
            "Preferred Store #": np.array([f"#{i:02d}" for i in range(41)], dtype=object)[p["store"]],
            "Delivery Zone": np.asarray(ZONES, dtype=object)[p["remote"]],
            "Coupon Club": p["coupon_club"],
        }
    )
    by_time = np.argsort(orders["t"], kind="stable")
    o = {k: v[by_time] for k, v in orders.items()}
    order_frame = pd.DataFrame(
        {
            "order_id": _ids("O", o["own"].size),
            CUSTOMER_ID: pd.Categorical.from_codes(o["own"], dtype=cid.dtype),
            "ordered_at": _timestamps(start, o["t"]),
            "amount": np.round(o["amount"], 2),
            "discount_amount": o["discount"],
            "shipping_fee": o["fee"],
            "category": np.asarray(CATEGORIES, dtype=object)[o["category"]],
            "n_items": o["n_items"].astype(np.int64),
        }
    )
    reviews = pd.DataFrame(
        {
            CUSTOMER_ID: pd.Categorical.from_codes(r_own, dtype=cid.dtype),
            "created_at": _timestamps(start, r_t),
            "rating": rating,
            "sentiment": sentiment,
        }
    )
    tables = {"customers": customers, "orders": order_frame, "events": ev, "reviews": reviews}
    if len(offers["own"]):
        tables["offers"] = pd.DataFrame(
            {
                CUSTOMER_ID: ids[offers["own"]],
                "sent_at": _timestamps(start, offers["sent"]),
                "offer": np.asarray(ARMS, dtype=object)[offers["arm"]],
                "propensity": np.asarray(ARM_PROBS)[offers["arm"]],
                "converted": offers["converted"],
                "revenue": np.round(offers["revenue"], 2),
            }
        )
    return tables


def _params_frame(p, ids, start) -> pd.DataFrame:
    cols = [
        "engagement",
        "base_rate",
        "visit_mult",
        "p_open",
        "p_click",
        "hazard",
        "price_sensitivity",
        "shipping_sensitivity",
        "basket_mu",
        "basket_sigma",
        "p_discount",
        "p_free_shipping",
        "tau",
    ]
    frame = pd.DataFrame({CUSTOMER_ID: ids, **{c: p[c] for c in cols}})
    frame["segment"] = np.asarray(SEGMENTS, dtype=object)[p["segment"]]
    frame["signed_up_at"] = _timestamps(start, p["signup"])
    frame["died_at"] = _timestamps(start, np.minimum(p["died"], 1e5))
    frame["order_value"] = np.exp(p["basket_mu"] + p["basket_sigma"] ** 2 / 2)
    return frame


# ---------------------------------------------------------------------------
# truth: the best achievable probabilities given the true parameters
# ---------------------------------------------------------------------------

CELL_BUDGET = 2_000_000  # grid cells per chunk: bounds memory, keeps numpy calls large


class _Truth:
    """Posterior P(alive) and forward P(no order) on a daily grid, exact within each day.

    Season is constant within a day, so on every grid interval the integrand is a
    single exponential and integrates in closed form; e-mails and campaigns are
    sent at midnight, so their likelihood factors switch on exactly at grid knots.
    """

    def __init__(self, p, season, r_own, r_at, o_own, o_t, offers, scale):
        self.p, self.season, self.scale = p, season, scale
        n = p["signup"].size
        # (customer, second known alive) sorted: the last key below (customer, cutoff) is the last
        # alive-revealing moment.  Keying on "alive at" rather than "seen at" is exact here because
        # every cutoff is a midnight and an e-mail open (alive at its send) lands on its send day.
        key = np.floor(r_at * SECONDS_PER_DAY).astype(np.int64)
        key |= r_own.astype(np.int64) << 32
        key.sort()
        self.rkey = key
        okey = (o_own.astype(np.int64) << 32) | np.floor(o_t * SECONDS_PER_DAY).astype(np.int64)
        self.okey = np.sort(okey)
        self.ecnt_le = None  # set by set_sends
        self.rho = p["base_rate"] * (1.0 + p["visit_mult"])
        self.lq = np.log1p(-p["p_open"])
        self.offers = offers
        # responsive sends (the only ones whose absence of an induced order is informative)
        if len(offers["own"]) and scale > 0:
            seg = p["segment"][offers["own"]]
            resp = ((seg == 1) & (offers["arm"] == 0)) | ((seg == 2) & (offers["arm"] == 1))
            tau = np.minimum(p["tau"][offers["own"][resp]] * scale, 1.0)
            with np.errstate(divide="ignore"):
                logf = np.log1p(-tau)
            o = np.argsort(offers["own"][resp], kind="stable")
            self.resp_own = offers["own"][resp][o]
            self.resp_sent = offers["sent"][resp][o].astype(np.int64)
            self.resp_logf = np.maximum(logf[o], -700.0)
        else:
            self.resp_own = np.zeros(0, np.int32)
            self.resp_sent = np.zeros(0, np.int64)
            self.resp_logf = np.zeros(0)
        self.resp_ptr = np.searchsorted(self.resp_own, np.arange(n + 1))

    def set_sends(self, sends: np.ndarray) -> None:
        days = np.arange(self.season.n_days + 1)
        self.ecnt_le = np.searchsorted(sends.astype(np.int64), days, side="right")

    def last_alive(self, cust: np.ndarray, c: np.ndarray):
        """Latest time (days) known alive from data strictly before c; NaN when nothing is visible."""
        q = (cust.astype(np.int64) << 32) | (c * SECONDS_PER_DAY).astype(np.int64)
        pos = np.maximum(np.searchsorted(self.rkey, q, side="left") - 1, 0)
        hit = self.rkey[pos] if self.rkey.size else np.zeros(cust.size, np.int64)
        ok = (hit >> 32) == cust
        return np.where(ok, (hit & 0xFFFFFFFF) / SECONDS_PER_DAY, np.nan)

    def n_orders_before(self, cust: np.ndarray, c: float) -> np.ndarray:
        base = cust.astype(np.int64) << 32
        return np.searchsorted(self.okey, base | int(c * SECONDS_PER_DAY)) - np.searchsorted(self.okey, base)

    @staticmethod
    def _chunks(width: np.ndarray):
        order = np.argsort(width, kind="stable")
        w = width[order]
        i, n = 0, width.size
        while i < n:
            j = min(n, i + max(1, CELL_BUDGET // max(int(w[i]), 1)))
            while j - i > 1 and (j - i) * int(w[j - 1]) > CELL_BUDGET:
                j = i + max(1, CELL_BUDGET // int(w[j - 1]))
            yield order[i:j], int(w[j - 1])
            i = j

    def p_alive(self, cust, c, a, pi0):
        """P(alive at c | alive at a (w.p. pi0), no alive-revealing activity in (a, c)).

        = S / (S + integral over death times u in (a, c) of mu e^{-mu (u-a)} L(u)), with L the
        likelihood of silence: Poisson orders and visits, unopened e-mails, unanswered offers.
        """
        season, out = self.season, np.empty(cust.size)
        fa_all = np.floor(a).astype(np.int64)
        last_day = season.n_days - 1
        for rows, J in self._chunks(c.astype(np.int64) - fa_all):
            cu, cc, aa, fa = cust[rows], c[rows].astype(np.int64), a[rows], fa_all[rows]
            mu, rho, lq = self.p["hazard"][cu], self.rho[cu], self.lq[cu]
            Ca, Ea = season.cum(aa), self.ecnt_le[fa]
            day = fa[:, None] + np.arange(J)[None, :]
            beyond = day >= cc[:, None]
            np.minimum(day, last_day, out=day)
            s, Cu, E = season.s[day], season.C[day], self.ecnt_le[day].astype(np.float64)
            u = day.astype(np.float64)
            u[:, 0], Cu[:, 0], E[:, 0] = aa, Ca, Ea  # the first interval starts at a, not midnight
            # log of mu e^{-mu (u-a)} L(u) at each interval start, then closed form within the day
            expo = u * -mu[:, None]
            expo -= rho[:, None] * Cu
            expo += E * lq[:, None]
            expo += (mu * aa + rho * Ca - Ea * lq + np.log(mu))[:, None]
            self._add_offer_steps(expo, cu, aa, cc, fa)
            expo[beyond] = -np.inf
            k = rho[:, None] * s
            k += mu[:, None]
            width = np.ones(J)[None, :]
            g = -np.expm1(-k * np.where(np.arange(J) == 0, (fa + 1 - aa)[:, None], width))
            g /= k
            np.exp(expo, out=expo)
            integral = np.einsum("ij,ij->i", expo, g)
            ne_c = self.ecnt_le[cc - 1] - Ea
            logS = -mu * (cc - aa) - rho * (season.C[cc] - Ca) + ne_c * lq + self._offer_total(cu, aa, cc)
            S = np.exp(logS)
            pi = pi0[rows]
            out[rows] = pi * S / (pi * (S + integral) + (1.0 - pi))
        return out

    def _offer_rows(self, cu, aa, cc):
        cnt = self.resp_ptr[cu + 1] - self.resp_ptr[cu]
        rr = np.repeat(np.arange(cu.size), cnt)
        idx = self.resp_ptr[cu][rr] + (np.arange(rr.size) - np.repeat(np.cumsum(cnt) - cnt, cnt))
        s = self.resp_sent[idx]
        keep = (s > aa[rr]) & (s < cc[rr])
        return rr[keep], s[keep], self.resp_logf[idx][keep]

    def _add_offer_steps(self, expo, cu, aa, cc, fa):
        """Add log(1 - tau) from each unanswered responsive send in (a, c) onwards, only on rows that have one."""
        rr, s, logf = self._offer_rows(cu, aa, cc)
        if not rr.size:
            return
        hit, local = np.unique(rr, return_inverse=True)
        incr = np.zeros((hit.size, expo.shape[1]))
        np.add.at(incr, (local, s - fa[rr]), logf)
        expo[hit] += np.cumsum(incr, axis=1)

    def _offer_total(self, cu, aa, cc):
        rr, _, logf = self._offer_rows(cu, aa, cc)
        return np.bincount(rr, weights=logf, minlength=cu.size)

    def p_no_order(self, cust, c, h: int):
        """P(no natural order in [c, c + h) | alive at c), integrating over death in the window."""
        season, out = self.season, np.empty(cust.size)
        step = max(1, CELL_BUDGET // h)
        j = np.arange(h)[None, :]
        for i in range(0, cust.size, step):
            cu, cc = cust[i : i + step], c[i : i + step].astype(np.int64)
            mu, beta = self.p["hazard"][cu], self.p["base_rate"][cu]
            day = cc[:, None] + j
            s, Cd = season.s[day], season.C[day]
            k = beta[:, None] * s
            k += mu[:, None]
            g = -np.expm1(-k)
            g /= k
            expo = Cd * -beta[:, None]
            expo -= mu[:, None] * j
            expo += (beta * season.C[cc] + np.log(mu))[:, None]
            np.exp(expo, out=expo)
            tail = np.exp(-mu * h - beta * (season.C[cc + h] - season.C[cc]))
            out[i : i + step] = np.einsum("ij,ij->i", expo, g) + tail
        return out

    def churn(self, cutoffs, horizon_days, ids, start) -> pd.DataFrame:
        n = self.p["signup"].size
        everyone = np.arange(n, dtype=np.int64)
        cust_l, c_l = [], []
        for c in cutoffs:
            who = everyone[self.n_orders_before(everyone, c) > 0]
            cust_l.append(who)
            c_l.append(np.full(who.size, c))
        cust = np.concatenate(cust_l) if cust_l else np.zeros(0, np.int64)
        c = np.concatenate(c_l) if c_l else np.zeros(0)
        a = self.last_alive(cust, c)
        alive = self.p_alive(cust, c, a, np.ones(cust.size))
        p_no = self.p_no_order(cust, c, horizon_days)
        return pd.DataFrame(
            {
                CUSTOMER_ID: ids[cust],
                "cutoff": _timestamps(start, c),
                "horizon_days": np.full(cust.size, horizon_days, np.int64),
                "p_churn": 1.0 - alive + alive * p_no,
                "p_alive": alive,
            }
        )

    def value(self, churn: pd.DataFrame, horizon_days: int, ids, start) -> pd.DataFrame:
        """Expected natural orders and spend in [c, c + h) for ``churn``'s rows, from their P(alive at c).

        Alive at c, orders come at rate beta * season(t) until death, Exponential(mu): a day j after c adds
        beta s_j e^{-mu j} (1 - e^{-mu}) / mu (season is constant within the day, cutoffs are midnights).
        Campaigns end before the first truth cutoff, so no induced order falls in a window. An order's
        expected amount is the lognormal mean less the expected discount (p_discount x the mean share).
        """
        cust = pd.Index(ids).get_indexer(churn[CUSTOMER_ID].to_numpy())
        c = ((churn["cutoff"] - start) / pd.Timedelta(days=1)).to_numpy().astype(np.int64)
        mu, beta = self.p["hazard"][cust], self.p["base_rate"][cust]
        j = np.arange(horizon_days)
        orders = np.empty(cust.size)
        step = max(1, CELL_BUDGET // horizon_days)
        for i in range(0, cust.size, step):
            m, b, day = mu[i : i + step, None], beta[i : i + step, None], c[i : i + step, None] + j[None, :]
            orders[i : i + step] = (b * self.season.s[day] * np.exp(-m * j) * -np.expm1(-m) / m).sum(axis=1)
        orders *= churn["p_alive"].to_numpy()
        gross = np.exp(self.p["basket_mu"][cust] + self.p["basket_sigma"][cust] ** 2 / 2)
        amount = gross * (1.0 - self.p["p_discount"][cust] * np.mean(NATURAL_DISCOUNT))
        return pd.DataFrame(
            {
                CUSTOMER_ID: churn[CUSTOMER_ID].to_numpy(),
                "cutoff": churn["cutoff"].to_numpy(),
                "horizon_days": np.full(cust.size, horizon_days, np.int64),
                "expected_orders": orders,
                "expected_spend": orders * amount,
            }
        )

    def offers_truth(self, ids, start) -> pd.DataFrame:
        o, p = self.offers, self.p
        cust = o["own"].astype(np.int64)
        c = o["sent"]
        a = self.last_alive(cust, c)
        signup = p["signup"][cust]
        none_seen = np.isnan(a)
        a = np.where(none_seen, np.maximum(signup, 0.0), a)
        pi0 = np.where(none_seen & (signup < 0), np.exp(p["hazard"][cust] * np.minimum(signup, 0.0)), 1.0)
        alive = self.p_alive(cust, c, a, pi0)
        q_nat = 1.0 - self.p_no_order(cust, c, RESPONSE_DAYS)
        seg = p["segment"][cust]
        tau = np.minimum(p["tau"][cust] * self.scale, 1.0)
        frame = pd.DataFrame({CUSTOMER_ID: ids[cust], "sent_at": _timestamps(start, c)})
        frame["offer"] = np.asarray(ARMS, dtype=object)[o["arm"]]
        frame[f"p_convert_{NO_OFFER}"] = alive * q_nat
        for code, arm in enumerate(ARMS[:2]):
            responds = np.isin(seg, [s for s, a_ in RESPONDS_TO.items() if a_ == code])
            frame[f"p_convert_{arm}"] = alive * (q_nat + (1.0 - q_nat) * np.where(responds, tau, 0.0))
        frame["order_value"] = np.exp(p["basket_mu"][cust] + p["basket_sigma"][cust] ** 2 / 2)
        frame["segment"] = np.asarray(SEGMENTS, dtype=object)[seg]
        frame["p_alive"] = alive
        return frame


def oracle_policy(truth_offers: pd.DataFrame, catalog) -> pd.Series:
    """The best arm per row under the true probabilities (``modeling.economics.best_arms``), else 'none'."""
    arms = [NO_OFFER, *(o.name for o in catalog.offers)]
    best = best_arms(true_rewards(truth_offers, arms, catalog))
    return pd.Series(np.asarray(arms, dtype=object)[best], index=truth_offers.index, name="oracle_offer")


def write(demo: DemoData, out_dir: str | Path) -> Path:
    """Write the tables and truth/ as Parquet, each file atomically."""
    out = Path(out_dir)
    for name, frame in demo.tables.items():
        write_parquet_atomic(frame, out / f"{name}.parquet")
    write_parquet_atomic(demo.truth_churn, out / "truth" / "churn.parquet")
    write_parquet_atomic(demo.truth_offers, out / "truth" / "offers.parquet")
    write_parquet_atomic(demo.params, out / "truth" / "params.parquet")
    write_parquet_atomic(demo.truth_value, out / "truth" / "value.parquet")
    return out
