"""REST request and response bodies, shared by the server's handlers and the SDK."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from client_sdk.protocol import (
    ENTITY_ID_PATTERN,
    Agent,
    AgentActionName,
    AgentStatus,
    AgentType,
    AlertLevel,
    HealthStatus,
    InfoData,
    Proposal,
    Task,
    TaskStatus,
    Timestamp,
    WireModel,
    unknown_event_types,
    unknown_rooms,
)

ItemT = TypeVar("ItemT")

Metadata = dict[str, Any]


class Body(BaseModel):
    """A request body: unknown fields are refused (422), so typos never pass silently."""

    model_config = ConfigDict(extra="forbid")


class Page(WireModel, Generic[ItemT]):
    """A page of a list endpoint."""

    items: list[ItemT]
    total: int
    limit: int
    offset: int


class AgentCreate(Body):
    agent_type: AgentType
    name: str | None = Field(default=None, min_length=1, max_length=120)
    metadata: Metadata = Field(default_factory=dict)


class AgentUpdate(Body):
    name: str | None = Field(default=None, min_length=1, max_length=120)
    status: AgentStatus | None = None
    health: float | None = Field(default=None, ge=0.0, le=1.0)
    energy: float | None = Field(default=None, ge=0.0, le=100.0)
    metadata: Metadata | None = None


class AgentActionRequest(Body):
    action: AgentActionName
    parameters: Metadata = Field(default_factory=dict)


class AgentActionResult(WireModel):
    agent_id: str
    action: AgentActionName
    result: Metadata
    agent: Agent


class TaskCreate(Body):
    task_type: str = Field(min_length=1, max_length=80)
    priority: int = Field(default=5, ge=1, le=10)
    payload: Metadata = Field(default_factory=dict)
    agent_id: str | None = Field(default=None, pattern=ENTITY_ID_PATTERN)


class TaskUpdate(Body):
    status: TaskStatus
    agent_id: str | None = Field(default=None, pattern=ENTITY_ID_PATTERN)
    result: Metadata | None = None
    error: str | None = Field(default=None, max_length=2000)


class ElectionResult(WireModel):
    term: int
    leader_id: str | None
    previous_leader_id: str | None
    leader_changed: bool


class ElectionState(WireModel):
    term: int
    leader_id: str | None
    elected_at: Timestamp | None


class ProposalCreate(Body):
    proposal_type: str = Field(min_length=1, max_length=80)
    data: Metadata = Field(default_factory=dict)
    threshold: float = Field(default=0.66, ge=0.5, le=1.0)
    votes: dict[str, bool] = Field(default_factory=dict, max_length=1000)
    timeout_s: float | None = Field(default=None, gt=0, le=86_400)


class VoteRequest(Body):
    agent_id: str = Field(pattern=ENTITY_ID_PATTERN)
    approve: bool


class AlertRequest(Body):
    level: AlertLevel
    message: str = Field(min_length=1, max_length=2000)
    details: Metadata = Field(default_factory=dict)


class Accepted(WireModel):
    """202 answer of broadcasts and alerts."""

    event_id: int


MAX_BATCH_EVENTS = 1000
"""Most events one `POST /ws/broadcast` batch may carry."""


class BroadcastRequest(Body):
    """One event for `POST /ws/broadcast`: a `custom.<name>` type or a standard room event type."""

    event_type: str = Field(min_length=1, max_length=80)
    data: dict[str, Any] = Field(default_factory=dict)
    room: str | None = Field(default=None, max_length=80)
    source: str = Field(default="broadcast", min_length=1, max_length=64)

    @field_validator("event_type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if not unknown_event_types([value]):
            return value
        raise ValueError("must be custom.<name> ([a-z0-9_.-]{1,64}) or a standard room event type")

    @field_validator("room")
    @classmethod
    def _known_room(cls, value: str | None) -> str | None:
        if value is not None and unknown_rooms([value]):
            raise ValueError("unknown room")
        return value


class BroadcastBatch(Body):
    """Several events for `POST /ws/broadcast`, validated all or nothing and committed together."""

    events: list[BroadcastRequest] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)


class BatchAccepted(WireModel):
    """202 answer of a batch broadcast: the ids, in the order of the events sent."""

    event_ids: list[int]


class NodeStats(WireModel):
    """One node's real-time figures (an item of `GET /ws/stats` `nodes`)."""

    node_id: str
    active_connections: int
    total_connections: int
    total_disconnections: int
    total_rooms: int
    messages_sent: int
    messages_received: int
    rooms: dict[str, int]
    """Public room → number of members on this node."""
    uptime_s: float
    events_published: int
    events_replayed: int
    rate_limited: int
    slow_consumer_disconnects: int


class RealtimeStats(NodeStats):
    """`GET /ws/stats`: this node's figures (clustered: the deployment's totals), and each node's own in `nodes`."""

    nodes: list[NodeStats]
    carrier: dict[str, Any] | None = None
    """Clustered: this node's Redis carrier (`status` up/down, `reason`, batch counts, `jobs_lease`)."""
    cluster_error: str | None = None
    """Clustered, while Redis cannot be reached: why the figures are this node's alone."""


class ConnectionInfo(InfoData):
    """An item of `GET /ws/connections`: a connection's `info`, and the node that holds it."""

    node_id: str | None = None


class ConnectionList(WireModel):
    """`GET /ws/connections`: every connection of the deployment (each node's, clustered)."""

    items: list[ConnectionInfo]
    total: int


class HealthReport(WireModel):
    """`GET /health`: liveness, with one check per dependency and the connection count."""

    status: HealthStatus
    node_id: str
    uptime_s: float
    checks: dict[str, Any]


__all__ = [
    "Accepted",
    "Agent",
    "AgentActionRequest",
    "AgentActionResult",
    "AgentCreate",
    "AgentUpdate",
    "AlertRequest",
    "BatchAccepted",
    "BroadcastBatch",
    "BroadcastRequest",
    "ConnectionInfo",
    "ConnectionList",
    "ElectionResult",
    "ElectionState",
    "HealthReport",
    "NodeStats",
    "Page",
    "Proposal",
    "ProposalCreate",
    "RealtimeStats",
    "Task",
    "TaskCreate",
    "TaskUpdate",
    "VoteRequest",
]
