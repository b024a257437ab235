"""Error answers over HTTP: every one is ``{"error": "<one sentence>"}``, never a local path or a request's values."""

from __future__ import annotations

import json
from http import HTTPStatus
from pathlib import Path

from starlette.responses import JSONResponse


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Every error the service itself gives."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def one_error(status: int, raw: bytes) -> dict[str, str]:
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
        for e in detail[:5]:
            if isinstance(e, dict):
                where = ".".join(str(x) for x in e.get("loc", ()))
                parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else str(e.get("msg", "invalid")))
        more = f" (and {len(detail) - 5} more)" if len(detail) > 5 else ""
        return {"error": "invalid request: " + "; ".join(parts) + more}
    message = body.get("error")
    return {"error": message if isinstance(message, str) else HTTPStatus(status).phrase}


def public(exc: BaseException) -> str:
    """An error as it may be shown over HTTP: the reason without local paths or the registry's address."""
    reason = getattr(exc, "reason", None)
    if reason:
        return str(reason)
    return f"{type(exc).__name__}: {exc}".replace(str(Path.cwd()), ".")


def too_many(n: int, limit: int) -> JSONResponse | None:
    """413 for a request with more customers than ``max_customers_per_request``; None when it fits."""
    if n > limit:
        return error(
            413,
            f"{n:,} customers in one request; the limit is {limit:,} "
            "(max_customers_per_request in configs/serving.yaml): split the request",
        )
    return None
