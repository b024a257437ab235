"""Feature drift at scoring time: PSI of the scored population against the churn champion's training rows.

Training writes a reference (``drift_reference.json``, a run artifact beside the model's files): per feature
the churn model reads, its bins and the share of training rows in each. Numbers get the deciles of the
training rows as right-closed bins (ties merge bins) plus one for missing; categories get their training
levels (the ``MAX_LEVELS`` most common), ``other`` (the builders' own ``other``, and levels rare or never
seen in training) and missing.

PSI = sum over bins of (scored - reference) x ln(scored / reference). Under no drift it is positive, and
more so for small populations: n x PSI is about chi-square with bins - 1 degrees of freedom, so
PSI ~ chi2(B - 1) x (1/n_scored + 1/n_reference) (Yurdakul 2018, "Statistical properties of the population
stability index", Western Michigan University). A feature is flagged only when its PSI exceeds the
conventional alarm level (0.25), the ``confidence`` quantile of that null distribution (so 500 customers
drawn from the training population raise no false alarm) and the recent training populations' own
distance from the pool: the training rows pool several cutoffs, each population a little different (the
base ages, seasons come and go), so the latest of them, the populations the model was last fitted and
calibrated on, would alarm against the pool although the model knows them. ``spread`` is the largest PSI of
one recent training cutoff (the recalibration cutoffs) against all training rows. Only the recent ones
count: the earliest cutoffs differ most from the pool, and a threshold that let the scored population
wander as far would never see a base that keeps ageing. ``n_reference`` counts customers, not rows: a
customer's rows at several cutoffs move together, so counting rows would understate the noise.

A bin that is empty on one side only is counted as half a row there (its PSI stays finite: a level or a
missing share that training never saw still shows); a bin empty on both sides adds nothing and is not counted.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import chi2

from features.descriptions import describe

REFERENCE_FILE = "drift_reference.json"
TABLE_SUFFIX = ".drift.csv"
MISSING, OTHER = "missing", "other"
QUANTILES = tuple(k / 10 for k in range(1, 10))  # deciles
MAX_LEVELS = 30  # categories: the most common training levels keep their own bin, the rest share "other"
COLUMNS = (
    "feature",
    "description",
    "psi",
    "threshold",
    "drifted",
    "n_scored",
    "n_reference",
    "bins",
    "training_spread",
    "moved_bin",
    "moved_reference_share",
    "moved_scored_share",
)


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


def drift_table(
    frame: pd.DataFrame, ref: Reference, *, alarm: float, confidence: float, rows: np.ndarray | None = None
) -> pd.DataFrame:
    """One row per reference feature (``COLUMNS``), most drifted first, over ``frame``'s scored ``rows`` (a mask;
    all rows when None). Each column is masked on its own: copying a whole wide frame costs more than the PSI."""
    n = len(frame) if rows is None else int(rows.sum())
    out = []
    for b in ref.bins:
        values = frame[b.feature]
        counts = b.counts(values if rows is None else values[rows])
        value, used = psi(np.asarray(b.shares), ref.n_rows, counts)
        limit = threshold(used, n, ref.n_customers, alarm=alarm, confidence=confidence, spread=b.spread)
        scored = counts / n
        moved = int(np.argmax(np.abs(scored - np.asarray(b.shares))))
        out.append(
            {
                "feature": b.feature,
                "description": describe(b.feature).text,
                "psi": value,
                "threshold": limit,
                "drifted": value > limit,
                "n_scored": n,
                "n_reference": ref.n_customers,
                "bins": used,
                "training_spread": b.spread,
                "moved_bin": b.labels[moved],
                "moved_reference_share": b.shares[moved],
                "moved_scored_share": float(scored[moved]),
            }
        )
    table = pd.DataFrame(out, columns=list(COLUMNS))
    return table.sort_values(["psi", "feature"], ascending=[False, True], kind="stable").reset_index(drop=True)


def table_path(scores: str | Path) -> Path:
    """Where the drift table of a scores file lives: ``scores.parquet`` -> ``scores.drift.csv``."""
    scores = Path(scores)
    return scores.with_name(scores.stem + TABLE_SUFFIX)


@dataclass(frozen=True)
class DriftCheck:
    """The drift table of a scoring run, or why there is none (``note``)."""

    table: pd.DataFrame | None
    note: str = ""
    seconds: float = 0.0

    @property
    def drifted(self) -> pd.DataFrame:
        return self.table[self.table["drifted"]] if self.table is not None else pd.DataFrame(columns=list(COLUMNS))

    def metrics(self) -> dict[str, float]:
        """For the scoring run: the summary, and each feature's PSI (``drift_psi_<feature>``, to chart over runs)."""
        if self.table is None:
            return {}
        return {
            "drift_max_psi": float(self.table["psi"].max()) if len(self.table) else 0.0,
            "drift_features_drifted": float(self.table["drifted"].sum()),
            "drift_features_checked": float(len(self.table)),
            "drift_seconds": self.seconds,
            **{f"drift_psi_{f}": float(v) for f, v in zip(self.table["feature"], self.table["psi"], strict=True)},
        }

    def message(self, where: Path | None = None, top: int = 3) -> str:
        """The CLI's line: the most drifted features in words, or none, or why drift was not checked."""
        if self.table is None:
            return f"drift not checked: {self.note}"
        table = f"; table: {where}" if where is not None else ""
        drifted = self.drifted
        if drifted.empty:
            first = self.table.iloc[0] if len(self.table) else None
            largest = "" if first is None else f" (largest PSI {first['psi']:.2f}, {first['description']})"
            return f"no feature drifted since training{largest}{table}"
        named = ", ".join(f"{r.description} (PSI {r.psi:.2f})" for r in drifted.head(top).itertuples())
        more = f" and {len(drifted) - top} more" if len(drifted) > top else ""
        n = len(drifted)
        return f"{n} feature{'s' if n > 1 else ''} drifted since training: {named}{more}{table}"


def load_reference(name: str, version: str) -> Reference | str:
    """The reference of a registered churn model version (its run's artifact), or why there is none.

    A reference that cannot be read is a reason too: scoring goes on, and the CLI says drift was not checked.
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    run_id = MlflowClient().get_model_version(name, version).run_id
    if not run_id:
        return f"{name} v{version} has no training run to take a reference from"
    try:
        names = {Path(a.path).name for a in MlflowClient().list_artifacts(run_id)}
        if REFERENCE_FILE not in names:
            return (
                f"{name} v{version} was trained before training kept a drift reference ({REFERENCE_FILE}); "
                "train the churn model again (retain train-churn) to check drift"
            )
        with tempfile.TemporaryDirectory() as tmp:
            path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=REFERENCE_FILE, dst_path=tmp)
            return Reference.from_json(Path(path).read_text())
    except (MlflowException, OSError, ValueError, KeyError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        return (
            f"the drift reference of {name} v{version} ({REFERENCE_FILE} in run {run_id}) could not be read "
            f"({type(exc).__name__}: {first}); train the churn model again (retain train-churn) to check drift"
        )


def check(
    frame: pd.DataFrame, rows: np.ndarray, name: str, version: str, *, alarm: float, confidence: float
) -> DriftCheck:
    """Drift of ``frame``'s ``rows`` (those churn model ``name`` v``version`` scores) against its reference, or why
    not."""
    ref = load_reference(name, version)
    if isinstance(ref, str):
        return DriftCheck(None, ref)
    if not rows.any():
        return DriftCheck(None, "no customer has an order before the as-of date, so none was scored for churn")
    started = time.perf_counter()
    table = drift_table(frame, ref, alarm=alarm, confidence=confidence, rows=rows)
    return DriftCheck(table, seconds=time.perf_counter() - started)
