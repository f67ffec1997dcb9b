"""Typed application state shared by the REST handlers."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry

from server.client_address import ClientAddresses
from server.cluster.node import ClusterNode
from server.config import Settings
from server.domain import Domain
from server.events.log import EventLog
from server.events.publisher import Publisher
from server.monitor import Monitor
from server.origins import OriginPolicy
from server.rate_limits import RateLimiter
from server.realtime.gateway import RealtimeGateway
from server.store.db import Database

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
EVENT_LOG = web.AppKey("event_log", EventLog)
PUBLISHER = web.AppKey("publisher", Publisher)
GATEWAY = web.AppKey("gateway", RealtimeGateway)
METRICS_REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)
DOMAIN = web.AppKey("domain", Domain)
MONITOR = web.AppKey("monitor", Monitor)
ORIGINS = web.AppKey("origins", OriginPolicy)
REST_LIMITS = web.AppKey("rest_limits", RateLimiter)
CLIENT_ADDRESSES = web.AppKey("client_addresses", ClientAddresses)
CLUSTER = web.AppKey("cluster", ClusterNode)
"""Set only on a node of a cluster (IMMUNE_REDIS_URL): read it with `app.get(CLUSTER)`."""
