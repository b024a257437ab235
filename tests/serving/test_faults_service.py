"""Issue 16: start-up faults, a snapshot damaged under a running service, hostile requests, auth edges, logs.

In-process through ``Service.to_asgi()`` for the many cases; the real ``bentoml serve``, started directly and
through ``retain serve --no-check``, in the slow tests: no fault may leave a crash loop whose probes hang.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path
from unittest import mock

import pytest

from tests.conftest import copy_configs
from tests.serving_champions import AS_OF, champions, register_version, serve_checked, with_snapshot

ROOT = Path(__file__).resolve().parents[2]
KEY = "fault-key-456"
OK = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def champ(tmp_path_factory):
    return with_snapshot(champions(tmp_path_factory.mktemp("faults")))


@pytest.fixture(scope="module")
def ids(champ):
    import pandas as pd

    return pd.read_parquet(champ.root / "scores.parquet")["customer_id"].head(3).tolist()


def _configs(tmp_path: Path, store: Path, extra: str = "") -> Path:
    serving = f"store: {store}\nworkers: 1\nmax_customers_per_request: 50\n{extra}"
    return copy_configs(tmp_path / "configs", serving=serving)


@contextlib.contextmanager
def _service(configs: Path, uri: str, key: str | None = KEY):
    from starlette.testclient import TestClient

    from serving.service import Retain

    with mock.patch.dict(os.environ, {"RETAIN_CONFIGS": str(configs), "MLFLOW_TRACKING_URI": uri}):  # restored after
        os.environ.pop("RETAIN_API_KEY", None)
        if key is not None:
            os.environ["RETAIN_API_KEY"] = key
        with TestClient(Retain.to_asgi()) as c:
            yield c


def _garbage(path: Path, size: int = 4096) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def _truncated_registry(champ, tmp_path: Path) -> str:
    db = Path(champ.uri.removeprefix("sqlite:///"))
    copy = tmp_path / "truncated.db"
    data = db.read_bytes()
    copy.write_bytes(data[: len(data) // 3])
    return f"sqlite:///{copy}"


def _deleted_artifact(champ, tmp_path: Path) -> str:
    """A champion registered from a copy of the churn model's files, then the copy deleted: its model name."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=champ.uri)
    champion = client.get_model_version_by_alias("retain-churn", "champion")
    import mlflow

    mlflow.set_tracking_uri(champ.uri)
    local = Path(
        mlflow.artifacts.download_artifacts(f"models:/retain-churn/{champion.version}", dst_path=tmp_path / "a")
    )
    name = f"gone-{tmp_path.name}"[:60]
    client.create_registered_model(name)
    version = client.create_model_version(name, str(local), run_id=champion.run_id)
    client.set_registered_model_alias(name, "champion", version.version)
    shutil.rmtree(tmp_path / "a")
    return name


FAULTS = (
    "snapshot missing",
    "snapshot empty",
    "snapshot garbage",
    "registry truncated",
    "registry missing",
    "artifact deleted",
    "no champion",
)


def _fault(kind: str, champ, tmp_path: Path) -> tuple[Path, str, str]:
    """(configs, registry uri, a phrase the reason contains) for one start-up fault."""
    store, uri, extra = champ.store, champ.uri, ""
    if kind == "snapshot missing":
        store, needle = tmp_path / "none.sqlite", "no feature snapshot"
    elif kind == "snapshot empty":
        store, needle = tmp_path / "empty.sqlite", "not a readable feature snapshot"
        store.write_bytes(b"")
    elif kind == "snapshot garbage":
        store, needle = _garbage(tmp_path / "garbage.sqlite"), "not a readable feature snapshot"
    elif kind == "registry truncated":
        uri, needle = _truncated_registry(champ, tmp_path), "could not be read"
    elif kind == "registry missing":
        uri, needle = f"sqlite:///{tmp_path}/no/such/folder/mlflow.db", "no retain-churn@champion"  # MLflow makes one
    elif kind == "artifact deleted":
        extra, needle = f"churn_model: {_deleted_artifact(champ, tmp_path)}\n", "could not be loaded"
    else:
        extra, needle = "churn_model: nobody\noffer_model: nothing\n", "no nobody@champion"
    return _configs(tmp_path, store, extra), uri, needle


@pytest.mark.parametrize("kind", FAULTS)
def test_a_start_up_fault_leaves_the_service_up_and_not_ready_with_the_reason(champ, tmp_path, kind, ids):
    configs, uri, needle = _fault(kind, champ, tmp_path)
    with _service(configs, uri) as c:
        assert c.get("/livez").status_code == 200
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["ready"] is False and needle in r.json()["reason"], r.text
        assert str(tmp_path) not in r.text  # no local paths over HTTP
        for path, body in (
            ("/score_ids", {"customer_ids": ids}),
            ("/score_features", {"rows": [{"customer_id": "a", "features": {}}], "as_of": AS_OF}),
        ):
            r = c.post(path, json=body, headers=OK)
            assert r.status_code == 503 and needle in r.json()["error"], r.text
        r = c.post("/reload", headers=OK)  # the fault is still there: refused, kept unready, never 500
        assert r.status_code == 422 and needle in r.json()["error"], r.text
        assert c.get("/readyz").status_code == 503


def test_a_fixed_fault_is_picked_up_by_reload(champ, tmp_path, ids):
    store = _garbage(tmp_path / "store.sqlite")
    with _service(_configs(tmp_path, store), champ.uri) as c:
        assert c.get("/readyz").status_code == 503
        shutil.copy(champ.store, tmp_path / "good.tmp")
        os.replace(tmp_path / "good.tmp", store)
        r = c.post("/reload", headers=OK)
        assert r.status_code == 200, r.text
        assert c.get("/readyz").json() == {"ready": True, "reason": None, "degraded": None}
        assert c.post("/score_ids", json={"customer_ids": ids}, headers=OK).status_code == 200


@pytest.mark.parametrize("replacement", ["garbage", "truncated", "other columns"])
def test_a_bad_snapshot_replacing_a_good_one_is_refused_and_the_last_good_one_answers(
    champ, tmp_path, ids, replacement
):
    store = tmp_path / "store.sqlite"
    shutil.copy(champ.store, store)
    with _service(_configs(tmp_path, store), champ.uri) as c:
        before = c.post("/score_ids", json={"customer_ids": ids}, headers=OK).json()
        new = tmp_path / "new.tmp"
        if replacement == "garbage":
            _garbage(new, 256 * 1024)
        elif replacement == "truncated":
            new.write_bytes(champ.store.read_bytes()[: champ.store.stat().st_size // 2])
        else:
            import pandas as pd

            from serving.store import write_snapshot

            write_snapshot(pd.DataFrame({"customer_id": ["a"], "x": [1.0]}), new, as_of=AS_OF, columns=["x"])
        os.replace(new, store)
        for _ in range(12):
            r = c.post("/score_ids", json={"customer_ids": ids}, headers=OK)
            assert r.status_code == 200 and r.json() == before
        r = c.get("/readyz")
        assert r.status_code == 200 and r.json()["ready"] and "refused" in r.json()["degraded"], r.text
        assert "retain_degraded 1" in c.get("/metrics").text
        shutil.copy(champ.store, new)
        os.replace(new, store)  # a good snapshot again: no longer degraded
        assert c.post("/score_ids", json={"customer_ids": ids}, headers=OK).json() == before
        assert c.get("/readyz").json()["degraded"] is None


def test_a_snapshot_damaged_in_place_answers_503_never_500(champ, tmp_path, ids):
    store = tmp_path / "store.sqlite"
    shutil.copy(champ.store, store)
    with _service(_configs(tmp_path, store), champ.uri) as c:
        assert c.post("/score_ids", json={"customer_ids": ids}, headers=OK).status_code == 200
        size = store.stat().st_size
        with open(store, "r+b") as f:  # 256 KB of random bytes inside the file, same inode
            f.seek(size // 4)
            f.write(os.urandom(min(256 * 1024, size // 2)))
        os.utime(store, ns=(time.time_ns(), time.time_ns() + 10**9))
        statuses = {c.post("/score_ids", json={"customer_ids": ids}, headers=OK).status_code for _ in range(12)}
        assert statuses == {503}
        r = c.get("/readyz")
        assert r.status_code == 503 and "damaged" in r.json()["reason"]


def test_reload_after_an_artifact_is_deleted_keeps_serving(champ, tmp_path, ids):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=champ.uri)
    old = client.get_model_version_by_alias("retain-churn", "champion")
    with _service(_configs(tmp_path, champ.store), champ.uri) as c:
        before = c.post("/score_ids", json={"customer_ids": ids}, headers=OK).json()
        name = _deleted_artifact(champ, tmp_path)
        gone = client.get_model_version_by_alias(name, "champion")
        register_version(champ.uri, "retain-churn", gone.source, gone.run_id)
        try:
            r = c.post("/reload", headers=OK)
            assert r.status_code == 422 and "kept the current models" in r.json()["error"], r.text
            assert c.post("/score_ids", json={"customer_ids": ids}, headers=OK).json() == before
            assert c.get("/readyz").status_code == 200
        finally:
            client.set_registered_model_alias("retain-churn", "champion", old.version)


# -- hostile requests -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client(champ, tmp_path_factory):
    with _service(_configs(tmp_path_factory.mktemp("api"), champ.store), champ.uri) as c:
        yield c


def _row(**features):
    return {"rows": [{"customer_id": "a", "features": features}], "as_of": AS_OF}


@pytest.mark.parametrize("path", ["/score_ids", "/score_features", "/reload"])
def test_a_form_upload_is_415_not_500(client, path):
    r = client.post(path, files={"customer_ids": ("ids.txt", b"C1")}, headers=OK)
    assert r.status_code == 415 and "application/json" in r.json()["error"]
    r = client.post(
        path, content=b"customer_ids=C1", headers={**OK, "content-type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 415


def test_the_body_limit_holds_for_chunked_uploads(client):
    limit = 64 * 1024 * 50
    body = b'{"customer_ids": ["' + b"x" * (limit + 10) + b'"]}'

    def chunks():
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]

    sized = client.post("/score_ids", content=body, headers={**OK, "content-type": "application/json"})
    chunked = client.post("/score_ids", content=chunks(), headers={**OK, "content-type": "application/json"})
    assert sized.status_code == chunked.status_code == 413
    assert "request body over" in chunked.json()["error"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b'{"rows": [{"customer_id": "a", "features": {"sales_orders_all": NaN}}], "as_of": "2026-06-01"}', "features"),
        (
            b'{"rows": [{"customer_id": "a", "features": {"sales_orders_all": Infinity}}], "as_of": "2026-06-01"}',
            "features",
        ),
        (
            b'{"rows": [{"customer_id": "a", "features": {"sales_orders_all": 1e999}}], "as_of": "2026-06-01"}',
            "features",
        ),
        (
            b'{"rows": [{"customer_id": "a", "features": {"sales_orders_all": -Infinity}}], "as_of": "2026-06-01"}',
            "features",
        ),
    ],
)
def test_non_finite_feature_values_are_refused(client, body, needle):
    r = client.post("/score_features", content=body, headers={**OK, "content-type": "application/json"})
    assert r.status_code in (400, 422) and needle in r.json()["error"], r.text


def test_a_numeric_feature_given_as_text_is_refused(client):
    for value in ("Infinity", "nan", "3"):
        r = client.post("/score_features", json=_row(sales_orders_all=value), headers=OK)
        assert r.status_code == 422 and "sales_orders_all" in r.json()["error"], r.text


@pytest.mark.parametrize("value", [0, 1, "yes", "true", None])
def test_reasons_must_be_a_json_boolean(client, ids, value):
    r = client.post("/score_ids", json={"customer_ids": ids, "reasons": value}, headers=OK)
    assert r.status_code == 400 and "reasons" in r.json()["error"], r.text


def test_errors_are_one_string_naming_the_field(client):
    r = client.post("/score_ids", json={"customer_ids": []}, headers=OK)
    assert r.status_code == 400 and set(r.json()) == {"error"} and isinstance(r.json()["error"], str)
    assert "customer_ids" in r.json()["error"]
    r = client.post("/score_ids", json={"customer_ids": ["a"] * 51}, headers=OK)
    assert r.status_code == 413 and isinstance(r.json()["error"], str) and "limit is 50" in r.json()["error"]
    r = client.post("/score_features", json=_row(nope=1), headers=OK)
    assert r.status_code == 422 and isinstance(r.json()["error"], str) and "nope" in r.json()["error"]


# -- auth edges -----------------------------------------------------------------------------------------
def test_the_bearer_scheme_is_case_insensitive_and_401_says_how(client, ids):
    for scheme in ("bearer", "BEARER", "Bearer"):
        r = client.post("/score_ids", json={"customer_ids": ids}, headers={"Authorization": f"{scheme} {KEY}"})
        assert r.status_code == 200, scheme
    r = client.post("/score_ids", json={"customer_ids": ids}, headers={"Authorization": f"Basic {KEY}"})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    r = client.post("/score_ids", json={"customer_ids": ids}, headers={"Authorization": f"Bearer {KEY}x"})
    assert r.status_code == 401


@pytest.mark.parametrize("empty", ["", "  "])
def test_an_empty_api_key_is_refused_not_an_open_service(champ, tmp_path, ids, empty):
    with _service(_configs(tmp_path, champ.store), champ.uri, key=empty) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and "RETAIN_API_KEY is set but empty" in r.json()["reason"]
        r = c.post("/score_ids", json={"customer_ids": ids}, headers={"Authorization": "Bearer "})
        assert r.status_code == 503
    r = serve_checked(
        _configs(tmp_path, champ.store), {"MLFLOW_TRACKING_URI": champ.uri, "RETAIN_API_KEY": empty}, port=1
    )
    assert r.returncode == 2 and "set but empty" in r.stderr


# -- the document and the docs page -------------------------------------------------------------------
def test_the_openapi_document_is_ours(client):
    doc = client.get("/docs.json").json()
    assert doc["info"]["title"] == "Retain scoring API" and doc["info"]["version"] not in ("None", "")
    assert "BentoML" not in str(doc["info"]) and "contact" not in doc["info"]
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    for path, statuses in (
        ("/score_ids", {"200", "400", "401", "413", "415", "503"}),
        ("/score_features", {"422"}),
        ("/reload", {"403", "422"}),
    ):
        op = doc["paths"][path]["post"]
        assert statuses <= set(op["responses"]) and "500" not in op["responses"]
        assert op["security"] == [{"bearer": []}] and "example" in op["requestBody"]["content"]["application/json"]
    band = doc["components"]["schemas"]["Score"]["properties"]["risk_band"]
    assert {"enum": ["low", "medium", "high"], "type": "string"} in band["anyOf"]


def test_docs_page_metrics_and_the_printed_urls_answer_without_the_key(champ, tmp_path, ids):
    with _service(_configs(tmp_path, champ.store), champ.uri) as client:
        _docs_and_metrics(client, ids)


def _docs_and_metrics(client, ids):
    assert client.post("/score_ids", json={"customer_ids": ids}, headers=OK).status_code == 200
    for path in ("/docs", "/", "/docs.json", "/metrics", "/livez", "/readyz"):
        assert client.get(path).status_code == 200, path
    page = client.get("/docs")
    assert "<script" not in page.text.lower() and "googletagmanager" not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "/score_ids" in page.text and "risk_band" in page.text
    assert 'retain_requests_total{endpoint="/score_ids"' in client.get("/metrics").text


@pytest.mark.parametrize("kind", ["snapshot garbage", "snapshot empty", "registry truncated", "artifact deleted"])
def test_retain_serve_with_its_pre_check_refuses_a_fault_with_exit_2(champ, tmp_path, kind):
    configs, uri, needle = _fault(kind, champ, tmp_path)
    r = serve_checked(configs, {"MLFLOW_TRACKING_URI": uri, "RETAIN_API_KEY": KEY})
    assert r.returncode == 2, r.stderr[-2000:]
    assert "refusing to start" in r.stderr and needle in r.stderr and "Traceback" not in r.stderr
