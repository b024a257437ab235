"""Cohort retention: customers grouped by the period of their first purchase.

For a cohort (first purchase in period 0) the share for period k is the share
of the cohort that bought in period k. The cumulative variant ("rolling
retention") is the share that bought in period k *or any later observed
period*, so it never rises with k. Cells the data cannot see yet (cohort
start + k after the last period before ``as_of``) are NaN, not 0; the last
period may be partial.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract import ORDERS
from features.io import atomic_path, write_csv_atomic
from features.snapshot import KEY, Snapshot
from features.sources import Tables

PERIODS = ("month", "week")


@dataclass(frozen=True)
class Cohorts:
    """Counts and shares; rows are cohorts (period start), columns the period offset k."""

    sizes: pd.Series
    counts: pd.DataFrame
    shares: pd.DataFrame
    period: str
    cumulative: bool

    def long(self) -> pd.DataFrame:
        """One row per (cohort, k) with count and share: the CSV layout."""
        counts = self.counts.stack(future_stack=True).rename("customers")
        shares = self.shares.stack(future_stack=True).rename("share")
        out = pd.concat([counts, shares], axis=1).dropna(subset=["share"]).reset_index()
        out.insert(1, "cohort_size", out["cohort"].map(self.sizes).astype("int64"))
        out["customers"] = out["customers"].astype("int64")
        return out

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """cohorts.csv (long) and cohort_heatmap.png, each written atomically."""
        from analytics.plotting import cohort_heatmap_png

        out_dir = Path(out_dir)
        csv = write_csv_atomic(self.long(), out_dir / "cohorts.csv")
        png = out_dir / "cohort_heatmap.png"
        with atomic_path(png) as tmp:
            tmp.write_bytes(cohort_heatmap_png(self))
        return {"csv": csv, "png": png}


def cohort_retention(
    tables: Tables, *, as_of, period: str = "month", max_periods: int | None = None, cumulative: bool = False
) -> Cohorts:
    """Cohort matrix from orders strictly before ``as_of`` (required: no silent 'latest date')."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {PERIODS}, got {period!r}")
    if tables.orders is None:
        raise ValueError("cohort retention needs an orders table")
    diff = "date_diff('month', f.cohort, o.p)" if period == "month" else "date_diff('day', f.cohort, o.p) // 7"
    base = f"""
        WITH o AS (
            SELECT {KEY} AS c, date_trunc('{period}', {ORDERS.ordered_at}) AS p FROM {ORDERS.name} GROUP BY ALL
        ), f AS (SELECT c, min(p) AS cohort FROM o GROUP BY c),
        a AS (SELECT o.c, f.cohort, {diff} AS k FROM o JOIN f USING (c))
    """
    if cumulative:  # customers by their last active period; reverse cumsum gives "k or later"
        query = (
            base
            + "SELECT cohort, k, count(*) AS n FROM (SELECT c, cohort, max(k) AS k FROM a GROUP BY ALL) GROUP BY ALL"
        )
    else:
        query = base + "SELECT cohort, k, count(*) AS n FROM a GROUP BY ALL"
    with Snapshot(tables, cutoff=as_of) as snap:
        long, as_of = snap.sql(query), snap.cutoff
    if long.empty:
        raise ValueError(f"no orders before {as_of}")
    last = pd.Timestamp(as_of - pd.Timedelta(microseconds=1))
    last = last.to_period("M").start_time if period == "month" else last.to_period("W-SUN").start_time
    return _matrix(long, period=period, last=last, max_periods=max_periods, cumulative=cumulative)


def _offsets(cohorts: pd.Index, last: pd.Timestamp, period: str) -> np.ndarray:
    """How many later periods each cohort has been observed for."""
    if period == "month":
        return (last.year - cohorts.year) * 12 + (last.month - cohorts.month)
    return ((last - cohorts).days // 7).to_numpy()


def _matrix(long: pd.DataFrame, *, period: str, last: pd.Timestamp, max_periods: int | None, cumulative: bool):
    long["cohort"] = pd.to_datetime(long["cohort"]).astype("datetime64[us]")
    counts = long.pivot_table(index="cohort", columns="k", values="n", aggfunc="sum", fill_value=0).sort_index()
    seen = _offsets(counts.index, last, period)
    width = int(max(counts.columns.max(), np.max(seen)))  # observed periods without buyers are 0, not absent
    counts = counts.reindex(columns=range(width + 1), fill_value=0)
    if cumulative:
        counts = counts.iloc[:, ::-1].cumsum(axis=1).iloc[:, ::-1]
    sizes = counts[0].astype("int64").rename("cohort_size")  # everyone buys in period 0
    if max_periods is not None:
        counts = counts.reindex(columns=range(min(width, max_periods) + 1), fill_value=0)
    unseen = np.arange(counts.shape[1])[None, :] > np.asarray(seen)[:, None]
    counts = counts.astype("float64").mask(unseen)
    shares = counts.div(sizes, axis=0)
    counts.columns.name = shares.columns.name = "k"
    return Cohorts(sizes=sizes, counts=counts, shares=shares, period=period, cumulative=cumulative)
