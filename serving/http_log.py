"""What a worker records about requests: one log line each (endpoint, status, counts, latency; never ids or
feature values), the counters ``/metrics`` shows, and BentoML's tracebacks of failed requests cut to the
exception's type and place (they quote the request)."""

from __future__ import annotations

import contextvars
import logging
import traceback
from pathlib import Path

log = logging.getLogger("retain.requests")
REQUEST: contextvars.ContextVar[dict] = contextvars.ContextVar("retain_request")  # counts for the request line
BENTOML_LOGGERS = ("bentoml._internal.server.http_app", "_bentoml_impl.server.app", "bentoml.serve", "uvicorn.error")


def note(**counts) -> None:
    """Counts for this request's log line (the Gate writes it once the response is sent)."""
    info = REQUEST.get(None)
    if info is not None:
        info.update(counts)


class Scrub(logging.Filter):
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


def install() -> None:
    """The request log's handler and the scrubbing of BentoML's loggers, once per process, when a worker starts."""
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    for name in BENTOML_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, Scrub) for f in logger.filters):
            logger.addFilter(Scrub())


class Requests:
    """This worker's answered requests, by endpoint and status: the log line and the ``/metrics`` counters."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, int], int] = {}
        self.seconds: dict[str, float] = {}

    def record(self, method: str, endpoint: str, status: int, info: dict, seconds: float, *, line: bool) -> None:
        """Count the request; with ``line``, log it with the counts the endpoint noted."""
        self.counts[(endpoint, status)] = self.counts.get((endpoint, status), 0) + 1
        self.seconds[endpoint] = self.seconds.get(endpoint, 0.0) + seconds
        if line:
            counts = "".join(f" {k}={v}" for k, v in info.items())
            log.info("%s %s status=%d%s ms=%.2f", method, endpoint, status, counts, seconds * 1e3)

    def metrics(self, reason: str | None, degraded: str | None) -> str:
        """Prometheus text: the counters, and whether this worker is ready and degraded."""
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
        return "\n".join(lines)
