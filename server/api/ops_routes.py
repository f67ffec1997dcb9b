"""Probes and metrics: GET /health, /ready, /metrics (no token needed)."""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from client_sdk.rest_models import HealthReport
from server.api.bodies import json_response
from server.api.docs import documented
from server.api.keys import CLUSTER, DATABASE, GATEWAY, METRICS_REGISTRY, PUBLISHER, SETTINGS
from server.monitor import health_checks

READY_TIMEOUT_S = 2.0


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()


@documented(
    "Liveness: the process serves requests (no token needed)", response=HealthReport, tag="operations", public=True
)
async def health(request: web.Request) -> web.Response:
    """Liveness: the process serves requests and the event loop turns."""
    gateway = request.app[GATEWAY]
    status, checks = await health_checks(request.app[DATABASE], request.app[PUBLISHER].writer)
    report = HealthReport(
        status=status,
        node_id=request.app[SETTINGS].node_id,
        uptime_s=gateway.stats.uptime_s,
        checks={**checks, "connections": len(gateway.connections)},
    )
    return json_response(report)


@documented(
    "Readiness: 200 when the database answers and writes commit, else 503 with the reason (no token needed)",
    tag="operations",
    public=True,
)
async def ready(request: web.Request) -> web.Response:
    """Readiness: 200 only when the database answers and the last write committed."""
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(request.app[DATABASE].ping(), READY_TIMEOUT_S)
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; say which
        checks["database"] = f"error: {type(exc).__name__}"
    failing = request.app[PUBLISHER].writer.unavailable_reason
    checks["writes"] = "ok" if failing is None else f"error: {failing}"
    ok = all(value == "ok" for value in checks.values())
    cluster = request.app.get(CLUSTER)
    if cluster is not None:
        # Shown, but not a reason to leave the pool: without the carrier this node still delivers
        # every event, from the log, just later.
        carrier = cluster.link.carrier.state
        checks["carrier"] = (
            "ok" if carrier.status == "up" else f"{carrier.status}: {carrier.reason} (delivering from the log)"
        )
    headers = {} if ok else {"Retry-After": "1"}
    return web.json_response({"ready": ok, "checks": checks}, status=200 if ok else 503, headers=headers, dumps=_dumps)


@documented(
    "Prometheus metrics, text exposition format (no token needed)",
    tag="operations",
    public=True,
    content_type="text/plain",
)
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition."""
    body = generate_latest(request.app[METRICS_REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application) -> None:
    """Register /health, /ready, /metrics."""
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
