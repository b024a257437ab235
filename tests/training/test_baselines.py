"""Baselines: BG/NBD recovers simulated parameters and predicts P(no purchase); RFM sees only the past."""

import numpy as np
import pandas as pd
import pytest

from features.bgnbd import log_likelihood as bgnbd_log_likelihood
from features.sources import check_tables
from training.baselines import BgNbd, RecencyHeuristic, RfmLogistic, rfm

TRUE = {"r": 0.6, "alpha": 5.0, "a": 0.7, "b": 2.5}


def simulate_bgnbd(n: int, horizon_weeks: float, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """The BG/NBD story: Poisson purchases, dropout with probability p after each repeat purchase."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(TRUE["r"], 1 / TRUE["alpha"], n)
    p = rng.beta(TRUE["a"], TRUE["b"], n)
    T = rng.uniform(20, 80, n)
    t, x, t_x = np.zeros(n), np.zeros(n), np.zeros(n)
    alive, later = np.ones(n, bool), np.zeros(n, bool)
    while alive.any():
        t = t + rng.exponential(1 / lam)
        in_window = alive & (t <= T)
        x[in_window] += 1
        t_x[in_window] = t[in_window]
        later |= alive & (t > T) & (t <= T + horizon_weeks)
        alive = in_window & (rng.random(n) >= p)
    return pd.DataFrame({"x": x, "t_x": t_x, "T": T}), (~later).astype(int)


def test_bgnbd_recovers_parameters_and_no_purchase_probability():
    summary, no_purchase = simulate_bgnbd(20000, horizon_weeks=13, seed=1)
    model = BgNbd(horizon_days=91).fit(summary)
    fitted = model.params_
    for name in ("r", "alpha", "a", "b"):
        assert fitted[name] == pytest.approx(TRUE[name], rel=0.3), (name, fitted)
    p = model.predict_proba(summary)
    assert p.mean() == pytest.approx(no_purchase.mean(), abs=0.015)
    for group in (summary.x == 0, summary.x.between(1, 3), summary.x > 3):
        assert p[group].mean() == pytest.approx(no_purchase[group].mean(), abs=0.03)


def test_bgnbd_likelihood_beats_wrong_parameters():
    summary, _ = simulate_bgnbd(5000, horizon_weeks=13, seed=2)
    args = (summary.x.to_numpy(), summary.t_x.to_numpy(), summary["T"].to_numpy())
    truth = bgnbd_log_likelihood(np.array(list(TRUE.values())), *args).sum()
    wrong = bgnbd_log_likelihood(np.array([2.0, 1.0, 0.1, 5.0]), *args).sum()
    assert truth > wrong


@pytest.fixture
def orders_tables():
    orders = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "b", "c"],
            "ordered_at": ["2025-01-01", "2025-01-15", "2025-03-01", "2025-02-01", "2025-02-20"],
            "amount": [10.0, 30.0, 500.0, 20.0, 5.0],
        }
    )
    return check_tables({"orders": orders})


def test_rfm_by_hand_and_blind_to_the_cutoff_instant(orders_tables):
    out = rfm(orders_tables, cutoff="2025-03-01")  # a's order at the cutoff instant is the future
    assert list(out.index) == ["a", "b", "c"]
    a = out.loc["a"]
    assert (a.recency_days, a.frequency, a.monetary, a.tenure_days) == (45, 2, 20, 59)
    assert (a.x, a.t_x, a["T"]) == (1, 2, 59 / 7)
    assert out.loc["b", "x"] == 0


def test_supervised_baselines_rank_by_recency(orders_tables):
    """Recency a 45, b 28, c 9 days. With only a churned the risk rises with recency; with only b churned the
    isotonic fit pools b and a (labels 1, 0 in recency order) to 0.5 and clips c's 0 to 1e-4. A decreasing
    fit would give c 0.5 and a 1e-4, a constant one 1/3 to all."""
    summary = rfm(orders_tables, cutoff="2025-03-01")
    assert list(summary["recency_days"]) == [45, 28, 9]
    p = RecencyHeuristic().fit(summary, np.array([1, 0, 0])).predict_proba(summary)
    assert p == pytest.approx([1 - 1e-4, 1e-4, 1e-4])
    y = np.array([0, 1, 0])
    p = RecencyHeuristic().fit(summary, y).predict_proba(summary)
    assert p == pytest.approx([0.5, 0.5, 1e-4])
    p = RfmLogistic().fit(summary, y).predict_proba(summary)
    assert p.argmax() == 1  # the churner is the riskiest
    assert p.mean() == pytest.approx(y.mean(), abs=1e-3)  # an unpenalised intercept: mean prediction = churn rate
