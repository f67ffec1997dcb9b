"""GET /docs (Swagger UI over /openapi.json) and GET /docs/events (the AsyncAPI document as a readable page).

Swagger UI is the npm package `swagger-ui-dist`, pinned in web/package-lock.json and served from
web/node_modules (server/web.py): nothing is loaded from a CDN, so the pages work offline.
"""

from __future__ import annotations

import html
from typing import Any

from aiohttp import web

from server.api.openapi import build_asyncapi

SWAGGER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Active Immune Core REST API</title>
<link rel="icon" href="/favicon.ico" type="image/svg+xml">
<link rel="stylesheet" href="/vendor/swagger-ui.css">
<link rel="stylesheet" href="/static/docs.css">
</head><body>
<nav class="docs-nav"><strong>Active Immune Core</strong>
<a href="/docs" aria-current="page">REST API</a> <a href="/docs/events">Real-time events</a>
<a href="/">Dashboard</a> <a href="/openapi.json">openapi.json</a></nav>
<div id="swagger"></div>
<script src="/vendor/swagger-ui-bundle.js"></script>
<script src="/static/docs.js"></script>
</body></html>
"""


async def swagger_page(_request: web.Request) -> web.Response:
    """The REST reference: Swagger UI reading /openapi.json ("Authorize" takes a bearer token)."""
    return web.Response(text=SWAGGER_PAGE, content_type="text/html")


async def events_page(_request: web.Request) -> web.Response:
    """Every Socket.IO event and client request of /asyncapi.json, with the fields of its data."""
    return web.Response(text=render_asyncapi(build_asyncapi()), content_type="text/html")


def render_asyncapi(document: dict[str, Any]) -> str:
    """An HTML page of an AsyncAPI 3.0 document: one section per message, a table of its fields."""
    schemas: dict[str, Any] = document["components"]["schemas"]
    messages: dict[str, Any] = document["components"]["messages"]
    sections = []
    toc = []
    for key, message in messages.items():
        name = message["name"]
        anchor = f"m-{key}"
        toc.append(f'<li><a href="#{anchor}"><code>{html.escape(name)}</code></a></li>')
        payload = message["payload"]
        data = payload.get("properties", {}).get("data") if "event_type" in payload.get("properties", {}) else None
        fields = _fields(data if data is not None else payload, schemas)
        title = "server → client" if data is not None else "client → server (with an ack)"
        sections.append(
            f'<section id="{anchor}"><h3><code>{html.escape(name)}</code> <small>{title}</small></h3>'
            f"<p>{_inline_code(message.get('summary', ''))}</p>{fields}</section>"
        )
    server = document["servers"]["socketio"]
    channel = document["channels"]["events"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Active Immune Core real-time events</title>
<link rel="icon" href="/favicon.ico" type="image/svg+xml">
<link rel="stylesheet" href="/static/docs.css">
</head><body class="events-doc">
<nav class="docs-nav"><strong>Active Immune Core</strong>
<a href="/docs">REST API</a> <a href="/docs/events" aria-current="page">Real-time events</a>
<a href="/">Dashboard</a> <a href="/asyncapi.json">asyncapi.json</a></nav>
<main>
<h1>{html.escape(document["info"]["title"])}</h1>
<p>Socket.IO at path <code>{html.escape(server["pathname"])}</code>. {_inline_code(channel["description"])}
Every server → client event is one object: <code>event_type</code>, <code>event_id</code>,
<code>timestamp</code>, <code>source</code>, <code>room</code> and the <code>data</code> below.
The full contract, with resume and error codes, is docs/protocol.md in the repository.</p>
<h2>Messages</h2><ul class="toc">{"".join(toc)}</ul>
{"".join(sections)}
</main></body></html>
"""


def _fields(schema: dict[str, Any], schemas: dict[str, Any]) -> str:
    schema = _resolve(schema, schemas)
    properties: dict[str, Any] = schema.get("properties", {})
    if not properties:
        return "<p><em>No fields.</em></p>"
    required = set(schema.get("required", []))
    rows = []
    for name, field in properties.items():
        resolved = _resolve(field, schemas)
        description = resolved.get("description") or field.get("description") or ""
        rows.append(
            f"<tr><td><code>{html.escape(name)}</code>{'' if name in required else ' <small>optional</small>'}</td>"
            f"<td>{html.escape(_type_name(field, schemas))}</td><td>{_inline_code(description)}</td></tr>"
        )
    return f"<table><tr><th>field</th><th>type</th><th>meaning</th></tr>{''.join(rows)}</table>"


def _resolve(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        resolved: dict[str, Any] = schemas.get(ref.rsplit("/", 1)[-1], {})
        return resolved
    return schema


def _type_name(schema: dict[str, Any], schemas: dict[str, Any]) -> str:
    if "$ref" in schema:
        target = _resolve(schema, schemas)
        if "enum" in target:
            return " | ".join(str(value) for value in target["enum"])
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "enum" in schema:
        return " | ".join(str(value) for value in schema["enum"])
    if "const" in schema:
        return repr(schema["const"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(_type_name(option, schemas) for option in schema[key])
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        return " | ".join(str(k) for k in kind)
    if kind == "array":
        return f"array of {_type_name(schema.get('items', {}), schemas)}"
    if schema.get("format"):
        return f"{kind} ({schema['format']})"
    return str(kind)


def _inline_code(text: str) -> str:
    """Escape `text` and show its `backticked` parts as code (the documents use Markdown's backticks)."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{part}</code>" if i % 2 else part for i, part in enumerate(parts))


def add_routes(app: web.Application) -> None:
    """Register /docs and /docs/events."""
    app.router.add_get("/docs", swagger_page)
    app.router.add_get("/docs/events", events_page)
