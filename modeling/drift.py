"""The drift reference a churn model is trained with, and the PSI statistic that compares a population to it.

Training writes the reference (``drift_reference.json``, a run artifact beside the model's files): per
feature the churn model reads, its bins and the share of training rows in each. Numbers get the deciles of
the training rows as right-closed bins (ties merge bins) plus one for missing; categories get their training
levels (the ``MAX_LEVELS`` most common), ``other`` (the builders' own ``other``, and levels rare or never
seen in training) and missing. ``serving.drift`` scores a population against it.

PSI = sum over bins of (scored - reference) x ln(scored / reference). Under no drift it is positive, and
more so for small populations: n x PSI is about chi-square with bins - 1 degrees of freedom, so
PSI ~ chi2(B - 1) x (1/n_scored + 1/n_reference) (Yurdakul 2018, "Statistical properties of the population
stability index", Western Michigan University). ``threshold`` is the largest of the conventional alarm
level (0.25), the ``confidence`` quantile of that null distribution and the recent training populations'
own distance from the pool (``spread``): the training rows pool several cutoffs, each population a little
different, so the latest of them would alarm against the pool although the model knows them. Only the
recent ones count: the earliest cutoffs differ most from the pool, and a threshold that let the scored
population wander as far would never see a base that keeps ageing. ``n_reference`` counts customers, not
rows: a customer's rows at several cutoffs move together, so counting rows would understate the noise.

A bin that is empty on one side only is counted as half a row there (its PSI stays finite: a level or a
missing share that training never saw still shows); a bin empty on both sides adds nothing and is not counted.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.stats import chi2

REFERENCE_FILE = "drift_reference.json"
MISSING, OTHER = "missing", "other"
QUANTILES = tuple(k / 10 for k in range(1, 10))  # deciles
MAX_LEVELS = 30  # categories: the most common training levels keep their own bin, the rest share "other"


@dataclass(frozen=True)
class Bins:
    """One feature's bins and the reference's share of rows in each (``labels`` order, missing last).

    Numbers: ``edges`` are the upper edges of right-closed bins, the last bin is open above. Categories:
    ``levels`` each have a bin, then ``other``, then missing.
    """

    feature: str
    shares: tuple[float, ...]
    edges: tuple[float, ...] = ()
    levels: tuple[str, ...] | None = None
    spread: float = 0.0  # the largest PSI of one recent training cutoff's rows against all training rows

    @property
    def labels(self) -> list[str]:
        if self.levels is not None:
            return [*self.levels, OTHER, MISSING]
        if not self.edges:
            return ["any value", MISSING]
        e = [f"{v:g}" for v in self.edges]
        inner = [f"({lo}, {hi}]" for lo, hi in zip(e[:-1], e[1:], strict=True)]
        return [f"<= {e[0]}", *inner, f"> {e[-1]}", MISSING]

    def index(self, values: pd.Series) -> np.ndarray:
        """Each value's bin in ``labels``, vectorised (one searchsorted or one categorical coding)."""
        if self.levels is not None:
            text = values.astype("string")
            codes = pd.Categorical(text, categories=list(self.levels)).codes.astype(np.int64)
            other, missing = len(self.levels), len(self.levels) + 1
            return np.where(text.isna().to_numpy(), missing, np.where(codes < 0, other, codes))
        x = pd.to_numeric(values, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
        index = np.searchsorted(np.asarray(self.edges, dtype=np.float64), x, side="left")
        return np.where(np.isnan(x), len(self.edges) + 1, index)

    def counts(self, values: pd.Series) -> np.ndarray:
        """Rows per bin."""
        return np.bincount(self.index(values), minlength=len(self.labels))


@dataclass(frozen=True)
class Reference:
    """The churn champion's training population: ``n_rows`` training rows of ``n_customers`` customers."""

    n_rows: int
    n_customers: int
    bins: tuple[Bins, ...]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Reference:
        raw = json.loads(text)
        bins = tuple(
            Bins(
                b["feature"],
                tuple(b["shares"]),
                tuple(b["edges"]),
                None if b["levels"] is None else tuple(b["levels"]),
                float(b["spread"]),
            )
            for b in raw["bins"]
        )
        return cls(int(raw["n_rows"]), int(raw["n_customers"]), bins)


def _is_number(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)


def fit_bins(feature: str, values: pd.Series, cutoffs: np.ndarray | None = None, recent=None) -> Bins:
    """Deciles of the values (taken from the data, so no bin is empty) or the most common levels.

    ``cutoffs`` (one per row): the rows' training cutoffs; ``spread`` is the largest PSI of the rows of one of
    the ``recent`` cutoffs (default: every cutoff) against all rows.
    """
    if _is_number(values):
        x = values.to_numpy(dtype=np.float64, na_value=np.nan)
        present = x[~np.isnan(x)]
        edges = tuple(np.unique(np.quantile(present, QUANTILES, method="lower"))) if len(present) else ()
        bins = Bins(feature, (), tuple(float(e) for e in edges))
    else:
        counts = values.astype("string").value_counts().drop(OTHER, errors="ignore")  # the builders' other is ours
        counts = counts.sort_index().sort_values(ascending=False, kind="stable")  # ties by value, not row order
        bins = Bins(feature, (), (), tuple(str(v) for v in counts.index[:MAX_LEVELS]))
    index = bins.index(values)
    size = len(bins.labels)
    shares = np.bincount(index, minlength=size) / max(len(values), 1)
    spread = 0.0
    if cutoffs is not None:  # one bincount over (cutoff, bin) pairs, then one PSI per cutoff
        groups, group = np.unique(cutoffs, return_inverse=True)
        per = np.bincount(group * size + index, minlength=len(groups) * size).reshape(len(groups), size)
        keep = np.ones(len(groups), dtype=bool) if recent is None else pd.Index(groups).isin(list(recent))
        spread = max((psi(shares, len(values), row)[0] for row in per[keep]), default=0.0)
    return Bins(feature, tuple(float(v) for v in shares), bins.edges, bins.levels, float(spread))


def reference(X: pd.DataFrame, customers: pd.Series, cutoffs: pd.Series | None = None, recent=None) -> Reference:
    """The reference of the rows a churn model was fitted on: every column of ``X``, in order.

    ``cutoffs``: each row's cutoff, when the rows pool several; the spread of the ``recent`` ones (default: all)
    from the pool goes into the threshold.
    """
    at = None if cutoffs is None else pd.Series(cutoffs).to_numpy()
    bins = tuple(fit_bins(c, X[c], at, recent) for c in X.columns)
    return Reference(len(X), int(pd.Series(customers).nunique()), bins)


def psi(reference_shares: np.ndarray, n_reference: int, counts: np.ndarray) -> tuple[float, int]:
    """(PSI, bins counted): bins empty on one side count as half a row there; empty on both, not at all."""
    n = counts.sum()
    ref = np.asarray(reference_shares, dtype=np.float64)
    cur = counts / n
    used = (ref > 0) | (cur > 0)
    ref = np.where(ref > 0, ref, 0.5 / n_reference)[used]
    cur = np.where(cur > 0, cur, 0.5 / n)[used]
    return float(np.sum((cur - ref) * np.log(cur / ref))), int(used.sum())


def threshold(
    bins: int, n_scored: int, n_reference: int, *, alarm: float, confidence: float, spread: float = 0.0
) -> float:
    """The largest of ``alarm``, the ``confidence`` quantile of PSI under no drift for these sizes, and the
    recent training cutoffs' own ``spread`` from the pool."""
    noise = chi2.ppf(confidence, max(bins - 1, 1)) * (1.0 / n_scored + 1.0 / n_reference)
    return float(max(alarm, noise, spread))
