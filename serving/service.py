"""The scoring service (BentoML 1.4): score customers by id (from the feature snapshot) or by feature rows.

Start it with ``python -m retain serve`` (or ``bentoml serve serving.service:Retain``).
Endpoints (all POST with JSON unless noted):

* ``/score_ids``      ``{"customer_ids": [...], "reasons": false}``: rows from the snapshot;
  unknown ids come back with ``known: false``.
* ``/score_features`` ``{"rows": [{"customer_id", "features": {...}, "lifecycle_base_stage"}], "as_of"}``
* ``/reload``         pick up a new champion (and snapshot) without downtime; needs the API key.
* ``GET /livez``, ``/readyz``, ``/metrics``, ``/docs.json`` (OpenAPI), ``/docs`` (Swagger UI).

Either champion may be absent: with only the offer champion every churn field is
null and ``churn_unscored_reason`` says why. With neither, the service still
starts but is not ready: ``/readyz`` and the scoring endpoints answer 503 (the
endpoints with the reason) until a champion is registered and ``/reload`` loads it.

Settings come from ``configs/serving.yaml`` (``RETAIN_CONFIGS`` names another folder);
the champions from the MLflow store ``features.runtime.tracking_uri()`` names. When
the environment variable ``api_key_env`` (default ``RETAIN_API_KEY``) is set, every
request except health, metrics and docs needs ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import threading
import time
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Literal

import bentoml
from bentoml.exceptions import BentoMLException
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model, model_validator

from analytics.config import STAGES
from features.config import CONFIG_DIR, load_config
from features.runtime import quiet_telemetry
from serving.config import ServingConfig
from serving.models import ModelError, Models, NoChampion, load_models
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

OPEN_PATHS = ("/livez", "/readyz", "/healthz", "/metrics", "/docs", "/docs.json")
SCORING_PATHS = ("/score_ids", "/score_features")
NOT_READY: dict[str, str] = {}  # "reason": why this worker has no model to score with; the Gate answers 503 with it
BODY_BYTES_PER_CUSTOMER = 64 * 1024  # generous; a larger body is refused with 413 before parsing


def current_config() -> ServingConfig:
    """configs/serving.yaml, or serving.yaml in the folder ``RETAIN_CONFIGS`` names; read when the service starts."""
    return load_config(ServingConfig, Path(os.environ.get("RETAIN_CONFIGS", CONFIG_DIR)) / "serving.yaml")


CONFIG = current_config()  # only the worker count is needed before start-up

CustomerId = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
FeatureValue = float | str | None
Stage = Literal[STAGES]  # type: ignore[valid-type]


class FeatureRow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: CustomerId
    features: dict[str, FeatureValue] = Field(description="feature name -> value; absent features are missing")
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


class TooLarge(BentoMLException):
    error_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class Unprocessable(BentoMLException):
    error_code = HTTPStatus.UNPROCESSABLE_ENTITY


class Unavailable(BentoMLException):
    error_code = HTTPStatus.SERVICE_UNAVAILABLE


class Forbidden(BentoMLException):
    error_code = HTTPStatus.FORBIDDEN


def _json(send, status: int, payload: dict):
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]

    async def respond():
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return respond()


class Gate:
    """ASGI middleware: bearer API key (when the env var is set), a body-size cap, and connection recycling.

    Recycling: BentoML's workers accept from one shared socket, and a burst of new
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

    async def __call__(self, scope, receive, send):
        not_ready = NOT_READY.get("reason")  # BentoML hides a 5xx's message, so the Gate says it
        if scope["type"] == "http" and scope["path"] == "/readyz" and not_ready:
            return await _json(send, 503, {"error": f"not ready: {not_ready}"})
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        key = os.environ.get(self.env_var)
        headers = dict(scope.get("headers") or [])
        if scope["path"] == "/reload" and not key:
            return await _json(
                send, 403, {"error": f"/reload is disabled: set {self.env_var} to protect it with a key"}
            )
        if key:
            given = headers.get(b"authorization", b"").decode("latin-1")
            if not hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
                return await _json(send, 401, {"error": "missing or wrong API key: send Authorization: Bearer <key>"})
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return await _json(send, 413, {"error": f"request body over {self.max_body:,} bytes"})
        if not_ready and scope["path"] in SCORING_PATHS:
            return await _json(send, 503, {"error": f"not ready: {not_ready}"})
        return await self.app(scope, receive, self._recycling(send) if self.recycle_every else send)

    def _recycling(self, send):
        async def send_or_close(message):
            if message["type"] == "http.response.start":
                self.responses += 1
                if self.responses % self.recycle_every == 0:
                    message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
            await send(message)

        return send_or_close


def _too_many(n: int, limit: int) -> None:
    if n > limit:
        raise TooLarge(
            f"{n:,} customers in one request; the limit is {limit:,} "
            "(max_customers_per_request in configs/serving.yaml): split the request"
        )


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
        if not log.handlers:  # one line per request: endpoint, counts, latency; never ids or feature values
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
        self.store = self._open_store()
        self.models: Models | None = None
        try:
            self.models = self._load()
        except NoChampion as exc:  # up, but not ready: 503 with the reason until /reload finds a champion
            logging.getLogger(__name__).error("not ready: %s", exc)
            self.unready = exc.reason
        else:
            self.unready = None

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

    # -- start-up and reload -------------------------------------------------------------
    def _open_store(self) -> SQLiteStore:
        try:
            return SQLiteStore(self.config.store_path)
        except StoreError as exc:
            raise ModelError(f"refusing to start: {exc}") from exc

    def _load(self) -> Models:
        models = load_models(self.config)
        self._check(models, self.store.columns)
        return models

    def _check(self, models: Models, columns: list[str]) -> None:
        snapshot = [c for c in columns if c not in LIFECYCLE_COLUMNS]
        models.check_features(snapshot, source=f"the feature snapshot {self.config.store_path}")
        self._checked = columns

    def _current(self) -> Models:
        """The models to score with, or 503 saying why there are none."""
        models = self.models
        if models is None:
            raise Unavailable(self.unready or "the models are not loaded")
        return models

    def _snapshot_fits(self) -> None:
        """The batch job may have replaced the snapshot since the last request: check its columns once."""
        columns = self.store.columns
        if columns is not self._checked:
            try:
                self._check(self.models, columns)
            except ModelError as exc:
                raise Unavailable(f"the refreshed feature snapshot does not fit the models: {exc}") from exc

    def _marker_time(self) -> int:
        try:
            return self._marker.stat().st_mtime_ns
        except FileNotFoundError:
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
                self.models, self.unready = self._load(), None
                log.info("followed a reload: %s", self.models.versions)
            except Exception:  # keep serving the models we have
                kept = self.models.versions if self.models is not None else self.unready
                logging.getLogger(__name__).exception("reload failed; keeping %s", kept)
            finally:
                self._generation, self._reloading = stamp, False

        threading.Thread(target=work, daemon=True).start()

    def __is_ready__(self) -> bool:
        return self.models is not None

    # -- endpoints -----------------------------------------------------------------------
    @bentoml.api
    async def score_ids(
        self,
        customer_ids: list[CustomerId] = Field(min_length=1, description="customers to score from the snapshot"),
        reasons: bool = Field(False, description="add the top features that push churn risk up"),
    ) -> ScoreResponse:
        """Score customers by id from the feature snapshot; unknown ids come back with known=false."""
        started = time.perf_counter()
        _too_many(len(customer_ids), self.config.max_customers_per_request)
        self._follow_reloads()
        models = self._current()
        hits, columns = self.store.lookup(customer_ids)
        self._snapshot_fits()
        known: dict[str, dict] = {}
        if hits:
            base = columns.get(BASE_STAGE)
            scored = score(
                columns,
                hits,
                as_of=self.store.as_of,
                models=models,
                config=self.config,
                base_stage=base,
                reasons=reasons,
            )
            known = dict(zip(hits, scored.records(known=True), strict=True))
        out = [known.get(i) or unknown_record(i, models, self.config) for i in customer_ids]
        unknown = len(customer_ids) - sum(1 for i in customer_ids if i in known)
        log.info("score_ids n=%d unknown=%d reasons=%s ms=%.2f", len(customer_ids), unknown, reasons, _ms(started))
        return ScoreResponse(scores=out, unknown=unknown, models=models.versions)

    @bentoml.api
    async def score_features(
        self,
        rows: list[FeatureRow] = Field(min_length=1, description="customers with their feature values"),
        as_of: str = Field(
            pattern=r"^\d{4}-\d{2}-\d{2}$", description="the date the features were built for (YYYY-MM-DD)"
        ),
        reasons: bool = Field(False, description="add the top features that push churn risk up"),
    ) -> ScoreResponse:
        """Score feature rows supplied by the caller (same feature names as the builders produce)."""
        started = time.perf_counter()
        _too_many(len(rows), self.config.max_customers_per_request)
        self._follow_reloads()
        models = self._current()
        allowed = set(models.features)
        columns: dict[str, list] = {f: [] for f in models.features}
        for i, row in enumerate(rows):
            unknown = [k for k in row.features if k not in allowed]
            if unknown:
                raise Unprocessable(
                    f"rows[{i}].features: unknown feature(s) {unknown[:5]}; "
                    f"expected names the models read ({models.churn_label}; {models.offer_note})"
                )
            for f in models.features:
                columns[f].append(row.features.get(f))
        columns[BASE_ACTION] = [r.lifecycle_next_action for r in rows]
        columns[BASE_CONTACT] = [r.lifecycle_contact_at for r in rows]
        base = [r.lifecycle_base_stage for r in rows]
        try:
            check_request(columns, len(rows), models)
        except FeatureValueError as exc:
            raise Unprocessable(f"rows[{exc.row}].features.{exc.feature}: {exc.detail}") from exc
        try:
            day = time.strptime(as_of, "%Y-%m-%d")
        except ValueError as exc:
            raise Unprocessable(f"as_of: {as_of!r} is not a calendar date (YYYY-MM-DD)") from exc
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
            raise Unprocessable(f"rows[].features: {exc}") from exc
        log.info("score_features n=%d reasons=%s ms=%.2f", len(rows), reasons, _ms(started))
        return ScoreResponse(scores=scored.records(known=None), unknown=0, models=models.versions)

    @bentoml.api
    def reload(self) -> dict[str, str]:
        """Load the current champions and snapshot; every worker follows. Needs the API key to be configured."""
        if not os.environ.get(self.config.api_key_env):  # the Gate answers 403 first; never reload unprotected
            raise Forbidden("/reload is disabled without an API key")
        try:
            models = self._load()
        except ModelError as exc:
            raise Unprocessable(f"kept the current models: {exc}") from exc
        self.models, self.unready = models, None
        self._marker.parent.mkdir(parents=True, exist_ok=True)
        self._marker.write_text(json.dumps(models.versions))
        self._generation = self._marker_time()
        log.info("reloaded %s", models.versions)
        return models.versions


Retain.add_asgi_middleware(Gate)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1e3
