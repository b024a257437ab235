"""The one scoring function: same numbers as the logged models, same rules as analytics, honest refusals.

Only buyers get a churn probability; prospects and every customer of an offer-only registry get null churn
fields with the reason, and offers all the same.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.config import AnalyticsConfig
from features.config import FeaturesConfig
from features.contract import CUSTOMER_ID
from features.descriptions import sentence
from features.sources import load_tables
from modeling.errors import ModelError, NoChampion
from modeling.lifecycle import Actions, LifecycleConfig, lifecycle, risk_band, risk_bands
from serving.champions import Models
from serving.config import ServingConfig
from serving.inputs import snapshot_frame
from serving.job import ScoringJob
from serving.models import load_models
from serving.schema import BASE_STAGE, NO_ORDER
from serving.scores import unknown_record
from serving.scoring import score, score_frame
from tests.logged_models import logged_churn, logged_offer
from tests.serving_champions import AS_OF, champions, offer_only, registry, scoring_job


@pytest.fixture(scope="module")
def champ(tmp_path_factory):
    return champions(tmp_path_factory.mktemp("serving"))


@pytest.fixture(scope="module")
def config(champ):
    return ServingConfig.load(champ.configs)


@pytest.fixture(scope="module")
def models(champ, config):
    return load_models(config)


@pytest.fixture(scope="module")
def tables(champ):
    return load_tables(champ.data_dir, offers=("free_shipping", "discount_20"))


@pytest.fixture(scope="module")
def frame(tables, models):
    return snapshot_frame(tables, scoring_job(models, ServingConfig()))


def test_risk_bands_match_analytics():
    p = np.array([0.0, 0.1, 0.2999, 0.3, 0.45, 0.5999, 0.6, 0.99, 1.0])
    for edges in ((0.3, 0.6), (0.2, 0.5, 0.8)):
        expected = risk_band(pd.Series(p), edges).astype(str).to_numpy()
        assert list(risk_bands(p, edges)) == list(expected)


def test_fast_path_equals_the_logged_models(champ, models, frame):
    scored = score_frame(frame, scoring_job(models, ServingConfig()))
    buyer = (frame["sales_orders_all"] > 0).to_numpy()
    assert buyer.any() and not buyer.all()
    np.testing.assert_allclose(scored["churn_probability"][buyer], logged_churn(models, frame[buyer]), atol=1e-12)
    assert scored["churn_probability"][~buyer].isna().all()
    assert models.offer is not None
    reference = logged_offer(models).table(frame)
    for offer in models.offer.offers:
        np.testing.assert_allclose(scored[f"profit_{offer}"], reference[f"profit_{offer}"].round(2), atol=1e-12)
    assert (scored["recommended_offer"].to_numpy() == reference["offer"].to_numpy()).all()


def test_lifecycle_stage_matches_analytics_with_probabilities(tables, models, frame):
    cfg = AnalyticsConfig().lifecycle
    scored = score_frame(frame, scoring_job(models, ServingConfig(lifecycle=cfg)))
    prob = scored.set_index(CUSTOMER_ID)["churn_probability"]
    expected = lifecycle(tables, as_of=AS_OF, churn_probability=prob, config=cfg).set_index(CUSTOMER_ID)
    got = scored.set_index(CUSTOMER_ID)["lifecycle_stage"]
    both = got.index.intersection(expected.index)
    assert len(both) == len(got)
    assert (got[both] == expected.loc[both, "lifecycle_stage"]).all()
    assert (got == "at_risk").any()
    assert not (got[prob.isna()] == "at_risk").any()


def test_prospects_get_no_churn_fields_but_a_reason_a_stage_and_offers(models, frame):
    """No order before the as-of date: churn probability, band and reasons null, the reason said, offers given."""
    scored = score_frame(frame, scoring_job(models, ServingConfig(), reasons=True))
    prospect = (frame["sales_orders_all"].fillna(0) == 0).to_numpy()
    assert 0 < prospect.sum() < len(frame)
    gone = scored[prospect]
    assert gone["churn_probability"].isna().all() and gone["risk_band"].isna().all()
    assert (gone["churn_unscored_reason"] == NO_ORDER).all()
    assert gone[[f"reason_{k}" for k in (1, 2, 3)]].isna().all().all()
    assert (
        set(gone["lifecycle_stage"]) <= {"prospect", "abandoned_cart"} and (gone["lifecycle_stage"] == "prospect").any()
    )
    assert gone["recommended_offer"].notna().all()
    assert np.isfinite(gone[["profit_free_shipping", "profit_discount_20"]].to_numpy()).all()
    kept = scored[~prospect]
    assert kept["churn_probability"].notna().all() and kept["churn_unscored_reason"].isna().all()
    bands = risk_band(kept["churn_probability"], ServingConfig().lifecycle.risk_bands).astype(str)
    assert (kept["risk_band"] == bands).all() and kept["reason_1"].notna().any()  # the analytics rule, row by row
    ids = list(frame.index[prospect][:2]) + list(frame.index[~prospect][:1])
    scored = score(frame.loc[ids], ids, as_of=AS_OF, models=models, config=ServingConfig(), reasons=True)
    records = scored.records(known=True)
    assert [r["churn_probability"] is None for r in records] == [True, True, False]
    assert [r["risk_band"] is None for r in records] == [True, True, False]
    assert [r["churn_unscored_reason"] for r in records] == [NO_ORDER, NO_ORDER, None]
    assert records[0]["reasons"] == [] == records[1]["reasons"]
    assert all(r["profit_free_shipping"] is not None and r["profit_discount_20"] is not None for r in records)


def test_a_high_probability_never_makes_a_prospect_at_risk():
    """The at_risk rule is for buyers (inactive, active); a prospect stays prospect, a null probability is not high."""
    from serving.scoring import stages

    assert list(stages(["prospect", "active", "inactive"], np.array([0.99, 0.99, np.nan]), 0.5)) == [
        "prospect",
        "at_risk",
        "inactive",
    ]


def test_reasons_are_the_largest_positive_contributions_with_values(models, frame):
    part = frame[frame["sales_orders_all"] > 0].head(50)  # buyers: prospects have none (see below)
    scored = score(part, list(part.index), as_of=AS_OF, models=models, config=ServingConfig(), reasons=True)
    contrib = models.churn.contributions(models.churn.encode(part, len(part)))
    for i in range(len(scored)):
        reasons = scored.reasons.row(i)
        assert 1 <= len(reasons) <= 3 or contrib[i].max() <= 0
        values = [r["contribution"] for r in reasons]
        assert values == sorted(values, reverse=True) and all(c > 0 for c in values)
        assert values[0] == pytest.approx(contrib[i].max())
        for r in reasons:
            raw = part.iloc[i][r["feature"]]
            value = r["value"]
            assert (value is None and pd.isna(raw)) or value == (raw if isinstance(value, str) else float(raw))
            assert r["text"] == sentence(r["feature"], value, "EUR")
    flat = scored.frame()
    assert {"reason_1", "reason_1_text", "reason_1_value", "reason_1_contribution", "reason_3"} <= set(flat.columns)


def test_records_match_the_service_response_model(models, frame):
    from serving.http_schemas import Score

    part = frame.head(3)
    config = ServingConfig()
    scored = score(part, list(part.index), as_of=AS_OF, models=models, config=config, reasons=True)
    flat = scored.frame()
    profits = {f"profit_{o}" for o in models.offer.offers}
    for record in [*scored.records(known=True), unknown_record("x", models, config)]:
        assert set(record) == set(Score.model_fields) | profits
        Score.model_validate(record)
    # one schema: an HTTP score is a file row plus ``known``, its reasons a list instead of reason_<k>_* columns
    http = [k for k in scored.records(known=True)[0] if k not in ("known", "reasons")]
    assert http == [c for c in flat.columns if not c.startswith("reason_")]


def test_without_an_offer_champion_everyone_gets_none_and_the_output_says_why(champ, models, frame):
    config = ServingConfig(offer_model="no-such-offer-model")
    no_offer = load_models(config)
    scored = score_frame(frame.head(20), scoring_job(no_offer, config))
    assert (scored["recommended_offer"] == "none").all()
    assert not any(c.startswith("profit_") for c in scored.columns)
    assert (scored["offer_model_version"] == "none: no no-such-offer-model@champion in the registry").all()
    pd.testing.assert_series_equal(
        scored["churn_probability"],
        score_frame(frame.head(20), scoring_job(models, config))["churn_probability"],
    )


def test_without_a_churn_champion_the_offer_champion_still_scores(champ, models, frame):
    config = ServingConfig(churn_model="retain-churn-missing")
    offers_only = load_models(config)
    assert offers_only.churn is None and offers_only.offer is not None
    reason = "no churn model: no retain-churn-missing@champion in the registry"
    no_value = "no value model: it comes with the churn model, and there is none"
    assert offers_only.versions == {"churn": reason, "offer": models.offer_note, "value": no_value}
    part = frame.head(30)
    scored = score_frame(part, scoring_job(offers_only, config, reasons=True))
    full = score_frame(part, scoring_job(models, config, reasons=True))
    assert scored["churn_probability"].isna().all() and scored["risk_band"].isna().all()
    assert (scored["churn_unscored_reason"] == reason).all() and (scored["churn_model_version"] == reason).all()
    assert scored["reason_1"].isna().all()
    assert list(scored.columns) == list(full.columns)
    for col in ("recommended_offer", "profit_free_shipping", "profit_discount_20", "offer_model_version"):
        assert scored[col].tolist() == full[col].tolist()
    assert (scored["lifecycle_stage"] == part[BASE_STAGE].to_numpy()).all()  # no churn rule without a churn model


def test_refuses_when_neither_champion_is_registered(champ):
    with pytest.raises(NoChampion, match="no retain-churn-missing@champion.*no nothing-here@champion"):
        load_models(ServingConfig(churn_model="retain-churn-missing", offer_model="nothing-here"))
    with pytest.raises(NoChampion, match="no churn model configured"):
        load_models(ServingConfig(churn_model=None, offer_model=None))


def test_an_offer_only_shop_gets_offers_from_customer_attributes(tmp_path_factory):
    """No orders table, no churn champion: every customer unscored with the reason, offers from attributes."""
    oo = offer_only(tmp_path_factory.mktemp("offer-only"))
    config = ServingConfig(store=str(oo.store))
    with registry(oo.uri):
        models = load_models(config, tracking_uri=oo.uri)
        inner = logged_offer(models)
    tables = load_tables(oo.data_dir, offers=("free_shipping", "discount_20"))
    assert tables.orders is None
    frame = snapshot_frame(tables, scoring_job(models, config))
    scored = score_frame(frame, scoring_job(models, config))
    reason = "no churn model: no retain-churn@champion in the registry"
    assert scored["churn_probability"].isna().all() and (scored["churn_unscored_reason"] == reason).all()
    assert (scored["churn_model_version"] == reason).all()
    assert scored["offer_model_version"].str.startswith("retain-offers v").all()
    reference = inner.table(frame)
    for offer in ("free_shipping", "discount_20"):
        np.testing.assert_allclose(scored[f"profit_{offer}"], reference[f"profit_{offer}"].round(2), atol=1e-12)
    assert (scored["recommended_offer"].to_numpy() == reference["offer"].to_numpy()).all()
    attributes = [f for f in models.offer.features if f.startswith(("demo_", "attr_", "social_", "behavior_"))]
    assert attributes and frame["sales_orders_all"].isna().all()
    assert scored["profit_discount_20"].nunique() > 10  # the profits differ by what is known of each customer
    assert set(scored["lifecycle_stage"]) <= {"prospect", "abandoned_cart"}


def test_refuses_features_that_do_not_match_the_model(models, frame):
    with pytest.raises(ModelError, match="lacks 1: \\['sales_orders_all'\\]"):
        models.check_features([c for c in frame.columns if c != "sales_orders_all"], source="test features")
    models.check_features(frame.columns, source="test features")


def test_missing_features_are_missing_and_bad_values_name_the_feature(models, frame):
    row = frame[frame["sales_orders_all"] > 0].head(1)
    columns = {c: [row[c].iloc[0]] for c in models.features if c != "sales_days_since_last_order"}
    scored = score(columns, ["a"], as_of=AS_OF, models=models, config=ServingConfig())
    expected = logged_churn(models, row.assign(sales_days_since_last_order=np.nan))[0]  # absent reads as missing
    assert scored.churn_probability[0] == pytest.approx(expected, abs=1e-12)
    sent_null = {**columns, "sales_days_since_last_order": [None]}
    assert (
        score(sent_null, ["a"], as_of=AS_OF, models=models, config=ServingConfig()).churn_probability[0]
        == (scored.churn_probability[0])
    )
    no_count = {c: v for c, v in columns.items() if c != "sales_orders_all"}  # no order count: not a known buyer
    unscored = score(no_count, ["a"], as_of=AS_OF, models=models, config=ServingConfig())
    assert np.isnan(unscored.churn_probability[0]) and unscored.churn_unscored_reason[0] == NO_ORDER
    with pytest.raises(ValueError, match="sales_orders_all"):
        score({**columns, "sales_orders_all": ["many"]}, ["a"], as_of=AS_OF, models=models, config=ServingConfig())
    with pytest.raises(ValueError, match="empty"):
        score({}, [], as_of=AS_OF, models=models, config=ServingConfig())


def test_stage_needs_a_base_stage(models, frame):
    part = frame.head(5).drop(columns=[BASE_STAGE])
    assert score_frame(part, scoring_job(models, ServingConfig()))["lifecycle_stage"].isna().all()


def test_models_object_is_what_every_path_shares(models):
    assert isinstance(models, Models)
    assert models.versions["churn"].startswith("retain-churn v")
    assert models.features[: len(models.churn.features)] == models.churn.features


def test_next_action_and_contact_at_follow_the_lifecycle_rules(tables, models, frame):
    """Every scored customer carries the analytics rules' stage, next action and contact time (at_risk included)."""
    cfg = AnalyticsConfig().lifecycle
    config = ServingConfig(lifecycle=cfg)
    scored = score_frame(frame, scoring_job(models, config)).set_index(CUSTOMER_ID)
    expected = lifecycle(tables, as_of=AS_OF, churn_probability=scored["churn_probability"], config=cfg)
    expected = expected.set_index(CUSTOMER_ID).reindex(scored.index)
    assert (scored["next_action"] == expected["next_action"]).all()
    when = expected["contact_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (scored["contact_at"] == when).all()
    assert set(scored["next_action"]) >= {"cart_reminder", "retention_offer", "first_purchase_offer"}
    cart = scored["lifecycle_stage"] == "abandoned_cart"
    assert cart.any() and (pd.to_datetime(scored.loc[cart, "contact_at"]) >= pd.Timestamp(AS_OF, tz="UTC")).all()
    assert (scored.loc[scored["lifecycle_stage"] == "at_risk", "contact_at"] == f"{AS_OF}T00:00:00Z").all()


def test_profits_are_cents_in_the_configured_currency(models, frame):
    scored = score_frame(frame.head(200), scoring_job(models, ServingConfig(currency="USD")))
    profits = scored[[f"profit_{o}" for o in models.offer.offers]].to_numpy()
    np.testing.assert_allclose(profits * 100, np.round(profits * 100), atol=1e-6)
    assert (scored["currency"] == "USD").all()


def test_a_row_without_usable_features_says_so_instead_of_recommending(models):
    from serving.schema import NO_FEATURES

    scored = score({}, ["ghost"], as_of=AS_OF, models=models, config=ServingConfig(), reasons=True)
    record = scored.records(known=None)[0]
    assert record["recommended_offer"] is None and record["offer_unscored_reason"] == NO_FEATURES
    assert record["profit_free_shipping"] is None and record["profit_discount_20"] is None
    assert record["churn_probability"] is None and record["churn_unscored_reason"] == NO_FEATURES
    assert record["reasons"] == []


def test_requests_with_made_up_categories_or_numbers_are_refused_naming_the_feature(models, frame):
    from serving.request_check import FeatureValueError, category_levels, check_request

    levels = category_levels(models)
    assert "demo_region" in levels
    good = {"demo_region": [levels["demo_region"][0], None], "sales_orders_all": [3.0, None]}
    check_request(good, 2, models)
    for bad, detail in (({"demo_region": [None, 5]}, "5 is not a known category"), ({"demo_region": ["Mars"]}, "Mars")):
        with pytest.raises(FeatureValueError, match=detail) as caught:
            check_request(bad, len(bad["demo_region"]), models)
        assert caught.value.feature == "demo_region"
    with pytest.raises(FeatureValueError, match="not a number") as caught:
        check_request({"sales_orders_all": [1.0, "many"]}, 2, models)
    assert caught.value.row == 1


def test_at_risk_keeps_the_as_of_instant_of_its_base_stage():
    from serving.schema import BASE_ACTION, BASE_CONTACT
    from serving.scoring import lifecycle_fields

    columns = {BASE_ACTION: ["new_arrivals", "motivating_offer", "cart_reminder"]}
    columns[BASE_CONTACT] = ["2026-06-01T14:00:00Z", None, "2026-06-01T16:00:00Z"]
    stage = np.array(["at_risk", "at_risk", "abandoned_cart"], dtype=object)
    config = ServingConfig(lifecycle=LifecycleConfig(actions=Actions(at_risk="call_them")))
    action, contact = lifecycle_fields(columns, 3, stage, np.array(["2026-06-01"] * 3, dtype=object), config)
    assert list(action) == ["call_them", "call_them", "cart_reminder"]
    assert list(contact) == ["2026-06-01T14:00:00Z", "2026-06-01T00:00:00Z", "2026-06-01T16:00:00Z"]


def test_as_of_is_one_text_whatever_form_it_comes_in(models, frame):
    """Batch and Spark (a ScoringJob's score_frame) and HTTP (score) write the same as_of for the same instant."""
    part = frame.head(3)
    new_york = pd.Timestamp(AS_OF, tz="UTC").tz_convert("America/New_York")  # midnight UTC, the day before there
    for as_of in (AS_OF, f"{AS_OF}T00:00:00", pd.Timestamp(AS_OF), new_york, new_york.isoformat()):
        job = ScoringJob(as_of, models, ServingConfig(), FeaturesConfig())
        assert job.as_of == pd.Timestamp(AS_OF) and job.day == AS_OF
        assert score_frame(part, job)["as_of"].tolist() == [AS_OF] * 3
        http = score(part, list(part.index), as_of=as_of, models=models, config=ServingConfig())
        assert [r["as_of"] for r in http.records(known=True)] == [AS_OF] * 3
