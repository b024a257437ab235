"""Issue 16 and 13 on the real ``bentoml serve`` (127.0.0.1): start-up faults started both ways never hang,
the log carries no ids, SIGTERM stops the whole server, and a bounded schemathesis run of the published
OpenAPI document finds no 5xx and no response outside the document."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from serving import launch
from tests.conftest import copy_configs
from tests.serving_champions import champions, with_snapshot

ROOT = Path(__file__).resolve().parents[2]
KEY = "server-key-789"
OK = {"Authorization": f"Bearer {KEY}"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def champ(tmp_path_factory):
    return with_snapshot(champions(tmp_path_factory.mktemp("server-faults")))


def _configs(folder: Path, store: Path, extra: str = "") -> Path:
    return copy_configs(folder, serving=f"store: {store}\nworkers: 1\nmax_customers_per_request: 50\n{extra}")


@contextlib.contextmanager
def _server(champ, configs: Path, how: str, log: Path, uri: str | None = None):
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri or champ.uri, "RETAIN_CONFIGS": str(configs), "RETAIN_API_KEY": KEY}
    port = launch.free_port()
    if how == "bentoml serve":
        cmd, env = launch.serve_command("127.0.0.1", port), launch.server_env(env, workers=1)
    else:  # the worker count from the configs' serving.yaml
        cmd = [sys.executable, "-m", "retain", "serve", "--no-check", "--configs", str(configs), "--port", str(port)]
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/livez", timeout=2).status_code == 200:
                    break
            time.sleep(0.5)
        else:
            raise AssertionError(f"no /livez within 150 s: {log.read_text()[-3000:]}")
        yield base, proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.parametrize("how", ["bentoml serve", "retain serve --no-check"])
def test_a_garbage_snapshot_at_start_up_gives_503_with_the_reason_not_a_hang(champ, tmp_path, how):
    store = tmp_path / "store.sqlite"
    store.write_bytes(os.urandom(8192))
    log = tmp_path / "server.log"
    ids = ["C-secret-000123", "C-secret-000456"]
    with _server(champ, _configs(tmp_path / "configs", store), how, log) as (base, proc):
        r = httpx.get(f"{base}/readyz", timeout=5)
        assert r.status_code == 503 and "not a readable feature snapshot" in r.json()["reason"]
        r = httpx.post(f"{base}/score_ids", json={"customer_ids": ids}, headers=OK, timeout=5)
        assert r.status_code == 503 and "not a readable feature snapshot" in r.json()["error"]
        shutil.copy(champ.store, tmp_path / "good.tmp")
        os.replace(tmp_path / "good.tmp", store)
        r = httpx.post(f"{base}/reload", headers=OK, timeout=60)
        assert r.status_code == 200, r.text
        assert httpx.get(f"{base}/readyz", timeout=5).json()["ready"] is True
        r = httpx.post(f"{base}/score_ids", json={"customer_ids": ids}, headers=OK, timeout=5)
        assert r.status_code == 200 and r.json()["unknown"] == 2
        bad = [
            {"customer_ids": ids, "reasons": "yes"},
            {"customer_ids": ids, "extra": 1, "reasons": 0},
            {"rows": [{"customer_id": ids[0], "features": {"sales_orders_all": "x"}}], "as_of": "June"},
        ]
        for body in bad:
            path = "/score_features" if "rows" in body else "/score_ids"
            assert 400 <= httpx.post(f"{base}{path}", json=body, headers=OK, timeout=5).status_code < 500
        assert httpx.post(f"{base}/score_ids", json={"customer_ids": ids, "reasons": 1}, headers=OK).status_code == 400
        time.sleep(0.5)
        text = log.read_text()
        assert "Application startup failed" not in text
        for cid in ids:  # personal data stays out of the log, whatever the request did
            assert cid not in text, text[-3000:]
        assert "input_value" not in text and "Traceback" not in text
        lines = [line for line in text.splitlines() if "retain.requests POST /score_ids" in line]
        assert any("status=503" in line for line in lines) and any("status=400" in line for line in lines)
        assert any("status=200" in line and "n=2" in line for line in lines), lines


@pytest.mark.parametrize(
    ("how", "fault"), [("bentoml serve", "registry truncated"), ("retain serve --no-check", "artifact deleted")]
)
def test_registry_and_artifact_faults_on_a_real_server_answer_503_not_hang(champ, tmp_path, how, fault):
    from tests.serving.test_faults_service import _deleted_artifact, _truncated_registry

    uri, extra = None, ""
    if fault == "registry truncated":
        uri = _truncated_registry(champ, tmp_path)
    else:
        extra = f"churn_model: {_deleted_artifact(champ, tmp_path)}\n"
    log = tmp_path / "server.log"
    with _server(champ, _configs(tmp_path / "configs", champ.store, extra), how, log, uri=uri) as (base, _):
        r = httpx.get(f"{base}/readyz", timeout=5)
        assert r.status_code == 503 and "could not be" in r.json()["reason"], r.text
        r = httpx.post(f"{base}/score_ids", json={"customer_ids": ["a"]}, headers=OK, timeout=5)
        assert r.status_code == 503 and "could not be" in r.json()["error"]
        assert httpx.post(f"{base}/reload", headers=OK, timeout=60).status_code == 422
        assert "Application startup failed" not in log.read_text()


def test_sigterm_to_retain_serve_stops_the_whole_server(champ, tmp_path):
    log = tmp_path / "server.log"
    with _server(champ, _configs(tmp_path / "configs", champ.store), "retain serve --no-check", log) as (base, proc):
        pgid = os.getpgid(proc.pid)
        proc.send_signal(signal.SIGTERM)  # to retain serve alone, as a process manager does
        proc.wait(timeout=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("processes of the server are still running after SIGTERM")
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{base}/livez", timeout=2)


def test_fuzzing_the_published_document_finds_no_5xx_and_no_undocumented_answer(champ, tmp_path):
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    log = tmp_path / "server.log"
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    with _server(champ, _configs(tmp_path / "configs", champ.store), "bentoml serve", log) as (base, _):
        launch.wait_ready(base, _, timeout=60)
        schema = schemathesis.openapi.from_url(f"{base}/docs.json")
        tried = 0
        for result in schema.get_all_operations():
            operation = result.ok()
            if operation.path == "/reload":
                continue  # reloads the champions: exercised on its own above
            negative = (GenerationMode.NEGATIVE,) if operation.method.upper() == "POST" else ()
            for mode in (GenerationMode.POSITIVE, *negative):

                @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
                @given(case=operation.as_strategy(generation_mode=mode))
                def run(case):
                    case.call_and_validate(base_url=base, headers=OK, checks=checks)

                run()
                tried += 1
        assert tried == 8, tried  # 6 operations (all but /reload) positive, the 2 POSTs negative too
        assert "input_value" not in log.read_text()


def test_the_docs_page_opens_in_chromium_with_the_key_set_and_fetches_nothing_else(champ, tmp_path):
    """Issue 13.5: the printed /docs URL answers in a browser (no key needed), loads no third-party script."""
    from tests.analytics.test_report import CHROMIUM, Browser

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} missing: install Debian's chromium package (CI does)")
    log = tmp_path / "server.log"
    with _server(champ, _configs(tmp_path / "configs", champ.store), "bentoml serve", log) as (base, _):
        browser = Browser(tmp_path / "profile")
        try:
            target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                browser.send(f"{domain}.enable", session=session)
            browser.send("Page.navigate", {"url": f"{base}/docs"}, session=session)
            browser.wait_for("Page.loadEventFired")
            text = browser.send(
                "Runtime.evaluate", {"expression": "document.body.innerText", "returnByValue": True}, session=session
            )["result"]["value"]
            time.sleep(0.2)
            browser.send("Runtime.evaluate", {"expression": "1"}, session=session)
        finally:
            browser.close()
    events = browser.events
    statuses = [e["params"]["response"]["status"] for e in events if e.get("method") == "Network.responseReceived"]
    urls = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
    errors = [
        e["params"]
        for e in events
        if e.get("method") in ("Runtime.exceptionThrown", "Network.loadingFailed")
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]
    assert statuses and statuses[0] == 200, statuses
    assert all(u.startswith(base) for u in urls), urls  # nothing from the internet (no tag manager, no CDN)
    assert errors == [], errors
    assert "Retain scoring API" in text and "POST /score_ids" in text and "risk_band" in text
