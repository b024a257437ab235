"""The BentoML service: in-process through Service.to_asgi() for the fast cases, the real `bentoml serve` once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from analytics.config import AnalyticsConfig
from features.config import FeaturesConfig, load_config
from features.sources import load_tables
from serving import launch
from serving.batch import run_batch
from serving.config import ServingConfig
from serving.models import load_models
from tests.serving_champions import AS_OF, champions

ROOT = Path(__file__).resolve().parents[1]
KEY = "test-key-123"


@pytest.fixture(scope="module")
def champ(tmp_path_factory):
    c = champions(tmp_path_factory.mktemp("serving"))
    if not c.store.exists():
        config = load_config(ServingConfig, c.configs / "serving.yaml")
        run_batch(
            load_tables(c.data_dir, offers=("free_shipping", "discount_20")),
            as_of=AS_OF,
            models=load_models(config),
            config=config,
            features=FeaturesConfig(),
            lifecycle_config=AnalyticsConfig().lifecycle,
            out=c.root / "scores.parquet",
            store=c.store,
            track=False,
            progress=False,
        )
    return c


@pytest.fixture(scope="module")
def client(champ):
    before = os.environ.get("RETAIN_CONFIGS")
    os.environ["RETAIN_CONFIGS"] = str(champ.configs)
    from starlette.testclient import TestClient

    from serving.service import Retain

    try:
        with TestClient(Retain.to_asgi()) as c:
            yield c
    finally:
        if before is None:
            os.environ.pop("RETAIN_CONFIGS", None)
        else:
            os.environ["RETAIN_CONFIGS"] = before


@pytest.fixture(scope="module")
def known_ids(champ):
    import pandas as pd

    return pd.read_parquet(champ.root / "scores.parquet")["customer_id"].head(5).tolist()


def _plain(value):
    """A snapshot value as JSON carries it: NaN as null, numpy floats as floats."""
    if value is None or isinstance(value, str):
        return value
    return None if value != value else float(value)


def test_score_by_ids_marks_unknown_ids(client, known_ids):
    r = client.post("/score_ids", json={"customer_ids": [known_ids[0], "no-such-id", known_ids[1]]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [s["customer_id"] for s in body["scores"]] == [known_ids[0], "no-such-id", known_ids[1]]
    assert [s["known"] for s in body["scores"]] == [True, False, True]
    assert body["unknown"] == 1
    first = body["scores"][0]
    assert first["as_of"] == AS_OF and 0 <= first["churn_probability"] <= 1
    assert first["risk_band"] in ("low", "medium", "high") and first["lifecycle_stage"]
    assert set(first["offer_profit"]) == {"free_shipping", "discount_20"}
    assert first["reasons"] is None
    assert body["models"]["churn"].startswith("retain-churn v")


def test_score_by_ids_agrees_with_the_batch_file(champ, client, known_ids):
    import pandas as pd

    batch = pd.read_parquet(champ.root / "scores.parquet").set_index("customer_id")
    r = client.post("/score_ids", json={"customer_ids": known_ids, "reasons": True})
    for s in r.json()["scores"]:
        row = batch.loc[s["customer_id"]]
        assert s["churn_probability"] == pytest.approx(row["churn_probability"], abs=1e-12)
        assert s["lifecycle_stage"] == row["lifecycle_stage"] and s["recommended_offer"] == row["recommended_offer"]
        assert len(s["reasons"]) <= 3 and all(x["contribution"] > 0 for x in s["reasons"])


def test_score_by_features_equals_score_by_ids(champ, client, known_ids):
    from serving.store import SQLiteStore

    store = SQLiteStore(champ.store)
    hits, columns = store.lookup(known_ids[:2])
    rows = [
        {
            "customer_id": cid,
            "features": {f: _plain(columns[f][i]) for f in columns if f != "lifecycle_base_stage"},
            "lifecycle_base_stage": columns["lifecycle_base_stage"][i],
        }
        for i, cid in enumerate(hits)
    ]
    by_features = client.post("/score_features", json={"rows": rows, "as_of": AS_OF})
    by_ids = client.post("/score_ids", json={"customer_ids": hits})
    assert by_features.status_code == 200, by_features.text
    assert by_features.json()["scores"] == by_ids.json()["scores"]


@pytest.mark.parametrize(
    ("path", "payload", "status", "needle"),
    [
        ("/score_ids", {"customer_ids": []}, 400, "customer_ids"),
        ("/score_ids", {"customer_ids": "abc"}, 400, "customer_ids"),
        ("/score_ids", {"customer_ids": [1.5]}, 400, "customer_ids"),
        ("/score_ids", {"ids": ["a"]}, 400, "customer_ids"),
        ("/score_ids", {"customer_ids": ["a"] * 51}, 413, "limit is 50"),
        ("/score_features", {"rows": [], "as_of": AS_OF}, 400, "rows"),
        ("/score_features", {"rows": [{"customer_id": "a", "features": {}}], "as_of": "June"}, 400, "as_of"),
        ("/score_features", {"rows": [{"customer_id": "a"}], "as_of": AS_OF}, 400, "features"),
        ("/score_features", {"rows": [{"customer_id": "a", "features": {"nope": 1}}], "as_of": AS_OF}, 422, "nope"),
        (
            "/score_features",
            {"rows": [{"customer_id": "a", "features": {"sales_orders_all": "many"}}], "as_of": AS_OF},
            422,
            "sales_orders_all",
        ),
        (
            "/score_features",
            {"rows": [{"customer_id": "a", "features": {}, "lifecycle_base_stage": "zombie"}], "as_of": AS_OF},
            400,
            "lifecycle_base_stage",
        ),
    ],
)
def test_bad_payloads_get_4xx_naming_the_field(client, path, payload, status, needle):
    r = client.post(path, json=payload)
    assert r.status_code == status, r.text
    assert needle in r.text


def test_malformed_json_is_a_client_error(client):
    r = client.post("/score_ids", content=b"{not json", headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500


def test_api_key_when_set(client, known_ids, monkeypatch):
    monkeypatch.setenv("RETAIN_API_KEY", KEY)
    assert client.post("/score_ids", json={"customer_ids": known_ids[:1]}).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.post("/score_ids", json={"customer_ids": known_ids[:1]}, headers=wrong).status_code == 401
    ok = {"Authorization": f"Bearer {KEY}"}
    assert client.post("/score_ids", json={"customer_ids": known_ids[:1]}, headers=ok).status_code == 200
    assert client.get("/readyz").status_code == 200  # probes and docs stay open
    assert client.get("/docs.json").status_code == 200
    r = client.post("/reload", headers=ok)
    assert r.status_code == 200 and r.json()["churn"].startswith("retain-churn v")


def test_reload_is_disabled_without_a_key(client, monkeypatch):
    monkeypatch.delenv("RETAIN_API_KEY", raising=False)
    r = client.post("/reload")
    assert r.status_code == 403 and "RETAIN_API_KEY" in r.text


def test_health_and_openapi(client):
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200
    paths = client.get("/docs.json").json()["paths"]
    assert {"/score_ids", "/score_features", "/reload"} <= set(paths)


@pytest.mark.parametrize("every", [3, 0])
def test_every_nth_response_asks_the_client_to_reconnect(tmp_path, monkeypatch, every):
    """Connection recycling spreads keep-alive connections over the workers; 0 turns it off; probes are exempt."""
    from starlette.responses import PlainTextResponse
    from starlette.testclient import TestClient

    from serving.service import Gate

    (tmp_path / "serving.yaml").write_text(f"requests_per_connection: {every}\n")
    monkeypatch.setenv("RETAIN_CONFIGS", str(tmp_path))
    monkeypatch.delenv("RETAIN_API_KEY", raising=False)
    gate = Gate(PlainTextResponse("ok"))
    c = TestClient(gate)  # no lifespan: the stand-in app only answers HTTP
    closing = [c.post("/score_ids").headers.get("connection") == "close" for _ in range(7)]
    probes = [c.get("/readyz").headers.get("connection") for _ in range(4)]
    expected = [(i + 1) % every == 0 for i in range(7)] if every else [False] * 7
    assert closing == expected
    assert probes == [None] * 4


def test_refuses_to_start_without_a_champion(champ, tmp_path):
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "serving.yaml").write_text(f"store: {champ.store}\nchurn_model: not-trained\n")
    r = subprocess.run(
        [sys.executable, "-m", "retain", "serve", "--configs", str(configs), "--port", str(launch.free_port())],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MLFLOW_TRACKING_URI": champ.uri},
    )
    assert r.returncode == 2
    assert "refusing to start" in r.stderr and "not-trained@champion" in r.stderr


def _start(champ, port: int, key: str | None, workers: int = 1, log: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "MLFLOW_TRACKING_URI": champ.uri, "RETAIN_CONFIGS": str(champ.configs)}
    env["RETAIN_WORKERS"] = str(workers)
    env.pop("RETAIN_API_KEY", None)
    if key:
        env["RETAIN_API_KEY"] = key
    return launch.start(port, env, log=log)


def _new_churn_champion(uri: str) -> tuple[str, str]:
    """Register the churn champion's model again as a new version and make it champion: (old, new) version."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    old = client.get_model_version_by_alias("retain-churn", "champion")
    new = client.create_model_version("retain-churn", old.source, run_id=old.run_id)
    client.set_registered_model_alias("retain-churn", "champion", new.version)
    return str(old.version), str(new.version)


def _served_version(base: str, ids: list[str], headers: dict) -> str:
    """The churn model version of one request on a new connection (so it may land on any worker)."""
    r = httpx.post(f"{base}/score_ids", json={"customer_ids": ids}, headers={**headers, "Connection": "close"})
    assert r.status_code == 200, r.text
    return r.json()["models"]["churn"]


@pytest.mark.slow
def test_real_bentoml_serve_end_to_end(champ, known_ids):
    """Two real servers on 127.0.0.1, auth off and on: ids, features, bad payloads, unknown ids, oversize."""
    ports = {"open": launch.free_port(), "keyed": launch.free_port()}
    keyed_log = champ.root / "keyed-server.log"
    procs = {
        "open": _start(champ, ports["open"], None),
        "keyed": _start(champ, ports["keyed"], KEY, workers=2, log=keyed_log),
    }
    old_version = None
    try:
        for name, proc in procs.items():
            launch.wait_ready(f"http://127.0.0.1:{ports[name]}", proc)
        base = f"http://127.0.0.1:{ports['open']}"
        r = httpx.post(f"{base}/score_ids", json={"customer_ids": [known_ids[0], "ghost"], "reasons": True})
        assert r.status_code == 200, r.text
        assert [s["known"] for s in r.json()["scores"]] == [True, False]
        features = {"sales_orders_all": 2, "sales_days_since_last_order": 40.0, "demo_region": "North"}
        r = httpx.post(
            f"{base}/score_features", json={"rows": [{"customer_id": "x", "features": features}], "as_of": AS_OF}
        )
        assert r.status_code == 200, r.text
        assert 0 <= r.json()["scores"][0]["churn_probability"] <= 1
        assert httpx.post(f"{base}/score_ids", json={"customer_ids": []}).status_code == 400
        assert (
            httpx.post(f"{base}/score_ids", content=b"[", headers={"content-type": "application/json"}).status_code
            < 500
        )
        assert httpx.post(f"{base}/score_ids", json={"customer_ids": ["a"] * 51}).status_code == 413
        assert httpx.get(f"{base}/docs.json").status_code == 200
        with httpx.Client(base_url=base) as pool:  # every 100th response closes its connection; clients reconnect
            answers = [pool.post("/score_ids", json={"customer_ids": known_ids[:1]}) for _ in range(210)]
        assert all(r.status_code == 200 for r in answers)
        assert sum(r.headers.get("connection") == "close" for r in answers) >= 2

        keyed = f"http://127.0.0.1:{ports['keyed']}"
        assert httpx.post(f"{keyed}/score_ids", json={"customer_ids": known_ids[:1]}).status_code == 401
        ok = {"Authorization": f"Bearer {KEY}"}
        r = httpx.post(f"{keyed}/score_ids", json={"customer_ids": known_ids[:1]}, headers=ok)
        assert r.status_code == 200 and r.json()["scores"][0]["known"]
        assert httpx.get(f"{keyed}/readyz").status_code == 200

        # a new champion without downtime, on 2 workers: one takes /reload, the other follows
        old_version, new_version = _new_churn_champion(champ.uri)
        r = httpx.post(f"{keyed}/reload", headers=ok)
        assert r.status_code == 200 and r.json()["churn"] == f"retain-churn v{new_version}"
        deadline = time.monotonic() + 90
        while "followed a reload" not in keyed_log.read_text() and time.monotonic() < deadline:
            assert _served_version(keyed, known_ids[:1], ok).startswith("retain-churn v")  # never an error
        assert "followed a reload" in keyed_log.read_text(), keyed_log.read_text()[-2000:]
        served = {_served_version(keyed, known_ids[:1], ok) for _ in range(30)}
        assert served == {f"retain-churn v{new_version}"}
    finally:
        if old_version is not None:
            from mlflow import MlflowClient

            MlflowClient(tracking_uri=champ.uri).set_registered_model_alias("retain-churn", "champion", old_version)
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
