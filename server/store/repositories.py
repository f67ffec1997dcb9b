"""Row ↔ model mapping for the domain tables (SQLAlchemy Core; the same SQL on SQLite and PostgreSQL).

Each repository is bound to one connection; `SqlRepositories` bundles them for a unit of work or a
read, and implements the domain's `Repositories` port.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from client_sdk.protocol import Agent, Proposal, Task
from client_sdk.rest_models import ElectionState
from server.store.db import Database
from server.store.tables import agents, election, proposals, tasks

# Built once: constructing and cache-keying a statement per call costs more than running it.
# An UPDATE's SET clause is the parameters given, so one statement serves every save.
_INSERT_AGENTS, _INSERT_TASKS, _INSERT_PROPOSALS = insert(agents), insert(tasks), insert(proposals)
_GET_AGENTS = select(agents).where(agents.c.id == bindparam("b_id"))
_GET_TASKS = select(tasks).where(tasks.c.id == bindparam("b_id"))
_GET_PROPOSALS = select(proposals).where(proposals.c.id == bindparam("b_id"))
_SAVE_AGENTS = update(agents).where(agents.c.id == bindparam("b_id"))
_SAVE_TASKS = update(tasks).where(tasks.c.id == bindparam("b_id"))
_SAVE_PROPOSALS = update(proposals).where(proposals.c.id == bindparam("b_id"))


def _agent(row: Any) -> Agent:
    return Agent(
        agent_id=row["id"],
        agent_type=row["agent_type"],
        name=row["name"],
        status=row["status"],
        health=row["health"],
        energy=row["energy"],
        metadata=row["metadata"] or {},
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _task(row: Any) -> Task:
    return Task(
        task_id=row["id"],
        task_type=row["task_type"],
        priority=row["priority"],
        payload=row["payload"] or {},
        status=row["status"],
        agent_id=row["agent_id"],
        result=row["result"],
        error=row["error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _proposal(row: Any) -> Proposal:
    return Proposal(
        proposal_id=row["id"],
        proposal_type=row["proposal_type"],
        data=row["data"] or {},
        threshold=row["threshold"],
        status=row["status"],
        votes=row["votes"] or {},
        eligible_voters=row["eligible_voters"] or [],
        approval_rate=row["approval_rate"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        decided_at=row["decided_at"],
    )


class AgentRepository:
    """The `agents` table."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def insert(self, agent: Agent) -> None:
        await self.conn.execute(_INSERT_AGENTS, _agent_row(agent))

    async def get(self, agent_id: str) -> Agent | None:
        row = (await self.conn.execute(_GET_AGENTS, {"b_id": agent_id})).mappings().first()
        return _agent(row) if row else None

    async def save(self, agent: Agent) -> None:
        values = _agent_row(agent)
        del values["id"]
        await self.conn.execute(_SAVE_AGENTS, {**values, "b_id": agent.agent_id})

    async def delete(self, agent_id: str) -> bool:
        result = await self.conn.execute(agents.delete().where(agents.c.id == agent_id))
        return bool(result.rowcount)

    async def page(
        self, agent_type: str | None, status: str | None, limit: int, offset: int
    ) -> tuple[list[Agent], int]:
        query = select(agents)
        if agent_type:
            query = query.where(agents.c.agent_type == agent_type)
        if status:
            query = query.where(agents.c.status == status)
        total = (await self.conn.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
        rows = await self.conn.execute(query.order_by(agents.c.created_at, agents.c.id).limit(limit).offset(offset))
        return [_agent(row) for row in rows.mappings()], int(total)

    async def eligible(self) -> list[Agent]:
        """Agents that are not inactive, oldest first."""
        rows = await self.conn.execute(
            select(agents).where(agents.c.status != "inactive").order_by(agents.c.created_at, agents.c.id)
        )
        return [_agent(row) for row in rows.mappings()]

    async def count_by_status(self) -> dict[str, int]:
        rows = await self.conn.execute(select(agents.c.status, func.count()).group_by(agents.c.status))
        return {status: int(count) for status, count in rows}


def _agent_row(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.agent_id,
        "agent_type": agent.agent_type,
        "name": agent.name,
        "status": agent.status,
        "health": agent.health,
        "energy": agent.energy,
        "metadata": agent.metadata,
        "created_at": agent.created_at,
        "updated_at": agent.updated_at,
    }


class TaskRepository:
    """The `tasks` table."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def insert(self, task: Task) -> None:
        await self.conn.execute(_INSERT_TASKS, _task_row(task))

    async def get(self, task_id: str) -> Task | None:
        row = (await self.conn.execute(_GET_TASKS, {"b_id": task_id})).mappings().first()
        return _task(row) if row else None

    async def save(self, task: Task) -> None:
        values = _task_row(task)
        del values["id"]
        await self.conn.execute(_SAVE_TASKS, {**values, "b_id": task.task_id})

    async def page(self, status: str | None, limit: int, offset: int) -> tuple[list[Task], int]:
        query = select(tasks)
        if status:
            query = query.where(tasks.c.status == status)
        total = (await self.conn.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
        rows = await self.conn.execute(query.order_by(tasks.c.created_at, tasks.c.id).limit(limit).offset(offset))
        return [_task(row) for row in rows.mappings()], int(total)

    async def count_by_status(self) -> dict[str, int]:
        rows = await self.conn.execute(select(tasks.c.status, func.count()).group_by(tasks.c.status))
        return {status: int(count) for status, count in rows}


def _task_row(task: Task) -> dict[str, Any]:
    return {
        "id": task.task_id,
        "task_type": task.task_type,
        "priority": task.priority,
        "payload": task.payload,
        "status": task.status,
        "agent_id": task.agent_id,
        "result": task.result,
        "error": task.error,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
    }


class ElectionRepository:
    """The single-row `election` table."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def get(self) -> ElectionState:
        row = (await self.conn.execute(select(election).where(election.c.id == 1))).mappings().one()
        return ElectionState(term=row["term"], leader_id=row["leader_id"], elected_at=row["elected_at"])

    async def save(self, state: ElectionState) -> None:
        await self.conn.execute(
            update(election)
            .where(election.c.id == 1)
            .values(term=state.term, leader_id=state.leader_id, elected_at=state.elected_at)
        )


class ProposalRepository:
    """The `proposals` table."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def insert(self, proposal: Proposal) -> None:
        await self.conn.execute(_INSERT_PROPOSALS, _proposal_row(proposal))

    async def get(self, proposal_id: str) -> Proposal | None:
        row = (await self.conn.execute(_GET_PROPOSALS, {"b_id": proposal_id})).mappings().first()
        return _proposal(row) if row else None

    async def save(self, proposal: Proposal) -> None:
        values = _proposal_row(proposal)
        del values["id"]
        await self.conn.execute(_SAVE_PROPOSALS, {**values, "b_id": proposal.proposal_id})

    async def page(self, status: str | None, limit: int, offset: int) -> tuple[list[Proposal], int]:
        query = select(proposals)
        if status:
            query = query.where(proposals.c.status == status)
        total = (await self.conn.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
        rows = await self.conn.execute(
            query.order_by(proposals.c.created_at, proposals.c.id).limit(limit).offset(offset)
        )
        return [_proposal(row) for row in rows.mappings()], int(total)

    async def expired_ids(self, now: datetime) -> list[str]:
        rows = await self.conn.execute(
            select(proposals.c.id).where(proposals.c.status == "pending", proposals.c.expires_at <= now)
        )
        return [row[0] for row in rows]


def _proposal_row(proposal: Proposal) -> dict[str, Any]:
    return {
        "id": proposal.proposal_id,
        "proposal_type": proposal.proposal_type,
        "data": proposal.data,
        "threshold": proposal.threshold,
        "status": proposal.status,
        "votes": proposal.votes,
        "eligible_voters": proposal.eligible_voters,
        "approval_rate": proposal.approval_rate,
        "created_at": proposal.created_at,
        "expires_at": proposal.expires_at,
        "decided_at": proposal.decided_at,
    }


class SqlRepositories:
    """Every domain repository on one connection (a unit of work's, or a read's)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.agents = AgentRepository(conn)
        self.tasks = TaskRepository(conn)
        self.election = ElectionRepository(conn)
        self.proposals = ProposalRepository(conn)


class SqlReader:
    """Read-only repositories on a pooled connection: `async with reader.read() as repos`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @asynccontextmanager
    async def read(self) -> AsyncIterator[SqlRepositories]:
        """Repositories on a read connection, returned to the pool after the block."""
        async with self._db.read() as conn:
            yield SqlRepositories(conn)
