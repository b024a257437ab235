"""The BentoML service: in-process through Service.to_asgi() for the fast cases, the real `bentoml serve` once."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import httpx
import pytest

from serving import launch
from serving.schema import LIFECYCLE_COLUMNS, NO_ORDER
from tests.conftest import copy_configs
from tests.serving_champions import AS_OF, champions, offer_only, register_version, serve_checked, with_snapshot

ROOT = Path(__file__).resolve().parents[2]
KEY = "test-key-123"


@pytest.fixture(scope="module")
def champ(tmp_path_factory):
    return with_snapshot(champions(tmp_path_factory.mktemp("serving")))


@contextlib.contextmanager
def _service(configs: Path, uri: str | None = None):
    """The service in-process (Service.to_asgi) on the configs in ``configs`` (and the registry at ``uri``)."""
    from starlette.testclient import TestClient

    from serving.service import Retain

    env = {"RETAIN_CONFIGS": str(configs), **({} if uri is None else {"MLFLOW_TRACKING_URI": uri})}
    with mock.patch.dict(os.environ, env), TestClient(Retain.to_asgi()) as c:  # the environment comes back after
        yield c


@pytest.fixture(scope="module")
def client(champ):
    with _service(champ.configs) as c:
        yield c


def _batch_ids(champ, scored: bool) -> list[str]:
    import pandas as pd

    scores = pd.read_parquet(champ.root / "scores.parquet")
    return scores.loc[scores["churn_probability"].notna() == scored, "customer_id"].head(5).tolist()


@pytest.fixture(scope="module")
def known_ids(champ):
    """Buyers: customers with a churn probability in the batch file."""
    return _batch_ids(champ, scored=True)


@pytest.fixture(scope="module")
def prospect_ids(champ):
    """Customers without an order before the as-of date: in the snapshot, without a churn probability."""
    return _batch_ids(champ, scored=False)


def _plain(value):
    """A file or snapshot value as JSON carries it: NaN and NA as null, numpy floats as floats."""
    import pandas as pd

    if isinstance(value, str):
        return value
    return None if value is None or pd.isna(value) else float(value)


def _records(frame) -> list[dict]:
    """Flat score rows (a batch file, ``score_frame``) as the HTTP scores carry them, without reason columns."""
    keep = [c for c in frame.columns if not c.startswith("reason_")]
    return [{c: _plain(v) for c, v in zip(keep, row, strict=True)} for row in frame[keep].itertuples(index=False)]


def _fields(score: dict) -> dict:
    """An HTTP score without what a file row does not have."""
    return {k: v for k, v in score.items() if k not in ("known", "reasons")}


def _by_score_frame(champ, rows: list[dict]) -> list[dict]:
    """What the batch scorer (``serving.scoring.score_frame``) gives for the rows of a /score_features request,
    as a feature frame with the snapshot's columns and types (absent features missing)."""
    import pandas as pd

    from features.config import FeaturesConfig
    from serving.config import ServingConfig
    from serving.job import ScoringJob
    from serving.models import load_models
    from serving.scoring import score_frame
    from serving.store import SQLiteStore

    template = SQLiteStore(champ.store).frame().set_index("customer_id")
    values = [{**r["features"], **{c: r.get(c) for c in LIFECYCLE_COLUMNS}} for r in rows]
    index = pd.Index([r["customer_id"] for r in rows], name="customer_id")
    frame = pd.DataFrame(values, index=index).reindex(columns=template.columns).astype(template.dtypes.to_dict())
    config = ServingConfig.load(champ.configs)
    job = ScoringJob(AS_OF, load_models(config, tracking_uri=champ.uri), config, FeaturesConfig())
    return _records(score_frame(frame, job))


def test_score_by_ids_marks_unknown_ids_and_equals_the_batch_file(champ, client, known_ids):
    import pandas as pd

    r = client.post("/score_ids", json={"customer_ids": [known_ids[0], "no-such-id", known_ids[1]]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [s["customer_id"] for s in body["scores"]] == [known_ids[0], "no-such-id", known_ids[1]]
    assert [s["known"] for s in body["scores"]] == [True, False, True]
    assert body["unknown"] == 1
    batch = pd.read_parquet(champ.root / "scores.parquet").set_index("customer_id").loc[known_ids[:2]]
    first, unknown, second = body["scores"]
    assert [_fields(first), _fields(second)] == _records(batch.reset_index())  # every field, exactly
    assert first["reasons"] is None and "offer_profit" not in first
    kept = {"customer_id", "known", "currency", "churn_model_version", "offer_model_version", "value_model_version"}
    assert {k for k, v in unknown.items() if v is not None} == kept and unknown["currency"] == "EUR"
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


def test_prospects_by_id_have_null_churn_fields_the_reason_a_stage_and_offers(champ, client, prospect_ids):
    import pandas as pd

    assert len(prospect_ids) == 5
    r = client.post("/score_ids", json={"customer_ids": prospect_ids, "reasons": True})
    assert r.status_code == 200, r.text
    batch = pd.read_parquet(champ.root / "scores.parquet").set_index("customer_id")
    for s in r.json()["scores"]:
        assert s["known"] and s["churn_probability"] is None and s["risk_band"] is None
        assert s["churn_unscored_reason"] == NO_ORDER and s["reasons"] == []
        assert s["lifecycle_stage"] in ("prospect", "abandoned_cart")
        row = batch.loc[s["customer_id"]]
        assert s["lifecycle_stage"] == row["lifecycle_stage"] and s["recommended_offer"] == row["recommended_offer"]
        for offer in ("free_shipping", "discount_20"):
            assert s[f"profit_{offer}"] == pytest.approx(row[f"profit_{offer}"], abs=1e-12)
        assert (s["next_action"], s["contact_at"]) == (row["next_action"], row["contact_at"])
    assert r.json()["models"]["churn"].startswith("retain-churn v")


def test_score_by_features_without_orders_is_a_prospect(champ, client):
    """The order count decides: 0 or absent is no order before the as-of date; the same row with orders is scored,
    exactly as the batch scorer scores the same rows."""
    rows = [
        {"customer_id": "p0", "features": {"sales_orders_all": 0, "demo_region": "North"}},
        {"customer_id": "p1", "features": {"demo_region": "North"}, "lifecycle_base_stage": "prospect"},
        {"customer_id": "b", "features": {"sales_orders_all": 2, "sales_days_since_last_order": 40.0}},
    ]
    r = client.post("/score_features", json={"rows": rows, "as_of": AS_OF, "reasons": True})
    assert r.status_code == 200, r.text
    p0, p1, b = r.json()["scores"]
    for s in (p0, p1):
        assert s["churn_probability"] is None and s["churn_unscored_reason"] == NO_ORDER and s["reasons"] == []
        assert s["recommended_offer"] is not None and s["profit_discount_20"] is not None
        assert s["known"] is None  # the caller's own features, not the snapshot's
    assert p1["lifecycle_stage"] == "prospect"
    assert b["churn_probability"] is not None and b["churn_unscored_reason"] is None
    assert [_fields(s) for s in (p0, p1, b)] == _by_score_frame(champ, rows)


def test_score_by_features_equals_score_by_ids(champ, client, known_ids, prospect_ids):
    from serving.store import SQLiteStore

    store = SQLiteStore(champ.store)
    hits, columns = store.lookup([*known_ids[:2], prospect_ids[0]])
    rows = [
        {
            "customer_id": cid,
            "features": {f: _plain(columns[f][i]) for f in columns if f not in LIFECYCLE_COLUMNS},
            **{c: columns[c][i] for c in LIFECYCLE_COLUMNS},
        }
        for i, cid in enumerate(hits)
    ]
    by_features = client.post("/score_features", json={"rows": rows, "as_of": AS_OF})
    by_ids = client.post("/score_ids", json={"customer_ids": hits})
    assert by_features.status_code == 200, by_features.text
    features_scores, ids_scores = by_features.json()["scores"], by_ids.json()["scores"]
    assert [s.pop("known") for s in features_scores] == [None] * 3 and [s.pop("known") for s in ids_scores] == [
        True
    ] * 3
    assert features_scores == ids_scores


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
        ("/score_features", {"rows": [{"customer_id": "a", "features": {}}], "as_of": "2031-13-45"}, 422, "as_of"),
        (
            "/score_features",
            {"rows": [{"customer_id": "a", "features": {"demo_region": 5}}], "as_of": AS_OF},
            422,
            "rows[0].features.demo_region: 5 is not a known category",
        ),
        (
            "/score_features",
            {
                "rows": [
                    {"customer_id": "a", "features": {}},
                    {"customer_id": "b", "features": {"demo_region": "Mars"}},
                ],
                "as_of": AS_OF,
            },
            422,
            "rows[1].features.demo_region: 'Mars' is not a known category",
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

    from serving.http_gate import Gate
    from serving.http_health import HEALTH

    copy_configs(tmp_path, serving=f"requests_per_connection: {every}\n")
    monkeypatch.setenv("RETAIN_CONFIGS", str(tmp_path))
    monkeypatch.delenv("RETAIN_API_KEY", raising=False)
    monkeypatch.setitem(HEALTH, "check", lambda: (None, None))  # a ready worker, whatever ran before
    gate = Gate(PlainTextResponse("ok"), document=dict)
    c = TestClient(gate)  # no lifespan: the stand-in app only answers HTTP
    closing = [c.post("/score_ids").headers.get("connection") == "close" for _ in range(7)]
    probes = [c.get("/readyz").headers.get("connection") for _ in range(4)]
    expected = [(i + 1) % every == 0 for i in range(7)] if every else [False] * 7
    assert closing == expected
    assert probes == [None] * 4


def test_offer_only_registry_over_http(tmp_path_factory):
    """Only an offer champion (a shop without orders): ready, churn fields null with the reason, offers filled."""
    import pandas as pd

    oo = offer_only(tmp_path_factory.mktemp("offer-only"))
    batch = pd.read_parquet(oo.root / "scores.parquet").set_index("customer_id")
    ids = batch.index[:5].tolist()
    reason = "no churn model: no retain-churn@champion in the registry"
    with _service(oo.configs, oo.uri) as c:
        assert c.get("/readyz").status_code == 200
        r = c.post("/score_ids", json={"customer_ids": [*ids, "ghost"], "reasons": True})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["models"]["churn"] == reason and body["models"]["offer"].startswith("retain-offers v")
        for s in body["scores"][:5]:
            row = batch.loc[s["customer_id"]]
            assert s["churn_probability"] is None and s["risk_band"] is None and s["reasons"] == []
            assert s["churn_unscored_reason"] == reason and s["churn_model_version"] == reason
            assert s["recommended_offer"] == row["recommended_offer"]
            for offer in ("free_shipping", "discount_20"):
                assert s[f"profit_{offer}"] == pytest.approx(row[f"profit_{offer}"], abs=1e-12)
        assert body["scores"][5]["known"] is False and body["scores"][5]["churn_model_version"] == reason
        rows = [{"customer_id": "x", "features": {"demo_region": "North", "demo_age": 40.0}}]
        r = c.post("/score_features", json={"rows": rows, "as_of": AS_OF})
        assert r.status_code == 200, r.text
        s = r.json()["scores"][0]
        assert s["churn_probability"] is None and s["churn_unscored_reason"] == reason
        assert s["profit_free_shipping"] is not None and [_fields(s)] == _by_score_frame(oo, rows)
        r = c.post("/score_features", json={"rows": [{"customer_id": "x", "features": {"nope": 1}}], "as_of": AS_OF})
        assert r.status_code == 422 and "nope" in r.text and reason in r.text


def _configs(tmp_path: Path, champ, serving_yaml: str) -> Path:
    return copy_configs(tmp_path / "configs", serving=f"store: {champ.store}\nworkers: 1\n{serving_yaml}")


def test_without_any_champion_the_service_answers_503_with_the_reason_until_a_reload(champ, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    name = f"late-churn-{tmp_path.name}"
    configs = _configs(tmp_path, champ, f"churn_model: {name}\noffer_model: not-offered\n")
    monkeypatch.setenv("RETAIN_API_KEY", KEY)
    ok = {"Authorization": f"Bearer {KEY}"}
    with _service(configs, champ.uri) as c:
        assert c.get("/livez").status_code == 200
        r = c.get("/readyz")
        assert r.status_code == 503 and f"no {name}@champion" in r.text and "mlflow.db" not in r.text
        r = c.post("/score_ids", json={"customer_ids": ["a"]}, headers=ok)
        assert r.status_code == 503 and f"no {name}@champion" in r.text and "no not-offered@champion" in r.text
        r = c.post("/score_features", json={"rows": [{"customer_id": "a", "features": {}}], "as_of": AS_OF}, headers=ok)
        assert r.status_code == 503 and "train-churn" in r.text
        assert c.post("/reload", headers=ok).status_code == 422  # still nothing to load: kept unready
        client = MlflowClient(tracking_uri=champ.uri)
        champion = client.get_model_version_by_alias("retain-churn", "champion")
        client.create_registered_model(name)
        late = register_version(champ.uri, name, champion.source, champion.run_id)
        r = c.post("/reload", headers=ok)
        assert r.status_code == 200 and r.json()["churn"] == f"{name} v{late}"
        assert c.get("/readyz").status_code == 200
        r = c.post("/score_ids", json={"customer_ids": ["a"]}, headers=ok)
        assert r.status_code == 200 and r.json()["scores"][0]["known"] is False


def test_refuses_to_start_without_a_champion(champ, tmp_path):
    configs = _configs(tmp_path, champ, "churn_model: not-trained\noffer_model: not-offered\n")
    r = serve_checked(configs, {"MLFLOW_TRACKING_URI": champ.uri})
    assert r.returncode == 2
    assert "refusing to start" in r.stderr and "not-trained@champion" in r.stderr and "not-offered@champion" in r.stderr


@pytest.mark.slow
def test_retain_serve_starts_with_only_an_offer_champion(tmp_path_factory):
    """`retain serve` (pre-check, then the real bentoml server) accepts an offer-only registry and serves offers."""
    oo = offer_only(tmp_path_factory.mktemp("offer-only"))
    port = launch.free_port()
    cmd = [sys.executable, "-m", "retain", "serve", "--configs", str(oo.configs), "--port", str(port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": oo.uri}
    env.pop("RETAIN_API_KEY", None)
    log = oo.root / f"serve-{port}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            launch.wait_ready(base, proc)
        except RuntimeError as exc:
            raise AssertionError(log.read_text()[-3000:]) from exc
        import pandas as pd

        ids = pd.read_parquet(oo.root / "scores.parquet")["customer_id"].head(3).tolist()
        r = httpx.post(f"{base}/score_ids", json={"customer_ids": ids})
        assert r.status_code == 200, r.text
        scores = r.json()["scores"]
        assert all(s["churn_probability"] is None and s["recommended_offer"] for s in scores)
        assert {s["churn_unscored_reason"] for s in scores} == {
            "no churn model: no retain-churn@champion in the registry"
        }
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # retain serve and the bentoml server it started
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _start(champ, port: int, key: str | None, workers: int = 1, log: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "MLFLOW_TRACKING_URI": champ.uri, "RETAIN_CONFIGS": str(champ.configs)}
    env.pop("RETAIN_API_KEY", None)
    if key:
        env["RETAIN_API_KEY"] = key
    return launch.start(port, env, workers=workers, log=log)


def _new_churn_champion(uri: str) -> tuple[str, str]:
    """Register the churn champion's model again as a new version and make it champion: (old, new) version."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    old = client.get_model_version_by_alias("retain-churn", "champion")
    return str(old.version), register_version(uri, "retain-churn", old.source, old.run_id)


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
        assert [_fields(s) for s in r.json()["scores"]] == _by_score_frame(
            champ, [{"customer_id": "x", "features": features}]
        )
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
