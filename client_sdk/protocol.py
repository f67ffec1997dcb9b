"""The wire contract: every shape that crosses the Socket.IO connection.

Defined once here and imported by the server and the SDK; nothing else builds these shapes.
This module depends on pydantic only, so the SDK never pulls in the server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

# --------------------------------------------------------------------------- identifiers

ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
ENTITY_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
CUSTOM_TYPE_PATTERN = r"^custom\.[a-z0-9_.-]{1,64}$"

# Matched with `fullmatch`: a `$` alone also matches before a trailing newline (`agent:abc\n`).
_ENTITY_ID_RE = re.compile(ENTITY_ID_PATTERN)
_CUSTOM_TYPE_RE = re.compile(CUSTOM_TYPE_PATTERN)

MAX_EVENT_ID = 2**63 - 1
"""Event ids are signed 64-bit integers (SQLite INTEGER, PostgreSQL BIGINT); a larger one is invalid."""


def utc_now() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(UTC)


def format_timestamp(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a trailing Z, as every envelope carries."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


Timestamp = Annotated[datetime, PlainSerializer(format_timestamp, return_type=str, when_used="json")]


class WireModel(BaseModel):
    """Base for wire shapes: strict about unknown fields in requests, lenient in events."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class RequestModel(BaseModel):
    """Base for client requests: unknown fields are rejected so typos surface as errors.

    Strict: a field is taken only in its own JSON type (`"5"`, `5.0` or `true` is not an integer).
    """

    model_config = ConfigDict(extra="forbid", strict=True)


# --------------------------------------------------------------------------- event types


class EventType(StrEnum):
    """The 21 standard event types; the value is the Socket.IO event name."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    ERROR = "error"
    AGENT_CREATED = "agent_created"
    AGENT_UPDATED = "agent_updated"
    AGENT_DELETED = "agent_deleted"
    AGENT_STATUS_CHANGED = "agent_status_changed"
    AGENT_ACTION = "agent_action"
    TASK_CREATED = "task_created"
    TASK_ASSIGNED = "task_assigned"
    TASK_STARTED = "task_started"
    TASK_COMPLETED = "task_completed"
    TASK_FAILED = "task_failed"
    TASK_CANCELLED = "task_cancelled"
    ELECTION_TRIGGERED = "election_triggered"
    LEADER_ELECTED = "leader_elected"
    CONSENSUS_PROPOSED = "consensus_proposed"
    CONSENSUS_DECIDED = "consensus_decided"
    HEALTH_CHANGED = "health_changed"
    METRICS_UPDATED = "metrics_updated"
    ALERT_TRIGGERED = "alert_triggered"


CONNECTION_EVENT_TYPES = frozenset({EventType.CONNECTED, EventType.DISCONNECTED, EventType.ERROR})
"""Sent to one connection, never logged, never replayed, not subscribable."""

ROOM_EVENT_TYPES = frozenset(set(EventType) - CONNECTION_EVENT_TYPES)
"""The 18 types published to rooms (the log holds these and custom.* events)."""


def is_custom_type(event_type: str) -> bool:
    """True for a well-formed `custom.<name>` type."""
    return bool(_CUSTOM_TYPE_RE.fullmatch(event_type))


def is_subscribable_type(event_type: str) -> bool:
    """True for a type a subscription filter may name: a room event type or a custom type."""
    return event_type in ROOM_EVENT_TYPES or is_custom_type(event_type)


def unknown_event_types(event_types: Iterable[str]) -> list[str]:
    """The types a filter (or a broadcast) may not name, in the order given; the one event-type check."""
    return [event_type for event_type in event_types if not is_subscribable_type(event_type)]


# --------------------------------------------------------------------------- rooms

STATIC_ROOMS = ("agents", "tasks", "coordination", "system")
ENTITY_ROOM_PREFIXES = ("agent:", "task:")


def is_valid_room(room: str) -> bool:
    """True for a public room: a static room or `agent:<id>` / `task:<id>`."""
    if room in STATIC_ROOMS:
        return True
    for prefix in ENTITY_ROOM_PREFIXES:
        if room.startswith(prefix):
            return bool(_ENTITY_ID_RE.fullmatch(room[len(prefix) :]))
    return False


def unknown_rooms(rooms: Iterable[str]) -> list[str]:
    """The rooms that are not public rooms, in the order given; the one room check."""
    return [room for room in rooms if not is_valid_room(room)]


def agent_rooms(agent_id: str) -> list[str]:
    """Rooms an agent event goes to: the primary room first, then the entity room."""
    return ["agents", f"agent:{agent_id}"]


def task_rooms(task_id: str) -> list[str]:
    """Rooms a task event goes to: the primary room first, then the entity room."""
    return ["tasks", f"task:{task_id}"]


# --------------------------------------------------------------------------- error codes


class ErrorCode(StrEnum):
    """Error codes of acks, `error` events and `connect_error`."""

    INVALID_REQUEST = "invalid_request"
    UNKNOWN_ROOM = "unknown_room"
    FORBIDDEN = "forbidden"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    RATE_LIMITED = "rate_limited"
    UNKNOWN_ACTION = "unknown_action"
    INTERNAL_ERROR = "internal_error"
    UNAUTHORIZED = "unauthorized"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    ORIGIN_NOT_ALLOWED = "origin_not_allowed"


class DisconnectReason(StrEnum):
    """`disconnected.data.reason` values."""

    IDLE_TIMEOUT = "idle_timeout"
    SLOW_CONSUMER = "slow_consumer"
    RATE_LIMITED = "rate_limited"
    TOKEN_EXPIRED = "token_expired"
    KICKED = "kicked"
    SERVER_SHUTDOWN = "server_shutdown"


# --------------------------------------------------------------------------- domain shapes

AgentType = Literal[
    "macrophage",
    "neutrophil",
    "nk_cell",
    "dendritic_cell",
    "b_cell",
    "helper_t_cell",
    "cytotoxic_t_cell",
    "regulatory_t_cell",
]
AgentStatus = Literal["active", "patrolling", "attacking", "resting", "inactive"]
AgentActionName = Literal["activate", "deactivate", "patrol", "attack", "rest"]
TaskStatus = Literal["pending", "assigned", "running", "completed", "failed", "cancelled"]
ProposalStatus = Literal["pending", "approved", "rejected", "expired"]
AlertLevel = Literal["info", "warning", "critical"]
HealthStatus = Literal["healthy", "degraded", "unhealthy"]


class Agent(WireModel):
    """An immune-cell agent."""

    agent_id: str
    agent_type: AgentType
    name: str | None = None
    status: AgentStatus
    health: float = Field(ge=0.0, le=1.0)
    energy: float = Field(ge=0.0, le=100.0)
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: Timestamp
    updated_at: Timestamp


class Task(WireModel):
    """A unit of work, optionally assigned to an agent."""

    task_id: str
    task_type: str
    priority: int = Field(ge=1, le=10)
    payload: dict[str, Any] = Field(default_factory=dict)
    status: TaskStatus
    agent_id: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    created_at: Timestamp
    updated_at: Timestamp


class Proposal(WireModel):
    """A consensus proposal and its votes."""

    proposal_id: str
    proposal_type: str
    data: dict[str, Any] = Field(default_factory=dict)
    threshold: float = Field(ge=0.5, le=1.0)
    status: ProposalStatus
    votes: dict[str, bool] = Field(default_factory=dict)
    eligible_voters: list[str] = Field(default_factory=list)
    approval_rate: float | None = None
    created_at: Timestamp
    expires_at: Timestamp | None = None
    decided_at: Timestamp | None = None


# --------------------------------------------------------------------------- event data


class ConnectionView(WireModel):
    """Who a connection is and what it receives; shared by `connected` and `info`."""

    connection_id: str
    client_id: str
    user: str | None
    roles: list[str]
    rooms: list[str]
    event_types: list[str]


class ConnectedData(ConnectionView):
    """`connected`: the first event of every connection."""

    last_event_id: int
    epoch: str
    recovered: bool | None = None
    replayed: int = 0
    server_time: Timestamp
    node_id: str


class DisconnectedData(WireModel):
    """`disconnected`: sent just before the server closes a connection."""

    reason: DisconnectReason
    message: str = ""


class ErrorData(WireModel):
    """`error`: a failed request sent without an ack callback."""

    code: ErrorCode
    message: str
    details: Any = None
    request: str | None = None


class AgentDeletedData(WireModel):
    agent_id: str


class AgentStatusChangedData(WireModel):
    agent_id: str
    old_status: AgentStatus
    new_status: AgentStatus


class AgentActionData(WireModel):
    agent_id: str
    action: AgentActionName
    result: dict[str, Any] = Field(default_factory=dict)


class TaskTransitionData(WireModel):
    task_id: str
    old_status: TaskStatus
    new_status: TaskStatus
    task: Task


class ElectionTriggeredData(WireModel):
    term: int


class LeaderElectedData(WireModel):
    leader_id: str | None
    previous_leader_id: str | None
    term: int


class ConsensusDecidedData(WireModel):
    proposal_id: str
    decision: Literal["approved", "rejected", "expired"]
    approval_rate: float
    votes_for: int
    votes_against: int


class HealthChangedData(WireModel):
    status: HealthStatus
    previous_status: HealthStatus | None
    checks: dict[str, Any] = Field(default_factory=dict)


class MetricsUpdatedData(WireModel):
    node_id: str | None = None  # the node whose figures these are (each node of a cluster sends its own)
    connections: int
    events_per_s: float
    events_published: int
    agents_by_status: dict[str, int] = Field(default_factory=dict)
    tasks_by_status: dict[str, int] = Field(default_factory=dict)


class AlertTriggeredData(WireModel):
    level: AlertLevel
    message: str = Field(min_length=1, max_length=2000)
    details: dict[str, Any] = Field(default_factory=dict)


EVENT_DATA_MODELS: dict[EventType, type[BaseModel]] = {
    EventType.CONNECTED: ConnectedData,
    EventType.DISCONNECTED: DisconnectedData,
    EventType.ERROR: ErrorData,
    EventType.AGENT_CREATED: Agent,
    EventType.AGENT_UPDATED: Agent,
    EventType.AGENT_DELETED: AgentDeletedData,
    EventType.AGENT_STATUS_CHANGED: AgentStatusChangedData,
    EventType.AGENT_ACTION: AgentActionData,
    EventType.TASK_CREATED: Task,
    EventType.TASK_ASSIGNED: TaskTransitionData,
    EventType.TASK_STARTED: TaskTransitionData,
    EventType.TASK_COMPLETED: TaskTransitionData,
    EventType.TASK_FAILED: TaskTransitionData,
    EventType.TASK_CANCELLED: TaskTransitionData,
    EventType.ELECTION_TRIGGERED: ElectionTriggeredData,
    EventType.LEADER_ELECTED: LeaderElectedData,
    EventType.CONSENSUS_PROPOSED: Proposal,
    EventType.CONSENSUS_DECIDED: ConsensusDecidedData,
    EventType.HEALTH_CHANGED: HealthChangedData,
    EventType.METRICS_UPDATED: MetricsUpdatedData,
    EventType.ALERT_TRIGGERED: AlertTriggeredData,
}
"""The `data` model of every standard event type."""

PRIMARY_ROOMS: dict[EventType, str | None] = {
    **{t: "agents" for t in EVENT_DATA_MODELS if t.value.startswith("agent_")},
    **{t: "tasks" for t in EVENT_DATA_MODELS if t.value.startswith("task_")},
    EventType.ELECTION_TRIGGERED: "coordination",
    EventType.LEADER_ELECTED: "coordination",
    EventType.CONSENSUS_PROPOSED: "coordination",
    EventType.CONSENSUS_DECIDED: "coordination",
    EventType.HEALTH_CHANGED: "system",
    EventType.METRICS_UPDATED: "system",
    EventType.ALERT_TRIGGERED: "system",
}
"""The primary room of each room event type."""


# --------------------------------------------------------------------------- envelope

DataT = TypeVar("DataT")


class Envelope(WireModel, Generic[DataT]):
    """What every server → client event carries as its single argument."""

    event_id: int | None
    event_type: str
    timestamp: Timestamp
    data: DataT
    source: str = "api"
    room: str | None = None


AnyEnvelope = Envelope[dict[str, Any]]


class EventPage(WireModel):
    """`GET /events`: a page of the event log."""

    items: list[AnyEnvelope]
    next_after: int
    """Pass as `after` to read the next page (the id of the last event scanned)."""
    head: int
    """The newest event id in the log."""
    epoch: str
    pruned_through: int
    """Events up to this id may have left the log (retention); resuming before it is not possible."""


def parse_event_data(event_type: str, data: Any) -> BaseModel | dict[str, Any]:
    """Validate `data` for a standard type (typed model) or return custom data unchanged."""
    try:
        model = EVENT_DATA_MODELS[EventType(event_type)]
    except ValueError:
        if not isinstance(data, dict):
            raise TypeError("custom event data must be an object") from None
        return data
    return model.model_validate(data)


# --------------------------------------------------------------------------- client requests

Room = Annotated[str, Field(min_length=1, max_length=80)]
EventTypeName = Annotated[str, Field(min_length=1, max_length=80)]


class RoomRequest(RequestModel):
    """`join` / `leave` argument."""

    room: Room


class FilterRequest(RequestModel):
    """`subscribe` / `unsubscribe` argument."""

    event_types: list[EventTypeName] = Field(min_length=1)


class ConnectAuth(BaseModel):
    """The `auth` object of a Socket.IO connect; strict like every request."""

    model_config = ConfigDict(extra="ignore", strict=True)

    token: str | None = Field(default=None, max_length=8192)
    client_id: str | None = Field(default=None, pattern=ID_PATTERN)
    rooms: list[Room] = Field(default_factory=list)
    event_types: list[EventTypeName] = Field(default_factory=list)
    last_event_id: int | None = Field(default=None, ge=0, le=MAX_EVENT_ID)
    epoch: str | None = Field(default=None, max_length=128)


# --------------------------------------------------------------------------- acks


class AckError(WireModel):
    """`error` member of a failed ack."""

    code: ErrorCode
    details: Any = None


class Ack(WireModel):
    """Every client event is answered with one of these through the Socket.IO ack."""

    success: bool
    message: str
    data: dict[str, Any] | None = None
    error: AckError | None = None


class PongData(WireModel):
    server_time: Timestamp


class RoomsData(WireModel):
    room: str
    rooms: list[str]


class FilterData(WireModel):
    event_types: list[str]


class InfoData(ConnectionView):
    """`info` ack data; also GET /ws/connections/{id}."""

    connected_at: Timestamp
    last_activity: Timestamp
    messages_sent: int
    messages_received: int
