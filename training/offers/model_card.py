"""The offer model's card: what ships and why, how each learner and policy did on the held-out sends."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from training.offers.pipeline import OfferTrainingResult


def model_card(result: OfferTrainingResult) -> str:
    """A short card: what ships and why, how each learner and policy did on the held-out sends."""
    judged = result.evaluation
    cols = [c for c in ("dr_gain", "dr_gain_se", "ipw_gain", "ipw_gain_se", "true_gain") if c in judged.policies]
    learner_cols = [c for c in ("dr_gain", "dr_gain_se", "vs_reference", "vs_reference_se", "true_gain", "fit_s")]
    return "\n".join(
        [
            "# Next-best-offer model",
            "",
            f"- Learner: {judged.choice.reason}",
            f"- Decision: {judged.fallback.reason}",
            f"- Champion gate: {result.gate or 'not run (not registered yet)'}",
            f"- Holdout: {result.holdout.description}",
            f"- Conversion value: {result.value.description}",
            f"- Rows: {int(result.metrics['rows']):,} sends, {int(result.metrics['heldout_rows']):,} held out",
            "",
            "## Policies on held-out sends (profit per send vs sending nothing)",
            "",
            "```",
            judged.policies[cols].round(4).to_string(),
            "```",
            "",
            "## Learners (the first is the reference; vs_reference is the paired DR difference)",
            "",
            "```",
            judged.learners[[c for c in learner_cols if c in judged.learners]].round(4).to_string(),
            "```",
            "",
            "Caveats: values are off-policy estimates from a randomised log; when the log is not randomised",
            "in some segment the run warns and effects there rest on the outcome model.",
        ]
    )
