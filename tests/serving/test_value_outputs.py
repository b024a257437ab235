"""Customer value end to end through the CLI on the champions' demo shop: retain score with a campaign budget ranked
by value at risk x profit, then retain report with its Customer value section; and the refusal without a value
model."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from analytics.value_section import VALUE_PLOT
from retain.cli import app
from serving.batch_tracking import EXPERIMENT
from tests.conftest import copy_configs
from tests.serving_champions import AS_OF, champions, offer_only, registry, score_args

pytestmark = pytest.mark.slow
BUDGET = 100


@pytest.fixture(scope="module")
def champ(tmp_path_factory):
    return champions(tmp_path_factory.mktemp("serving"))


def _configs(source, folder, campaign: str):
    """The settings in ``source`` (the repository's, serving.yaml aside) with ``campaign`` added to serving.yaml."""
    return copy_configs(folder, serving=(source / "serving.yaml").read_text() + campaign)


def test_score_ranks_the_budget_by_value_at_risk_and_the_report_shows_the_value(champ, tmp_path):
    configs = _configs(
        champ.configs, tmp_path / "configs", f"campaign:\n  max_offers: {BUDGET}\n  priority: value_at_risk_x_profit\n"
    )
    out, campaign = tmp_path / "scores.parquet", tmp_path / "campaign.csv"
    with registry(champ.uri):
        done = CliRunner().invoke(
            app, [*score_args(champ, out, "--campaign", str(campaign)), "--no-store", "--configs", str(configs)]
        )
        assert done.exit_code == 0, done.output
        run = mlflow.search_runs(experiment_names=[EXPERIMENT], order_by=["start_time DESC"], max_results=1).iloc[0]
    scores = pd.read_parquet(out)
    buyer = scores["churn_probability"].notna()
    assert scores.loc[buyer, "predicted_value"].notna().all() and scores.loc[~buyer, "predicted_value"].isna().all()
    assert run["metrics.value_at_risk_total"] == pytest.approx(scores["value_at_risk"].sum(), abs=0.01)
    assert "plots/predicted_value.png" in [
        a.path for a in mlflow.MlflowClient(champ.uri).list_artifacts(run.run_id, "plots")
    ]

    sends = pd.read_csv(campaign, dtype={"customer_id": "string"})
    paid = sends[sends["offer"] != "none"]
    assert len(paid) == BUDGET and f"budget: {BUDGET} offers" in done.output
    rows = scores.set_index("customer_id")
    offered = rows[rows["next_action"].notna() & (rows["recommended_offer"] != "none")]
    profit = np.array([offered.at[c, f"profit_{o}"] for c, o in offered["recommended_offer"].items()])
    priority = pd.Series(offered["value_at_risk"].to_numpy() * profit, index=offered.index)
    kept = set(paid["customer_id"])
    assert priority[list(kept)].min() >= priority.drop(list(kept)).max()  # the first by value at risk x profit

    report = tmp_path / "report.html"
    args = ["report", "--as-of", AS_OF, "--data", str(champ.data_dir), "--out", str(report), "--configs", str(configs)]
    done = CliRunner().invoke(app, [*args, "--churn-scores", str(out)])
    assert done.exit_code == 0, done.output
    page = report.read_text()
    assert "<h2>Customer value</h2>" in page and "value at risk (EUR)" in page
    assert (tmp_path / VALUE_PLOT).read_bytes()[
        :4
    ] == b"\x89PNG" and f"wrote the predicted value plot to {tmp_path / VALUE_PLOT}" in done.output


def test_a_value_priority_without_a_value_model_is_refused_before_scoring(tmp_path_factory, tmp_path):
    oo = offer_only(tmp_path_factory.mktemp("offer-only"))
    configs = _configs(
        oo.configs, tmp_path / "configs", "campaign:\n  max_offers: 10\n  priority: value_at_risk_x_profit\n"
    )
    out = tmp_path / "scores.parquet"
    with registry(oo.uri):
        done = CliRunner().invoke(
            app,
            [
                *score_args(oo, out, "--campaign", str(tmp_path / "c.csv")),
                "--no-store",
                "--no-track",
                "--configs",
                str(configs),
            ],
        )
    assert done.exit_code == 2
    assert "campaign.priority value_at_risk_x_profit needs a value model, and there is none" in done.output
    assert "set campaign.priority: profit in" in done.output and not out.exists()
