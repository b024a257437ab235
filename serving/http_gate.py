"""The Gate: ASGI middleware in front of BentoML for what is the same on every endpoint (probes, docs, metrics,
the API key, the request body, error bodies, the request log line, connection recycling)."""

from __future__ import annotations

import hmac
import json
import os
import time
from collections.abc import Callable

from starlette.responses import JSONResponse, PlainTextResponse

from serving.http_docs import docs_response
from serving.http_errors import error, one_error
from serving.http_health import health, readiness
from serving.http_log import REQUEST, Requests
from serving.launch import current_config, empty_key_reason

PROBES = ("/livez", "/readyz", "/healthz")
DOCS = ("/docs", "/docs.json", "/")
OPEN_PATHS = (*PROBES, "/metrics", *DOCS)
API_PATHS = ("/score_ids", "/score_features", "/reload")
SCORING_PATHS = ("/score_ids", "/score_features")
BODY_BYTES_PER_CUSTOMER = 64 * 1024  # generous; a larger body is refused with 413 before parsing


async def answer(send, response: JSONResponse) -> None:
    """Send a response of our own (the request never reaches BentoML)."""
    await response({"type": "http"}, None, send)


class Gate:
    """ASGI middleware in front of BentoML: probes, docs and metrics, the API key, the request's body and
    content type, error bodies, one log line per request, and connection recycling. Its settings are read
    when the worker builds its app (serving.yaml in ``RETAIN_CONFIGS``); ``document`` gives the OpenAPI document.

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

    def __init__(self, app, *, document: Callable[[], dict]):
        config = current_config()
        self.app, self.env_var, self.document = app, config.api_key_env, document
        self.max_body = BODY_BYTES_PER_CUSTOMER * config.max_customers_per_request
        self.recycle_every, self.responses = config.requests_per_connection, 0
        self.requests = Requests()

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
            return await answer(send, readiness())
        if path == "/metrics":
            text = self.requests.metrics(*health())
            return await answer(send, PlainTextResponse(text, media_type="text/plain; version=0.0.4"))
        if path in DOCS:
            return await answer(send, docs_response(path, self.document()))
        if path in PROBES:
            return await self.app(scope, receive, send)
        key = os.environ.get(self.env_var)
        if key is not None and not key.strip():
            return await answer(send, error(503, empty_key_reason(self.env_var)))
        if path == "/reload" and not key:
            return await answer(send, error(403, f"/reload is disabled: set {self.env_var} to protect it with a key"))
        if key and not authorized(dict(scope.get("headers") or []).get(b"authorization", b""), key):
            return await answer(
                send,
                error(
                    401,
                    "missing or wrong API key: send Authorization: Bearer <key>",
                    {"WWW-Authenticate": 'Bearer realm="retain"'},
                ),
            )
        if path not in API_PATHS:
            return await self.app(scope, receive, send)
        if method != "POST":
            return await answer(send, error(405, f"{path} takes POST", {"Allow": "POST"}))
        refused = self._content_type(scope)
        if refused:
            return await answer(send, refused)
        body = await self._body(scope, receive)
        if isinstance(body, JSONResponse):
            return await answer(send, body)
        if body is None:  # the client went away
            return None
        if path in SCORING_PATHS:
            reason, _ = health()
            if reason:
                return await answer(send, error(503, f"not ready: {reason}"))
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
        return error(415, f"unsupported Content-Type {media or '(empty)'!r}; send application/json")

    async def _body(self, scope, receive) -> bytes | JSONResponse | None:
        """The whole request body, at most ``max_body`` bytes whether or not it says its length."""
        too_big = error(413, f"request body over {self.max_body:,} bytes")
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
            body = json.dumps(one_error(start["status"], b"".join(state["body"]))).encode()
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
        line = endpoint not in (*PROBES, "/metrics") or status >= 400  # probes every few seconds would drown the log
        self.requests.record(scope["method"], endpoint, status, info, time.perf_counter() - started, line=line)


def authorized(header: bytes, key: str) -> bool:
    """``Bearer <key>``, the scheme in any case (RFC 7235); the key compared in constant time."""
    scheme, _, token = header.decode("latin-1").strip().partition(" ")
    ok_scheme = hmac.compare_digest(scheme.lower().encode(), b"bearer")
    return (
        hmac.compare_digest(token.strip().encode("latin-1", "replace"), key.encode("latin-1", "replace")) and ok_scheme
    )
