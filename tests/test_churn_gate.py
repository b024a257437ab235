"""The champion gate on a real MLflow store (a temporary SQLite file): worse is refused, better promoted."""

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from training.config import Gate
from training.registry import champion_score, current_champion, gate, log_model, register, start_tracking

NAME = "churn-test"
CUTOFF = "2026-04-01"


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    start_tracking("gate-test", uri=f"sqlite:///{tmp_path}/mlflow.db", artifacts=(tmp_path / "artifacts").as_uri())
    yield
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"recency": rng.exponential(30, 2000), "noise": rng.normal(size=2000)})
    y = (rng.random(2000) < 1 / (1 + np.exp(-(X["recency"] - 30) / 10))).astype(int)
    return X, y


def challenger(X, y, columns, score, *, cutoff=CUTOFF, rescore=None):
    """One training run: log a real model, register it, record its test score, run the gate."""
    model = LogisticRegression().fit(X[columns], y)
    with mlflow.start_run() as run:
        mlflow.set_tag("test_cutoff", cutoff)
        mlflow.log_metric("test_roc_auc", score)
        version = register(log_model(model, X[columns]), NAME, run_id=run.info.run_id, test_cutoff=cutoff)
        decision = gate(
            NAME,
            version,
            gate=Gate(metric="roc_auc", margin=0.01),
            test_cutoff=cutoff,
            challenger_score=score,
            score_champion=rescore or (lambda uri: pytest.fail("same cutoff: the recorded score must be used")),
        )
    tags = mlflow.get_run(run.info.run_id).data.tags
    assert tags["champion_decision"] == ("promoted" if decision.promoted else "kept")
    assert tags["champion_reason"] == decision.reason
    return decision


def test_gate_refuses_worse_and_accepts_better(store, data):
    X, y = data
    first = challenger(X, y, ["noise"], 0.70)
    assert first.promoted and first.reason == "no current champion"
    worse = challenger(X, y, ["noise"], 0.65)
    assert not worse.promoted and "does not beat champion v1" in worse.reason
    barely = challenger(X, y, ["noise"], 0.705)  # better, but not by the margin
    assert not barely.promoted
    better = challenger(X, y, ["recency"], 0.90)
    assert better.promoted and "beats champion v1" in better.reason
    assert str(current_champion(NAME).version) == better.version
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias(NAME, "challenger").version) == better.version
    assert client.get_model_version(NAME, worse.version).tags["champion_decision"] == "kept"


def test_gate_rescores_the_champion_on_a_new_test_cutoff(store, data):
    X, y = data
    challenger(X, y, ["recency"], 0.90)
    real = champion_score(f"models:/{NAME}@champion", X, y, "roc_auc")
    assert real > 0.8
    rescore = lambda uri: champion_score(uri, X, y, "roc_auc")  # noqa: E731
    weak = challenger(X, y, ["noise"], 0.55, cutoff="2026-05-01", rescore=rescore)
    assert not weak.promoted and "rescored on this test cutoff" in weak.reason
    assert weak.champion_score == pytest.approx(real)
