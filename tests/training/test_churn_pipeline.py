"""End to end on demo data with known truth: near the best achievable model, above the baselines."""

import dataclasses
import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from filelock import FileLock

from features.build import build_features
from features.config import FeaturesConfig
from features.sources import check_tables
from simulator.demo_data import generate
from training.config import ChurnConfig
from training.datasets import CutoffPlan, as_model_frame, build_panel, plan_for
from training.evaluate import metrics
from training.runs import start_tracking
from training.train import train_churn

pytestmark = pytest.mark.slow
N_CUSTOMERS = 20_000
CONFIG = ChurnConfig(model_name="churn-e2e", experiment="churn-e2e", bootstrap=100)


@dataclasses.dataclass(frozen=True)
class Trained:
    plan: CutoffPlan
    run_id: str
    report: dict
    predictions: pd.DataFrame
    out: Path


@pytest.fixture(scope="session")
def demo():
    data = generate(n_customers=N_CUSTOMERS, seed=7)
    return data, check_tables(data.tables)


@pytest.fixture(scope="session")
def run(demo, tmp_path_factory, worker_id):
    """Train once per session; pytest-xdist workers share the one run through files under a lock."""
    data, tables = demo
    base = tmp_path_factory.getbasetemp()
    root = (base if worker_id == "master" else base.parent) / "churn-e2e"
    features = FeaturesConfig()
    plan = plan_for(
        tables, features=features, config=CONFIG, test_cutoff=data.end - pd.Timedelta(days=data.horizon_days)
    )
    with FileLock(f"{root}.lock"):
        root.mkdir(exist_ok=True)
        start_tracking(CONFIG.experiment, uri=f"sqlite:///{root}/mlflow.db", artifacts=(root / "artifacts").as_uri())
        if not (root / "run_id").exists():
            panel = build_panel(tables, plan, config=features)
            result = train_churn(tables, panel, plan, features=features, config=CONFIG, out_dir=root / "out")
            result.predictions.to_parquet(root / "predictions.parquet")
            (root / "run_id").write_text(result.run_id)
    report = json.loads((root / "out" / "report.json").read_text())
    yield Trained(
        plan, (root / "run_id").read_text(), report, pd.read_parquet(root / "predictions.parquet"), root / "out"
    )
    mlflow.set_tracking_uri(None)


def test_model_is_near_the_truth_and_beats_every_baseline(demo, run):
    truth = demo[0].truth_churn[demo[0].truth_churn["cutoff"] == run.plan.test]
    rows = run.predictions.merge(truth[["customer_id", "p_churn"]], on="customer_id", how="left")
    assert rows["p_churn"].notna().all(), "truth covers every scored customer"
    y = rows["churned"].to_numpy()
    best, model = metrics(y, rows["p_churn"].to_numpy()), metrics(y, rows["model"].to_numpy())
    assert model["roc_auc"] >= best["roc_auc"] - 0.01, (model["roc_auc"], best["roc_auc"])
    assert model["brier"] <= 1.10 * best["brier"], (model["brier"], best["brier"])
    for name, diff in run.report["differences"].items():
        assert diff["roc_auc"]["better"] == "reference", (name, diff["roc_auc"])


def test_a_fresh_purchase_does_not_raise_churn_risk(demo, run):
    """Direction: give every scored customer an order the day before the cutoff; mean risk must not rise."""
    tables, plan = demo[1], run.plan
    model = mlflow.sklearn.load_model("models:/churn-e2e@champion")
    ids = run.predictions["customer_id"].astype("string")
    typical = tables.orders["amount"].median()
    fresh = pd.DataFrame(
        {
            "order_id": ("fresh-" + ids).astype("string"),
            "customer_id": ids,
            "ordered_at": (plan.test - pd.Timedelta(days=1)).as_unit("us"),
            "amount": typical,
        }
    )
    bought = dataclasses.replace(tables, orders=pd.concat([tables.orders, fresh], ignore_index=True))

    def risk(t):
        X = as_model_frame(build_features(t, cutoff=plan.test).loc[ids, list(model.feature_names_in_)])
        return model.predict_proba(X)[:, 1]

    before, after = risk(tables), risk(bought)
    assert after.mean() < before.mean()
    assert np.mean(after > before + 0.05) < 0.05, "few customers may look riskier after buying"


def test_outputs_for_dvc_and_mlflow(run):
    plan, out = run.plan, run.out
    for name in ("metrics.json", "report.json", "model_card.md", "drivers.csv", "model/MLmodel"):
        assert (out / name).exists(), name
    for chart in ("calibration", "roc", "gain", "importance", "shap_summary"):
        assert (out / "plots" / f"{chart}.png").stat().st_size > 1000
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["test_cutoff"] == f"{plan.test:%Y-%m-%d}" and set(summary) >= {"model", "recency", "bg_nbd"}
    card = (out / "model_card.md").read_text()
    assert "rfm_logistic" in card and "Top drivers" in card
    run_data = mlflow.get_run(run.run_id).data
    assert run_data.params["test_cutoff"] == f"{plan.test:%Y-%m-%d}"
    assert {"test_roc_auc", "test_roc_auc_lo", "test_ece", "baseline_bg_nbd_brier", "slice_new_roc_auc"} <= set(
        run_data.metrics
    )
    assert run_data.tags["champion_decision"] == "promoted"
    assert "The model beats bg_nbd" in run_data.tags["baselines"]
    signature = mlflow.models.get_model_info("models:/churn-e2e@champion").signature
    assert signature.inputs.input_names() == list(mlflow.sklearn.load_model(str(out / "model")).feature_names_in_)
