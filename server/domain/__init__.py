"""The Active Immune Core domain: agents, tasks, election, consensus. Imports neither aiohttp nor socketio."""

from __future__ import annotations

from dataclasses import dataclass

from server.domain.agents import AgentService
from server.domain.consensus import ConsensusService
from server.domain.election import ElectionService
from server.domain.tasks import TaskService
from server.events.publisher import Publisher
from server.store.db import Database


@dataclass(slots=True)
class Domain:
    """Every domain service, built once by the composition root."""

    agents: AgentService
    tasks: TaskService
    election: ElectionService
    consensus: ConsensusService

    @classmethod
    def build(cls, db: Database, publisher: Publisher, proposal_timeout_s: float) -> Domain:
        """Wire the services to one database and publisher."""
        return cls(
            agents=AgentService(db, publisher),
            tasks=TaskService(db, publisher),
            election=ElectionService(db, publisher),
            consensus=ConsensusService(db, publisher, proposal_timeout_s),
        )
