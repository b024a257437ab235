"""``bentoml build`` packs the service offline (bentofile.yaml, no locking over the network), and the built Bento
serves the registry's champions."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from features.sources import load_tables
from serving.launch import SERVER_ENV, free_port, server_env
from tests.serving_champions import champions, with_snapshot

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
BENTOML = str(Path(sys.executable).with_name("bentoml"))


def test_bentofile_builds_offline_from_the_lock():
    spec = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    assert spec["service"] == "serving.service:Retain"
    assert spec["python"] == {"requirements_txt": "requirements.lock", "lock_packages": False}


@pytest.fixture(scope="module")
def champ(tmp_path_factory):
    return with_snapshot(champions(tmp_path_factory.mktemp("bento")))


def test_the_built_bento_serves_the_champions(champ, tmp_path):
    env = {
        **os.environ,
        "BENTOML_HOME": str(tmp_path / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
        "MLFLOW_TRACKING_URI": champ.uri,
        "RETAIN_CONFIGS": str(champ.configs),
        # no index reachable: a build that tried to resolve packages would fail here
        "PIP_NO_INDEX": "1",
        "UV_OFFLINE": "1",
    }
    env.pop("PYTHONPATH", None)
    built = subprocess.run(
        [BENTOML, "build", "--output", "tag"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert built.returncode == 0, built.stderr[-3000:]
    tag = built.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    assert tag.startswith("retain:"), built.stdout
    bento = Path(env["BENTOML_HOME"]) / "bentos" / "retain" / tag.split(":")[1]
    requirements = (bento / "env" / "python" / "requirements.txt").read_text()
    assert "lightgbm==" in requirements and "mlflow==" in requirements
    assert not (bento / "env" / "python" / "requirements.lock.txt").exists(), "packages were locked"
    assert (bento / "src" / "serving" / "service.py").exists() and not (bento / "src" / "training").exists()
    envs = {e["name"]: e["value"] for e in yaml.safe_load((bento / "bento.yaml").read_text())["envs"]}
    assert {k: envs.get(k) for k in SERVER_ENV} == SERVER_ENV  # the service's own environment: telemetry off

    port = free_port()
    server = subprocess.Popen(
        [BENTOML, "serve", tag, "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        env=server_env(env, workers=1),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, server.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the Bento did not become ready in 180 s"
            time.sleep(1)
        known = load_tables(champ.data_dir).orders["customer_id"].iloc[0]
        reply = httpx.post(f"http://127.0.0.1:{port}/score_ids", json={"customer_ids": [str(known)]}, timeout=30)
        assert reply.status_code == 200, reply.text
        score = reply.json()["scores"][0]
        assert score["churn_model_version"].startswith("retain-churn v")
        assert score["offer_model_version"].startswith("retain-offers v")
        assert score["churn_probability"] is not None
    finally:
        server.terminate()
        server.wait(timeout=30)
