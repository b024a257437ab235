"""This worker's health, shared by the service instance (which knows it) and the Gate (which answers probes
and refuses to pass a scoring request to a worker that cannot score)."""

from __future__ import annotations

from starlette.responses import JSONResponse

NOT_READY: dict[str, str] = {}  # "reason": why this worker has no model to score with; the Gate answers 503 with it
HEALTH: dict = {}  # "check": this worker's () -> (not-ready reason, degraded note), set by the service


def health() -> tuple[str | None, str | None]:
    """(why this worker cannot score, or None; why it answers from an older snapshot, or None)."""
    check = HEALTH.get("check")
    if check is None:
        return NOT_READY.get("reason") or "starting", None
    return check()


def readiness() -> JSONResponse:
    """``/readyz``: 503 with the reason when this worker cannot score, 200 with ``degraded`` otherwise."""
    reason, degraded = health()
    if reason:
        return JSONResponse({"ready": False, "reason": reason, "degraded": None}, status_code=503)
    return JSONResponse({"ready": True, "reason": None, "degraded": degraded})
