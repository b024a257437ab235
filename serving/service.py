"""The scoring service (BentoML 1.4): score customers by id (from the feature snapshot) or by feature rows.

Start it with ``python -m retain serve`` (or ``bentoml serve serving.service:Retain``).
Endpoints (all POST with ``Content-Type: application/json`` unless noted):

* ``/score_ids``      ``{"customer_ids": [...], "reasons": false}``: rows from the snapshot;
  unknown ids come back with ``known: false``.
* ``/score_features`` ``{"rows": [{"customer_id", "features": {...}, "lifecycle_base_stage"}], "as_of"}``
* ``/reload``         pick up a new champion (and snapshot) without downtime; needs the API key.
* ``GET /livez``, ``/readyz`` (JSON: ready, reason, degraded), ``/metrics`` (Prometheus text, this worker's
  counters), ``/docs.json`` (the OpenAPI document), ``/docs`` (a self-contained page, no third-party scripts).

The service never crash-loops on a start-up fault: whatever stops it from loading
(no champion, a registry that is missing or damaged, a deleted model artifact, a
snapshot that is missing, empty or garbage, an empty API key) leaves it up but not
ready: ``/livez`` answers 200, ``/readyz`` and the scoring endpoints 503 with the
reason, until ``POST /reload`` (with the key) loads a good set. A snapshot replaced
or damaged under a running service is checked before use (``serving.store``): the
last good one keeps answering and ``/readyz`` says ``degraded`` with the reason, or,
when nothing good is left, 503.

Either champion may be absent: with only the offer champion every churn field is
null and ``churn_unscored_reason`` says why.

Settings come from ``configs/serving.yaml`` (``RETAIN_CONFIGS`` names another folder);
the champions from the MLflow store ``features.runtime.tracking_uri()`` names. When
the environment variable ``api_key_env`` (default ``RETAIN_API_KEY``) is set, every
request except health, metrics and docs needs ``Authorization: Bearer <key>`` (the
scheme in any case, RFC 7235); set to an empty value, the service refuses to become ready.

Error responses are ``{"error": "<one sentence>"}``. Log lines carry the endpoint,
status, counts and latency, one per request, never ids or feature values: BentoML's
own tracebacks of failed requests (which quote the request) are cut to the
exception's type and place.
"""

from __future__ import annotations

import contextvars
import hmac
import html
import json
import logging
import os
import threading
import time
import traceback
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Literal

import bentoml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model, model_validator
from starlette.responses import JSONResponse

from features.config import CONFIG_DIR
from features.runtime import quiet_telemetry
from modeling.lifecycle import STAGES
from serving.config import ServingConfig
from serving.launch import empty_key_reason
from serving.models import Models, load_models
from serving.scoring import (
    BASE_ACTION,
    BASE_CONTACT,
    BASE_STAGE,
    FIELDS,
    LIFECYCLE_COLUMNS,
    FeatureValueError,
    check_request,
    score,
    unknown_record,
)
from serving.store import SQLiteStore, StoreError

quiet_telemetry()
os.environ.setdefault("OTEL_SDK_DISABLED", "true")  # no tracing exporter here; spans cost ~0.5 ms a request
log = logging.getLogger("retain.requests")

PROBES = ("/livez", "/readyz", "/healthz")
DOCS = ("/docs", "/docs.json", "/")
OPEN_PATHS = (*PROBES, "/metrics", *DOCS)
API_PATHS = ("/score_ids", "/score_features", "/reload")
SCORING_PATHS = ("/score_ids", "/score_features")
NOT_READY: dict[str, str] = {}  # "reason": why this worker has no model to score with; the Gate answers 503 with it
HEALTH: dict = {}  # "check": this worker's () -> (not-ready reason, degraded note), set by the service
BODY_BYTES_PER_CUSTOMER = 64 * 1024  # generous; a larger body is refused with 413 before parsing
REQUEST: contextvars.ContextVar[dict] = contextvars.ContextVar("retain_request")  # counts for the request line


def current_config() -> ServingConfig:
    """configs/serving.yaml, or serving.yaml in the folder ``RETAIN_CONFIGS`` names; read when the service starts."""
    return ServingConfig.load(Path(os.environ.get("RETAIN_CONFIGS", CONFIG_DIR)))


CONFIG = current_config()  # only the worker count is needed before start-up

CustomerId = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
FeatureValue = float | str | None
# NaN, Infinity, 1e999 and integers too large for a float are refused; ints stay ints (messages quote them as sent)
InputValue = Annotated[int, Field(ge=-(10**15), le=10**15)] | Annotated[float, Field(allow_inf_nan=False)] | str | None
Stage = Literal[STAGES]  # type: ignore[valid-type]


class FeatureRow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: CustomerId
    features: dict[str, InputValue] = Field(
        description="feature name -> value (a finite number, a text for category features, or null); "
        "absent features are missing"
    )
    lifecycle_base_stage: Stage | None = Field(None, description="stage without the churn rule, from the snapshot")
    lifecycle_next_action: str | None = Field(None, description="the base stage's next action, from the snapshot")
    lifecycle_contact_at: str | None = Field(
        None,
        pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$",
        description="when to send it (ISO 8601 UTC), from the snapshot",
    )


class Reason(BaseModel):
    feature: str = Field(description="the feature's name (features/descriptions.py describes each)")
    text: str = Field(description="the value in words, e.g. 'no visit for 618 days'")
    value: FeatureValue = Field(description="the raw value, for machines")
    contribution: float = Field(description="SHAP contribution to the churn log-odds (> 0: raises churn risk)")


def _field(name: str, kind, default=...):
    return (kind, Field(default, description=FIELDS[name]))


_ScoreFields = create_model(
    "_ScoreFields",
    customer_id=_field("customer_id", str),
    known=(
        bool | None,
        Field(
            description="true: scored from the feature snapshot; false: the id is not in it (every other field "
            "null); null: scored from the features the request sent"
        ),
    ),
    as_of=_field("as_of", str | None),
    churn_probability=_field("churn_probability", float | None),
    risk_band=_field("risk_band", str | None),
    churn_unscored_reason=_field("churn_unscored_reason", str | None),
    lifecycle_stage=_field("lifecycle_stage", str | None),
    next_action=_field("next_action", str | None),
    contact_at=_field("contact_at", str | None),
    recommended_offer=_field("recommended_offer", str | None),
    offer_unscored_reason=_field("offer_unscored_reason", str | None),
    predicted_value=_field("predicted_value", float | None),
    value_at_risk=_field("value_at_risk", float | None),
    expected_orders=_field("expected_orders", float | None),
    expected_orders_12m=_field("expected_orders_12m", float | None),
    expected_spend_12m=_field("expected_spend_12m", float | None),
    next_order_expected_by=_field("next_order_expected_by", str | None),
    value_unscored_reason=_field("value_unscored_reason", str | None),
    currency=_field("currency", str),
)


class Score(_ScoreFields):
    """One customer's score: the fields of a batch file row (``serving.scoring.FIELDS``) plus ``known``.

    Every offer of the offer model adds ``profit_<offer>`` (expected incremental profit vs sending nothing, in
    ``currency``, rounded to cents; null without usable features), as in the files' columns.
    """

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, float | None]
    reasons: list[Reason] | None = Field(description="with reasons=true: what raises churn risk most, in words")
    churn_model_version: str = Field(description=FIELDS["churn_model_version"])
    offer_model_version: str = Field(description=FIELDS["offer_model_version"])
    value_model_version: str = Field(description=FIELDS["value_model_version"])

    @model_validator(mode="after")
    def _profits_only(self):
        odd = [k for k in self.__pydantic_extra__ or {} if not k.startswith("profit_")]
        if odd:
            raise ValueError(f"unexpected score fields {odd}")
        return self


class ScoreResponse(BaseModel):
    scores: list[Score]
    unknown: int = Field(description="how many ids were not in the snapshot")
    models: dict[str, str]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Every error the service itself gives: ``{"error": "<one sentence>"}``."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _note(**counts) -> None:
    """Counts for this request's log line (the Gate writes it once the response is sent)."""
    info = REQUEST.get(None)
    if info is not None:
        info.update(counts)


async def _answer(send, response: JSONResponse) -> None:
    await response({"type": "http"}, None, send)


def _one_error(status: int, raw: bytes) -> dict[str, str]:
    """BentoML's error bodies (a list around the message; a list of pydantic errors) as ``{"error": "..."}``."""
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        body = None
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]
    if not isinstance(body, dict):
        return {"error": HTTPStatus(status).phrase}
    detail = body.get("detail")
    if isinstance(detail, list):  # pydantic's errors, without the input values
        parts = []
        for e in detail[:5] if isinstance(detail, list) else ():
            if isinstance(e, dict):
                where = ".".join(str(x) for x in e.get("loc", ()))
                parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else str(e.get("msg", "invalid")))
        more = f" (and {len(detail) - 5} more)" if len(detail) > 5 else ""
        return {"error": "invalid request: " + "; ".join(parts) + more}
    message = body.get("error")
    return {"error": message if isinstance(message, str) else HTTPStatus(status).phrase}


class _Scrub(logging.Filter):
    """BentoML logs a failed request with a traceback that quotes the request (``input_value={'ids': [...]}``).

    Client errors (the request line says them) are dropped; anything else keeps the exception's type and
    where it was raised, not its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info:
            return True
        kind, exc, tb = record.exc_info
        if kind is not None and (
            kind.__name__ in ("ValidationError", "JSONDecodeError")
            or getattr(getattr(exc, "error_code", None), "value", 500) < 500
        ):
            return False
        frames = traceback.extract_tb(tb) if tb is not None else []
        where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
        record.msg = f"{record.getMessage()}: {getattr(kind, '__name__', 'error')}{where} (message withheld)"
        record.args, record.exc_info, record.exc_text = (), None, None
        return True


for _name in ("bentoml._internal.server.http_app", "_bentoml_impl.server.app", "bentoml.serve", "uvicorn.error"):
    logging.getLogger(_name).addFilter(_Scrub())


class Gate:
    """ASGI middleware in front of BentoML: probes, docs and metrics, the API key, the request's body and
    content type, error bodies, one log line per request, and connection recycling.

    * ``/readyz`` reports this worker's state (``HEALTH``): 503 with the reason when it cannot score,
      200 with ``degraded`` when it answers from an older snapshot than the one on disk.
    * ``/docs.json`` is Retain's own OpenAPI document and ``/docs`` a page made from it with no script at all.
    * API requests must be ``application/json`` (415 otherwise) and their body is read here, chunked or not,
      up to the limit (413 beyond it), so BentoML never sees a form or an oversize upload.
    * Recycling: BentoML's workers accept from one shared socket, and a burst of new
      connections (a client's pool opening) all lands on the worker that wakes
      first; we measured 16 of 16 on one worker, half the machine left idle
      (bentoml issue 5426). So every ``requests_per_connection``-th response of a
      worker carries ``Connection: close``; the client reconnects, and the worker
      free to accept first takes the new connection. A busier worker sheds more,
      so connections drift to the idle one. HTTP clients reconnect on their own.
    """

    def __init__(self, app):
        config = current_config()
        self.app, self.env_var = app, config.api_key_env
        self.max_body = BODY_BYTES_PER_CUSTOMER * config.max_customers_per_request
        self.recycle_every, self.responses = config.requests_per_connection, 0
        self.counts: dict[tuple[str, int], int] = {}
        self.seconds: dict[str, float] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, info, status = time.perf_counter(), {}, [0]
        token = REQUEST.set(info)

        async def watched(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self._route(scope, receive, watched)
        finally:
            REQUEST.reset(token)
            self._record(scope, status[0], info, started)

    async def _route(self, scope, receive, send):
        path, method = scope["path"], scope["method"]
        if path == "/readyz":
            return await _answer(send, readiness())
        if path == "/metrics":
            return await self._metrics(send)
        if path in DOCS:
            return await _answer(send, docs_response(path))
        if path in PROBES:
            return await self.app(scope, receive, send)
        key = os.environ.get(self.env_var)
        if key is not None and not key.strip():
            return await _answer(send, _error(503, empty_key_reason(self.env_var)))
        if path == "/reload" and not key:
            return await _answer(send, _error(403, f"/reload is disabled: set {self.env_var} to protect it with a key"))
        if key and not _authorized(dict(scope.get("headers") or []).get(b"authorization", b""), key):
            return await _answer(
                send,
                _error(
                    401,
                    "missing or wrong API key: send Authorization: Bearer <key>",
                    {"WWW-Authenticate": 'Bearer realm="retain"'},
                ),
            )
        if path not in API_PATHS:
            return await self.app(scope, receive, send)
        if method != "POST":
            return await _answer(send, _error(405, f"{path} takes POST", {"Allow": "POST"}))
        refused = self._content_type(scope)
        if refused:
            return await _answer(send, refused)
        body = await self._body(scope, receive)
        if isinstance(body, JSONResponse):
            return await _answer(send, body)
        if body is None:  # the client went away
            return None
        if path in SCORING_PATHS:
            reason, _ = health()
            if reason:
                return await _answer(send, _error(503, f"not ready: {reason}"))
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        out = self._errors_as_one(send)
        return await self.app(scope, replay, self._recycling(out) if self.recycle_every else out)

    @staticmethod
    def _content_type(scope) -> JSONResponse | None:
        raw = dict(scope.get("headers") or []).get(b"content-type")
        if raw is None:
            return None  # BentoML reads a body without a type as JSON
        media = raw.decode("latin-1").split(";")[0].strip().lower()
        if media == "application/json":
            return None
        return _error(415, f"unsupported Content-Type {media or '(empty)'!r}; send application/json")

    async def _body(self, scope, receive) -> bytes | JSONResponse | None:
        """The whole request body, at most ``max_body`` bytes whether or not it says its length."""
        too_big = _error(413, f"request body over {self.max_body:,} bytes")
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return too_big
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return too_big
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    @staticmethod
    def _errors_as_one(send):
        """Error responses BentoML writes (validation, its exceptions) rewritten as ``{"error": "..."}``."""
        state: dict = {}

        async def out(message):
            if message["type"] == "http.response.start":
                if message["status"] < 400:
                    state["pass"] = True
                    return await send(message)
                state["start"], state["body"] = message, []
                return None
            if state.get("pass") or "start" not in state:
                return await send(message)
            state["body"].append(message.get("body", b""))
            if message.get("more_body"):
                return None
            start = state["start"]
            body = json.dumps(_one_error(start["status"], b"".join(state["body"]))).encode()
            headers = [
                (k, v) for k, v in start.get("headers", ()) if k.lower() not in (b"content-length", b"content-type")
            ]
            headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({**start, "headers": headers})
            return await send({"type": "http.response.body", "body": body})

        return out

    def _recycling(self, send):
        async def send_or_close(message):
            if message["type"] == "http.response.start":
                self.responses += 1
                if self.responses % self.recycle_every == 0:
                    message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
            await send(message)

        return send_or_close

    def _record(self, scope, status: int, info: dict, started: float) -> None:
        path = scope["path"]
        endpoint = path if path in (*OPEN_PATHS, *API_PATHS) else "other"
        seconds = time.perf_counter() - started
        self.counts[(endpoint, status)] = self.counts.get((endpoint, status), 0) + 1
        self.seconds[endpoint] = self.seconds.get(endpoint, 0.0) + seconds
        if endpoint in (*PROBES, "/metrics") and status < 400:
            return  # probes every few seconds would drown the log
        counts = "".join(f" {k}={v}" for k, v in info.items())
        log.info("%s %s status=%d%s ms=%.2f", scope["method"], endpoint, status, counts, seconds * 1e3)

    async def _metrics(self, send):
        reason, degraded = health()
        lines = [
            "# HELP retain_requests_total Requests this worker answered, by endpoint and status.",
            "# TYPE retain_requests_total counter",
            *(f'retain_requests_total{{endpoint="{e}",status="{s}"}} {n}' for (e, s), n in sorted(self.counts.items())),
            "# HELP retain_request_seconds_total Time this worker spent answering, by endpoint.",
            "# TYPE retain_request_seconds_total counter",
            *(f'retain_request_seconds_total{{endpoint="{e}"}} {s:.6f}' for e, s in sorted(self.seconds.items())),
            "# HELP retain_ready 1 when this worker can score, else 0.",
            "# TYPE retain_ready gauge",
            f"retain_ready {0 if reason else 1}",
            "# HELP retain_degraded 1 when this worker answers from an older snapshot than the one on disk.",
            "# TYPE retain_degraded gauge",
            f"retain_degraded {1 if degraded else 0}",
            "",
        ]
        from starlette.responses import PlainTextResponse

        await _answer(send, PlainTextResponse("\n".join(lines), media_type="text/plain; version=0.0.4"))


def _authorized(header: bytes, key: str) -> bool:
    """``Bearer <key>``, the scheme in any case (RFC 7235); the key compared in constant time."""
    scheme, _, token = header.decode("latin-1").strip().partition(" ")
    ok_scheme = hmac.compare_digest(scheme.lower().encode(), b"bearer")
    return (
        hmac.compare_digest(token.strip().encode("latin-1", "replace"), key.encode("latin-1", "replace")) and ok_scheme
    )


def health() -> tuple[str | None, str | None]:
    """(why this worker cannot score, or None; why it answers from an older snapshot, or None)."""
    check = HEALTH.get("check")
    if check is None:
        return NOT_READY.get("reason") or "starting", None
    return check()


def readiness() -> JSONResponse:
    reason, degraded = health()
    if reason:
        return JSONResponse({"ready": False, "reason": reason, "degraded": None}, status_code=503)
    return JSONResponse({"ready": True, "reason": None, "degraded": degraded})


def _public(exc: BaseException) -> str:
    """An error as it may be shown over HTTP: the reason without local paths or the registry's address."""
    reason = getattr(exc, "reason", None)
    if reason:
        return str(reason)
    return f"{type(exc).__name__}: {exc}".replace(str(Path.cwd()), ".")


def _too_many(n: int, limit: int) -> JSONResponse | None:
    if n > limit:
        return _error(
            413,
            f"{n:,} customers in one request; the limit is {limit:,} "
            "(max_customers_per_request in configs/serving.yaml): split the request",
        )
    return None


@bentoml.service(
    name="retain",
    workers=int(os.environ.get("RETAIN_WORKERS", CONFIG.workers)),
    threads=4,
    traffic={"timeout": 30},
    metrics={"enabled": False},
    logging={"access": {"enabled": False}},
)
class Retain:
    """Churn risk, lifecycle stage and next best offer for campaign tools."""

    def __init__(self) -> None:
        if not log.handlers:  # one line per request: endpoint, status, counts, latency; never ids or feature values
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
            log.addHandler(handler)
            log.setLevel(logging.INFO)
            log.propagate = False
        self.config = current_config()
        self._lock = threading.Lock()
        self._marker = self.config.store_path.with_name(self.config.store_path.name + ".reload")
        self._generation = self._marker_time()
        self._reloading = False
        self._checked = None
        self.store: SQLiteStore | None = None
        self.models: Models | None = None
        self.unready = None
        HEALTH["check"] = self.health
        key = os.environ.get(self.config.api_key_env)
        if key is not None and not key.strip():
            self.unready = empty_key_reason(self.config.api_key_env)
            logging.getLogger(__name__).error("not ready: %s", self.unready)
            return
        if key is None:
            logging.getLogger(__name__).warning(
                "%s is not set: the service answers anyone who can reach it (no authentication)",
                self.config.api_key_env,
            )
        try:  # any start-up fault leaves the service up but not ready, never in a crash loop
            self.store, self.models = self._load()
        except Exception as exc:
            logging.getLogger(__name__).error("not ready: %s", exc)
            self.unready = _public(exc)

    @property
    def unready(self) -> str | None:
        """Why there is nothing to score with (None: ready); shared with the Gate of this worker."""
        return NOT_READY.get("reason")

    @unready.setter
    def unready(self, reason: str | None) -> None:
        if reason is None:
            NOT_READY.pop("reason", None)
        else:
            NOT_READY["reason"] = reason

    def health(self) -> tuple[str | None, str | None]:
        """(why this worker cannot score, why it answers from an older snapshot); None when all is well."""
        if self.unready or self.models is None or self.store is None:
            return self.unready or "the models are not loaded", None
        self.store.refresh()
        return self.store.broken, self.store.problem

    # -- start-up and reload -------------------------------------------------------------
    def _load(self) -> tuple[SQLiteStore, Models]:
        """A checked snapshot and the champions that fit it; raises ModelError or StoreError saying why not."""
        store = SQLiteStore(self.config.store_path)
        models = load_models(self.config)
        self._check(models, store.columns)
        store.accept = lambda columns: self._check(models, columns)  # a refreshed snapshot must fit them too
        return store, models

    def _check(self, models: Models, columns: list[str]) -> None:
        snapshot = [c for c in columns if c not in LIFECYCLE_COLUMNS]
        models.check_features(snapshot, source=f"the feature snapshot {self.config.store_path.name}")
        self._checked = columns

    def _marker_time(self) -> int:
        try:
            return self._marker.stat().st_mtime_ns
        except OSError:
            return 0

    def _follow_reloads(self) -> None:
        """Another worker took /reload: load the new champions in the background, keep serving the old."""
        stamp = self._marker_time()
        if stamp == self._generation or self._reloading:
            return
        with self._lock:
            if self._reloading:
                return
            self._reloading = True

        def work():
            try:
                self.store, self.models = self._load()
                self.unready = None
                log.info("followed a reload: %s", self.models.versions)
            except Exception as exc:  # keep serving the models we have
                kept = self.models.versions if self.models is not None else self.unready
                logging.getLogger(__name__).error("reload failed (%s); keeping %s", exc, kept)
            finally:
                self._generation, self._reloading = stamp, False

        threading.Thread(target=work, daemon=True).start()

    def __is_ready__(self) -> bool:
        return self.health()[0] is None

    # -- endpoints -----------------------------------------------------------------------
    @bentoml.api
    async def score_ids(
        self,
        customer_ids: list[CustomerId] = Field(min_length=1, description="customers to score from the snapshot"),
        reasons: bool = Field(False, strict=True, description="add the top features that push churn risk up"),
    ) -> ScoreResponse:
        """Score customers by id from the feature snapshot; unknown ids come back with known=false."""
        _note(n=len(customer_ids), reasons=reasons)
        refused = _too_many(len(customer_ids), self.config.max_customers_per_request)
        if refused:
            return refused
        self._follow_reloads()
        models, store = self.models, self.store
        if models is None or store is None:
            return _error(503, f"not ready: {self.unready or 'the models are not loaded'}")
        try:
            hits, columns = store.lookup(customer_ids)
        except StoreError as exc:
            return _error(503, f"not ready: {exc.reason}")
        known: dict[str, dict] = {}
        if hits:
            base = columns.get(BASE_STAGE)
            scored = score(
                columns,
                hits,
                as_of=store.as_of,
                models=models,
                config=self.config,
                base_stage=base,
                reasons=reasons,
            )
            known = dict(zip(hits, scored.records(known=True), strict=True))
        out = [known.get(i) or unknown_record(i, models, self.config) for i in customer_ids]
        unknown = len(customer_ids) - sum(1 for i in customer_ids if i in known)
        _note(unknown=unknown)
        return ScoreResponse(scores=out, unknown=unknown, models=models.versions)

    @bentoml.api
    async def score_features(
        self,
        rows: list[FeatureRow] = Field(min_length=1, description="customers with their feature values"),
        as_of: str = Field(
            pattern=r"^\d{4}-\d{2}-\d{2}$", description="the date the features were built for (YYYY-MM-DD)"
        ),
        reasons: bool = Field(False, strict=True, description="add the top features that push churn risk up"),
    ) -> ScoreResponse:
        """Score feature rows supplied by the caller (same feature names as the builders produce)."""
        _note(n=len(rows), reasons=reasons)
        refused = _too_many(len(rows), self.config.max_customers_per_request)
        if refused:
            return refused
        self._follow_reloads()
        models = self.models
        if models is None:
            return _error(503, f"not ready: {self.unready or 'the models are not loaded'}")
        allowed = set(models.inputs)
        columns: dict[str, list] = {f: [] for f in models.inputs}
        for i, row in enumerate(rows):
            unknown = [k for k in row.features if k not in allowed]
            if unknown:
                return _error(
                    422,
                    f"rows[{i}].features: unknown feature(s) {unknown[:5]}; "
                    f"expected names the models read ({models.churn_label}; {models.offer_note})",
                )
            for f in models.inputs:
                columns[f].append(row.features.get(f))
        columns[BASE_ACTION] = [r.lifecycle_next_action for r in rows]
        columns[BASE_CONTACT] = [r.lifecycle_contact_at for r in rows]
        try:
            check_request(columns, len(rows), models)
        except FeatureValueError as exc:
            return _error(422, f"rows[{exc.row}].features.{exc.feature}: {exc.detail}")
        try:
            day = time.strptime(as_of, "%Y-%m-%d")
        except ValueError:
            return _error(422, f"as_of: {as_of!r} is not a calendar date (YYYY-MM-DD)")
        base = [r.lifecycle_base_stage for r in rows]
        try:
            scored = score(
                columns,
                [r.customer_id for r in rows],
                as_of=time.strftime("%Y-%m-%d", day),
                models=models,
                config=self.config,
                base_stage=base,
                reasons=reasons,
            )
        except ValueError as exc:
            return _error(422, f"rows[].features: {exc}")
        return ScoreResponse(scores=scored.records(known=None), unknown=0, models=models.versions)

    @bentoml.api
    def reload(self) -> dict[str, str]:
        """Load the current champions and snapshot; every worker follows. Needs the API key to be configured."""
        if not os.environ.get(self.config.api_key_env):  # the Gate answers 403 first; never reload unprotected
            return _error(403, "/reload is disabled without an API key")
        try:
            store, models = self._load()
        except Exception as exc:  # a missing artifact, a damaged registry or snapshot: keep what we have
            logging.getLogger(__name__).error("reload refused: %s", exc)
            kept = "the current models" if self.models is not None else "nothing loaded (not ready)"
            return _error(422, f"kept {kept}: {_public(exc)}")
        self.store, self.models, self.unready = store, models, None
        try:
            self._marker.parent.mkdir(parents=True, exist_ok=True)
            self._marker.write_text(json.dumps(models.versions))
        except OSError as exc:
            logging.getLogger(__name__).error("could not tell the other workers (%s): they keep their models", exc)
        self._generation = self._marker_time()
        log.info("reloaded %s", models.versions)
        return models.versions


Retain.add_asgi_middleware(Gate)


# -- the API's own documentation -----------------------------------------------------------
ERRORS = {
    400: "the body is not JSON or does not fit the request schema; the message names the field",
    401: "an API key is configured and the request carries none or a wrong one (Authorization: Bearer <key>)",
    403: "/reload while no API key is configured",
    413: "more customers than max_customers_per_request (1,000 by default), or a body over the byte limit",
    415: "the Content-Type is not application/json",
    422: "well-formed but unusable: an unknown feature, a text for a numeric feature, an as_of that is no date",
    503: "not ready, with the reason: no champion, a feature snapshot missing or damaged, an empty API key",
}
_STATUSES = {
    "/score_ids": (400, 401, 413, 415, 503),
    "/score_features": (400, 401, 413, 415, 422, 503),
    "/reload": (400, 401, 403, 413, 415, 422, 503),
}
EXAMPLES = {
    "/score_ids": {"customer_ids": ["C000001", "nobody"], "reasons": True},
    "/score_features": {
        "as_of": "2026-06-30",
        "rows": [{"customer_id": "x", "features": {"sales_orders_all": 3, "demo_region": "North"}}],
    },
    "/reload": {},
}
_DOC: dict = {}


def openapi() -> dict:
    """Retain's OpenAPI document: BentoML's schemas of our models, our title, errors, security and examples."""
    if "doc" in _DOC:
        return _DOC["doc"]
    doc = json.loads(json.dumps(Retain.openapi_spec.asdict()))
    doc["openapi"] = "3.1.0"  # the schemas are JSON Schema 2020-12 (anyOf with type null), as 3.1 has it
    doc["info"] = {
        "title": "Retain scoring API",
        "version": _version(),
        "description": (
            "Churn risk, lifecycle stage and next best offer per customer. Errors are "
            '`{"error": "<one sentence>"}`. When the API key variable is set, every endpoint except '
            "/livez, /readyz, /metrics, /docs and /docs.json needs `Authorization: Bearer <key>`."
        ),
    }
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in ("InvalidArgument", "NotFound", "InternalServerError", "TaskStatusResponse"):
        schemas.pop(name, None)
    schemas["Error"] = {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string", "description": "what is wrong and what to do"}},
    }
    schemas["Readiness"] = {
        "type": "object",
        "required": ["ready", "reason", "degraded"],
        "properties": {
            "ready": {"type": "boolean"},
            "reason": {"type": ["string", "null"], "description": "why the service cannot score (503)"},
            "degraded": {
                "type": ["string", "null"],
                "description": "why it answers from an older feature snapshot than the one on disk",
            },
        },
    }
    score = schemas.get("Score", {}).get("properties", {})
    for field, values in (("risk_band", ["low", "medium", "high"]), ("lifecycle_stage", list(STAGES))):
        for branch in score.get(field, {}).get("anyOf", ()):
            if branch.get("type") == "string":
                branch["enum"] = values
    doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, item in doc["paths"].items():
        for op in item.values():
            if path in _STATUSES:
                op["security"] = [{"bearer": []}]
                op["responses"] = {
                    "200": op["responses"]["200"],
                    **{str(s): {"description": ERRORS[s], "content": error} for s in _STATUSES[path]},
                }
                op["requestBody"]["required"] = True
                op["requestBody"]["content"]["application/json"]["example"] = EXAMPLES[path]
            else:
                op["security"] = []
    doc["paths"]["/readyz"]["get"]["responses"] = {
        str(s): {
            "description": d,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}},
        }
        for s, d in ((200, "ready (degraded says when it answers from an older snapshot)"), (503, "not ready: why"))
    }
    doc["paths"]["/metrics"]["get"]["responses"] = {
        "200": {"description": "Prometheus text: this worker's request counts and latency, ready and degraded"}
    }
    _DOC["doc"] = doc
    return doc


def _version() -> str:
    import tomllib

    from features.config import ROOT

    try:
        return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    except (OSError, KeyError, ValueError):
        return "unknown"


def docs_response(path: str):
    if path == "/docs.json":
        return JSONResponse(openapi())
    from starlette.responses import HTMLResponse

    return HTMLResponse(
        docs_page(openapi()),
        headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"},
    )


def docs_page(doc: dict) -> str:
    """The document as one HTML page: no script, no font, nothing fetched from anywhere."""
    esc = html.escape
    schemas = doc["components"]["schemas"]

    def resolve(schema: dict) -> dict:
        ref = schema.get("$ref", "")
        return schemas.get(ref.rsplit("/", 1)[-1], schema) if ref else schema

    def kind(schema) -> str:
        if not isinstance(schema, dict):
            return "any"
        if "$ref" in schema:
            return schema["$ref"].rsplit("/", 1)[-1]
        if "anyOf" in schema:
            return " or ".join(kind(s) for s in schema["anyOf"])
        if "enum" in schema:
            return "one of " + ", ".join(map(str, schema["enum"]))
        if schema.get("type") == "array":
            return f"list of {kind(schema.get('items', {}))}"
        if schema.get("type") == "object" and isinstance(schema.get("additionalProperties"), dict):
            return f"map of {kind(schema['additionalProperties'])}"
        t = schema.get("type", "any")
        return " or ".join(t) if isinstance(t, list) else (schema.get("title", t) if t == "object" else t)

    def table(schema: dict) -> str:
        schema = resolve(schema)
        props, required = schema.get("properties", {}), set(schema.get("required", ()))
        if not props:
            return "<p>(no fields)</p>"
        rows = "".join(
            f"<tr><td><code>{esc(n)}</code></td><td>{esc(kind(p))}</td><td>{'yes' if n in required else 'no'}"
            f"</td><td>{esc(p.get('description', ''))}</td></tr>"
            for n, p in props.items()
        )
        return f"<table><tr><th>field</th><th>type</th><th>required</th><th>meaning</th></tr>{rows}</table>"

    parts = [
        f"<h1>{esc(doc['info']['title'])} {esc(doc['info']['version'])}</h1>",
        f"<p>{esc(doc['info']['description'])}</p>",
        '<p>The document: <a href="/docs.json">/docs.json</a></p>',
    ]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            parts.append(f"<h2><code>{method.upper()} {esc(path)}</code></h2><p>{esc(op.get('description', ''))}</p>")
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                parts.append("<h3>Request</h3>" + table(body["schema"]))
                parts.append(f"<pre>{esc(json.dumps(body.get('example', {}), indent=2))}</pre>")
            parts.append("<h3>Responses</h3><ul>")
            for status, resp in op.get("responses", {}).items():
                parts.append(f"<li><b>{esc(status)}</b> {esc(resp.get('description', ''))}</li>")
            parts.append("</ul>")
    for name in ("ScoreResponseIODescriptor", "Score", "Reason", "FeatureRow", "Error", "Readiness"):
        if name in schemas:
            parts.append(f"<h2 id='{esc(name)}'>{esc(name.removesuffix('IODescriptor'))}</h2>{table(schemas[name])}")
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}"
        "pre{background:#f4f4f4;padding:.5em}"
    )
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{esc(doc['info']['title'])}</title>"
        f"<style>{style}</style></head><body>{''.join(parts)}</body></html>"
    )
