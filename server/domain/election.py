"""Leader election with terms (SPEC §6): the leader stays while eligible; else highest energy, oldest first."""

from __future__ import annotations

from client_sdk.protocol import Agent, ElectionTriggeredData, EventType, LeaderElectedData, utc_now
from client_sdk.rest_models import ElectionResult, ElectionState
from server.domain.ports import DomainWork, Reader
from server.events.publisher import Publisher

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

    def __init__(self, reader: Reader, publisher: Publisher) -> None:
        self.reader = reader
        self.publisher = publisher

    async def state(self) -> ElectionState:
        """The current term and leader."""
        async with self.reader.read() as repos:
            return await repos.election.get()

    async def trigger(self) -> ElectionResult:
        """Run an election: election_triggered, plus leader_elected when the leader changed."""

        async def work(uow: DomainWork) -> ElectionResult:
            state = await uow.repos.election.get()
            leader = choose_leader(state.leader_id, await uow.repos.agents.eligible())
            changed = leader != state.leader_id
            term = state.term + 1
            elected_at = utc_now() if changed else state.elected_at
            await uow.repos.election.save(ElectionState(term=term, leader_id=leader, elected_at=elected_at))
            triggered = ElectionTriggeredData(term=term)
            await uow.publish(EventType.ELECTION_TRIGGERED, triggered.model_dump(mode="json"), COORDINATION)
            if changed:
                elected = LeaderElectedData(leader_id=leader, previous_leader_id=state.leader_id, term=term)
                await uow.publish(EventType.LEADER_ELECTED, elected.model_dump(mode="json"), COORDINATION)
            return ElectionResult(
                term=term, leader_id=leader, previous_leader_id=state.leader_id, leader_changed=changed
            )

        return await self.publisher.transact(work)
