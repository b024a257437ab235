"""Back-test of issued scores: what happened to the customers a scores file ranked, once its horizon has passed.

Reads a scores file written by ``retain score`` at its as-of date and the shop's tables. Writes a folder
(``backtest.json``, ``backtest.md``, ``reliability.png`` and, when the scores carry ``predicted_value``,
``value.png``), built beside its final path and swapped in whole, and one MLflow run per churn model version
in the ``retain-backtest`` experiment.

A scored customer's outcome is the churn label at the as-of date (``features.labels``, the one rule): no order
in [as_of, as_of + horizon). The horizon is the one the model version was trained for (``horizon_days`` of its
training run in the registry), else ``horizon_days`` in configs/features.yaml, and the output says which. The
orders are read as complete through their last day (training's ``data_span``): data that simply end cannot tell
a customer who stopped from an export that stopped, so a window reaching past that day is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from scipy.stats import spearmanr

from features.contract import CUSTOMER_ID, ContractError, parse_cutoff
from features.io import read_scores
from features.labels import churn_labels, spend_after
from features.runtime import tracking_uri
from features.sources import Tables
from training import plots
from training.datasets import DAY, data_span
from training.evaluate import bootstrap_interval, bootstrap_report, rate_interval
from training.registry import staged, start_tracking, tracked_run

EXPERIMENT = "retain-backtest"
PROBABILITY, BAND, VERSION, VALUE = "churn_probability", "risk_band", "churn_model_version", "predicted_value"
REQUIRED = (CUSTOMER_ID, "as_of", PROBABILITY, BAND, VERSION)
METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_top10")
LABEL = re.compile(r"^(?P<name>.+) v(?P<version>\d+)$")  # serving.models' label of a registered version
DECILES = 10


class BacktestError(ValueError):
    """A back-test that cannot be done yet or on these tables; the message has the dates or counts."""


@dataclass(frozen=True)
class Issued:
    """A scores file as it was issued: its rows and the one as-of date they were scored at."""

    path: Path
    frame: pd.DataFrame
    as_of: pd.Timestamp

    def versions(self) -> list[str]:
        """The churn model versions that gave probabilities in this file."""
        return sorted(self.frame.loc[self.frame[PROBABILITY].notna(), VERSION].unique())


def read_issued(path: str | Path) -> Issued:
    """Read and check ``retain score``'s file; anything a back-test cannot trust is a ContractError naming the
    file and the column."""
    path = Path(path)
    if not path.is_file():
        raise ContractError(f"{path}: no such file; expected the .parquet or .csv file retain score wrote")
    try:
        frame = read_scores(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ContractError(
            f"{path}: cannot read the scores file ({first}); expected the .parquet or .csv file retain score wrote"
        ) from exc
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ContractError(
            f"{path}: column {', '.join(missing)} missing; a file written by retain score has {', '.join(REQUIRED)}"
        )
    if frame.empty:
        raise ContractError(f"{path}: no rows; expected one row per scored customer")
    frame = frame.reset_index(drop=True)
    frame[CUSTOMER_ID] = frame[CUSTOMER_ID].astype("string")
    dupes = frame[CUSTOMER_ID][frame[CUSTOMER_ID].duplicated()].unique()[:5]
    if len(dupes):
        raise ContractError(f"{path}: column {CUSTOMER_ID}: repeated ids {list(dupes)}; expected one row a customer")
    frame[PROBABILITY] = _numbers(frame[PROBABILITY], path, PROBABILITY, low=0.0, high=1.0)
    if VALUE in frame.columns:
        frame[VALUE] = _numbers(frame[VALUE], path, VALUE, low=0.0, high=np.inf)
    scored = frame[PROBABILITY].notna()
    for col in (BAND, VERSION):
        empty = np.flatnonzero(scored & frame[col].isna())
        if len(empty):
            raise ContractError(f"{path}: column {col} is empty on rows {_rows(empty)} that have a {PROBABILITY}")
    return Issued(path, frame, _as_of(frame["as_of"], path))


def _rows(positions) -> list[int]:
    """The first offending rows, counted like a file's data rows (from 1), as features.contract counts them."""
    return [int(i) + 1 for i in positions[:5]]


def _numbers(values: pd.Series, path: Path, column: str, *, low: float, high: float) -> pd.Series:
    out = pd.to_numeric(values, errors="coerce").astype("float64")
    bad = np.flatnonzero((values.notna() & out.isna()) | (out < low) | (out > high))
    if len(bad):
        shown = [values.iloc[i] for i in bad[:5]]
        raise ContractError(
            f"{path}: column {column}, rows {_rows(bad)}: expected a number in [{low:g}, {high:g}] or empty, "
            f"got {shown}"
        )
    return out


def _as_of(values: pd.Series, path: Path) -> pd.Timestamp:
    """The file's one as-of date; several (files of different runs put together) or none is an error."""
    if values.isna().any():
        raise ContractError(f"{path}: column as_of is empty on rows {_rows(np.flatnonzero(values.isna()))}")
    counts = values.astype(str).value_counts()
    if len(counts) > 1:
        shown = ", ".join(f"{day} on {n:,} rows" for day, n in counts.head(5).items())
        raise ContractError(
            f"{path}: column as_of holds {len(counts)} dates ({shown}); a back-test takes the file of one scoring "
            "run: split it by as_of and back-test each"
        )
    try:
        return parse_cutoff(counts.index[0])
    except ValueError as exc:
        raise ContractError(f"{path}: column as_of: {counts.index[0]!r} is not a date (YYYY-MM-DD)") from exc


def recorded_horizons(versions, *, default: int) -> dict[str, tuple[int, str]]:
    """Each version's horizon and where it comes from: ``horizon_days`` of the version's training run in the
    registry, else ``default`` (configs/features.yaml) with the reason the registry had none."""
    client = MlflowClient(tracking_uri())
    out = {}
    for version in versions:
        match = LABEL.match(version)
        reason = f"{version!r} does not name a registered version"
        if match:
            try:
                run_id = client.get_model_version(match["name"], match["version"]).run_id
                days = client.get_run(run_id).data.params.get("horizon_days")
            except MlflowException:
                days, reason = None, f"{version} is not in the registry at {client.tracking_uri}"
            else:
                reason = f"{version}'s training run records no horizon_days"
            if days is not None:
                out[version] = (int(days), f"{version}'s training run")
                continue
        out[version] = (default, f"horizon_days in configs/features.yaml ({reason})")
    return out


def check_window(issued: Issued, horizon_days: int, source: str, tables: Tables) -> pd.Timestamp:
    """The end of the outcome window (exclusive); BacktestError with the dates while it is still open."""
    if tables.orders is None or tables.orders.empty:
        raise BacktestError(
            f"{issued.path}: a back-test needs the shop's orders table, with the orders after {issued.as_of:%Y-%m-%d}"
        )
    _, data_end = data_span(tables)
    end = issued.as_of + pd.Timedelta(days=horizon_days)
    if end > data_end:
        raise BacktestError(
            f"{issued.path}: scored as of {issued.as_of:%Y-%m-%d} with a {horizon_days}-day horizon ({source}); "
            f"the window [{issued.as_of:%Y-%m-%d}, {end:%Y-%m-%d}) closes on {end - DAY:%Y-%m-%d}, but the orders "
            f"end on {data_end - DAY:%Y-%m-%d} ({(end - data_end).days} days short): rerun after "
            f"{end - DAY:%Y-%m-%d} with the orders through that day"
        )
    return end


def run_backtest(issued: Issued, tables: Tables, *, horizons: Mapping[str, tuple[int, str]], n_boot: int, seed: int):
    """What happened to the scored customers, per churn model version: a JSON-ready dict.

    Refuses (BacktestError) while any version's window is open, or when no scored customer is a buyer before
    the as-of date in ``tables`` (the tables of another shop)."""
    frame = issued.frame
    versions = issued.versions()
    if not versions:
        raise BacktestError(f"{issued.path}: no customer has a {PROBABILITY}; nothing to back-test")
    ends = {v: check_window(issued, *horizons[v], tables) for v in versions}
    _, data_end = data_span(tables)
    unscored = frame.loc[frame[PROBABILITY].isna()]
    reasons = unscored.get("churn_unscored_reason", pd.Series("unknown", index=unscored.index))
    result = {
        "scores": str(issued.path),
        "as_of": f"{issued.as_of:%Y-%m-%d}",
        "data_last_order_day": f"{data_end - DAY:%Y-%m-%d}",
        "customers": len(frame),
        "not_scored": {str(k): int(n) for k, n in reasons.fillna("unknown").value_counts().items()},
        "versions": {},
    }
    for version in versions:
        days, source = horizons[version]
        rows = frame.loc[frame[PROBABILITY].notna() & (frame[VERSION] == version)]
        labels = churn_labels(tables, cutoff=issued.as_of, horizon_days=days)
        found = rows[CUSTOMER_ID].isin(labels.index).to_numpy()
        rows = rows.loc[found]
        entry = {
            "horizon_days": days,
            "horizon_source": source,
            "window": [result["as_of"], f"{ends[version]:%Y-%m-%d}"],
            "scored": int(len(found)),
            "not_found": int((~found).sum()),
        }
        if len(rows):
            y = labels.reindex(rows[CUSTOMER_ID]).to_numpy(dtype="float64")
            entry.update(outcomes(y, rows[PROBABILITY].to_numpy(), rows[BAND].astype(str).to_numpy(), n_boot, seed))
            if VALUE in rows.columns and rows[VALUE].notna().any():
                spend = spend_after(tables, cutoff=issued.as_of, horizon_days=days).reindex(rows[CUSTOMER_ID])
                has = rows[VALUE].notna().to_numpy()
                entry["value"] = value_outcomes(rows[VALUE].to_numpy()[has], spend.to_numpy()[has], n_boot, seed)
        result["versions"][version] = entry
    if not any(v.get("customers") for v in result["versions"].values()):
        n = sum(v["scored"] for v in result["versions"].values())
        raise BacktestError(
            f"{issued.path}: none of the {n:,} scored customers has an order before {result['as_of']} in these "
            "tables; pass with --data the shop the scores were made from"
        )
    return result


def outcomes(y: np.ndarray, p: np.ndarray, band: np.ndarray, n_boot: int, seed: int) -> dict:
    """Ranking and calibration metrics with 95% bootstrap intervals, the reliability table by decile of the
    prediction and the churn rate by risk band, each realised rate with its Wilson interval."""
    report = bootstrap_report(y, {"model": p}, reference="model", n_boot=n_boot, seed=seed)["models"]["model"]
    deciles = pd.qcut(pd.Series(p).rank(method="first"), min(DECILES, len(p)), labels=False).to_numpy() + 1
    bands = sorted(np.unique(band), key=lambda b: p[band == b].mean())
    return {
        "customers": int(len(y)),
        "churners": int(y.sum()),
        "predicted_churn_rate": float(p.mean()),
        "churn_rate": {"value": float(y.mean()), "ci": rate_interval(int(y.sum()), len(y))},
        "metrics": {m: report[m] for m in METRICS},
        "reliability": [_group(f"{d}", y[deciles == d], p[deciles == d]) for d in np.unique(deciles)],
        "bands": [_group(b, y[band == b], p[band == b]) for b in bands],
    }


def _group(name: str, y: np.ndarray, p: np.ndarray) -> dict:
    lo, hi = rate_interval(int(y.sum()), len(y))
    predicted = float(p.mean())
    return {
        "group": name,
        "customers": int(len(y)),
        "predicted": predicted,
        "realised": float(y.mean()),
        "ci": (lo, hi),
        "within": bool(lo <= predicted <= hi),
    }


def _mae(pred, real) -> float:
    return float(np.mean(np.abs(pred - real)))


def _spearman(pred, real) -> float:
    if np.ptp(pred) == 0 or np.ptp(real) == 0:  # a constant has no rank order
        return float("nan")
    return float(spearmanr(pred, real).statistic)


def _top_decile_share(pred, real) -> float:
    """Share of the realised spend made by the 10% with the highest predicted value."""
    k = max(int(round(0.1 * len(pred))), 1)
    total = real.sum()
    return float(real[np.argsort(-pred, kind="stable")[:k]].sum() / total) if total > 0 else float("nan")


def value_outcomes(pred: np.ndarray, real: np.ndarray, n_boot: int, seed: int) -> dict:
    """Realised spend in the window against ``predicted_value``: MAE, Spearman rank correlation, the share of the
    spend made by the top decile of the predictions and the realised total, with 95% bootstrap intervals."""
    out = {"customers": int(len(pred)), "predicted_total": float(pred.sum())}
    stats = {"realised_total": lambda _, r: float(r.sum()), "mae": _mae, "spearman": _spearman}
    stats["top_decile_share"] = _top_decile_share
    for name, stat in stats.items():
        out[name] = {"value": stat(pred, real), "ci": bootstrap_interval(stat, pred, real, n_boot=n_boot, seed=seed)}
    deciles = pd.qcut(pd.Series(pred).rank(method="first"), min(DECILES, len(pred)), labels=False).to_numpy() + 1
    out["by_decile"] = [
        {
            "group": f"{d}",
            "customers": int((deciles == d).sum()),
            "predicted": float(pred[deciles == d].mean()),
            "realised": float(real[deciles == d].mean()),
        }
        for d in np.unique(deciles)
    ]
    return out


def _plain(value):
    """JSON values: tuples as lists, numpy numbers as Python ones, NaN as null."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


METRIC_WORDS = {
    "roc_auc": "ROC AUC (ranking; 0.5 = chance)",
    "pr_auc": "PR AUC (precision over recall)",
    "log_loss": "log-loss (lower is better)",
    "brier": "Brier score (lower is better)",
    "ece": "calibration error (lower is better)",
    "lift_top10": "lift in the riskiest 10%",
}


def _num(v, fmt: str = ".3f") -> str:
    return "–" if v is None or v != v else format(v, fmt)


def _ci(ci, fmt: str = ".3f") -> str:
    return f"{_num(ci[0], fmt)}–{_num(ci[1], fmt)}"


def _rates_table(rows: list[dict], head: str) -> list[str]:
    out = [f"| {head} | customers | predicted churn | realised churn | 95% interval | predicted within |"]
    out.append("|---|---:|---:|---:|---:|---|")
    for r in rows:
        out.append(
            f"| {r['group']} | {r['customers']:,} | {r['predicted']:.1%} | {r['realised']:.1%} | "
            f"{_ci(r['ci'], '.1%')} | {'yes' if r['within'] else 'no'} |"
        )
    return out


def markdown(result: dict, *, currency: str) -> str:
    """backtest.md: the same numbers as backtest.json, in words and tables (the report shows it)."""
    unscored = ", ".join(f"{n:,} {reason}" for reason, n in result["not_scored"].items())
    lines = [
        f"# Back-test of the scores as of {result['as_of']}",
        "",
        f"Scores `{result['scores']}`: {result['customers']:,} customers"
        + (f", not scored: {unscored}" if unscored else "")
        + ". Churned = no order in the horizon from the as-of date (features/labels.py); the orders in the data "
        f"end on {result['data_last_order_day']}.",
    ]
    for version, v in result["versions"].items():
        start, end = v["window"]
        lines += ["", f"## {version}", ""]
        lines.append(
            f"Horizon {v['horizon_days']} days, from {v['horizon_source']}: orders from {start} up to, not including, "
            f"{end}. {v['scored']:,} customers scored"
            + (
                f", {v['not_found']:,} of them without an order before {start} in these tables (left out)"
                if v["not_found"]
                else ""
            )
            + "."
        )
        if not v.get("customers"):
            continue
        rate = v["churn_rate"]
        lines += [
            "",
            f"Realised churn rate {rate['value']:.1%} ({_ci(rate['ci'], '.1%')}) among {v['customers']:,} "
            f"customers; predicted {v['predicted_churn_rate']:.1%}.",
            "",
            "| metric | value | 95% interval |",
            "|---|---:|---:|",
        ]
        lines += [f"| {METRIC_WORDS[m]} | {_num(x['value'])} | {_ci(x['ci'])} |" for m, x in v["metrics"].items()]
        lines += ["", "### Churn rate by risk band", ""] + _rates_table(v["bands"], "risk band")
        lines += ["", "### Reliability by decile of the predicted probability", ""]
        lines += _rates_table(v["reliability"], "decile")
        if "value" in v:
            val = v["value"]
            total = val["realised_total"]
            lines += [
                "",
                f"### Realised vs predicted value ({currency})",
                "",
                f"{val['customers']:,} customers with a predicted value: {val['predicted_total']:,.2f} {currency} "
                f"predicted, {total['value']:,.2f} realised ({_ci(total['ci'], ',.2f')}).",
                "",
                "| measure | value | 95% interval |",
                "|---|---:|---:|",
                f"| mean absolute error ({currency} a customer) | {val['mae']['value']:,.2f} | "
                f"{_ci(val['mae']['ci'], ',.2f')} |",
                f"| Spearman rank correlation | {_num(val['spearman']['value'])} | {_ci(val['spearman']['ci'])} |",
                f"| share of the spend made by the top 10% predicted | {_num(val['top_decile_share']['value'], '.1%')} "
                f"| {_ci(val['top_decile_share']['ci'], '.1%')} |",
            ]
    return "\n".join(lines) + "\n"


def default_folder(scores: str | Path) -> Path:
    """``<scores stem>_backtest`` beside the scores file."""
    scores = Path(scores)
    return scores.with_name(f"{scores.stem}_backtest")


def write_backtest(result: dict, folder: str | Path, *, currency: str) -> Path:
    """backtest.json, backtest.md and the plots into ``folder``, swapped in whole (a killed run leaves the old)."""
    folder = Path(folder)
    versions = {k: v for k, v in result["versions"].items() if v.get("customers")}
    with staged(folder) as stage:
        stage.mkdir()
        (stage / "backtest.json").write_text(json.dumps(_plain(result), indent=2) + "\n")
        (stage / "backtest.md").write_text(markdown(result, currency=currency))
        plots.reliability({k: v["reliability"] for k, v in versions.items()}, stage / "reliability.png")
        values = {k: v["value"]["by_decile"] for k, v in versions.items() if "value" in v}
        if values:
            plots.value_by_decile(values, stage / "value.png", currency=currency)
    return folder


def flat_metrics(entry: dict) -> dict[str, float]:
    """One version's numbers as MLflow metrics: <metric>, <metric>_lo/_hi, band_<band>_*, value_*."""
    out = {"customers": entry["customers"], "churners": entry["churners"]}
    out["predicted_churn_rate"] = entry["predicted_churn_rate"]
    named = {"churn_rate": entry["churn_rate"], **entry["metrics"]}
    for key in ("mae", "spearman", "top_decile_share", "realised_total"):
        if "value" in entry:
            named[f"value_{key}"] = entry["value"][key]
    for name, x in named.items():
        out[name], (out[f"{name}_lo"], out[f"{name}_hi"]) = x["value"], x["ci"]
    if "value" in entry:
        out["value_predicted_total"] = entry["value"]["predicted_total"]
    for band in entry["bands"]:
        slug = re.sub(r"[^0-9a-zA-Z_]+", "_", band["group"])
        for key in ("customers", "predicted", "realised"):
            out[f"band_{slug}_{key}"] = band[key]
    return {k: float(v) for k, v in out.items() if v is not None and v == v}


def track(result: dict, folder: Path) -> list[str]:
    """One MLflow run per churn model version, tagged with the version and the as-of date; the folder as
    artifacts. Returns the run ids."""
    start_tracking(EXPERIMENT)
    ids = []
    for version, entry in result["versions"].items():
        if not entry.get("customers"):
            continue
        tags = {"churn_model_version": version, "as_of": result["as_of"]}
        with tracked_run(f"backtest {version} as of {result['as_of']}", **tags) as run:
            mlflow.log_params(
                {
                    "scores": result["scores"],
                    "horizon_days": entry["horizon_days"],
                    "horizon_source": entry["horizon_source"],
                    "window_end": entry["window"][1],
                    "data_last_order_day": result["data_last_order_day"],
                }
            )
            mlflow.log_metrics(flat_metrics(entry))
            mlflow.log_artifacts(str(folder))
        ids.append(run.info.run_id)
    return ids
