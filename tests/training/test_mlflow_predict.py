"""The registered champions work in plain MLflow, the runs are tidy, and a losing challenger leaves the champion's files.

``mlflow models predict`` and ``mlflow models serve`` run in a separate process, outside this repository (another
working folder, no PYTHONPATH), on each champion's own ``serving_input_example.json``, and must give what the
repository's own loaders give.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.serving_champions import champions

pytestmark = pytest.mark.slow
MLFLOW = str(Path(sys.executable).with_name("mlflow"))


@pytest.fixture(scope="module")
def champ(tmp_path_factory):
    return champions(tmp_path_factory.mktemp("mlflow-predict"))


def _env(uri: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    path = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the venv's uvicorn, as when activated
    return {**env, "PATH": path, "MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


def _example(name: str, tmp: Path) -> tuple[Path, Path]:
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}@champion", dst_path=str(tmp / name)))
    return local, local / "serving_input_example.json"


def _frame(example: Path) -> pd.DataFrame:
    split = json.loads(example.read_text())["dataframe_split"]
    return pd.DataFrame(split["data"], columns=split["columns"])


def _predict_cli(name: str, example: Path, uri: str, cwd: Path) -> list[dict]:
    out = cwd / f"{name}.json"
    done = subprocess.run(
        [MLFLOW, "models", "predict", "-m", f"models:/{name}@champion", "-i", str(example), "-o", str(out)]
        + ["--env-manager", "local"],
        cwd=cwd,
        env=_env(uri),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())["predictions"]


def test_churn_champion_predicts_in_plain_mlflow(champ, tmp_path):
    mlflow.set_tracking_uri(champ.uri)
    _, example = _example("retain-churn", tmp_path)
    predicted = _predict_cli("retain-churn", example, champ.uri, tmp_path)
    from serving.models import load_churn

    churn = load_churn(MlflowClient(champ.uri), "retain-churn", "champion")  # the service's fast path
    frame = _frame(example)
    expected = churn.predict(churn.encode(frame, len(frame)))
    np.testing.assert_allclose([row["p_churn"] for row in predicted], expected, rtol=1e-7)


def test_offer_champion_predicts_in_plain_mlflow(champ, tmp_path):
    from modeling.offer_model import OfferModel

    mlflow.set_tracking_uri(champ.uri)
    local, example = _example("retain-offers", tmp_path)
    predicted = pd.DataFrame(_predict_cli("retain-offers", example, champ.uri, tmp_path))
    expected = OfferModel.load(local / "artifacts" / "offer_model").table(_frame(example))
    assert predicted["offer"].tolist() == expected["offer"].tolist()
    np.testing.assert_allclose(predicted["profit_free_shipping"], expected["profit_free_shipping"], rtol=1e-9)


def test_signatures_agree_with_the_features(champ):
    """Every feature required, numbers as doubles; churn text features are strings, one per booster category."""
    from mlflow.models import Model
    from mlflow.types import DataType

    mlflow.set_tracking_uri(champ.uri)
    for name in ("retain-churn", "retain-offers"):
        meta = Model.load(f"models:/{name}@champion")
        inputs = meta.signature.inputs.inputs
        assert all(col.required for col in inputs), name
        example = meta.load_input_example(mlflow.artifacts.download_artifacts(f"models:/{name}@champion"))
        for col in inputs:
            numeric = pd.api.types.is_numeric_dtype(example[col.name])
            assert (col.type == DataType.double) == numeric, (name, col.name, col.type)
    churn = Model.load("models:/retain-churn@champion").signature.inputs
    model = mlflow.sklearn.load_model("models:/retain-churn@champion")
    assert churn.input_names() == list(model.feature_names_in_)
    text = [c.name for c in churn.inputs if c.type == DataType.string]
    assert text, "the demo has text features (region, gender, ...)"
    booster = model.calibrated_classifiers_[0].estimator.estimator.booster_
    assert len(text) == len(booster.pandas_categorical or [])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_churn_champion_serves_in_plain_mlflow(champ, tmp_path):
    mlflow.set_tracking_uri(champ.uri)
    _, example = _example("retain-churn", tmp_path)
    port = _free_port()
    server = subprocess.Popen(
        [MLFLOW, "models", "serve", "-m", "models:/retain-churn@champion", "-p", str(port), "-h", "127.0.0.1"]
        + ["--env-manager", "local", "-w", "1"],
        cwd=tmp_path,
        env=_env(champ.uri),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, server.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "mlflow models serve did not start in 120 s"
            time.sleep(1)
        reply = httpx.post(
            f"http://127.0.0.1:{port}/invocations",
            content=example.read_bytes(),
            headers={"content-type": "application/json"},
            timeout=30,
        )
        assert reply.status_code == 200, reply.text
        expected = _predict_cli("retain-churn", example, champ.uri, tmp_path)
        assert reply.json()["predictions"] == expected
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_runs_are_named_and_hold_data_gate_intervals_and_cards(champ):
    client = MlflowClient(champ.uri)
    for name, model in (("retain-churn", "churn"), ("retain-offers", "offers")):
        version = client.get_model_version_by_alias(name, "champion")
        run = client.get_run(version.run_id)
        assert run.info.run_name.startswith(f"{model} ") and ".." in run.info.run_name, run.info.run_name
        assert run.inputs.dataset_inputs, f"{name}: the training data is a dataset input"
        assert "gate_challenger_score" in run.data.metrics
        assert version.description.startswith("# "), f"{name}: the model card is the version's description"
        assert version.tags["champion_decision"] == "promoted" and "gate_score" in version.tags
        assert run.info.artifact_uri.startswith((champ.root / "artifacts").as_uri()), run.info.artifact_uri
    churn = client.get_run(client.get_model_version_by_alias("retain-churn", "champion").run_id).data.metrics
    diffs = [k for k in churn if k.startswith("diff_") and not k.endswith(("_lo", "_hi"))]
    slices = [k for k in churn if k.startswith("slice_") and not k.endswith(("_lo", "_hi"))]
    assert diffs and slices
    assert all(f"{k}_lo" in churn and f"{k}_hi" in churn for k in diffs + slices)


def test_a_losing_challenger_leaves_the_champions_files(champ, tmp_path):
    """Same data and settings again: a tie, so the champion stays and so do its files; the run's go to challenger/."""
    from features.sources import load_tables
    from tests.serving_champions import _train_churn, registry

    out = champ.root / "churn"
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and "challenger" not in p.parts}
    with registry(champ.uri):
        client = MlflowClient()
        versions = {v.version for v in client.search_model_versions("name = 'retain-churn'")}
        kept = client.get_model_version_by_alias("retain-churn", "champion")
        _train_churn(load_tables(champ.data_dir), champ.root)
        (new,) = {v.version for v in client.search_model_versions("name = 'retain-churn'")} - versions
        champion = client.get_model_version_by_alias("retain-churn", "champion")
    assert champion.version == kept.version != new  # other tests on this worker may have registered versions
    tags = client.get_model_version("retain-churn", new).tags
    assert tags["champion_decision"] == "kept" and "ties champion" in tags["champion_reason"]
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and "challenger" not in p.parts}
    assert after == before, "the champion's files changed"
    card = (out / "challenger" / "model_card.md").read_text()
    assert "kept the current champion" in card
    assert json.loads((out / "champion.json").read_text())["version"] == str(champion.version)


def test_an_offer_challenger_equal_to_the_champion_ties(champ):
    """The offer model trained again as the champion was: its held-out DR gain equals the champion's, a tie."""
    from features.config import OfferCatalog
    from features.sources import load_tables
    from tests.serving_champions import registry
    from training.offers.config import OfferModelConfig
    from training.offers.pipeline import train_offers

    catalog = OfferCatalog()
    config = OfferModelConfig(trials=0, learners=("s",), experiment="retain-offers")
    out = champ.root / "offers"
    champion_card = (out / "model_card.md").read_bytes()
    with registry(champ.uri):
        result = train_offers(
            load_tables(champ.data_dir, offers=catalog.names), catalog=catalog, config=config, out_dir=out
        )
    assert result.promoted is False and "ties champion v1" in result.gate, result.gate
    assert "its held-out score on the same rows" in result.gate
    assert (out / "model_card.md").read_bytes() == champion_card
    assert "ties champion v1" in (out / "challenger" / "model_card.md").read_text()
