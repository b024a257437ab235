"""Metrics with bootstrap confidence intervals, paired differences against baselines, and slices.

Metrics are plain numpy so that a few hundred resamples of a test cutoff take seconds.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm, rankdata

TOP_SHARES = (0.05, 0.10, 0.20)
HIGHER_IS_BETTER = {"roc_auc": True, "pr_auc": True, "brier": False, "log_loss": False, "ece": False}
EPS = 1e-12


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Mann-Whitney form: probability a churner outranks a non-churner (ties count half)."""
    n_pos = y.sum()
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pr_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Average precision over distinct score thresholds (tied scores are one threshold, as in scikit-learn).

    Tie-aware so the value does not depend on row order: a bootstrap resample, which shuffles rows, then
    measures the same thing as the point estimate.
    """
    order = np.argsort(-p, kind="stable")
    ranked, hits = p[order], y[order]
    if hits.sum() == 0:
        return float("nan")
    last = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]  # the last row of each tied group
    tp = np.cumsum(hits)[last]
    precision = tp / (last + 1)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over equal-width probability bins, weighted by bin size."""
    idx = np.minimum((p * bins).astype(int), bins - 1)
    count = np.bincount(idx, minlength=bins)
    gap = np.abs(np.bincount(idx, weights=p, minlength=bins) - np.bincount(idx, weights=y, minlength=bins))
    return float(gap.sum() / max(count.sum(), 1))


def top_share(y: np.ndarray, p: np.ndarray, share: float) -> tuple[float, float]:
    """Lift and capture among the ``share`` riskiest customers; customers tied at the boundary count
    pro rata (the expectation over random tie-breaks), so row order never matters."""
    k = max(int(round(share * len(y))), 1)
    edge = np.partition(-p, k - 1)[k - 1]  # minus the k-th highest score
    above, tied = -p < edge, -p == edge
    hits = y[above].sum() + (k - above.sum()) * y[tied].mean()
    base = y.mean()
    lift = hits / k / base if base > 0 else float("nan")
    capture = hits / y.sum() if y.sum() > 0 else float("nan")
    return float(lift), float(capture)


def metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Every reported metric for one set of predictions."""
    y = np.asarray(y, dtype="float64")
    p = np.clip(np.asarray(p, dtype="float64"), EPS, 1 - EPS)
    out = {
        "roc_auc": roc_auc(y, p),
        "pr_auc": pr_auc(y, p),
        "brier": float(np.mean((p - y) ** 2)),
        "log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))),
        "ece": ece(y, p),
    }
    for share in TOP_SHARES:
        pct = int(round(share * 100))
        out[f"lift_top{pct}"], out[f"capture_top{pct}"] = top_share(y, p, share)
    return out


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    lo, hi = np.nanpercentile(samples, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def rate_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for ``k`` events in ``n`` customers: it stays sensible at 0 or ``n`` events, where a
    bootstrap collapses to a point (a risk band with no churner is not proof of a zero rate)."""
    if n == 0:
        return float("nan"), float("nan")
    z = norm.ppf(0.5 + level / 2)
    rate = k / n
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n))
    lo = 0.0 if k == 0 else max(centre - half, 0.0)  # exact at the edges, where rounding would leave 1e-17
    hi = 1.0 if k == n else min(centre + half, 1.0)
    return float(lo), float(hi)


def bootstrap_interval(stat, *arrays: np.ndarray, n_boot: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``stat(*arrays)`` over resamples of the rows (the same rows of every array)."""
    rng = np.random.default_rng(seed)
    n = len(arrays[0])
    draws = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        draws.append(stat(*(np.asarray(a)[idx] for a in arrays)))
    return _interval(np.array(draws, dtype="float64"), level)


def resampled(y, scores: dict[str, np.ndarray], measure, *, n_boot: int, seed: int) -> tuple[dict, dict]:
    """Each model's ``measure(y, p)`` (a dict of metrics) and its values over the same bootstrap resamples
    of the rows, for every model alike: what paired differences are computed from."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    point = {name: measure(y, np.asarray(p)) for name, p in scores.items()}
    draws = {name: {m: [] for m in point[name]} for name in scores}
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        for name, p in scores.items():
            for m, v in measure(y[idx], np.asarray(p)[idx]).items():
                draws[name][m].append(v)
    return point, draws


def bootstrap_report(
    y: np.ndarray, scores: dict[str, np.ndarray], *, reference: str, n_boot: int, seed: int, level: float = 0.95
) -> dict:
    """Point estimates and percentile CIs per model, and paired differences ``reference - other``.

    The same resampled rows score every model, so a difference's CI reflects the models, not the sample.
    """
    y = np.asarray(y)
    point, draws = resampled(y, scores, metrics, n_boot=n_boot, seed=seed)
    report = {"n": int(len(y)), "churn_rate": float(y.mean()), "models": {}, "differences": {}}
    for name in scores:
        report["models"][name] = {
            m: {"value": v, "ci": _interval(np.array(draws[name][m]), level)} for m, v in point[name].items()
        }
    for name in scores:
        if name == reference:
            continue
        report["differences"][name] = {}
        for m in point[reference]:
            diff = np.array(draws[reference][m]) - np.array(draws[name][m])
            lo, hi = _interval(diff, level)
            report["differences"][name][m] = {
                "value": point[reference][m] - point[name][m],
                "ci": (lo, hi),
                "better": _better(m, lo, hi),
            }
    return report


def _better(metric: str, lo: float, hi: float) -> str:
    """'reference', 'baseline' or 'tie' by whether the difference's CI excludes zero."""
    up = HIGHER_IS_BETTER.get(metric, True)
    if (lo > 0 and up) or (hi < 0 and not up):
        return "reference"
    if (hi < 0 and up) or (lo > 0 and not up):
        return "baseline"
    return "tie"


def slice_reports(
    y: np.ndarray, p: np.ndarray, slices: dict[str, np.ndarray], *, n_boot: int, seed: int, min_rows: int = 50
) -> dict[str, dict]:
    """The model's metrics with CIs within each slice (a boolean mask); tiny slices are only counted."""
    out = {}
    for name, mask in slices.items():
        mask = np.asarray(mask, bool)
        if mask.sum() < min_rows or len(np.unique(np.asarray(y)[mask])) < 2:
            out[name] = {"n": int(mask.sum()), "skipped": f"fewer than {min_rows} rows or one class"}
            continue
        rep = bootstrap_report(
            np.asarray(y)[mask], {"model": np.asarray(p)[mask]}, reference="model", n_boot=n_boot, seed=seed
        )
        out[name] = {"n": rep["n"], "churn_rate": rep["churn_rate"], **rep["models"]["model"]}
    return out


def flat_metrics(report: dict) -> dict[str, float]:
    """MLflow metric names: test_<m>, test_<m>_lo/hi, baseline_<name>_<m>, diff_<name>_<m>, slice_<s>_<m>."""
    out = {}
    for name, values in report["models"].items():
        prefix = "test" if name == "model" else f"baseline_{name}"
        for m, v in values.items():
            out[f"{prefix}_{m}"] = v["value"]
            out[f"{prefix}_{m}_lo"], out[f"{prefix}_{m}_hi"] = v["ci"]
    for name, values in report["differences"].items():
        out.update({f"diff_{name}_{m}": v["value"] for m, v in values.items()})
    for name, values in report.get("slices", {}).items():
        out.update({f"slice_{name}_{m}": v["value"] for m, v in values.items() if isinstance(v, dict)})
    return {k: float(v) for k, v in out.items() if v == v}  # NaN (an empty slice) is not a metric


def interval_metrics(report: dict) -> dict[str, float]:
    """The 95% bounds of every difference and slice metric: ``diff_<name>_<m>_lo/hi``, ``slice_<s>_<m>_lo/hi``."""
    out = {}
    for name, values in report["differences"].items():
        for m, v in values.items():
            out[f"diff_{name}_{m}_lo"], out[f"diff_{name}_{m}_hi"] = v["ci"]
    for name, values in report.get("slices", {}).items():
        for m, v in values.items():
            if isinstance(v, dict) and "ci" in v:
                out[f"slice_{name}_{m}_lo"], out[f"slice_{name}_{m}_hi"] = v["ci"]
    return {k: float(v) for k, v in out.items() if v == v}


def summary_metrics(report: dict) -> dict:
    """The small metrics.json that ``dvc metrics show`` prints."""
    keep = ("roc_auc", "pr_auc", "brier", "log_loss", "ece", "lift_top10", "capture_top10")
    return {
        "test_cutoff": report["plan"]["test_cutoff"],
        "n_test": report["n"],
        "churn_rate": round(report["churn_rate"], 4),
        **{name: {m: round(v[m]["value"], 4) for m in keep} for name, v in report["models"].items()},
    }
