"""Which logged sends train the offer model and which judge it, and how the judged ones are named.

With enough campaign days the latest ones are held out (a time holdout: the
policy is judged on campaigns it never saw, as it will be used). A log with too
few campaign days, e.g. one randomised test sent on a single date (the
commonest log a shop has), holds out a random share of sends instead,
stratified by arm and seeded, so each arm keeps its share on both sides.
Which one was used is returned as a :class:`Holdout` whose ``description``
the CLI, the MLflow run and the model card repeat.

Every refusal is an :class:`OfferLogError` whose message names the numbers and
the way out. The same seeded, stratified draw picks each booster's early-stopping rows (``uplift``).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.contract import CUSTOMER_ID, OFFERS
from training.offers.dataset import ARM
from training.offers.errors import OfferLogError

if TYPE_CHECKING:
    from training.offers.config import OfferModelConfig
    from training.offers.dataset import OfferRows

HOLDOUT_KINDS = ("auto", "time", "random")


@dataclass(frozen=True)
class Holdout:
    """The held-out mask and how it was drawn."""

    mask: np.ndarray
    kind: str  # "time" | "random"
    description: str

    @property
    def rows(self) -> int:
        return int(self.mask.sum())


def campaign_days(sent_at: pd.Series) -> pd.Series:
    """Sends per campaign day, latest first."""
    return sent_at.dt.normalize().value_counts().sort_index(ascending=False)


def split_by_time(sent_at: pd.Series, holdout_share: float) -> np.ndarray:
    """Held-out mask: the latest campaign days holding at least ``holdout_share`` of the rows (at least one day kept)."""
    counts = campaign_days(sent_at)
    if len(counts) < 2:
        raise OfferLogError(
            f"a time holdout needs at least two campaign days; the offer log has {len(counts)} "
            f"({len(sent_at):,} sends); set holdout: auto or random in configs/offer_model.yaml"
        )
    cum = counts.cumsum() / counts.sum()
    n_days = min(int((cum < holdout_share).sum()) + 1, len(counts) - 1)
    return sent_at.dt.normalize().isin(counts.index[:n_days]).to_numpy()


def split_random(strata: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Mask of ``share`` of each stratum's rows (each arm's sends) drawn at random (seeded), so shares match."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(strata), dtype=bool)
    for value in np.unique(strata):
        rows = np.flatnonzero(strata == value)
        held[rng.choice(rows, size=int(round(share * len(rows))), replace=False)] = True
    return held


def choose_holdout(
    sent_at: pd.Series, arm: np.ndarray, *, kind: str, holdout_share: float, min_time_days: int, seed: int
) -> Holdout:
    """The holdout the settings ask for: ``auto`` = by time with at least ``min_time_days`` campaign days, else random."""
    if kind not in HOLDOUT_KINDS:
        raise OfferLogError(f"holdout must be one of {HOLDOUT_KINDS}, got {kind!r}")
    counts = campaign_days(sent_at)
    if kind == "time" or (kind == "auto" and len(counts) >= min_time_days):
        mask = split_by_time(sent_at, holdout_share)
        days = sorted(sent_at[mask].dt.normalize().unique())
        return Holdout(
            mask,
            "time",
            f"time: the latest {len(days)} of {len(counts)} campaign days "
            f"({days[0]:%Y-%m-%d}..{days[-1]:%Y-%m-%d}, {int(mask.sum()):,} of {len(mask):,} sends)",
        )
    mask = split_random(arm, holdout_share, seed)
    why = (
        f"the log has {len(counts)} campaign day(s), fewer than time_holdout_min_days={min_time_days}"
        if kind == "auto"
        else "holdout: random"
    )
    return Holdout(
        mask,
        "random",
        f"random: {holdout_share:.0%} of each arm's sends (seed {seed}), {int(mask.sum()):,} of {len(mask):,} "
        f"sends, because {why}",
    )


def holdout_for(rows: OfferRows, config: OfferModelConfig) -> Holdout:
    """The held-out sends the settings ask for."""
    return choose_holdout(
        rows.frame[OFFERS.sent_at],
        rows.frame[ARM].to_numpy(),
        kind=config.holdout,
        holdout_share=config.holdout_share,
        min_time_days=config.time_holdout_min_days,
        seed=config.seed,
    )


def check_arms(
    arm: np.ndarray, converted: np.ndarray, held: np.ndarray, names: list[str], *, min_conversions: int
) -> None:
    """Refuse when some arm cannot be learned or judged: never sent, or too few conversions / non-conversions."""
    problems = []
    for a, name in enumerate(names):
        for part, rows in (("training", ~held), ("held-out", held)):
            sel = rows & (arm == a)
            n, yes = int(sel.sum()), int(converted[sel].sum())
            if n == 0:
                problems.append(f"{name!r} has no {part} sends")
            elif part == "training" and min(yes, n - yes) < min_conversions:
                problems.append(f"{name!r} has {yes:,} conversions in {n:,} {part} sends")
    if problems:
        raise OfferLogError(
            f"the offer log cannot train a model: {'; '.join(problems)} (each arm needs at least "
            f"min_conversions_per_arm={min_conversions} conversions and non-conversions in training and some "
            "held-out sends); log more sends, remove offers that were not tested from configs/offers.yaml, "
            "or lower min_conversions_per_arm in configs/offer_model.yaml"
        )


def describe_days(sent_at: pd.Series) -> str:
    """``first..last`` send day, for the registry's test tag."""
    return f"{sent_at.min():%Y-%m-%d}..{sent_at.max():%Y-%m-%d}"


def send_keys(held: pd.DataFrame) -> pd.Series:
    """``customer@sent_at`` per send: which sends these are, whatever their order."""
    return held[CUSTOMER_ID].astype(str) + "@" + held[OFFERS.sent_at].astype(str)


def holdout_days(held: pd.DataFrame, kind: str) -> str:
    """Names the held-out sends for the champion gate: their days, and for a random draw which sends."""
    days = describe_days(held[OFFERS.sent_at])
    if kind == "time":
        return days
    digest = zlib.crc32("\n".join(sorted(send_keys(held))).encode())
    return f"{days} random {len(held)} sends crc32 {digest:08x}"
