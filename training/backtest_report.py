"""A back-test's outputs: backtest.json, backtest.md (the same numbers in words and tables), the plots, and
one MLflow run per churn model version in the ``retain-backtest`` experiment.

The folder is built beside its final path and swapped in whole, so a killed run leaves the old one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import mlflow
import numpy as np

from training import plots
from training.runs import start_tracking, tracked_run
from training.staging import staged

EXPERIMENT = "retain-backtest"


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
