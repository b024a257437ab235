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

Settings come from ``configs/serving.yaml`` (``RETAIN_CONFIGS`` names another folder), read when a
worker starts, never on import; the champions from the MLflow store ``features.runtime.tracking_uri()``
names. The worker count is BentoML's: ``retain serve`` passes serving.yaml's ``workers``
(``serving.launch.server_env``); a bare ``bentoml serve`` runs ServingConfig's default unless
``BENTOML_CONFIG_OPTIONS="services.retain.workers=N"`` says otherwise. When
the environment variable ``api_key_env`` (default ``RETAIN_API_KEY``) is set, every
request except health, metrics and docs needs ``Authorization: Bearer <key>`` (the
scheme in any case, RFC 7235); set to an empty value, the service refuses to become ready.

Error responses are ``{"error": "<one sentence>"}``. Log lines carry the endpoint,
status, counts and latency, one per request, never ids or feature values: BentoML's
own tracebacks of failed requests (which quote the request) are cut to the
exception's type and place.

The parts: request and response schemas (``serving.http_schemas``), the Gate in front of every request
(``http_gate``: auth, body, probes, recycling), the request log and counters (``http_log``), health
(``http_health``), the champions and reloads (``http_reload``), the OpenAPI document and docs page
(``http_docs``); this module is the BentoML service and its endpoints.
"""

from __future__ import annotations

import logging
import os
import time

import bentoml
from pydantic import Field
from starlette.responses import JSONResponse

from serving.champions import Models
from serving.config import ServingConfig
from serving.http_docs import openapi
from serving.http_errors import error, public, too_many
from serving.http_gate import Gate
from serving.http_log import install, note
from serving.http_reload import Champions
from serving.http_schemas import CustomerId, FeatureRow, ScoreResponse
from serving.launch import SERVER_ENV, SERVICE, current_config, empty_key_reason
from serving.request_check import FeatureValueError, check_request
from serving.schema import BASE_ACTION, BASE_CONTACT, BASE_STAGE
from serving.scores import Scores, unknown_record
from serving.scoring import score
from serving.store import StoreError

logger = logging.getLogger(__name__)


@bentoml.service(
    name=SERVICE,
    workers=ServingConfig.model_fields["workers"].default,  # retain serve passes serving.yaml's (launch.server_env)
    threads=4,
    traffic={"timeout": 30},
    metrics={"enabled": False},
    logging={"access": {"enabled": False}},
    envs=[{"name": k, "value": v} for k, v in SERVER_ENV.items()],
)
class Retain:
    """Churn risk, lifecycle stage and next best offer for campaign tools."""

    def __init__(self) -> None:
        install()
        self.config = current_config()
        self.champions = Champions(self.config)
        key = os.environ.get(self.config.api_key_env)
        if key is not None and not key.strip():
            self.champions.unready = empty_key_reason(self.config.api_key_env)
            logger.error("not ready: %s", self.champions.unready)
            return
        if key is None:
            logger.warning(
                "%s is not set: the service answers anyone who can reach it (no authentication)",
                self.config.api_key_env,
            )
        self.champions.start()

    def __is_ready__(self) -> bool:
        return self.champions.health()[0] is None

    def _admit(self, n: int, reasons: bool) -> JSONResponse | None:
        """What both endpoints do first: note the request's size, refuse one over the limit, follow a reload."""
        note(n=n, reasons=reasons)
        refused = too_many(n, self.config.max_customers_per_request)
        if refused is None:
            self.champions.follow()
        return refused

    def _score(self, models: Models, columns, ids: list[str], as_of: str, base, reasons: bool) -> Scores:
        """The one scorer both endpoints call: the snapshot's or the caller's columns for ``ids``."""
        return score(columns, ids, as_of=as_of, models=models, config=self.config, base_stage=base, reasons=reasons)

    # -- endpoints -----------------------------------------------------------------------
    @bentoml.api
    async def score_ids(
        self,
        customer_ids: list[CustomerId] = Field(min_length=1, description="customers to score from the snapshot"),
        reasons: bool = Field(False, strict=True, description="add the top features that push churn risk up"),
    ) -> ScoreResponse:
        """Score customers by id from the feature snapshot; unknown ids come back with known=false."""
        if refused := self._admit(len(customer_ids), reasons):
            return refused
        models, store = self.champions.models, self.champions.store
        if models is None or store is None:
            return error(503, self.champions.not_ready())
        try:
            hits, columns = store.lookup(customer_ids)
        except StoreError as exc:
            return error(503, f"not ready: {exc.reason}")
        known: dict[str, dict] = {}
        if hits:
            scored = self._score(models, columns, hits, store.as_of, columns.get(BASE_STAGE), reasons)
            known = dict(zip(hits, scored.records(known=True), strict=True))
        out = [known.get(i) or unknown_record(i, models, self.config) for i in customer_ids]
        unknown = len(customer_ids) - sum(1 for i in customer_ids if i in known)
        note(unknown=unknown)
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
        if refused := self._admit(len(rows), reasons):
            return refused
        models = self.champions.models
        if models is None:
            return error(503, self.champions.not_ready())
        allowed = set(models.inputs)
        columns: dict[str, list] = {f: [] for f in models.inputs}
        for i, row in enumerate(rows):
            unknown = [k for k in row.features if k not in allowed]
            if unknown:
                return error(
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
            return error(422, f"rows[{exc.row}].features.{exc.feature}: {exc.detail}")
        try:
            day = time.strptime(as_of, "%Y-%m-%d")
        except ValueError:
            return error(422, f"as_of: {as_of!r} is not a calendar date (YYYY-MM-DD)")
        ids, base = [r.customer_id for r in rows], [r.lifecycle_base_stage for r in rows]
        try:
            scored = self._score(models, columns, ids, time.strftime("%Y-%m-%d", day), base, reasons)
        except ValueError as exc:
            return error(422, f"rows[].features: {exc}")
        return ScoreResponse(scores=scored.records(known=None), unknown=0, models=models.versions)

    @bentoml.api
    def reload(self) -> dict[str, str]:
        """Load the current champions and snapshot; every worker follows. Needs the API key to be configured."""
        if not os.environ.get(self.config.api_key_env):  # the Gate answers 403 first; never reload unprotected
            return error(403, "/reload is disabled without an API key")
        try:
            store, models = self.champions.load()
        except Exception as exc:  # a missing artifact, a damaged registry or snapshot: keep what we have
            logger.error("reload refused: %s", exc)
            kept = "the current models" if self.champions.models is not None else "nothing loaded (not ready)"
            return error(422, f"kept {kept}: {public(exc)}")
        self.champions.swap(store, models)
        return models.versions


Retain.add_asgi_middleware(Gate, document=lambda: openapi(Retain))
