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
