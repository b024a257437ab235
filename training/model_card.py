"""A short markdown model card: what the model is for, how good it is, and where not to trust it."""

from __future__ import annotations

import pandas as pd

from features.config import FeaturesConfig
from training.config import ChurnConfig

SHOWN = ("roc_auc", "pr_auc", "brier", "ece", "lift_top10", "capture_top10")
TOP_DRIVERS = 8


def _cell(v: dict) -> str:
    lo, hi = v["ci"]
    return f"{v['value']:.3f} ({lo:.3f}–{hi:.3f})"


def baseline_verdicts(report: dict, metric: str = "roc_auc") -> list[str]:
    """One plain sentence per baseline: does the model beat it on the test cutoff?"""
    lines = []
    for name, diff in report["differences"].items():
        d = diff[metric]
        lo, hi = d["ci"]
        if d["better"] == "reference":
            lines.append(
                f"The model beats **{name}** on {metric} by {d['value']:+.3f} (95% CI {lo:+.3f} to {hi:+.3f})."
            )
        elif d["better"] == "baseline":
            lines.append(
                f"**{name} is better than the model** on {metric} by {-d['value']:.3f} (CI {-hi:.3f} to {-lo:.3f}); "
                f"use {name} or investigate the features."
            )
        else:
            lines.append(
                f"**{name} is as good as the model** on {metric}: difference {d['value']:+.3f}, "
                f"95% CI {lo:+.3f} to {hi:+.3f} includes zero."
            )
    return lines + [calibration_verdict(report)]


def calibration_verdict(report: dict) -> str:
    """Whether any baseline's probabilities have a lower log-loss than the model's on the test rows."""
    loss = {name: v["log_loss"]["value"] for name, v in report["models"].items()}
    best = min((name for name in loss if name != "model"), key=loss.get)
    d = report["differences"][best]["log_loss"]
    lo, hi = d["ci"]
    if loss["model"] <= loss[best]:
        return f"The model's log-loss {loss['model']:.4f} is at most the best baseline's ({best}, {loss[best]:.4f})."
    return (
        f"**{best} has a lower log-loss than the model**: {loss[best]:.4f} vs {loss['model']:.4f} "
        f"(difference {d['value']:+.4f}, 95% CI {lo:+.4f} to {hi:+.4f}): its probabilities were the "
        "better calibrated ones on these test customers."
    )


def render(report: dict, drivers: pd.Series, *, features: FeaturesConfig, config: ChurnConfig) -> str:
    plan = report["plan"]
    header = "| model | " + " | ".join(SHOWN) + " |\n|---|" + "---|" * len(SHOWN)
    rows = [f"| {name} | " + " | ".join(_cell(v[m]) for m in SHOWN) + " |" for name, v in report["models"].items()]
    slices = [
        f"| {name} | {v['n']:,} | "
        + (
            f"{v['churn_rate']:.3f} | {_cell(v['roc_auc'])} | {_cell(v['brier'])} |"
            if "roc_auc" in v
            else "– | – | – |"
        )
        for name, v in report["slices"].items()
    ]
    champion = report.get("champion")
    decision = (
        "not registered"
        if champion is None
        else ("promoted to champion" if champion["promoted"] else "kept the current champion")
    )
    return "\n".join(
        [
            f"# Model card: {config.model_name}",
            "",
            "## Purpose and churn definition",
            f"Probability that a customer with at least one past order places **no order in the next "
            f"{features.horizon_days} days** after the cutoff. Calibrated ({report['calibration']}) so 0.3 means 30%.",
            start_line(report),
            "",
            "## Data window",
            f"- plan: {plan['plan']}",
            f"- training cutoffs: {plan['train_cutoffs']}",
            f"- validation cutoffs (early stopping + calibration, pooled): {plan['valid_cutoffs']}",
            f"- test cutoff: {plan['test_cutoff']} ({report['n']:,} customers, churn rate {report['churn_rate']:.3f})",
            f"- registered model: booster refit on {plan['refit_cutoffs']}, calibrated on {plan['recalibrate_cutoffs']}",
            "",
            "## Test metrics with 95% bootstrap intervals",
            header,
            *rows,
            "",
            "## Against the baselines",
            *[f"- {line}" for line in baseline_verdicts(report)],
            "",
            "## By slice (model)",
            "| slice | customers | churn rate | roc_auc | brier |\n|---|---|---|---|---|",
            *slices,
            "",
            "## Top drivers (mean |SHAP|, log-odds)",
            *[f"- {name}: {value:.3f}" for name, value in drivers.head(TOP_DRIVERS).items()],
            "",
            *value_lines(report),
            "## Registry",
            f"Champion gate on {config.gate.metric} with margin {config.gate.margin:g}: {decision}."
            + (f" Reason: {champion['reason']}." if champion else ""),
            "",
            "## Caveats",
            "- Metrics come from the evaluation model; the registered model is refit on more rows (the plan's "
            "refit cutoffs) with the same settings and is not separately tested.",
            "- Customers without any past order are not scored; the label ignores returns and cancellations.",
            "- Drivers are associations, not causes: do not read them as the effect of an intervention.",
            "- Retrain when the shop's seasonality or assortment changes; calibration drifts first.",
            "",
        ]
    )


STARTS = {
    "none": "trees from a constant",
    "bg_nbd": "trees from BG/NBD's log-odds",
    "rfm": "trees from an RFM logistic regression (recency, frequency, value, tenure, BG/NBD)",
    "bg_nbd_alone": "BG/NBD alone (the trees added only noise)",
    "rfm_alone": "the RFM logistic regression alone (the trees added only noise)",
}


def start_line(report: dict) -> str:
    """What the model is, and the held-out validation AUCs (candidates and baselines) behind the choice."""
    auc = report["valid_auc"]
    chosen = report["start"]["chosen"]
    candidates = ", ".join(f"{k[6:]} {v:.3f}" for k, v in auc.items() if k.startswith("start_"))
    baselines = ", ".join(f"{k} {v:.3f}" for k, v in auc.items() if not k.startswith("start_"))
    weight = report["start"].get("tree_weight", 1.0)
    shrunk = f" The trees count {weight:.2f} times beside the prior (stacked out of fold)." if 0 < weight < 1 else ""
    return (
        f"The model is {STARTS[chosen]}, chosen by ROC AUC on {report['start']['chosen_on']} (candidates: "
        f"{candidates}; baselines on the validation rows: {baselines}). The simplest candidate within one "
        "standard error of the best AUC ships (BG/NBD alone, then the RFM regression, trees on BG/NBD, trees on "
        f"the RFM regression, trees alone).{shrunk}"
    )


VALUE_SHOWN = ("mae", "rmse", "spearman", "top10_share")


def value_lines(report: dict) -> list[str]:
    """The card's "Customer value" section: which value model ships and how each candidate did on test spend."""
    value = report["value"]
    header = "| model | " + " | ".join(VALUE_SHOWN) + " |\n|---|" + "---|" * len(VALUE_SHOWN)
    rows = [f"| {name} | " + " | ".join(_cell(v[m]) for m in VALUE_SHOWN) + " |" for name, v in value["models"].items()]
    valid = ", ".join(f"{k} {v:.2f}" for k, v in value["valid_rmse"].items())
    return [
        "## Customer value",
        f"Expected spend per buyer over the {value['horizon_days']} days after the cutoff. Shipped: "
        f"**{value['chosen']}**, the lowest RMSE on the validation rows ({valid}). On the test cutoff "
        f"({value['n']:,} buyers, mean spend {value['spend_mean']:.2f}), with 95% bootstrap intervals:",
        "",
        header,
        *rows,
        "",
    ]
