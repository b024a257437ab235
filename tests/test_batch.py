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

from features.config import load_config
from features.sources import load_tables
from serving.batch import EXPERIMENT
from serving.config import ServingConfig
from serving.models import load_models
from serving.store import SQLiteStore
from tests.serving_champions import AS_OF, champions, score_batch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def champ(tmp_path_factory):
    return champions(tmp_path_factory.mktemp("serving"))


@pytest.fixture(scope="module")
def setup(champ):
    config = load_config(ServingConfig, champ.configs / "serving.yaml")
    tables = load_tables(champ.data_dir, offers=("free_shipping", "discount_20"))
    return config, tables, load_models(config)


def _run(setup, out, **kw):
    return score_batch(*setup, out, **kw)


def test_scores_every_customer_once_and_refreshes_the_snapshot(setup, tmp_path):
    store = tmp_path / "store.sqlite"
    result = _run(setup, tmp_path / "scores.parquet", store=store, track=True)
    scores = pd.read_parquet(result.out)
    assert len(scores) == result.customers > 1000
    assert scores["customer_id"].is_unique and scores["customer_id"].is_monotonic_increasing
    assert scores["churn_probability"].between(0, 1).all()
    assert set(scores["risk_band"]) <= {"low", "medium", "high"} and scores["lifecycle_stage"].notna().all()
    snapshot = SQLiteStore(store)
    assert snapshot.as_of == AS_OF and snapshot.rows == len(scores)
    hits, columns = snapshot.lookup([scores["customer_id"].iloc[0], "ghost"])
    assert hits == [scores["customer_id"].iloc[0]] and "lifecycle_base_stage" in columns
    run = mlflow.get_run(result.run_id)
    assert run.data.metrics["customers"] == len(scores)
    assert sum(run.data.metrics[f"churn_probability_bin_{i}"] for i in range(10)) == len(scores)
    assert run.data.params["as_of"] == AS_OF
    assert mlflow.get_experiment_by_name(EXPERIMENT) is not None


def test_rerun_gives_an_identical_file_whatever_the_chunk_size(setup, tmp_path):
    a = _run(setup, tmp_path / "a.parquet", chunk_size=100_000).out.read_bytes()
    b = _run(setup, tmp_path / "a.parquet", chunk_size=100_000).out.read_bytes()
    assert a == b
    small = pd.read_parquet(_run(setup, tmp_path / "b.parquet", chunk_size=97).out)
    pd.testing.assert_frame_equal(small, pd.read_parquet(tmp_path / "a.parquet"))


def test_csv_on_request_with_reasons(setup, tmp_path):
    out = _run(setup, tmp_path / "scores.csv", fmt="csv", reasons=True, chunk_size=500).out
    scores = pd.read_csv(out)
    assert {"reason_1", "reason_1_value", "reason_1_contribution", "profit_free_shipping"} <= set(scores.columns)
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
        "score",
        "--as-of",
        AS_OF,
        "--data",
        str(champ.data_dir),
        "--out",
        str(out),
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


def test_refuses_features_that_do_not_match_the_model(setup, tmp_path):
    from dataclasses import replace

    from serving.models import ModelError

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
