"""Which learner's policy ships: the reference unless another beats it with confidence (paired DR scores)."""

from __future__ import annotations

import numpy as np

from training.offers.policy import choose_learner


def _log(n: int, seed: int):
    """A randomised 2-arm log where the offer adds 1 to the reward in the first half of customers only."""
    rng = np.random.default_rng(seed)
    logged = rng.integers(0, 2, n)
    half = np.arange(n) < n // 2
    reward = rng.normal(0, 1, n) + (logged == 1) * half * 1.0 - (logged == 1) * 0.5
    return reward, logged, np.full(n, 0.5), np.zeros((n, 2)), half


def test_a_clearly_better_learner_replaces_the_reference():
    reward, logged, prop, q, half = _log(4000, 0)
    policies = {"t": np.zeros(4000, dtype=int), "dr": half.astype(int)}  # t sends nothing; dr targets the half
    choice = choose_learner(policies, reward, logged, prop, q)
    assert choice.learner == "dr" and choice.reference == "t"
    assert choice.table.loc["dr", "vs_reference_low"] > 0 and "beats the reference t-learner" in choice.reason


def test_a_learner_better_only_by_noise_does_not_replace_the_reference():
    reward, logged, prop, q, half = _log(4000, 1)
    rng = np.random.default_rng(2)
    same = half.astype(int)
    noisy = np.where(rng.random(4000) < 0.02, 1 - same, same)  # differs from the reference on 2% of rows
    choice = choose_learner({"t": same, "x": noisy}, reward, logged, prop, q)
    assert choice.learner == "t" and "no learner beats it" in choice.reason


def test_more_challengers_need_a_larger_margin():
    reward, logged, prop, q, half = _log(2000, 3)
    target = half.astype(int)
    alone = choose_learner({"t": np.zeros(2000, dtype=int), "x": target}, reward, logged, prop, q)
    crowd = choose_learner(
        {"t": np.zeros(2000, dtype=int), "x": target, "s": target, "dr": target}, reward, logged, prop, q
    )
    # same gain and SE, a Bonferroni-wider bound with three challengers
    assert alone.table.loc["x", "vs_reference"] == crowd.table.loc["x", "vs_reference"]
    assert crowd.table.loc["x", "vs_reference_low"] < alone.table.loc["x", "vs_reference_low"]
