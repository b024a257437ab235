"""Both calibration methods, with and without the BG/NBD prior, log, load back and agree with serving's fast path."""

from __future__ import annotations

import dataclasses

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

from modeling.prior_boosting import Prior, PriorBoostedLGBM, prior_log_odds
from serving.models import load_churn
from training.model_format import log_model
from training.registry import register
from training.runs import start_tracking

PRIOR = "lifetime_p_no_order_90d"
# the RFM-style prior: several log1p and logit terms around their centres, and a constant
LINEAR = Prior("rfm", ("sales_orders_all", PRIOR), ("log1p", "logit"), (-0.4, 0.9), (1.2, -0.3), 0.25)


ALONE = dataclasses.replace(LINEAR, tree_weight=0.0)  # the prior alone: the trees are kept but weigh nothing


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
@pytest.mark.parametrize("prior", [None, Prior.single(PRIOR), LINEAR, ALONE], ids=["none", "bg_nbd", "rfm", "alone"])
def test_calibrated_model_round_trips_through_mlflow_and_the_fast_path(method, prior, tmp_path):
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {
            "sales_orders_all": rng.poisson(3, 600).astype(float),
            "demo_age": rng.normal(40, 9, 600),
            PRIOR: rng.uniform(0.05, 0.95, 600),
        }
    )
    X.loc[:9, PRIOR] = np.nan  # no BG/NBD fit for some: log-odds 0
    y = (rng.random(600) < X[PRIOR].fillna(0.5)).astype(int)
    clf = PriorBoostedLGBM(n_estimators=20, verbose=-1).fit_from_prior(X[:400], y[:400], prior=prior)
    clf = clf.alone() if prior is not None and prior.tree_weight == 0 else clf
    model = CalibratedClassifierCV(FrozenEstimator(clf), method=method).fit(X[400:], y[400:])
    start_tracking("calibration", uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifacts=(tmp_path / "a").as_uri())
    with mlflow.start_run() as run:
        uri = log_model(model, X)
    loaded = mlflow.sklearn.load_model(uri)
    np.testing.assert_allclose(loaded.predict_proba(X)[:, 1], model.predict_proba(X)[:, 1])

    register(uri, "calib", run_id=run.info.run_id, test_cutoff="2026-01-01")
    churn = load_churn(MlflowClient(), "calib", "challenger")  # refuses to load if the fast path disagrees
    assert churn.prior == prior
    encoded = churn.encode(X, len(X))
    np.testing.assert_allclose(churn.predict(encoded), model.predict_proba(X)[:, 1], atol=1e-9)
    bias = churn.booster.predict(encoded, pred_contrib=True)[:, -1]
    bias = bias if prior is None else prior.tree_weight * bias + prior.constant
    np.testing.assert_allclose(churn.contributions(encoded).sum(axis=1) + bias, clf.decision_function(X), atol=1e-9)


def test_the_prior_is_the_starting_point():
    """With no trees' worth of signal, the prior's log-odds carry the ranking."""
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"noise": rng.normal(size=400), PRIOR: rng.uniform(0.05, 0.95, 400)})
    y = (rng.random(400) < X[PRIOR]).astype(int)
    clf = PriorBoostedLGBM(n_estimators=1, learning_rate=1e-6, verbose=-1).fit_from_prior(
        X, y, prior=Prior.single(PRIOR)
    )
    np.testing.assert_allclose(clf.decision_function(X), prior_log_odds(X[PRIOR]), atol=1e-3)


def test_the_prior_alone_scores_exactly_the_prior():
    rng = np.random.default_rng(2)
    X = pd.DataFrame({"sales_orders_all": rng.poisson(3, 300).astype(float), PRIOR: rng.uniform(0.05, 0.95, 300)})
    y = (rng.random(300) < X[PRIOR]).astype(int)
    clf = PriorBoostedLGBM(n_estimators=30, verbose=-1).fit_from_prior(X, y, prior=LINEAR)
    alone = clf.alone()
    np.testing.assert_allclose(alone.decision_function(X), LINEAR.log_odds(X))
    assert clf.prior.tree_weight == 1.0  # the original keeps its trees
    assert not np.allclose(clf.decision_function(X), LINEAR.log_odds(X))
