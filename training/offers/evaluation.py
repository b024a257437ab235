"""The candidates judged on the held-out sends, one named step each: which learner ships, whether a
constant policy replaces it, every policy's off-policy value (and true value where the truth is known),
each offer's Qini curve, and the run's metrics.

One outcome model (the reference learner's, the first tried) corrects every policy's DR score, so the
differences between policies are paired.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.config import OfferCatalog
from features.contract import OFFERS
from modeling.economics import best_arms, true_rewards
from modeling.offer_model import order_values
from training.offers.candidates import Candidate
from training.offers.dataset import ARM, ROW, OfferRows, realized_order_value
from training.offers.holdout import Holdout, holdout_days
from training.offers.offpolicy import evaluate_policies, qini_summary, realized_reward, uplift_curve
from training.offers.policy import Fallback, LearnerChoice, check_against_constant, choose_learner


@dataclass(frozen=True)
class HeldOut:
    """The held-out sends as judged, kept to rescore a champion on them: what each earned, the logged arm
    and its propensity, the reference learner's expected reward per arm (``q``) and, known, the true one."""

    frame: pd.DataFrame
    reward: np.ndarray
    logged: np.ndarray
    propensity: np.ndarray
    q: np.ndarray
    kind: str  # "time" | "random"
    description: str
    days: str  # names these sends for the champion gate
    true_rewards: np.ndarray | None = None

    def dr_inputs(self, mask: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """(reward, logged, propensity, q) of the sends in ``mask`` (all by default), as the DR scores take them."""
        keep = slice(None) if mask is None else mask
        return self.reward[keep], self.logged[keep], self.propensity[keep], self.q[keep]


@dataclass(frozen=True)
class Evaluation:
    """What the held-out sends decided and measured; ``learned`` and ``shipped`` are arms per held-out send."""

    choice: LearnerChoice
    fallback: Fallback
    learners: pd.DataFrame  # per learner: DR (and true) gain, paired difference from the reference, fit time
    policies: pd.DataFrame  # per policy: IPW and DR gain over sending nothing (and the true gain)
    learned: np.ndarray
    shipped: np.ndarray
    qini: dict[str, dict[str, float]]
    curves: dict[str, pd.DataFrame]

    @property
    def learner(self) -> str:
        return self.choice.learner


def held_out(
    rows: OfferRows,
    holdout: Holdout,
    *,
    spec: dict,
    catalog: OfferCatalog,
    propensity: np.ndarray,
    q: np.ndarray,
    truth: pd.DataFrame | None = None,
) -> HeldOut:
    """The held-out sends with what judges them: the profit each made (at its realised order value), the
    logged arm and propensity (``propensity``: of every send), ``q``, and the true rewards where ``truth``
    (per row of the offers table) is known."""
    frame, mask = rows.frame, holdout.mask
    arm, converted = frame[ARM].to_numpy()[mask], frame[OFFERS.converted].to_numpy().astype(int)[mask]
    order_value = realized_order_value(rows, order_values(frame, spec))[mask]
    known = None if truth is None else true_rewards(truth.iloc[frame.loc[mask, ROW].to_numpy()], rows.arms, catalog)
    held = frame.loc[mask].reset_index(drop=True)
    reward = realized_reward(converted, arm, order_value, catalog)
    days = holdout_days(held, holdout.kind)
    return HeldOut(held, reward, arm, propensity[mask], q, holdout.kind, holdout.description, days, known)


def compare_learners(candidates: dict[str, Candidate], held: HeldOut, *, confidence: float):
    """The learner that ships (the reference unless another beats it with confidence) and every learner's table."""
    arms = {kind: c.arms for kind, c in candidates.items()}
    choice = choose_learner(arms, *held.dr_inputs(), confidence=confidence)
    table = evaluate_policies(arms, *held.dr_inputs(), true_rewards=held.true_rewards)
    learners = table.join(choice.table).assign(fit_s=pd.Series({k: c.fit_s for k, c in candidates.items()}))
    learners.index.name = "learner"
    return choice, learners


def policy_table(learned: np.ndarray, shipped: np.ndarray, held: HeldOut, names: list[str]) -> pd.DataFrame:
    """The learned and shipped policies beside every constant one, random, and (truth known) the oracle."""
    n, n_arms = len(learned), len(names)
    policies = {"learned": learned, "shipped": shipped}
    policies.update({f"all_{a}": np.full(n, i) for i, a in enumerate(names)})
    policies["random"] = np.full((n, n_arms), 1.0 / n_arms)
    if held.true_rewards is not None:
        policies["oracle"] = best_arms(held.true_rewards)
    return evaluate_policies(policies, *held.dr_inputs(), true_rewards=held.true_rewards)


def qini_curves(proba: np.ndarray, held: HeldOut, names: list[str]):
    """Per offer: the Qini / uplift curve of its predicted effect against the control sends, and its summary."""
    converted = held.frame[OFFERS.converted].to_numpy().astype(int)
    qini, curves = {}, {}
    for k, name in enumerate(names[1:], start=1):
        sel = np.isin(held.logged, [0, k])
        curves[name] = uplift_curve(proba[sel, k] - proba[sel, 0], held.logged[sel] == k, converted[sel])
        qini[name] = qini_summary(curves[name])
    return qini, curves


def evaluate(candidates: dict[str, Candidate], held: HeldOut, names: list[str], *, confidence: float) -> Evaluation:
    """Choose the learner, fall back to a constant policy unless it is beaten with confidence, value them all."""
    choice, learners = compare_learners(candidates, held, confidence=confidence)
    best = candidates[choice.learner]
    fallback = check_against_constant(best.arms, *held.dr_inputs(), names, confidence=confidence)
    shipped = best.arms if fallback.constant_arm is None else np.full(len(best.arms), fallback.constant_arm)
    policies = policy_table(best.arms, shipped, held, names)
    qini, curves = qini_curves(best.proba, held, names)
    return Evaluation(choice, fallback, learners, policies, best.arms, shipped, qini, curves)


def run_metrics(evaluation: Evaluation, *, rows: int, heldout_rows: int) -> dict[str, float]:
    """The run's metrics: every policy's and learner's gains, each offer's Qini, the gain over a constant policy."""
    fallback = evaluation.fallback
    m = {"rows": float(rows), "heldout_rows": float(heldout_rows), "personalised": float(fallback.constant_arm is None)}
    for policy, row in evaluation.policies.iterrows():
        for col in ("dr_gain", "dr_gain_se", "ipw_gain", "ipw_gain_se", "true_gain"):
            if col in row and pd.notna(row[col]):
                m[f"{policy}_{col}"] = float(row[col])
    for kind, row in evaluation.learners.iterrows():
        m[f"learner_{kind}_dr_gain"] = float(row["dr_gain"])
        m[f"learner_{kind}_vs_reference"] = float(row["vs_reference"])
    for name, s in evaluation.qini.items():
        m[f"qini_{name}"], m[f"auuc_{name}"] = s["qini"], s["auuc"]
    m["gain_over_constant"], m["gain_over_constant_se"] = fallback.gain, fallback.gain_se
    return m
