"""How much a policy would earn, estimated from a logged campaign it did not run.

Inverse-propensity weighting (IPW) reweights the rows where the log happened to
do what the policy would; the doubly-robust (DR) estimate adds the outcome
model's prediction for every row and corrects it with the same reweighting, so
it stays unbiased when either the propensities or the model are right and has
a smaller variance. Values are profit per customer; standard errors come from
the per-row scores. Qini / uplift curves show how well each offer's predicted
effect ranks customers against the control group.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from features.config import OfferCatalog
from modeling.economics import cost_arrays, margin


def realized_reward(converted: np.ndarray, arm: np.ndarray, order_value: np.ndarray, catalog: OfferCatalog):
    """Profit each logged row made: the margin if it converted, less its offer's costs."""
    send, share, redemption = cost_arrays(catalog)
    pad = np.r_[0.0, send], np.r_[0.0, share], np.r_[0.0, redemption]
    value = np.asarray(order_value, dtype=float)
    y = np.asarray(converted, dtype=float)
    return y * (margin(value, catalog) - pad[1][arm] * value - pad[2][arm]) - pad[0][arm]


def _policy_matrix(policy: np.ndarray, n_arms: int) -> np.ndarray:
    """A deterministic policy (arm per row) or a stochastic one (probabilities per arm) as probabilities."""
    policy = np.asarray(policy)
    if policy.ndim == 2:
        return policy
    out = np.zeros((len(policy), n_arms))
    out[np.arange(len(policy)), policy] = 1.0
    return out


def ipw_scores(policy, reward, logged, propensity) -> np.ndarray:
    """Per-row IPW scores; their mean is the policy's value."""
    pi = _policy_matrix(policy, int(logged.max()) + 1 if np.ndim(policy) == 1 else np.shape(policy)[1])
    return pi[np.arange(len(logged)), logged] / propensity * reward


def dr_scores(policy, reward, logged, propensity, q) -> np.ndarray:
    """Per-row doubly-robust scores: the model's value of the policy plus the reweighted residual."""
    pi = _policy_matrix(policy, q.shape[1])
    rows = np.arange(len(logged))
    return (pi * q).sum(axis=1) + pi[rows, logged] / propensity * (reward - q[rows, logged])


def _mean_se(scores: np.ndarray) -> tuple[float, float]:
    return float(scores.mean()), float(scores.std(ddof=1) / np.sqrt(len(scores)))


def evaluate_policies(
    policies: dict[str, np.ndarray],
    reward: np.ndarray,
    logged: np.ndarray,
    propensity: np.ndarray,
    q: np.ndarray,
    *,
    true_rewards: np.ndarray | None = None,
) -> pd.DataFrame:
    """IPW and DR value of each policy, and its gain over sending nothing, with standard errors.

    ``q`` is the model's expected reward per arm; ``true_rewards`` (where the
    truth is known) gives each policy's true incremental profit per customer.
    """
    n, n_arms = q.shape
    none = np.zeros(n, dtype=int)
    base_ipw, base_dr = ipw_scores(none, reward, logged, propensity), dr_scores(none, reward, logged, propensity, q)
    rows = []
    for name, policy in policies.items():
        ipw = ipw_scores(policy, reward, logged, propensity)
        dr = dr_scores(policy, reward, logged, propensity, q)
        pi = _policy_matrix(policy, n_arms)
        row = {"policy": name}
        row["ipw"], row["ipw_se"] = _mean_se(ipw)
        row["dr"], row["dr_se"] = _mean_se(dr)
        row["ipw_gain"], row["ipw_gain_se"] = _mean_se(ipw - base_ipw)
        row["dr_gain"], row["dr_gain_se"] = _mean_se(dr - base_dr)
        row["dr_gain_low"], row["dr_gain_high"] = (
            row["dr_gain"] - 1.96 * row["dr_gain_se"],
            row["dr_gain"] + 1.96 * row["dr_gain_se"],
        )
        for a in range(1, n_arms):
            row[f"share_arm{a}"] = float(pi[:, a].mean())
        if true_rewards is not None:
            row["true_gain"] = float(((pi * true_rewards).sum(axis=1) - true_rewards[:, 0]).mean())
        rows.append(row)
    return pd.DataFrame(rows).set_index("policy")


def uplift_curve(score: np.ndarray, treated: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    """Qini and uplift curves for one offer against control, customers ranked by predicted effect.

    At each cut: ``qini`` = treated conversions - control conversions x (treated / control
    counts); ``uplift`` = the difference in conversion rates times the customers so far.
    """
    order = np.argsort(-np.asarray(score), kind="stable")
    t = np.asarray(treated, dtype=float)[order]
    yy = np.asarray(y, dtype=float)[order]
    nt, nc = np.cumsum(t), np.cumsum(1 - t)
    yt, yc = np.cumsum(yy * t), np.cumsum(yy * (1 - t))
    with np.errstate(divide="ignore", invalid="ignore"):
        qini = yt - yc * np.where(nc > 0, nt / nc, 0.0)
        uplift = (np.where(nt > 0, yt / nt, 0.0) - np.where(nc > 0, yc / nc, 0.0)) * (nt + nc)
    n = len(order)
    return pd.DataFrame({"fraction": np.arange(1, n + 1) / n, "qini": qini, "uplift": uplift})


def qini_summary(curve: pd.DataFrame) -> dict[str, float]:
    """Qini coefficient (area between the Qini curve and random targeting, per customer) and AUUC."""
    n = len(curve)
    random_line = curve["qini"].iloc[-1] * curve["fraction"].to_numpy()
    return {
        "qini": float((curve["qini"].to_numpy() - random_line).mean() / n),
        "auuc": float(curve["uplift"].mean() / n),
    }


def plot_uplift(curves: dict[str, pd.DataFrame]) -> Figure:
    """One panel per offer: its Qini curve beside random targeting."""
    fig = Figure(figsize=(5 * len(curves), 4))
    for i, (name, curve) in enumerate(curves.items()):
        ax = fig.add_subplot(1, len(curves), i + 1)
        ax.plot(curve["fraction"], curve["qini"], label="model")
        ax.plot([0, 1], [0, curve["qini"].iloc[-1]], "--", label="random")
        ax.set(title=f"Qini: {name} vs none", xlabel="share of customers targeted", ylabel="incremental conversions")
        ax.legend()
    fig.tight_layout()
    return fig
