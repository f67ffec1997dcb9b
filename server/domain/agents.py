"""Agents: creation, updates, deletion and actions with their status and energy effects (SPEC §6)."""

from __future__ import annotations

import secrets
from typing import Any

from client_sdk.protocol import (
    Agent,
    AgentActionData,
    AgentDeletedData,
    AgentStatus,
    AgentStatusChangedData,
    EventType,
    agent_rooms,
    utc_now,
)
from client_sdk.rest_models import AgentActionRequest, AgentActionResult, AgentCreate, AgentUpdate, Page
from server.domain.errors import InvalidInput, InvalidTransition, NotFound
from server.domain.ports import DomainWork, Reader
from server.events.publisher import Publisher

NEW_AGENT_ENERGY = 100.0
MAX_ENERGY = 100.0


class ActionRule:
    """What an action does: the status it yields, its energy effect, and what it needs."""

    def __init__(self, status: AgentStatus, energy_delta: float, allowed_when_inactive: bool) -> None:
        self.status = status
        self.energy_delta = energy_delta
        self.allowed_when_inactive = allowed_when_inactive


ACTIONS: dict[str, ActionRule] = {
    "activate": ActionRule("active", 0.0, allowed_when_inactive=True),
    "deactivate": ActionRule("inactive", 0.0, allowed_when_inactive=True),
    "patrol": ActionRule("patrolling", -5.0, allowed_when_inactive=False),
    "attack": ActionRule("attacking", -20.0, allowed_when_inactive=False),
    "rest": ActionRule("resting", +30.0, allowed_when_inactive=False),
}


def new_id(prefix: str) -> str:
    """An opaque, URL-safe entity id."""
    return f"{prefix}-{secrets.token_hex(6)}"


class AgentService:
    """The agent rules; every committed change is announced through the unit of work."""

    def __init__(self, reader: Reader, publisher: Publisher) -> None:
        self.reader = reader
        self.publisher = publisher

    async def create(self, request: AgentCreate) -> Agent:
        """A new agent starts active with health 1.0 and energy 100."""
        now = utc_now()
        agent = Agent(
            agent_id=new_id("agent"),
            agent_type=request.agent_type,
            name=request.name,
            status="active",
            health=1.0,
            energy=NEW_AGENT_ENERGY,
            metadata=request.metadata,
            created_at=now,
            updated_at=now,
        )

        async def work(uow: DomainWork) -> None:
            await uow.repos.agents.insert(agent)
            await self._announce(uow, EventType.AGENT_CREATED, agent)

        await self.publisher.transact(work)
        return agent

    async def get(self, agent_id: str) -> Agent:
        """One agent, or NotFound."""
        async with self.reader.read() as repos:
            agent = await repos.agents.get(agent_id)
        if agent is None:
            raise NotFound("agent", agent_id)
        return agent

    async def list(self, agent_type: str | None, status: str | None, limit: int, offset: int) -> Page[Agent]:
        """A filtered page of agents, oldest first."""
        async with self.reader.read() as repos:
            items, total = await repos.agents.page(agent_type, status, limit, offset)
        return Page[Agent](items=items, total=total, limit=limit, offset=offset)

    async def count_by_status(self) -> dict[str, int]:
        """Status → number of agents."""
        async with self.reader.read() as repos:
            return await repos.agents.count_by_status()

    async def update(self, agent_id: str, request: AgentUpdate) -> Agent:
        """Partial update; emits agent_updated, and agent_status_changed when the status moved."""
        changes = request.model_dump(exclude_unset=True)
        if not changes:
            raise InvalidInput("body", "nothing to update")
        if "name" in changes and changes["name"] is None:
            changes.pop("name")
        for field in ("status", "health", "energy", "metadata"):
            if field in changes and changes[field] is None:
                raise InvalidInput(field, f"{field} cannot be null")

        async def work(uow: DomainWork) -> Agent:
            current = await self._load(uow, agent_id)
            updated = current.model_copy(update={**changes, "updated_at": utc_now()})
            await uow.repos.agents.save(updated)
            await self._announce(uow, EventType.AGENT_UPDATED, updated)
            await self._status_changed(uow, current, updated)
            return updated

        return await self.publisher.transact(work)

    async def delete(self, agent_id: str) -> None:
        """Remove an agent; emits agent_deleted."""

        async def work(uow: DomainWork) -> None:
            if not await uow.repos.agents.delete(agent_id):
                raise NotFound("agent", agent_id)
            data = AgentDeletedData(agent_id=agent_id)
            await uow.publish(EventType.AGENT_DELETED, data.model_dump(mode="json"), agent_rooms(agent_id))

        await self.publisher.transact(work)

    async def act(self, agent_id: str, request: AgentActionRequest) -> AgentActionResult:
        """Run an action: its status and energy effect, or a 409 when the agent cannot do it."""
        rule = ACTIONS[request.action]
        if request.action == "attack" and not request.parameters.get("target"):
            raise InvalidInput("parameters.target", "attack needs parameters.target")

        async def work(uow: DomainWork) -> AgentActionResult:
            current = await self._load(uow, agent_id)
            if current.status == "inactive" and not rule.allowed_when_inactive:
                raise InvalidTransition(f"an inactive agent cannot {request.action}; activate it first")
            if current.energy + rule.energy_delta < 0:
                raise InvalidTransition(
                    f"{request.action} needs {-rule.energy_delta:g} energy, agent has {current.energy:g}"
                )
            energy = min(MAX_ENERGY, current.energy + rule.energy_delta)
            updated = current.model_copy(update={"status": rule.status, "energy": energy, "updated_at": utc_now()})
            result: dict[str, Any] = {
                "previous_status": current.status,
                "status": updated.status,
                "energy_delta": energy - current.energy,
                "energy": energy,
            }
            if request.action == "attack":
                result["target"] = request.parameters["target"]
            await uow.repos.agents.save(updated)
            data = AgentActionData(agent_id=agent_id, action=request.action, result=result)
            await uow.publish(EventType.AGENT_ACTION, data.model_dump(mode="json"), agent_rooms(agent_id))
            await self._status_changed(uow, current, updated)
            return AgentActionResult(agent_id=agent_id, action=request.action, result=result, agent=updated)

        return await self.publisher.transact(work)

    async def _load(self, uow: DomainWork, agent_id: str) -> Agent:
        agent = await uow.repos.agents.get(agent_id)
        if agent is None:
            raise NotFound("agent", agent_id)
        return agent

    async def _announce(self, uow: DomainWork, event_type: EventType, agent: Agent) -> None:
        await uow.publish(event_type, agent.model_dump(mode="json"), agent_rooms(agent.agent_id))

    async def _status_changed(self, uow: DomainWork, before: Agent, after: Agent) -> None:
        if before.status != after.status:
            data = AgentStatusChangedData(agent_id=after.agent_id, old_status=before.status, new_status=after.status)
            await uow.publish(EventType.AGENT_STATUS_CHANGED, data.model_dump(mode="json"), agent_rooms(after.agent_id))
