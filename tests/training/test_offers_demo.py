"""End to end on the demo shop with known truth: rows, learners, policy, MLflow run, registry, files."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest

from features.config import CONFIG_DIR, OfferCatalog, load_config
from features.sources import check_tables
from simulator.demo_data import generate
from training.model_format import input_example
from training.offers.config import OfferModelConfig
from training.offers.pipeline import train_offers
from training.offers.registry import champion_gain

pytestmark = pytest.mark.slow
CATALOG = load_config(OfferCatalog, CONFIG_DIR / "offers.yaml")
N_CUSTOMERS = 20_000


def _train(tmp_path, *, scale=1.0, catalog=CATALOG, track=False, **overrides):
    demo = generate(n_customers=N_CUSTOMERS, seed=7, offer_effect_scale=scale)
    tables = check_tables(demo.tables, offers=catalog.names)
    config = OfferModelConfig(n_jobs=1, **{"trials": 0, "refit_on_all": False, **overrides})
    out = tmp_path / "offers"
    result = train_offers(tables, catalog=catalog, config=config, truth=demo.truth_offers, out_dir=out, track=track)
    return result, demo, out


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp / 'mlflow.db'}")
        result, demo, out = _train(tmp, track=True, trials=1)
        yield result, demo, out, mlflow.get_tracking_uri()


def test_policy_beats_every_constant_policy_and_the_dr_interval_holds_the_truth(tracked):
    result, _, _, _ = tracked
    p = result.evaluation.policies
    for name in ("none", *CATALOG.names):  # sending nothing too: its true gain is 0
        assert p.loc["shipped", "true_gain"] > p.loc[f"all_{name}", "true_gain"]
    for policy in ("shipped", "learned", "oracle", *(f"all_{n}" for n in CATALOG.names)):
        low, high = p.loc[policy, ["dr_gain_low", "dr_gain_high"]]
        assert low <= p.loc[policy, "true_gain"] <= high, policy
    learners = result.evaluation.learners
    assert set(learners.index) == {"s", "t", "x", "dr"}
    # another learner ships only when it beats the reference (t) with confidence on the paired DR scores
    chosen = learners.loc[result.evaluation.learner]
    assert result.evaluation.learner == "t" or chosen["vs_reference_low"] > 0


def test_policy_reaches_ninety_percent_of_the_oracle(tracked):
    # the demo reveals segments through what a shop sees (delivery zone, coupon club, order habits)
    result, _, _, _ = tracked
    policies = result.evaluation.policies
    assert policies.loc["shipped", "true_gain"] >= 0.9 * policies.loc["oracle", "true_gain"]


def test_run_is_tracked_registered_and_written(tracked):
    result, demo, out, uri = tracked
    mlflow.set_tracking_uri(uri)
    run = mlflow.get_run(result.run_id)
    assert "test_dr_gain" in run.data.metrics and run.data.tags["champion_decision"] == "promoted"
    model = mlflow.pyfunc.load_model("models:/retain-offers@champion")
    frame = result.holdout.frame
    scored = model.predict(input_example(frame[result.spec["features"]], n=len(frame)))  # categories as text
    assert list(scored.columns[:3]) == ["p_none", "p_free_shipping", "p_discount_20"]
    # the champion sends exactly the shipped policy, which sends each offer and earns more than sending nothing
    shipped = np.array(result.spec["arms"])[result.evaluation.shipped]
    assert (scored["offer"].to_numpy() == shipped).all()
    assert set(shipped) == {"none", *CATALOG.names}
    assert result.evaluation.policies.loc["shipped", "true_gain"] > 0
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["learner"] == result.evaluation.learner and (out / "model" / "spec.json").exists()
    assert (out / "qini.png").exists() and (out / "model_card.md").exists()
    # the gate's rescoring path: the champion's choices on these held-out sends give the recorded DR gain
    assert champion_gain("models:/retain-offers@champion", result.holdout) == pytest.approx(
        run.data.metrics["test_dr_gain"], abs=1e-9
    )


def test_demo_without_offer_effects_sends_nothing(tmp_path):
    result, _, _ = _train(tmp_path, scale=0.0, learners=("s", "t"))
    assert (result.evaluation.shipped > 0).mean() <= 0.05


def test_demo_offers_costlier_than_any_gain_are_not_sent(tmp_path):
    costly = OfferCatalog(
        offers=tuple(o.model_copy(update={"cost_per_send": 500.0}) for o in CATALOG.offers),
        margin_rate=CATALOG.margin_rate,
    )
    result, _, _ = _train(tmp_path, catalog=costly, learners=("s",), refit_on_all=True)
    assert (result.evaluation.learned == 0).all() and (result.evaluation.shipped == 0).all()


def test_demo_segments_get_their_offer_in_aggregate(tracked):
    result, demo, _, _ = tracked
    segment = demo.truth_offers["segment"].to_numpy()[result.holdout.frame["log_row"]]
    arms = result.evaluation.learned
    fs, disc = segment == "free_shipping_persuadable", segment == "discount_persuadable"
    # each persuadable segment is sent its own offer more often than everyone else is
    assert (arms[fs] == 1).mean() > (arms[~fs] == 1).mean()
    assert (arms[disc] == 2).mean() > (arms[~disc] == 2).mean()
