"""The one scoring function: same numbers as the logged models, same rules as analytics, honest refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.config import AnalyticsConfig
from analytics.lifecycle import lifecycle, risk_band
from features.config import FeaturesConfig, load_config
from features.contract import CUSTOMER_ID
from features.sources import load_tables
from serving.batch import snapshot_frame
from serving.config import ServingConfig
from serving.models import ModelError, Models, load_models
from serving.offer_predictor import score_offers
from serving.scoring import BASE_STAGE, risk_bands, score, score_frame, unknown_record
from tests.serving_champions import AS_OF, champions


@pytest.fixture(scope="module")
def champ(tmp_path_factory):
    return champions(tmp_path_factory.mktemp("serving"))


@pytest.fixture(scope="module")
def config(champ):
    return load_config(ServingConfig, champ.configs / "serving.yaml")


@pytest.fixture(scope="module")
def models(champ, config):
    return load_models(config)


@pytest.fixture(scope="module")
def tables(champ):
    return load_tables(champ.data_dir, offers=("free_shipping", "discount_20"))


@pytest.fixture(scope="module")
def frame(tables, models):
    return snapshot_frame(
        tables, as_of=AS_OF, models=models, features=FeaturesConfig(), lifecycle_config=AnalyticsConfig().lifecycle
    )


def test_risk_bands_match_analytics():
    p = np.array([0.0, 0.1, 0.2999, 0.3, 0.45, 0.5999, 0.6, 0.99, 1.0])
    for edges in ((0.3, 0.6), (0.2, 0.5, 0.8)):
        expected = risk_band(pd.Series(p), edges).astype(str).to_numpy()
        assert list(risk_bands(p, edges)) == list(expected)


def test_fast_path_equals_the_logged_models(champ, models, frame):
    import mlflow.pyfunc
    import mlflow.sklearn

    churn = mlflow.sklearn.load_model(f"models:/{models.churn.name}/{models.churn.version}")
    X = frame[list(models.churn.features)].copy()
    for col, levels in models.churn.levels.items():
        X[col] = pd.Categorical(X[col].astype("string"), categories=list(levels))
    scored = score_frame(frame, as_of=AS_OF, models=models, config=ServingConfig())
    np.testing.assert_allclose(scored["churn_probability"], churn.predict_proba(X)[:, 1], atol=1e-12)
    assert models.offer is not None
    inner = mlflow.pyfunc.load_model(f"models:/{models.offer.name}/{models.offer.version}").unwrap_python_model()
    reference = score_offers(inner.boosters_, inner.spec_, frame)
    for offer in models.offer.offers:
        np.testing.assert_allclose(scored[f"profit_{offer}"], reference[f"profit_{offer}"], atol=1e-12)
    assert (scored["recommended_offer"].to_numpy() == reference["offer"].to_numpy()).all()


def test_lifecycle_stage_matches_analytics_with_probabilities(tables, models, frame):
    cfg = AnalyticsConfig().lifecycle
    scored = score_frame(
        frame, as_of=AS_OF, models=models, config=ServingConfig(at_risk_threshold=cfg.at_risk_threshold)
    )
    prob = scored.set_index(CUSTOMER_ID)["churn_probability"]
    expected = lifecycle(tables, as_of=AS_OF, churn_probability=prob, config=cfg).set_index(CUSTOMER_ID)
    got = scored.set_index(CUSTOMER_ID)["lifecycle_stage"]
    both = got.index.intersection(expected.index)
    assert len(both) == len(got)
    assert (got[both] == expected.loc[both, "lifecycle_stage"]).all()
    assert (got == "at_risk").any()


def test_reasons_are_the_largest_positive_contributions_with_values(models, frame):
    part = frame.head(50)
    scored = score(part, list(part.index), as_of=AS_OF, models=models, config=ServingConfig(), reasons=True)
    contrib = models.churn.contributions(models.churn.encode(part, len(part)))
    for i in range(len(scored)):
        reasons = scored.reasons.row(i)
        assert 1 <= len(reasons) <= 3 or contrib[i].max() <= 0
        values = [c for _, _, c in reasons]
        assert values == sorted(values, reverse=True) and all(c > 0 for c in values)
        assert values[0] == pytest.approx(contrib[i].max())
        for feature, value, _ in reasons:
            raw = part.iloc[i][feature]
            assert (value is None and pd.isna(raw)) or value == (raw if isinstance(value, str) else float(raw))
    flat = scored.frame()
    assert {"reason_1", "reason_1_value", "reason_1_contribution", "reason_3"} <= set(flat.columns)


def test_records_match_the_service_response_model(models, frame):
    from serving.service import Score

    part = frame.head(3)
    records = score(part, list(part.index), as_of=AS_OF, models=models, config=ServingConfig(), reasons=True).records()
    for record in [*records, unknown_record("x", models)]:
        assert set(record) == set(Score.model_fields)
        Score.model_validate(record)


def test_without_an_offer_champion_everyone_gets_none_and_the_output_says_why(champ, models, frame):
    config = ServingConfig(offer_model="no-such-offer-model")
    no_offer = load_models(config)
    scored = score_frame(frame.head(20), as_of=AS_OF, models=no_offer, config=config)
    assert (scored["recommended_offer"] == "none").all()
    assert not any(c.startswith("profit_") for c in scored.columns)
    assert (scored["offer_model_version"] == "none: no no-such-offer-model@champion in the registry").all()
    assert (
        scored["churn_probability"].tolist()
        == score_frame(frame.head(20), as_of=AS_OF, models=models, config=config)["churn_probability"].tolist()
    )


def test_refuses_a_missing_churn_champion(champ):
    with pytest.raises(ModelError, match="no retain-churn-missing@champion"):
        load_models(ServingConfig(churn_model="retain-churn-missing"))


def test_refuses_features_that_do_not_match_the_model(models, frame):
    with pytest.raises(ModelError, match="lacks 1: \\['sales_orders_all'\\]"):
        models.check_features([c for c in frame.columns if c != "sales_orders_all"], source="test features")
    models.check_features(frame.columns, source="test features")


def test_missing_features_are_missing_and_bad_values_name_the_feature(models, frame):
    row = frame.head(1)
    columns = {c: [row[c].iloc[0]] for c in models.features if c != "sales_orders_all"}
    scored = score(columns, ["a"], as_of=AS_OF, models=models, config=ServingConfig())
    assert 0 <= scored.churn_probability[0] <= 1
    with pytest.raises(ValueError, match="sales_orders_all"):
        score({**columns, "sales_orders_all": ["many"]}, ["a"], as_of=AS_OF, models=models, config=ServingConfig())
    with pytest.raises(ValueError, match="empty"):
        score({}, [], as_of=AS_OF, models=models, config=ServingConfig())


def test_stage_needs_a_base_stage(models, frame):
    part = frame.head(5).drop(columns=[BASE_STAGE])
    assert score_frame(part, as_of=AS_OF, models=models, config=ServingConfig())["lifecycle_stage"].isna().all()


def test_models_object_is_what_every_path_shares(models):
    assert isinstance(models, Models)
    assert models.versions["churn"].startswith("retain-churn v")
    assert models.features[: len(models.churn.features)] == models.churn.features
