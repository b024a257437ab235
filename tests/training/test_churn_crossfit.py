"""Cross-fitting for the customer split: folds by customer, out-of-fold scores, trees shrunk toward the prior."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss

from training.churn import calibrate, predict
from training.config import ChurnConfig
from training.crossfit import FOLDS, cross_fitted, folds, out_of_fold, tree_weight
from training.datasets import Rows, join_rows

RFM = ("sales_days_since_last_order", "sales_orders_all", "sales_avg_order_value_all", "sales_days_since_first_order")


def _rows(n_customers: int, *, signal: float, seed: int = 0, cutoffs: int = 2) -> Rows:
    """``cutoffs`` rows per customer; churn depends on recency with strength ``signal`` (0: labels are noise)."""
    rng = np.random.default_rng(seed)
    ids = np.repeat([f"C{i:05d}" for i in range(n_customers)], cutoffs)
    n = len(ids)
    X = pd.DataFrame(
        {
            RFM[0]: rng.exponential(60, n),
            RFM[1]: rng.integers(1, 10, n).astype(float),
            RFM[2]: rng.gamma(2, 30, n),
            RFM[3]: rng.uniform(100, 400, n),
            "noise": rng.normal(size=n),
        }
    )
    logit = signal * (np.log1p(X[RFM[0]].to_numpy()) - 3.5)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int8")
    keys = pd.DataFrame(
        {"customer_id": ids, "cutoff": np.tile(pd.date_range("2026-01-01", periods=cutoffs), n_customers)}
    )
    return Rows(X=X, y=y, keys=keys)


def test_folds_keep_each_customer_together_whatever_the_row_order():
    rows = _rows(200, signal=1.0, cutoffs=3)
    fold = folds(rows)
    by_id = pd.Series(fold).groupby(rows.keys["customer_id"].to_numpy()).nunique()
    assert (by_id == 1).all()
    assert set(fold) == set(range(FOLDS))
    order = np.random.default_rng(1).permutation(len(rows))
    shuffled = Rows(X=rows.X.iloc[order], y=rows.y[order], keys=rows.keys.iloc[order].reset_index(drop=True))
    assert (folds(shuffled) == fold[order]).all()


def test_out_of_fold_scores_do_not_depend_on_the_row_itself():
    """A row's out-of-fold score comes from models fitted without its customer: flipping its label leaves it."""
    rows = _rows(400, signal=1.5)
    config = ChurnConfig()
    scores, _ = out_of_fold(rows, config.lgbm, config, bg_nbd=None, starts=["none", "rfm"])
    first = rows.keys["customer_id"] == rows.keys["customer_id"].iloc[0]
    y = rows.y.copy()
    y[first.to_numpy()] = 1 - y[first.to_numpy()]
    flipped, _ = out_of_fold(Rows(rows.X, y, rows.keys), config.lgbm, config, bg_nbd=None, starts=["none", "rfm"])
    for name in ("none", "rfm"):
        np.testing.assert_array_equal(scores[name][first], flipped[name][first])
        assert not np.isnan(scores[name]).any()


def test_tree_weight_drops_trees_that_are_noise_and_keeps_trees_that_carry_signal():
    rng = np.random.default_rng(0)
    prior, extra, noise = rng.normal(size=(3, 20_000))
    y = (rng.random(20_000) < 1 / (1 + np.exp(-(prior + extra)))).astype(int)
    assert tree_weight(y, trees=noise, prior=prior) < 0.05
    assert tree_weight(y, trees=extra, prior=prior) > 0.95


def test_calibrating_on_out_of_fold_scores_is_less_overconfident_than_on_its_own():
    """Labels that are pure noise: calibrated in-sample, the trees look informative; out of fold, they do not."""
    rows, fresh = _rows(1500, signal=0.0, seed=2), _rows(1500, signal=0.0, seed=3)
    config = ChurnConfig()
    fitted = cross_fitted(rows, config.lgbm, config, bg_nbd=None, start="none")
    in_sample = calibrate(fitted.booster, rows, config.calibration)
    assert log_loss(fresh.y, predict(fitted.model, fresh.X)) < log_loss(fresh.y, predict(in_sample, fresh.X))


@pytest.mark.parametrize("start", [None, "rfm"])
def test_cross_fitted_model_ranks_new_customers_and_says_what_it_chose(start):
    rows, fresh = _rows(1500, signal=1.5, seed=4), _rows(1000, signal=1.5, seed=5)
    config = ChurnConfig()
    fitted = cross_fitted(rows, config.lgbm, config, bg_nbd=None, start=start)
    assert fitted.start in fitted.valid_auc
    assert fitted.start == (start or fitted.start)
    p = predict(fitted.model, fresh.X)
    truth = np.log1p(fresh.X[RFM[0]])  # churn grows with days since the last order
    assert np.corrcoef(p, truth)[0, 1] > 0.9
    assert len(np.unique(p)) > 0.9 * len(p)  # smooth, not a handful of levels
    if fitted.prior is not None:
        assert 0.0 <= fitted.prior.tree_weight <= 1.0
    assert type(fitted.model).__name__ == "CalibratedClassifierCV"  # what the registry and serving load


def test_joined_rows_keep_text_features_as_categories_with_both_sides_levels():
    a, b = _rows(3, signal=1.0, cutoffs=1), _rows(3, signal=1.0, cutoffs=1, seed=1)
    a.X["store"] = pd.Categorical(["#1", "#2", "#1"])
    b.X["store"] = pd.Categorical(["#3", "#1", "#3"])
    joined = join_rows(a, b)
    assert isinstance(joined.X["store"].dtype, pd.CategoricalDtype)
    assert joined.X["store"].tolist() == ["#1", "#2", "#1", "#3", "#1", "#3"]
    assert set(joined.X["store"].cat.categories) == {"#1", "#2", "#3"}


@pytest.mark.slow
def test_train_churn_on_seven_months_of_a_shop_with_text_attributes(tmp_path, monkeypatch):
    """Every table of a demo shop, its orders cut to the last 210 days: the customer split, cross-fitted,
    text attributes included (they are categories on both sides of the join), through the CLI."""
    from typer.testing import CliRunner

    from retain.cli import app
    from simulator.demo_data import generate

    demo = generate(n_customers=3000, seed=5)
    orders = demo.tables["orders"]
    demo.tables["orders"] = orders[orders["ordered_at"] >= orders["ordered_at"].max() - pd.Timedelta(days=209)]
    data = tmp_path / "data"
    data.mkdir()
    for name, frame in demo.tables.items():
        frame.to_parquet(data / f"{name}.parquet", index=False)
    assert pd.api.types.is_string_dtype(demo.tables["customers"]["Preferred Store #"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    out = tmp_path / "churn"
    done = CliRunner().invoke(app, ["train-churn", "--data", str(data), "--out", str(out), "--trials", "0"])
    assert done.exit_code == 0, done.output
    card = (out / "model_card.md").read_text()
    assert "customer split" in card and "out-of-fold scores of every non-test customer at the latest cutoff" in card
