"""The champion gate on a real MLflow store (a temporary SQLite file): worse is refused, better promoted, a tie
keeps the champion, a rescore uses only rows neither model was fitted on, and no version is left undecided."""

import socket

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from training.config import Gate
from training.gate import Rescore, champion_score, gate
from training.model_format import log_model
from training.registry import current_champion, deciding, register, settle_undecided
from training.runs import end_interrupted_runs, start_tracking, tracked_run

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


def challenger(X, y, columns, score, *, cutoff=CUTOFF, rescore=None, fitted_through=None):
    """One training run: log a real model, register it, record its test score, run the gate."""
    model = LogisticRegression().fit(X[columns], y)
    with mlflow.start_run() as run:
        mlflow.set_tag("test_cutoff", cutoff)
        mlflow.log_metric("test_roc_auc", score)
        version = register(
            log_model(model, X[columns]),
            NAME,
            run_id=run.info.run_id,
            test_cutoff=cutoff,
            metric="test_roc_auc",
            score=score,
            fitted_through=fitted_through,
        )
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
    rescore = lambda champ: Rescore(  # noqa: E731
        champion_score(f"models:/{NAME}/{champ.version}", X, y, "roc_auc"), 0.55, "the test rows of 2026-05-01"
    )
    weak = challenger(X, y, ["noise"], 0.55, cutoff="2026-05-01", rescore=rescore)
    assert not weak.promoted and "both rescored on the test rows of 2026-05-01" in weak.reason
    assert weak.champion_score == pytest.approx(real)


def test_a_challenger_equal_to_the_champion_ties_and_the_champion_stays(store, data):
    """Same held-out rows, same held-out score: a tie, with margin 0 too; the champion keeps its alias."""
    X, y = data
    first = challenger(X, y, ["recency"], 0.80)
    flat = Gate(metric="roc_auc", margin=0.0)
    with mlflow.start_run() as run:
        version = register(
            mlflow.MlflowClient().get_model_version(NAME, first.version).source,  # the very same model
            NAME,
            run_id=run.info.run_id,
            test_cutoff=CUTOFF,
            metric="test_roc_auc",
            score=0.80,
        )
        tie = gate(NAME, version, gate=flat, test_cutoff=CUTOFF, challenger_score=0.80, score_champion=pytest.fail)
    assert not tie.promoted and "ties champion v1" in tie.reason
    assert tie.champion_score == tie.challenger_score == 0.80
    assert str(current_champion(NAME).version) == first.version
    metrics = mlflow.get_run(run.info.run_id).data.metrics
    assert metrics["gate_challenger_score"] == metrics["gate_champion_score"] == 0.80


def test_a_rescore_with_no_rows_neither_model_saw_keeps_the_champion(store, data):
    X, y = data
    challenger(X, y, ["recency"], 0.90, fitted_through="2026-06-01")
    none_left = lambda champ: Rescore(None, None, f"v{champ.version} was fitted on these rows")  # noqa: E731
    later = challenger(X, y, ["recency"], 0.95, cutoff="2026-05-01", rescore=none_left)
    assert not later.promoted and later.reason == "champion v1 kept: v1 was fitted on these rows"
    assert str(current_champion(NAME).version) == "1"


def test_no_version_is_left_without_a_decision(store, data):
    """Stopped between registration and the gate (Ctrl-C, SIGTERM), or killed outright: marked interrupted."""
    X, y = data
    model = LogisticRegression().fit(X[["noise"]], y)
    client = mlflow.MlflowClient()
    with pytest.raises(KeyboardInterrupt), tracked_run("interrupted") as run:
        version = register(log_model(model, X[["noise"]]), NAME, run_id=run.info.run_id, test_cutoff=CUTOFF)
        with deciding(NAME, version):
            raise KeyboardInterrupt
    assert client.get_run(run.info.run_id).info.status == "KILLED"
    tags = client.get_model_version(NAME, version).tags
    assert tags["champion_decision"] == "interrupted" and "KeyboardInterrupt" in tags["champion_reason"]
    with pytest.raises(Exception, match="alias"):  # the challenger alias does not point at the undecided version
        client.get_model_version_by_alias(NAME, "challenger")
    # a process killed outright: its version has no decision and its run is left RUNNING
    with mlflow.start_run() as dead:
        killed = register(log_model(model, X[["noise"]]), NAME, run_id=dead.info.run_id, test_cutoff=CUTOFF)
        mlflow.set_tags({"retain.pid": "999999999", "retain.host": socket.gethostname()})
    client.update_run(dead.info.run_id, status="RUNNING")
    assert end_interrupted_runs(mlflow.get_experiment_by_name("gate-test").experiment_id) == [dead.info.run_id]
    assert client.get_run(dead.info.run_id).info.status == "KILLED"
    assert settle_undecided(NAME) == [killed]
    assert client.get_model_version(NAME, killed).tags["champion_decision"] == "interrupted"


def test_a_write_stopped_halfway_leaves_the_old_folder_whole(tmp_path):
    """A kill inside save_model (or anywhere in a staged write) leaves the previous model folder as it was."""
    from training.staging import clean_staging, staged

    folder = tmp_path / "churn" / "model"
    folder.mkdir(parents=True)
    (folder / "MLmodel").write_text("old")
    with pytest.raises(KeyboardInterrupt), staged(folder) as stage:
        stage.mkdir()
        (stage / "MLmodel").write_text("half")
        raise KeyboardInterrupt
    assert (folder / "MLmodel").read_text() == "old"
    assert sorted(p.name for p in folder.parent.iterdir()) == ["model"]
    with staged(folder) as stage:
        stage.mkdir()
        (stage / "MLmodel").write_text("new")
    assert (folder / "MLmodel").read_text() == "new"
    (folder.parent / ".staging-model-x").mkdir()  # what a SIGKILL would leave
    clean_staging(folder.parent)
    assert sorted(p.name for p in folder.parent.iterdir()) == ["model"]


def test_an_offer_champion_refit_on_every_send_is_not_rescored_on_them():
    """The offer champion saw every send up to its fitted_through: only later held-out sends can judge it."""
    from types import SimpleNamespace

    from training.offers.registry import rescore

    held = pd.DataFrame({"sent_at": pd.to_datetime(["2025-09-01", "2025-09-05"]), "customer_id": ["a", "b"]})
    result = SimpleNamespace(holdout=SimpleNamespace(frame=held), evaluation=SimpleNamespace(shipped=np.array([1, 0])))
    champ = SimpleNamespace(name="retain-offers", version="3", tags={"fitted_through": "2025-09-05T00:00:00"})
    out = rescore(champ, result)
    assert out.champion is None and out.challenger is None
    assert out.rows == "none of the 2 held-out sends is after 2025-09-05T00:00:00, which v3 was fitted on"
