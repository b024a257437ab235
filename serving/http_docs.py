"""Retain's OpenAPI document (BentoML's schemas of our models, with our title, errors, security and examples)
and ``/docs``: the document as one HTML page with no script, no font and nothing fetched from anywhere."""

from __future__ import annotations

import html
import json
import tomllib

from starlette.responses import HTMLResponse, JSONResponse

from features.config import ROOT
from modeling.lifecycle import RISK_BANDS, STAGES

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


def openapi(service) -> dict:
    """The BentoML ``service``'s document made Retain's: our title, errors, security and examples (made once)."""
    if "doc" in _DOC:
        return _DOC["doc"]
    doc = json.loads(json.dumps(service.openapi_spec.asdict()))
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
    for field, values in (("risk_band", list(RISK_BANDS)), ("lifecycle_stage", list(STAGES))):
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
    try:
        return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    except (OSError, KeyError, ValueError):
        return "unknown"


def docs_response(path: str, doc: dict) -> JSONResponse | HTMLResponse:
    """``/docs.json``: the document; ``/docs`` and ``/``: the page, which may load nothing (its CSP says so)."""
    if path == "/docs.json":
        return JSONResponse(doc)
    return HTMLResponse(
        docs_page(doc),
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
