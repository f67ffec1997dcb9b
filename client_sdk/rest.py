"""Typed REST helpers for every REST route (aiohttp; problem+json → typed exceptions)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from client_sdk.errors import API_ERRORS, ApiError, TooManyRequests, ValidationFailed
from client_sdk.protocol import Agent, EventPage, InfoData, Proposal, Task
from client_sdk.rest_models import (
    Accepted,
    AgentActionRequest,
    AgentActionResult,
    AgentCreate,
    AgentUpdate,
    AlertRequest,
    BatchAccepted,
    BroadcastBatch,
    BroadcastRequest,
    ConnectionInfo,
    ConnectionList,
    ElectionResult,
    ElectionState,
    HealthReport,
    Page,
    ProposalCreate,
    RealtimeStats,
    TaskCreate,
    TaskUpdate,
    VoteRequest,
)

M = TypeVar("M", bound=BaseModel)
TokenSource = Callable[[], Awaitable[str | None]]


class RestClient:
    """One aiohttp session and a bearer token; sub-objects group the routes (`rest.agents.create`)."""

    def __init__(self, base_url: str, token: TokenSource, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self.agents = AgentsApi(self)
        self.tasks = TasksApi(self)
        self.election = ElectionApi(self)
        self.consensus = ConsensusApi(self)
        self.ws = RealtimeApi(self)

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        """One call; returns the decoded JSON body (None for 204) or raises a typed ApiError."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        headers = {}
        token = await self._token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        query = {k: _query_value(v) for k, v in (params or {}).items() if v is not None}
        async with self._session.request(
            method, self.base_url + path, json=json, params=query, headers=headers
        ) as response:
            if response.status == 204:
                return None
            body = await response.json(content_type=None) if response.content_length != 0 else None
            if response.status >= 400:
                problem = body if isinstance(body, dict) else {"detail": str(body)}
                error = API_ERRORS.get(response.status, ApiError)(response.status, problem)
                if isinstance(error, TooManyRequests) and "Retry-After" in response.headers:
                    error.retry_after_s = float(response.headers["Retry-After"])
                raise error
            return body

    async def call(self, model: type[M], method: str, path: str, **kwargs: Any) -> M:
        """A call whose answer is validated into `model`."""
        return model.model_validate(await self.request(method, path, **kwargs))

    async def alert(self, level: str, message: str, details: dict[str, Any] | None = None) -> Accepted:
        """POST /alerts → 202."""
        body = _body(AlertRequest, {"level": level, "message": message, "details": details or {}})
        return await self.call(Accepted, "POST", "/alerts", json=_dump(body))

    async def events(
        self, after: int = 0, rooms: list[str] | None = None, event_types: list[str] | None = None, limit: int = 100
    ) -> EventPage:
        """GET /events: a page of the event log."""
        params = {"after": after, "rooms": rooms, "event_types": event_types, "limit": limit}
        return await self.call(EventPage, "GET", "/events", params=params)

    async def health(self) -> HealthReport:
        """GET /health."""
        return await self.call(HealthReport, "GET", "/health")


class _Group:
    def __init__(self, rest: RestClient) -> None:
        self.rest = rest


class AgentsApi(_Group):
    """/agents."""

    async def create(self, agent_type: str, name: str | None = None, metadata: dict[str, Any] | None = None) -> Agent:
        body = _body(AgentCreate, {"agent_type": agent_type, "name": name, "metadata": metadata or {}})
        return await self.rest.call(Agent, "POST", "/agents", json=_dump(body))

    async def list(
        self, agent_type: str | None = None, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> Page[Agent]:
        params = {"agent_type": agent_type, "status": status, "limit": limit, "offset": offset}
        return await self.rest.call(Page[Agent], "GET", "/agents", params=params)

    async def get(self, agent_id: str) -> Agent:
        return await self.rest.call(Agent, "GET", f"/agents/{agent_id}")

    async def update(self, agent_id: str, **changes: Any) -> Agent:
        body = _body(AgentUpdate, changes)
        return await self.rest.call(Agent, "PATCH", f"/agents/{agent_id}", json=_dump(body))

    async def delete(self, agent_id: str) -> None:
        await self.rest.request("DELETE", f"/agents/{agent_id}")

    async def act(self, agent_id: str, action: str, parameters: dict[str, Any] | None = None) -> AgentActionResult:
        body = _body(AgentActionRequest, {"action": action, "parameters": parameters or {}})
        return await self.rest.call(AgentActionResult, "POST", f"/agents/{agent_id}/actions", json=_dump(body))


class TasksApi(_Group):
    """/coordination/tasks."""

    async def create(
        self, task_type: str, priority: int = 5, payload: dict[str, Any] | None = None, agent_id: str | None = None
    ) -> Task:
        body = _body(
            TaskCreate, {"task_type": task_type, "priority": priority, "payload": payload or {}, "agent_id": agent_id}
        )
        return await self.rest.call(Task, "POST", "/coordination/tasks", json=_dump(body))

    async def list(self, status: str | None = None, limit: int = 50, offset: int = 0) -> Page[Task]:
        params = {"status": status, "limit": limit, "offset": offset}
        return await self.rest.call(Page[Task], "GET", "/coordination/tasks", params=params)

    async def get(self, task_id: str) -> Task:
        return await self.rest.call(Task, "GET", f"/coordination/tasks/{task_id}")

    async def update(self, task_id: str, status: str, **changes: Any) -> Task:
        body = _body(TaskUpdate, {"status": status, **changes})
        return await self.rest.call(Task, "PATCH", f"/coordination/tasks/{task_id}", json=_dump(body))


class ElectionApi(_Group):
    """/coordination/election."""

    async def trigger(self) -> ElectionResult:
        return await self.rest.call(ElectionResult, "POST", "/coordination/election/trigger")

    async def get(self) -> ElectionState:
        return await self.rest.call(ElectionState, "GET", "/coordination/election")


class ConsensusApi(_Group):
    """/coordination/consensus."""

    async def propose(
        self,
        proposal_type: str,
        data: dict[str, Any] | None = None,
        threshold: float = 0.66,
        votes: dict[str, bool] | None = None,
        timeout_s: float | None = None,
    ) -> Proposal:
        body = _body(
            ProposalCreate,
            {
                "proposal_type": proposal_type,
                "data": data or {},
                "threshold": threshold,
                "votes": votes or {},
                "timeout_s": timeout_s,
            },
        )
        return await self.rest.call(Proposal, "POST", "/coordination/consensus/propose", json=_dump(body))

    async def vote(self, proposal_id: str, agent_id: str, approve: bool) -> Proposal:
        body = _body(VoteRequest, {"agent_id": agent_id, "approve": approve})
        return await self.rest.call(Proposal, "POST", f"/coordination/consensus/{proposal_id}/votes", json=_dump(body))

    async def list(self, limit: int = 50, offset: int = 0) -> Page[Proposal]:
        params = {"limit": limit, "offset": offset}
        return await self.rest.call(Page[Proposal], "GET", "/coordination/consensus", params=params)

    async def get(self, proposal_id: str) -> Proposal:
        return await self.rest.call(Proposal, "GET", f"/coordination/consensus/{proposal_id}")


class RealtimeApi(_Group):
    """/ws/*."""

    async def stats(self) -> RealtimeStats:
        return await self.rest.call(RealtimeStats, "GET", "/ws/stats")

    async def broadcast(
        self, event_type: str, data: dict[str, Any] | None = None, room: str | None = None, source: str | None = None
    ) -> Accepted:
        fields: dict[str, Any] = {"event_type": event_type, "data": data or {}, "room": room}
        if source is not None:
            fields["source"] = source
        body = _body(BroadcastRequest, fields)
        return await self.rest.call(Accepted, "POST", "/ws/broadcast", json=_dump(body))

    async def publish_many(self, events: Sequence[BroadcastRequest | Mapping[str, Any]]) -> list[int]:
        """Publish up to 1 000 events in one request; all commit together or none does.

        Returns their ids in the order given. A bad item refuses the whole batch (422, with
        `errors[i].loc` starting `["events", i]`).
        """
        batch = BroadcastBatch(events=[BroadcastRequest.model_validate(event) for event in events])
        accepted = await self.rest.call(BatchAccepted, "POST", "/ws/broadcast", json=_dump(batch))
        return accepted.event_ids

    async def connections(self) -> list[ConnectionInfo]:
        """Every connection of the deployment, each with the `node_id` of the node that holds it."""
        return (await self.rest.call(ConnectionList, "GET", "/ws/connections")).items

    async def connection(self, connection_id: str) -> InfoData:
        return await self.rest.call(InfoData, "GET", f"/ws/connections/{connection_id}")

    async def kick(self, connection_id: str) -> None:
        await self.rest.request("DELETE", f"/ws/connections/{connection_id}")


def _body(model: type[M], data: Any) -> M:
    """A request body checked before sending: invalid input raises ValidationFailed, as the server's 422 would."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"loc": [str(part) for part in error["loc"]], "msg": error["msg"], "type": error["type"]}
            for error in exc.errors(include_url=False, include_input=False)
        ]
        problem = {"status": 422, "detail": "request validation failed (before sending)", "code": "invalid_request"}
        raise ValidationFailed(422, {**problem, "errors": errors}) from None


def _dump(body: BaseModel) -> dict[str, Any]:
    return body.model_dump(mode="json", exclude_none=True)


def _query_value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
