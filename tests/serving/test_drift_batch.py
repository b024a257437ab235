"""Drift end to end: train-churn keeps the reference, retain score writes and logs the drift table, the report shows it."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from typer.testing import CliRunner

from modeling.drift import REFERENCE_FILE, Reference
from retain.cli import app
from serving.batch_tracking import EXPERIMENT
from serving.config import ServingConfig
from serving.drift import COLUMNS
from serving.models import load_models
from tests.serving_champions import AS_OF, champions, registry


@pytest.fixture(scope="module")
def champ(tmp_path_factory):
    return champions(tmp_path_factory.mktemp("serving"))


def _score(champ, out: Path, as_of: str, *extra: str):
    args = ["score", "--as-of", as_of, "--data", str(champ.data_dir), "--out", str(out), "--no-store"]
    return CliRunner().invoke(app, [*args, *extra, "--configs", str(champ.configs)])


def _test_cutoff(champ) -> str:
    return json.loads((champ.root / "churn" / "report.json").read_text())["plan"]["test_cutoff"]


def test_train_churn_keeps_the_reference_with_the_models_files_and_on_its_run(champ):
    ref = Reference.from_json((champ.root / "churn" / REFERENCE_FILE).read_text())
    assert (champ.root / "churn" / "challenger" / REFERENCE_FILE).exists()
    models = load_models(ServingConfig.load(champ.configs))
    assert tuple(b.feature for b in ref.bins) == models.churn.features  # what the churn model reads, in its order
    run_id = mlflow.MlflowClient().get_model_version("retain-churn", models.churn.version).run_id
    logged = {Path(a.path).name for a in mlflow.MlflowClient().list_artifacts(run_id)}
    assert REFERENCE_FILE in logged
    assert ref.n_rows > ref.n_customers > 0  # several cutoffs per customer
    assert all(abs(sum(b.shares) - 1) < 1e-9 for b in ref.bins)


def test_scoring_the_training_population_writes_the_table_logs_it_and_raises_no_alarm(champ, tmp_path):
    """As of the champion's latest training cutoff the scored buyers are rows it was fitted on: nothing drifted."""
    as_of = _test_cutoff(champ)
    out = tmp_path / "scores.parquet"
    done = _score(champ, out, as_of)
    assert done.exit_code == 0, done.output
    table = pd.read_csv(tmp_path / "scores.drift.csv")
    assert list(table.columns) == list(COLUMNS)
    scores = pd.read_parquet(out)
    assert (table["n_scored"] == scores["churn_probability"].notna().sum()).all()
    assert not table["drifted"].any()
    assert (table["psi"] <= table["threshold"]).all() and (table["threshold"] >= 0.25).all()
    assert table["psi"].is_monotonic_decreasing
    assert "no feature drifted since training (largest PSI" in done.output and "scores.drift.csv" in done.output
    run = mlflow.search_runs(experiment_names=[EXPERIMENT], order_by=["start_time DESC"], max_results=1)
    run = mlflow.get_run(run["run_id"].iloc[0])
    assert run.data.params["as_of"] == as_of
    assert run.data.metrics["drift_features_drifted"] == 0
    assert run.data.metrics["drift_features_checked"] == len(table)
    assert run.data.metrics["drift_max_psi"] == pytest.approx(table["psi"].max())
    assert all(run.data.metrics[f"drift_psi_{r.feature}"] == pytest.approx(r.psi) for r in table.itertuples())
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert "scores.drift.csv" in logged


def test_the_warning_names_what_the_table_says_drifted(champ, tmp_path):
    done = _score(champ, tmp_path / "scores.csv", AS_OF, "--no-track")
    assert done.exit_code == 0, done.output
    table = pd.read_csv(tmp_path / "scores.drift.csv")
    drifted = table[table["drifted"]]
    if drifted.empty:
        assert "no feature drifted since training" in done.output
    else:
        n = len(drifted)
        assert f"warning: {n} feature{'s' if n > 1 else ''} drifted since training: " in done.output
        for row in drifted.head(3).itertuples():
            assert f"{row.description} (PSI {row.psi:.2f})" in done.output


@pytest.mark.parametrize(
    ("reference", "said"),
    [
        (None, "was trained before training kept a drift reference"),  # an old champion
        ('{"n_rows": 3, "bins": [', "could not be read (JSONDecodeError"),  # a damaged artifact
    ],
)
def test_a_champion_without_a_usable_reference_is_scored_and_drift_is_said_not_checked(
    champ, tmp_path, reference, said
):
    """Scores as usual, no drift table (an older one beside the scores is removed), the reason said."""
    client = mlflow.MlflowClient(tracking_uri=champ.uri)
    current = client.get_model_version_by_alias("retain-churn", "champion")
    stale = tmp_path / "scores.drift.csv"
    stale.write_text("feature,psi\nold,1.0\n")  # a table from an earlier run must not sit beside the new scores
    with registry(champ.uri):
        experiment = mlflow.set_experiment("retain-churn")
        with mlflow.start_run(experiment_id=experiment.experiment_id, run_name="old champion") as run:
            if reference is not None:
                mlflow.log_text(reference, REFERENCE_FILE)
        old = client.create_model_version("retain-churn", current.source, run_id=run.info.run_id).version
        client.set_registered_model_alias("retain-churn", "champion", old)
    try:
        done = _score(champ, tmp_path / "scores.parquet", AS_OF, "--no-track")
    finally:
        client.set_registered_model_alias("retain-churn", "champion", current.version)
    assert done.exit_code == 0, done.output
    assert "warning: drift not checked: " in done.output and f"retain-churn v{old}" in done.output
    assert said in done.output and "retain train-churn" in done.output
    assert not stale.exists()
    assert pd.read_parquet(tmp_path / "scores.parquet")["churn_probability"].notna().any()


def test_the_report_shows_the_drift_table_beside_the_scores(champ, tmp_path):
    out = tmp_path / "scores.parquet"
    assert _score(champ, out, AS_OF, "--no-track").exit_code == 0
    table = pd.read_csv(tmp_path / "scores.drift.csv")
    report = tmp_path / "report.html"
    args = ["report", "--as-of", AS_OF, "--data", str(champ.data_dir), "--out", str(report)]
    done = CliRunner().invoke(app, [*args, "--churn-scores", str(out), "--configs", str(champ.configs)])
    assert done.exit_code == 0, done.output
    html = report.read_text()
    assert "<h2>Feature drift since training</h2>" in html
    assert escape(table["description"].iloc[0]) in html and f"{table['psi'].iloc[0]:.3f}" in html
    assert f"{table['n_scored'].iloc[0]:,} customers scored" in html
