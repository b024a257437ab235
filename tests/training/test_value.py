"""Customer value: BG/NBD expectations, Gamma-Gamma, value columns, the shipped ValueModel and its training."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from features import bgnbd, gamma_gamma
from features.build import build_features
from features.config import FeaturesConfig
from features.sources import check_tables
from features.value import VALUE_COLUMNS, value_frame
from modeling.value_model import HISTORICAL_FEATURES, ValueModel
from simulator import demo_data
from training.value import choose, value_metrics, value_report

CDNOW = (0.243, 4.414, 0.793, 2.426)  # FHL (2005) BG/NBD parameters on the CDNOW cohort


def _rows():
    return pd.DataFrame(
        {
            "sales_orders_all": [2.0, 0.0, 1.0, np.nan],
            "sales_revenue_all": [200.0, 0.0, 30.0, np.nan],
            "sales_days_since_first_order": [180.0, np.nan, 10.0, np.nan],
            "demo_region": pd.array(["north", None, "south", None], dtype="string"),
            "expected_spend_bgnbd": [55.0, np.nan, 12.5, np.nan],
        }
    )


def test_historical_value_is_spend_per_day_to_date_times_horizon_and_nan_for_non_buyers():
    model = ValueModel("historical", 90, ("sales_revenue_all", "sales_days_since_first_order"))
    value = model.predict(_rows(), 4)
    # 200 over 180 days -> 100 in 90; a first order 10 days ago counts as one horizon: 30
    np.testing.assert_allclose(value, [100.0, np.nan, 30.0, np.nan])


def test_bgnbd_gamma_gamma_value_is_its_column():
    model = ValueModel("bgnbd_gamma_gamma", 90, ("expected_spend_bgnbd",))
    np.testing.assert_allclose(model.predict(_rows(), 4), [55.0, np.nan, 12.5, np.nan])


def test_value_model_save_load_round_trip_predicts_identically(tmp_path):
    rows = _rows()
    features = ("sales_revenue_all", "sales_days_since_first_order", "demo_region")
    levels = {"demo_region": {"north": 0, "south": 1}}
    from modeling.encoding import encode

    X = np.tile(encode(rows, 4, features, levels), (20, 1))
    y = np.tile([120.0, 0.0, 10.0, 0.0], 20)
    booster = lgb.train(
        {"objective": "tweedie", "min_data_in_leaf": 2, "verbose": -1},
        lgb.Dataset(X, y, categorical_feature=[2]),
        num_boost_round=5,
    )
    model = ValueModel("lightgbm", 90, features, booster, levels, {"test_rmse": 1.5})
    model.save(tmp_path / "value")
    loaded = ValueModel.load(tmp_path / "value")
    assert (loaded.kind, loaded.horizon_days, loaded.features, loaded.levels, loaded.metrics) == (
        "lightgbm",
        90,
        features,
        levels,
        {"test_rmse": 1.5},
    )
    np.testing.assert_array_equal(loaded.predict(rows, 4), model.predict(rows, 4))
    assert np.isnan(loaded.predict(rows, 4)[[1, 3]]).all()
    assert loaded.predict(rows, 4)[0] > loaded.predict(rows, 4)[2]


def test_value_model_load_names_the_missing_file(tmp_path):
    with pytest.raises(ValueError, match="value.json"):
        ValueModel.load(tmp_path)
    ValueModel("historical", 90, ("sales_revenue_all", "sales_days_since_first_order")).save(tmp_path)
    assert not (tmp_path / "booster.txt").exists()


def test_expected_purchases_matches_the_papers_cdnow_example():
    # FHL (2005) after eq. (10): x = 2, t_x = 30.43, T = 38.86 weeks -> 1.226 purchases in the next 39 weeks
    got = bgnbd.expected_purchases(CDNOW, np.array([2.0]), np.array([30.43]), np.array([38.86]), 39.0)
    np.testing.assert_allclose(got, [1.226], atol=5e-4)


def test_expected_purchases_over_a_short_window_is_p_alive_times_the_posterior_rate():
    # for a small window E[Y(t)] ~ P(alive) * (r + x) / (alpha + T) * t
    x, t_x, T = np.array([0.0, 3.0]), np.array([0.0, 10.0]), np.array([20.0, 30.0])
    rate = bgnbd.p_alive(CDNOW, x, t_x, T) * (CDNOW[0] + x) / (CDNOW[1] + T)
    np.testing.assert_allclose(bgnbd.expected_purchases(CDNOW, x, t_x, T, 1e-4), rate * 1e-4, rtol=1e-3)


def test_days_to_next_order_is_where_the_chance_of_an_order_reaches_one_half():
    x, t_x, T = np.array([2.0, 0.0]), np.array([30.43, 0.0]), np.array([38.86, 38.86])
    days = bgnbd.days_to_next_order(CDNOW, x, t_x, T)
    # alive at T: ((alpha + T) / (alpha + T + t))^(r + x) = 1 - 0.5 / P(alive), solved by hand for x = 0
    # (P(alive) = 1): t = (4.414 + 38.86) * (2^(1 / 0.243) - 1) weeks
    np.testing.assert_allclose(days[1], (4.414 + 38.86) * (2 ** (1 / 0.243) - 1) * 7, rtol=1e-9)
    np.testing.assert_allclose(1 - bgnbd.p_no_purchase(CDNOW, x, t_x, T, days / 7), [0.5, 0.5])


def test_days_to_next_order_is_nan_when_the_customer_is_probably_gone():
    x, t_x, T = np.array([5.0]), np.array([2.0]), np.array([60.0])
    assert bgnbd.p_alive(CDNOW, x, t_x, T)[0] < 0.5
    assert np.isnan(bgnbd.days_to_next_order(CDNOW, x, t_x, T)[0])


def test_gamma_gamma_fit_recovers_the_simulated_parameters():
    rng = np.random.default_rng(1)
    p, q, gamma = 6.25, 3.74, 15.44  # Hardie's CDNOW estimates
    n = rng.integers(2, 12, 20_000)
    nu = rng.gamma(q, 1 / gamma, n.size)
    m = rng.gamma(n * p, 1 / (nu * n))  # the mean of n Gamma(p, nu) order values
    (p_, q_, gamma_), converged = gamma_gamma.fit(n, m)
    assert converged
    # means alone pin q and the population mean order value tightly, p and gamma (which trade off) loosely
    np.testing.assert_allclose([q_, p_ * gamma_ / (q_ - 1)], [q, p * gamma / (q - 1)], rtol=0.03)
    np.testing.assert_allclose([p_, gamma_], [p, gamma], rtol=0.15)


def test_gamma_gamma_expected_value_by_hand():
    # (gamma + m x) p / (p x + q - 1) = (15 + 40 * 3) * 6 / (18 + 4 - 1) = 810 / 21
    np.testing.assert_allclose(gamma_gamma.expected_order_value((6.0, 4.0, 15.0), [3], [40.0]), [810 / 21])
    # one order of 0: the population mean shrunk by one order's weight, gamma p / (p + q - 1)
    np.testing.assert_allclose(gamma_gamma.expected_order_value((6.0, 4.0, 15.0), [1], [0.0]), [90 / 9])


def _shop(extra_orders: list[tuple[str, str, float]] = ()) -> dict:
    """Twelve repeat buyers with 2-4 orders of different sizes, one one-time buyer, one prospect."""
    rows = []
    for i in range(12):
        for k in range(2 + i % 3):
            rows.append((f"c{i:02d}", f"2024-0{1 + k}-{10 + i:02d}", 20.0 + 5 * i + 3 * k))
    rows.append(("once", "2024-04-01", 80.0))
    rows.extend(extra_orders)
    ids = sorted({r[0] for r in rows} | {"prospect"})
    orders = pd.DataFrame(rows, columns=["customer_id", "ordered_at", "amount"])
    return {"customers": pd.DataFrame({"customer_id": ids}), "orders": orders}


def test_value_columns_are_nan_for_non_buyers_and_consistent_with_each_other():
    out = value_frame(check_tables(_shop()), cutoff="2024-06-01", config=FeaturesConfig())
    assert list(out.columns) == list(VALUE_COLUMNS)
    assert out.loc["prospect"].isna().all()
    buyers = out.drop(index="prospect")
    assert buyers.drop(columns="next_order_in_days").notna().all().all()
    # one order two months ago: alive for sure under BG/NBD, so an order is due; the repeat buyers, quiet
    # since the spring, are more likely gone than not and get no date
    assert buyers.loc["once", "next_order_in_days"] > 0
    assert buyers.drop(index="once")["next_order_in_days"].isna().all()
    assert (buyers["expected_orders_12m"] > buyers["expected_orders"]).all()
    # spend is orders x one expected order value per customer, the same over both windows
    np.testing.assert_allclose(
        buyers["expected_spend_bgnbd"] / buyers["expected_orders"],
        buyers["expected_spend_12m"] / buyers["expected_orders_12m"],
    )


def test_value_columns_do_not_see_orders_at_or_after_the_cutoff():
    later = [("c00", "2024-06-01", 500.0), ("once", "2024-07-01", 90.0), ("prospect", "2024-06-02", 10.0)]
    before = value_frame(check_tables(_shop()), cutoff="2024-06-01", config=FeaturesConfig())
    after = value_frame(check_tables(_shop(later)), cutoff="2024-06-01", config=FeaturesConfig())
    pd.testing.assert_frame_equal(before, after)


def test_demo_truth_value_is_the_expected_spend_the_simulator_realises(tmp_path):
    demo = demo_data.generate(n_customers=4000, seed=5)
    demo_data.write(demo, tmp_path)
    truth = pd.read_parquet(tmp_path / "truth" / "value.parquet")
    assert len(truth) == len(demo.truth_churn)
    last = truth[truth["cutoff"] == truth["cutoff"].max()]
    orders = demo.tables["orders"]
    at = orders["ordered_at"]
    c = last["cutoff"].iloc[0]
    window = orders[(at >= c) & (at < c + pd.Timedelta(days=90)) & orders["customer_id"].isin(last["customer_id"])]
    # over 4,000 customers the realised total is within a few percent of the expected one
    np.testing.assert_allclose(window["amount"].sum(), last["expected_spend"].sum(), rtol=0.05)
    np.testing.assert_allclose(len(window), last["expected_orders"].sum(), rtol=0.05)


def test_value_metrics_by_hand():
    y, p = np.array([0.0, 10.0, 0.0, 30.0]), np.array([2.0, 8.0, 1.0, 20.0])
    m = value_metrics(y, p)
    assert m["mae"] == pytest.approx((2 + 2 + 1 + 10) / 4)
    assert m["rmse"] == pytest.approx(np.sqrt((4 + 4 + 1 + 100) / 4))
    # ranks of y: 1.5, 3, 1.5, 4; of p: 2, 3, 1, 4
    assert m["spearman"] == pytest.approx(np.corrcoef([1.5, 3, 1.5, 4], [2, 3, 1, 4])[0, 1])
    # the top decile of 4 rows is one row, the one predicted 20: 30 of the 40 spent
    assert m["top10_share"] == pytest.approx(0.75)


def test_choose_takes_the_lowest_validation_rmse_never_a_missing_one_and_the_baseline_on_a_tie():
    assert choose({"lightgbm": 5.0, "bgnbd_gamma_gamma": 3.0, "historical": 4.0}) == "bgnbd_gamma_gamma"
    assert choose({"lightgbm": 3.0, "bgnbd_gamma_gamma": float("nan"), "historical": 4.0}) == "lightgbm"
    assert choose({"lightgbm": 4.0, "bgnbd_gamma_gamma": float("nan"), "historical": 4.0}) == "historical"


def test_value_report_differences_say_which_is_better():
    rng = np.random.default_rng(0)
    y = rng.gamma(0.5, 100, 2000)
    scores = {"lightgbm": y + rng.normal(0, 5, y.size), "historical": y + rng.normal(0, 100, y.size)}
    report = value_report(y, scores, n_boot=50, seed=0)
    diff = report["differences"]["lightgbm"]
    assert diff["rmse"]["value"] < 0 and diff["rmse"]["better"] == "model"
    assert diff["spearman"]["value"] > 0 and diff["spearman"]["better"] == "model"
    assert set(report["models"]) == {"lightgbm", "historical"} and "historical" not in report["differences"]


@pytest.mark.slow
def test_train_churn_ships_a_value_model_closer_to_the_truth_than_historical_clv(tmp_path):
    import mlflow
    from mlflow import MlflowClient

    from training.config import ChurnConfig
    from training.datasets import build_panel, plan_for
    from training.runs import start_tracking
    from training.train import train_churn

    data = demo_data.generate(n_customers=4000, seed=11)
    tables = check_tables(data.tables)
    features, config = FeaturesConfig(), ChurnConfig(model_name="value-e2e", experiment="value-e2e", bootstrap=50)
    graded = data.end - pd.Timedelta(days=data.horizon_days)  # the last truth cutoff, after every fitted one
    plan = plan_for(tables, features=features, config=config, test_cutoff=graded - pd.Timedelta(days=30))
    start_tracking(config.experiment, uri=f"sqlite:///{tmp_path}/mlflow.db", artifacts=(tmp_path / "art").as_uri())
    try:
        result = train_churn(
            tables,
            build_panel(tables, plan, config=features),
            plan,
            features=features,
            config=config,
            out_dir=tmp_path / "out",
        )
        run = MlflowClient().get_run(result.run_id)
        artifacts = [a.path for a in MlflowClient().list_artifacts(result.run_id, "value")]
        # where serving loads it: the value/ artifacts of the churn champion's run
        shipped = ValueModel.load(mlflow.artifacts.download_artifacts(run_id=result.run_id, artifact_path="value"))
    finally:
        mlflow.set_tracking_uri(None)
    value = result.report["value"]
    assert run.data.tags["value_model"] == value["chosen"]
    assert f"value_{value['chosen']}_rmse" in run.data.metrics and "value_diff_lightgbm_rmse_lo" not in run.data.metrics
    assert "value/value.json" in artifacts
    assert (tmp_path / "out" / "plots" / "value_deciles.png").exists()
    assert "## Customer value" in (tmp_path / "out" / "model_card.md").read_text()
    assert shipped.kind == value["chosen"] and shipped.horizon_days == 90
    for folder in ("challenger/value", "value"):  # this run's files, and the champion's (this run: the first)
        assert ValueModel.load(tmp_path / "out" / folder).features == shipped.features

    truth = data.truth_value[data.truth_value["cutoff"] == graded].set_index("customer_id")["expected_spend"]
    frame = build_features(tables, cutoff=graded, config=features)
    frame = frame.join(value_frame(tables, cutoff=graded, config=features)).loc[truth.index.astype("string")]
    model = shipped.predict(frame, len(frame))
    baseline = ValueModel("historical", 90, HISTORICAL_FEATURES).predict(frame, len(frame))
    true = truth.to_numpy()
    assert np.sqrt(np.mean((model - true) ** 2)) < np.sqrt(np.mean((baseline - true) ** 2))
    assert np.mean(np.abs(model - true)) < np.mean(np.abs(baseline - true))
    assert value_metrics(true, model)["spearman"] > value_metrics(true, baseline)["spearman"]
