"""Leader election with terms (SPEC §6): the leader stays while eligible; else highest energy, oldest first."""

from __future__ import annotations

from client_sdk.protocol import Agent, EventType, utc_now
from client_sdk.rest_models import ElectionResult, ElectionState
from server.events.publisher import Publisher
from server.events.unit_of_work import UnitOfWork
from server.store.db import Database
from server.store.repositories import AgentRepository, ElectionRepository

COORDINATION = ["coordination"]


def choose_leader(current_leader: str | None, eligible: list[Agent]) -> str | None:
    """The election rule; `eligible` is every non-inactive agent, oldest first."""
    if current_leader is not None and any(agent.agent_id == current_leader for agent in eligible):
        return current_leader
    if not eligible:
        return None
    # max() keeps the first of equals, and the list is oldest first: ties go to the oldest.
    return max(eligible, key=lambda agent: agent.energy).agent_id


class ElectionService:
    """Runs elections; each trigger increments the term."""

    def __init__(self, db: Database, publisher: Publisher) -> None:
        self.db = db
        self.publisher = publisher
        self.repo = ElectionRepository()
        self.agents = AgentRepository()

    async def state(self) -> ElectionState:
        """The current term and leader."""
        async with self.db.read() as conn:
            return await self.repo.get(conn)

    async def trigger(self) -> ElectionResult:
        """Run an election: election_triggered, plus leader_elected when the leader changed."""

        async def work(uow: UnitOfWork) -> ElectionResult:
            state = await self.repo.get(uow.conn)
            leader = choose_leader(state.leader_id, await self.agents.eligible(uow.conn))
            changed = leader != state.leader_id
            term = state.term + 1
            elected_at = utc_now() if changed else state.elected_at
            await self.repo.save(uow.conn, ElectionState(term=term, leader_id=leader, elected_at=elected_at))
            await uow.publish(EventType.ELECTION_TRIGGERED, {"term": term}, COORDINATION)
            if changed:
                data = {"leader_id": leader, "previous_leader_id": state.leader_id, "term": term}
                await uow.publish(EventType.LEADER_ELECTED, data, COORDINATION)
            return ElectionResult(
                term=term, leader_id=leader, previous_leader_id=state.leader_id, leader_changed=changed
            )

        return await self.publisher.transact(work)
