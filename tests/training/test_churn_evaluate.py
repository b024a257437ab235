"""Metrics agree with scikit-learn; paired bootstrap tells a tie from a win; the card says so plainly."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from training.evaluate import bootstrap_report, ece, metrics, top_share
from training.model_card import baseline_verdicts


@pytest.fixture(scope="module")
def scored():
    rng = np.random.default_rng(0)
    p = rng.random(5000)
    y = (rng.random(5000) < p).astype(int)
    return y, p


def test_metrics_match_scikit_learn(scored):
    y, p = scored
    m = metrics(y, p)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p))
    assert m["brier"] == pytest.approx(brier_score_loss(y, p))
    assert m["log_loss"] == pytest.approx(log_loss(y, p))
    assert m["ece"] < 0.03  # p is the true probability


def test_ece_lift_and_capture_by_hand():
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    assert top_share(y, p, 0.2) == (5.0, 1.0)  # the top 2 are both churners: 5x the base rate, all captured
    assert ece(y, p) == pytest.approx((0.1 + 0.2 + 8 * 0.1) / 10)


def test_paired_bootstrap_separates_a_win_from_a_tie(scored):
    y, p = scored
    rng = np.random.default_rng(1)
    report = bootstrap_report(
        y,
        {"model": p, "same": p + rng.normal(0, 1e-6, len(p)), "noise": rng.random(len(p))},
        reference="model",
        n_boot=100,
        seed=0,
    )
    assert report["differences"]["noise"]["roc_auc"]["better"] == "reference"
    assert report["differences"]["same"]["roc_auc"]["better"] == "tie"
    lo, hi = report["models"]["model"]["roc_auc"]["ci"]
    assert lo < report["models"]["model"]["roc_auc"]["value"] < hi
    verdicts = baseline_verdicts(report)
    assert any("**same is as good as the model**" in v for v in verdicts)
    assert any("The model beats **noise**" in v for v in verdicts)
    assert "log-loss" in verdicts[-1]  # the last line compares calibration


def test_the_card_says_when_a_baseline_is_better_calibrated(scored):
    y, p = scored
    squashed = 0.5 + (p - 0.5) * 0.3  # same ranking, worse probabilities
    report = bootstrap_report(y, {"model": squashed, "truth": p}, reference="model", n_boot=50, seed=0)
    assert "**truth has a lower log-loss than the model**" in baseline_verdicts(report)[-1]


def _tied(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores with a handful of levels (like a recency baseline), rows sorted churners first."""
    rng = np.random.default_rng(seed)
    p = np.round(rng.random(n) * 5) / 5
    y = (rng.random(n) < 0.3 + 0.4 * p).astype(int)
    order = np.argsort(-y, kind="stable")
    return y[order], p[order]


def test_tied_scores_give_the_same_metrics_in_any_row_order():
    y, p = _tied(500, 0)
    shuffled = np.random.default_rng(1).permutation(len(y))
    assert metrics(y, p) == pytest.approx(metrics(y[shuffled], p[shuffled]))
    assert metrics(y, p)["pr_auc"] == pytest.approx(average_precision_score(y, p))


def test_tied_lift_counts_the_boundary_group_pro_rata():
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.5, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1])
    # top 2: the 0.9 churner, then one of four tied rows of which one churned: 1 + 1/4 hits of 2 rows
    assert top_share(y, p, 0.2) == pytest.approx((1.25 / 2 / 0.2, 1.25 / 2))


@pytest.mark.parametrize("n", [60, 300, 5000])
def test_intervals_contain_their_estimate_on_small_and_tied_data(n):
    y, p = _tied(n, n)
    report = bootstrap_report(y, {"model": p}, reference="model", n_boot=200, seed=0)
    for name, v in report["models"]["model"].items():
        lo, hi = v["ci"]
        assert lo <= v["value"] <= hi, name
