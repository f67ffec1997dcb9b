"""Composition root: build_app(settings) wires store, event log, real-time layer and REST API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from server.api import docs_pages, domain_routes, events_routes, openapi, ops_routes, web_routes, ws_routes
from server.api.keys import (
    CLIENT_ADDRESSES,
    CLUSTER,
    DATABASE,
    DOMAIN,
    EVENT_LOG,
    GATEWAY,
    METRICS_REGISTRY,
    MONITOR,
    ORIGINS,
    PUBLISHER,
    REST_LIMITS,
    SETTINGS,
)
from server.api.middleware import MIDDLEWARES
from server.api.security import AUTHORITY
from server.auth import TokenAuthority
from server.cluster.lease import Lease, SoleNode
from server.cluster.local_node import gateway_as_local_node
from server.cluster.node import ClusterNode
from server.cluster.rest_limits import RedisRateLimiter
from server.config import Settings
from server.domain import Domain
from server.events.dispatcher import Dispatcher
from server.events.publisher import Publisher
from server.events.retention import Retention
from server.events.writer import GroupCommitWriter
from server.monitor import Monitor
from server.origins import OriginPolicy
from server.rate_limits import KeyedBuckets, LocalRateLimiter, RateLimiter
from server.realtime.engine import require_library_internals
from server.realtime.gateway import RealtimeGateway
from server.realtime.stats import RealtimeMetrics
from server.store.db import Database
from server.store.event_log import SqlEventLog
from server.store.repositories import SqlReader, SqlRepositories
from server.store.sqlite_appender import appender_for

CLOSED = web.AppKey("closed", dict)  # what shutdown closed, for its last log line
log = structlog.get_logger(__name__)


def build_app(settings: Settings) -> web.Application:
    """Build the whole server for these settings (nothing starts until the app runs)."""
    require_library_internals()
    settings.check_cluster()  # SQLite with Redis: one line, exit 2
    app = web.Application(
        middlewares=MIDDLEWARES,
        client_max_size=settings.max_payload_bytes,
    )
    db = Database(
        settings.resolved_database_url(),
        synchronous=settings.sqlite_synchronous,
        busy_timeout_s=settings.db_busy_timeout_s,
        application_name=f"immune-core {settings.node_id}",
    )
    event_log = SqlEventLog(db)
    dispatcher = Dispatcher(event_log)
    cluster = ClusterNode(settings, db, event_log, dispatcher) if settings.redis_url else None
    writer = GroupCommitWriter(
        db,
        event_log,
        cluster.link if cluster is not None else dispatcher,
        queue_max=settings.write_queue_max,
        admission_timeout_s=settings.write_timeout_s,
        repositories=SqlRepositories,
        appender=appender_for(db.url, settings.sqlite_synchronous, settings.db_busy_timeout_s),
    )
    publisher = Publisher(writer, event_log, dispatcher)
    registry = CollectorRegistry()
    authority = TokenAuthority(settings)
    gateway = RealtimeGateway(settings, authority, event_log, dispatcher, RealtimeMetrics(registry))
    dispatcher.add_sink(gateway)
    domain = Domain.build(SqlReader(db), publisher, settings.proposal_timeout_s)
    lease: Lease = SoleNode()
    if cluster is not None:
        cluster.attach(gateway_as_local_node(gateway))
        gateway.registry.remote_connections = _remote_connections(cluster)
        lease = cluster.lease
        app[CLUSTER] = cluster

    app[SETTINGS] = settings
    app[DATABASE] = db
    app[EVENT_LOG] = event_log
    app[PUBLISHER] = publisher
    app[GATEWAY] = gateway
    app[DOMAIN] = domain
    app[ORIGINS] = OriginPolicy(settings)
    app[REST_LIMITS] = _rest_limits(settings)
    app[CLIENT_ADDRESSES] = gateway.client_addresses
    app[MONITOR] = Monitor(
        db, publisher, gateway, domain, settings.metrics_interval_s, settings.expiry_interval_s, lease=lease
    )
    app[METRICS_REGISTRY] = registry
    app[AUTHORITY] = authority
    app[CLOSED] = {}

    gateway.attach(app)
    ops_routes.add_routes(app)
    ws_routes.add_routes(app)
    events_routes.add_routes(app)
    domain_routes.add_routes(app)
    openapi.add_routes(app)
    docs_pages.add_routes(app)
    web_routes.add_routes(app)

    app.cleanup_ctx.append(_database_ctx)
    app.cleanup_ctx.append(_realtime_ctx)
    app.on_shutdown.append(_announce_shutdown)
    return app


def _rest_limits(settings: Settings) -> RateLimiter:
    """REST budgets: shared through Redis on a cluster's node, this node's own otherwise."""
    if settings.redis_url:
        return RedisRateLimiter(settings.redis_url, settings.rest_per_min, settings.rest_burst)
    return LocalRateLimiter(KeyedBuckets(settings.rest_per_min, settings.rest_burst))


def _remote_connections(cluster: ClusterNode) -> Callable[[str], int]:
    def count(subject: str) -> int:
        return cluster.view.remote_connections(subject) if cluster.view is not None else 0

    return count


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    db = app[DATABASE]
    await db.migrate()
    yield
    await db.close()
    # The last line of a clean exit says what was closed, so an operator can tell it from a crash.
    log.info("stopped", **app[CLOSED], database="closed", last_event_id=app[PUBLISHER].dispatcher.last_delivered)


async def _realtime_ctx(app: web.Application) -> AsyncIterator[None]:
    dispatcher = app[PUBLISHER].dispatcher
    writer = app[PUBLISHER].writer
    await dispatcher.start()
    cluster = app.get(CLUSTER)
    if cluster is not None:
        await cluster.start()
    writer.start()
    await app[GATEWAY].start()
    settings = app[SETTINGS]
    retention = Retention(
        app[EVENT_LOG],
        settings.event_retention_count,
        settings.event_retention_seconds,
        settings.retention_interval_s,
        lease=app[MONITOR].lease,
    )
    retention.start()
    app[MONITOR].start()
    log.info("serving", node_id=settings.node_id, last_event_id=dispatcher.last_delivered)
    yield
    await app[MONITOR].stop()
    await retention.stop()
    await writer.stop()
    if cluster is not None:
        await cluster.stop()
    await app[GATEWAY].stop()
    await dispatcher.stop()
    await app[REST_LIMITS].close()


async def _announce_shutdown(app: web.Application) -> None:
    """Send every connection `disconnected` (server_shutdown) and close it before the listeners go.

    No fixed pause is needed after it: `gateway.shutdown` returns once each WebSocket's write buffer
    and kernel send queue are empty (or its transport was aborted at the ~1 s bound), and a polling
    client's last response is written by its request handler, which aiohttp's own shutdown awaits.
    """
    gateway = app[GATEWAY]
    app[CLOSED]["connections_closed"] = len(gateway.registry)
    await gateway.shutdown()
