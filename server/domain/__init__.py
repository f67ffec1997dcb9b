"""The Active Immune Core domain: agents, tasks, election, consensus. Imports neither aiohttp nor socketio."""

from __future__ import annotations

from dataclasses import dataclass

from server.domain.agents import AgentService
from server.domain.consensus import ConsensusService
from server.domain.election import ElectionService
from server.domain.ports import Reader
from server.domain.tasks import TaskService
from server.events.publisher import Publisher


@dataclass(slots=True)
class Domain:
    """Every domain service, built once by the composition root."""

    agents: AgentService
    tasks: TaskService
    election: ElectionService
    consensus: ConsensusService

    @classmethod
    def build(cls, reader: Reader, publisher: Publisher, proposal_timeout_s: float) -> Domain:
        """Wire the services to one store (its reader) and publisher."""
        return cls(
            agents=AgentService(reader, publisher),
            tasks=TaskService(reader, publisher),
            election=ElectionService(reader, publisher),
            consensus=ConsensusService(reader, publisher, proposal_timeout_s),
        )
