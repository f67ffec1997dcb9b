"""REST request and response bodies, shared by the server's handlers and the SDK."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from client_sdk.protocol import (
    ENTITY_ID_PATTERN,
    Agent,
    AgentActionName,
    AgentStatus,
    AgentType,
    AlertLevel,
    Proposal,
    Task,
    TaskStatus,
    Timestamp,
    WireModel,
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


__all__ = [
    "Accepted",
    "Agent",
    "AgentActionRequest",
    "AgentActionResult",
    "AgentCreate",
    "AgentUpdate",
    "AlertRequest",
    "ElectionResult",
    "ElectionState",
    "Page",
    "Proposal",
    "ProposalCreate",
    "Task",
    "TaskCreate",
    "TaskUpdate",
    "VoteRequest",
]
