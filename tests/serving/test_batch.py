"""Batch scoring: every customer once, atomic and reproducible files, the snapshot refreshed, the run logged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from modeling.lifecycle import risk_band
from serving.batch_tracking import EXPERIMENT
from serving.schema import NO_ORDER
from serving.store import SQLiteStore
from tests.conftest import copy_configs
from tests.logged_models import logged_churn
from tests.serving_champions import AS_OF, champions, loaded, offer_only, score_args, score_batch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def champ(tmp_path_factory):
    return champions(tmp_path_factory.mktemp("serving"))


@pytest.fixture(scope="module")
def setup(champ):
    return loaded(champ)


def _run(setup, out, **kw):
    return score_batch(*setup, out, **kw)


def test_scores_every_customer_once_and_refreshes_the_snapshot(setup, tmp_path):
    store = tmp_path / "store.sqlite"
    result = _run(setup, tmp_path / "scores.parquet", store=store, track=True)
    scores = pd.read_parquet(result.out)
    assert len(scores) == result.customers > 1000
    assert scores["customer_id"].is_unique and scores["customer_id"].is_monotonic_increasing
    scored = scores["churn_probability"].notna()
    snapshot = SQLiteStore(store)
    features = snapshot.frame().set_index("customer_id").loc[scores["customer_id"]]
    assert (scored.to_numpy() == (features["sales_orders_all"] > 0).to_numpy()).all()  # buyers, and only they
    expected = logged_churn(setup[2], features[scored.to_numpy()])  # MLflow's own model on the stored features
    np.testing.assert_allclose(scores.loc[scored, "churn_probability"], expected, atol=1e-12)
    bands = risk_band(scores.loc[scored, "churn_probability"], setup[0].lifecycle.risk_bands).astype(str)
    assert (scores.loc[scored, "risk_band"] == bands).all()
    assert scores["lifecycle_stage"].notna().all()
    assert snapshot.as_of == AS_OF and snapshot.rows == len(scores)
    hits, columns = snapshot.lookup([scores["customer_id"].iloc[0], "ghost"])
    assert hits == [scores["customer_id"].iloc[0]] and "lifecycle_base_stage" in columns
    run = mlflow.get_run(result.run_id)
    assert run.data.metrics["customers"] == len(scores)
    assert run.data.metrics["churn_scored"] == scored.sum() and run.data.metrics["churn_unscored"] == (~scored).sum()
    assert sum(run.data.metrics[f"churn_probability_bin_{i}"] for i in range(10)) == scored.sum()
    assert run.data.metrics["churn_probability_mean"] == pytest.approx(scores["churn_probability"].mean())
    assert run.data.params["as_of"] == AS_OF
    assert mlflow.get_experiment_by_name(EXPERIMENT) is not None


def test_prospects_are_in_the_file_with_null_churn_fields_and_the_reason(setup, tmp_path):
    config, tables, _ = setup
    scores = pd.read_parquet(_run(setup, tmp_path / "scores.parquet", reasons=True, chunk_size=300).out)
    first = tables.orders[tables.orders["ordered_at"] < AS_OF].groupby("customer_id")["ordered_at"].min()
    buyer = scores["customer_id"].isin(first.index.astype(str))
    assert 0 < (~buyer).sum() < len(scores)
    prospects, buyers = scores[~buyer], scores[buyer]
    assert prospects["churn_probability"].isna().all() and prospects["risk_band"].isna().all()
    assert (prospects["churn_unscored_reason"] == NO_ORDER).all() and prospects["reason_1"].isna().all()
    assert not (prospects["lifecycle_stage"] == "at_risk").any() and (prospects["lifecycle_stage"] == "prospect").any()
    assert prospects["recommended_offer"].notna().all() and prospects["profit_discount_20"].notna().all()
    assert buyers["churn_probability"].notna().all() and buyers["churn_unscored_reason"].isna().all()
    assert pd.api.types.is_float_dtype(scores["churn_probability"])


def test_rerun_gives_an_identical_file_whatever_the_chunk_size(setup, tmp_path):
    a = _run(setup, tmp_path / "a.parquet", chunk_size=100_000).out.read_bytes()
    b = _run(setup, tmp_path / "a.parquet", chunk_size=100_000).out.read_bytes()
    assert a == b
    small = pd.read_parquet(_run(setup, tmp_path / "b.parquet", chunk_size=97).out)
    pd.testing.assert_frame_equal(small, pd.read_parquet(tmp_path / "a.parquet"))


def test_csv_on_request_with_reasons(setup, tmp_path):
    out = _run(setup, tmp_path / "scores.csv", fmt="csv", reasons=True, chunk_size=500).out
    scores = pd.read_csv(out)
    assert {"reason_1", "reason_1_text", "reason_1_value", "reason_1_contribution"} <= set(scores.columns)
    assert {"next_action", "contact_at", "currency", "profit_free_shipping", "offer_unscored_reason"} <= set(
        scores.columns
    )
    said = scores["reason_1_text"].dropna()
    assert len(said) > 100 and not said.str.contains("_").any()  # words, not feature names
    assert scores["customer_id"].is_unique
    assert not list(tmp_path.glob(".*.tmp"))


def test_killed_mid_run_leaves_no_partial_output(champ, tmp_path):
    """A real `retain score` process killed with SIGKILL while writing: no output file; the next run cleans up."""
    out = tmp_path / "scores.parquet"
    env = {**os.environ, "MLFLOW_TRACKING_URI": champ.uri}
    cmd = [
        sys.executable,
        "-m",
        "retain",
        *score_args(champ, out),
        "--chunk-size",
        "3",
        "--reasons",
        "--store",
        str(tmp_path / "store.sqlite"),
        "--no-track",
        "--configs",
        str(champ.configs),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while not list(tmp_path.glob(".scores.parquet.*.tmp")):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the batch never started writing"
        time.sleep(0.01)
    time.sleep(0.2)  # well inside the chunk loop
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists() and not (tmp_path / "store.sqlite").exists()
    done = subprocess.run(
        [*cmd[: cmd.index("--chunk-size")], "--no-track", "--no-store", "--configs", str(champ.configs)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(pd.read_parquet(out)) > 1000
    assert not list(tmp_path.glob(".scores.parquet.*.tmp"))


def _score_cli(champ, tmp_path, configs: Path, uri: str, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "retain", "score", "--as-of", AS_OF, "--data", str(champ.data_dir)]
    cmd += ["--out", str(tmp_path / "scores.parquet"), "--configs", str(configs), "--no-track", *extra]
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_score_command_with_only_an_offer_champion(tmp_path_factory, tmp_path):
    """A shop with customers and a campaign log but no orders, and no churn champion: offers, churn null, said so."""
    oo = offer_only(tmp_path_factory.mktemp("offer-only"))
    done = _score_cli(oo, tmp_path, oo.configs, oo.uri, "--store", str(tmp_path / "store.sqlite"))
    assert done.returncode == 0, done.stderr[-2000:]
    reason = "no churn model: no retain-churn@champion in the registry"
    assert reason in done.stdout
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    assert len(scores) > 1000
    assert scores["churn_probability"].isna().all() and scores["risk_band"].isna().all()
    assert (scores["churn_unscored_reason"] == reason).all() and (scores["churn_model_version"] == reason).all()
    assert scores["offer_model_version"].str.startswith("retain-offers v").all()
    assert scores["recommended_offer"].isin(["none", "free_shipping", "discount_20"]).all()
    assert scores[["profit_free_shipping", "profit_discount_20"]].notna().all().all()
    reference = pd.read_parquet(oo.root / "scores.parquet")  # the fixture's in-process batch run
    pd.testing.assert_frame_equal(scores, reference)
    assert SQLiteStore(tmp_path / "store.sqlite").rows == len(scores)


def test_score_command_refuses_when_neither_champion_is_registered(champ, tmp_path):
    configs = copy_configs(tmp_path / "configs", serving="churn_model: not-trained\noffer_model: not-offered\n")
    done = _score_cli(champ, tmp_path, configs, champ.uri, "--no-store")
    assert done.returncode == 2
    assert "no not-trained@champion" in done.stderr and "no not-offered@champion" in done.stderr
    assert "train-churn" in done.stderr and "train-offers" in done.stderr
    assert not (tmp_path / "scores.parquet").exists()


def test_refuses_features_that_do_not_match_the_model(setup, tmp_path):
    from dataclasses import replace

    from modeling.errors import ModelError

    config, tables, models = setup
    odd = replace(models, churn=replace(models.churn, features=(*models.churn.features, "sales_made_up_feature")))
    with pytest.raises(ModelError, match="sales_made_up_feature"):
        score_batch(config, tables, odd, tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()


def test_the_service_store_sees_a_refreshed_snapshot_without_reopening(tmp_path):
    from serving.store import write_snapshot

    path = tmp_path / "store.sqlite"
    frame = pd.DataFrame({"customer_id": ["a", "b"], "x": [1.0, None], "s": ["u", None]})
    write_snapshot(frame, path, as_of="2026-01-01", columns=["x", "s"])
    store = SQLiteStore(path)
    hits, columns = store.lookup(["b", "zz", "a"])
    assert hits == ["b", "a"] and columns["s"] == [None, "u"]
    np.testing.assert_array_equal(columns["x"], [np.nan, 1.0])
    write_snapshot(frame.assign(x=[5.0, 6.0]), path, as_of="2026-02-01", columns=["x", "s"])
    assert store.lookup(["a"])[1]["x"].tolist() == [5.0]
    assert store.as_of == "2026-02-01"


def test_score_command_picks_the_format_from_the_extension_and_writes_the_campaign_export(champ, tmp_path):
    """`--out s.csv` is CSV without --csv; `--campaign` lists who to contact, with what and when."""
    from typer.testing import CliRunner

    from retain.cli import app

    out, campaign = tmp_path / "s.csv", tmp_path / "campaign.csv"
    args = ["score", "--as-of", AS_OF, "--data", str(champ.data_dir), "--out", str(out), "--campaign", str(campaign)]
    done = CliRunner().invoke(app, [*args, "--no-store", "--no-track", "--configs", str(champ.configs)])
    assert done.exit_code == 0, done.output
    assert out.read_bytes()[:11] == b"customer_id"  # CSV, not Parquet's PAR1
    scores = pd.read_csv(out, dtype={"customer_id": "string"})
    sends = pd.read_csv(campaign, dtype={"customer_id": "string"})
    assert list(sends.columns) == [
        "customer_id", "action", "offer", "send_at", "lifecycle_stage", "risk_band", "churn_probability",
        "predicted_value", "value_at_risk", "expected_profit", "currency",
    ]  # fmt: skip
    assert f"wrote {len(sends):,} sends to the campaign export" in done.output
    assert len(sends) == scores["next_action"].notna().sum() > 1000
    assert sends["send_at"].is_monotonic_increasing and (sends["send_at"] >= f"{AS_OF}T00:00:00Z").all()
    joined = sends.set_index("customer_id").join(scores.set_index("customer_id"), rsuffix="_score")
    assert (joined["action"] == joined["next_action"]).all() and (joined["send_at"] == joined["contact_at"]).all()
    assert (joined["offer"] == joined["recommended_offer"]).all()
    paid = joined[joined["offer"] != "none"]
    assert len(paid) and all(
        row["expected_profit"] == pytest.approx(row[f"profit_{row['offer']}"]) for _, row in paid.iterrows()
    )
    assert joined.loc[joined["offer"] == "none", "expected_profit"].isna().all()
    cart = joined[joined["lifecycle_stage"] == "abandoned_cart"]
    assert (cart["action"] == "cart_reminder").all()
