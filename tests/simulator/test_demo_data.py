"""The demo generator: deterministic, valid under the contract, and its truth agrees with its data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.config import CONFIG_DIR, OfferCatalog, load_config
from features.contract import ContractError
from features.labels import churn_labels
from features.sources import check_tables, load_tables
from simulator.demo_data import ARM_PROBS, ARMS, generate, oracle_policy, write

N = 4000
CATALOG = load_config(OfferCatalog, CONFIG_DIR / "offers.yaml")


@pytest.fixture(scope="module")
def demo():
    return generate(N, seed=11)


@pytest.fixture(scope="module")
def tables(demo):
    return check_tables(demo.tables, offers=CATALOG.names)


def _z(realized: np.ndarray, p: np.ndarray) -> float:
    """(realized rate - mean probability) in standard errors of a sum of independent Bernoullis."""
    se = np.sqrt(np.sum(p * (1 - p))) / len(p)
    return float((realized.mean() - p.mean()) / se)


def test_same_seed_same_frames_different_seed_different():
    a, b, c = generate(600, seed=3), generate(600, seed=3), generate(600, seed=4)
    for name in a.tables:
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name])
    pd.testing.assert_frame_equal(a.truth_churn, b.truth_churn)
    pd.testing.assert_frame_equal(a.truth_offers, b.truth_offers)
    assert not a.tables["orders"]["amount"].equals(c.tables["orders"]["amount"])


def test_tables_pass_the_contract_and_custom_attributes_flow_in(tables):
    assert set(tables.present()) == {"customers", "orders", "events", "reviews", "interests", "offers"}
    assert {"Loyalty Tier", "newsletter opt-in?", "Preferred Store #", "Delivery Zone", "Coupon Club"} <= set(
        tables.customers.columns
    )


def test_segments_are_mostly_revealed_by_what_the_shop_sees(demo):
    customers = demo.tables["customers"].set_index("customer_id")
    segment = demo.params.set_index("customer_id")["segment"].reindex(customers.index)
    remote = customers["Delivery Zone"] == "remote"
    club = customers["Coupon Club"] == 1
    fs, disc = segment == "free_shipping_persuadable", segment == "discount_persuadable"
    assert remote[fs].mean() > 0.85 and remote[~fs].mean() < 0.10
    assert club[disc].mean() > 0.85 and club[~disc].mean() < 0.10
    orders = demo.tables["orders"]
    seg_of_order = segment.reindex(orders["customer_id"].astype(str)).to_numpy()
    free = (orders["shipping_fee"] == 0).to_numpy()
    discounted = (orders["discount_amount"] > 0).to_numpy()
    assert (
        free[seg_of_order == "free_shipping_persuadable"].mean() > 0.7 > 0.3 > free[seg_of_order == "lost_cause"].mean()
    )
    assert (
        discounted[seg_of_order == "discount_persuadable"].mean()
        > 0.6
        > 0.3
        > discounted[seg_of_order == "lost_cause"].mean()
    )


def test_campaigns_reach_only_recently_active_customers(demo, tables):
    from simulator.demo_data import ACTIVE_DAYS

    offers = tables.offers
    orders = tables.orders[["customer_id", "ordered_at"]]
    signed = tables.customers.set_index("customer_id")["signed_up_at"]
    sent = offers[["customer_id", "sent_at"]].reset_index(drop=True)
    sent["row"] = np.arange(len(sent))
    merged = sent.merge(orders, on="customer_id", how="left")
    merged = merged[merged["ordered_at"] < merged["sent_at"]]
    last = merged.groupby("row")["ordered_at"].max().reindex(sent["row"])
    joined = signed.reindex(sent["customer_id"]).to_numpy()
    since = np.maximum(last.fillna(pd.Timestamp.min).to_numpy(), joined)
    assert (since >= sent["sent_at"].to_numpy() - np.timedelta64(ACTIVE_DAYS, "D")).all()


def test_written_files_are_the_generated_frames_and_load_under_the_contract(tmp_path):
    demo = generate(500, seed=5)
    write(demo, tmp_path)
    truth = {"churn": demo.truth_churn, "offers": demo.truth_offers, "value": demo.truth_value, "params": demo.params}
    for name, frame in {**demo.tables, **{f"truth/{k}": v for k, v in truth.items()}}.items():
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / f"{name}.parquet"), frame, obj=name)
    tables = load_tables(tmp_path, offers=CATALOG.names)
    assert {name: len(getattr(tables, name)) for name in tables.present()} == {
        n: len(f) for n, f in demo.tables.items()
    }


def test_nothing_dated_at_or_after_end(demo, tables):
    start = demo.start
    for frame, col in ((tables.orders, "ordered_at"), (tables.events, "occurred_at"), (tables.reviews, "created_at")):
        assert frame[col].max() < demo.end
        assert frame[col].min() >= start


def test_churn_truth_matches_realized_labels_and_is_informative(demo, tables):
    from sklearn.metrics import roc_auc_score

    cutoff = demo.end - pd.Timedelta(days=demo.horizon_days)
    truth = demo.truth_churn[demo.truth_churn["cutoff"] == cutoff].set_index("customer_id")["p_churn"]
    y = churn_labels(tables, cutoff=cutoff, horizon_days=demo.horizon_days)
    p = truth.reindex(y.index)
    assert p.notna().all() and len(p) == len(truth)
    assert abs(_z(y.to_numpy(), p.to_numpy())) < 3
    assert roc_auc_score(y, p) > 0.75


def test_offer_truth_matches_realized_conversion_per_arm(demo):
    offers, truth = demo.tables["offers"], demo.truth_offers
    assert (truth["customer_id"].to_numpy() == offers["customer_id"].to_numpy()).all()
    for arm in ARMS:
        sel = (offers["offer"] == arm).to_numpy()
        p = truth.loc[sel, f"p_convert_{arm}"].to_numpy()
        assert abs(_z(offers.loc[sel, "converted"].to_numpy(), p)) < 3, arm


def test_propensities_match_assignment_frequencies(demo):
    offers = demo.tables["offers"]
    share = offers["offer"].value_counts(normalize=True)
    for arm, prob in zip(ARMS, ARM_PROBS, strict=True):
        assert (offers.loc[offers["offer"] == arm, "propensity"] == prob).all()
        assert abs(share[arm] - prob) < 4 * np.sqrt(prob * (1 - prob) / len(offers))


def test_no_offer_effect_means_equal_conversion_across_arms():
    truth = generate(1500, seed=2, offer_effect_scale=0.0).truth_offers
    for arm in ARMS[:2]:
        np.testing.assert_allclose(truth[f"p_convert_{arm}"], truth["p_convert_none"])


def test_oracle_sends_each_offer_to_over_a_tenth_and_nothing_to_about_half(demo):
    share = oracle_policy(demo.truth_offers, CATALOG).value_counts(normalize=True)
    assert 0.4 < share.get("none", 0) < 0.7
    for offer in CATALOG.names:
        assert share.get(offer, 0) > 0.10, offer


def test_generate_demo_command_writes_what_generate_makes(tmp_path):
    from typer.testing import CliRunner

    from retain.cli import app

    result = CliRunner().invoke(app, ["generate-demo", "--out", str(tmp_path), "--customers", "300", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("wrote 300 customers, ")
    demo = generate(300, seed=1)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "orders.parquet"), demo.tables["orders"])
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "truth" / "churn.parquet"), demo.truth_churn)
    assert len(load_tables(tmp_path, offers=CATALOG.names).customers) == 300


def test_tiny_shops_lack_the_tables_they_have_no_rows_for():
    """The contract refuses an empty table, so a shop too small or too short for one simply has none."""
    one = generate(1, days=730, seed=1)
    assert set(check_tables(one.tables, offers=CATALOG.names).present()) == set(one.tables)
    assert set(one.tables) == {"customers", "orders", "events", "reviews", "interests", "offers"}
    assert all(set(frame["customer_id"].astype(str)) == {"C000001"} for frame in one.tables.values())
    short = generate(40, days=60, seed=1)  # shorter than the 90-day horizon: no campaign, no truth cutoff
    assert "offers" not in short.tables and short.truth_offers.empty and short.truth_churn.empty
    assert set(check_tables(short.tables, offers=CATALOG.names).present()) == set(short.tables)
    with pytest.raises(ContractError, match="empty"):
        check_tables({**short.tables, "offers": one.tables["offers"].iloc[:0]}, offers=CATALOG.names)
