"""Consensus proposals (SPEC §6): threshold over eligible voters, inline and later votes, expiry."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

from client_sdk.protocol import ConsensusDecidedData, EventType, Proposal, ProposalStatus, utc_now
from client_sdk.rest_models import Page, ProposalCreate, VoteRequest
from server.domain.agents import new_id
from server.domain.errors import InvalidInput, InvalidTransition, NotFound
from server.domain.ports import DomainWork, Reader
from server.events.publisher import Publisher

COORDINATION = ["coordination"]
EPSILON = 1e-9


def decide(votes: dict[str, bool], eligible: int, threshold: float) -> ProposalStatus:
    """`approved` once approvals/eligible ≥ threshold, `rejected` once that cannot happen, else `pending`."""
    approvals = sum(1 for approve in votes.values() if approve)
    if eligible and approvals / eligible >= threshold - EPSILON:
        return "approved"
    still_possible = approvals + (eligible - len(votes))
    if not eligible or still_possible / eligible < threshold - EPSILON:
        return "rejected"
    return "pending"


def approval_rate(votes: dict[str, bool]) -> float | None:
    """Approvals over votes cast (None before any vote)."""
    return sum(votes.values()) / len(votes) if votes else None


class ConsensusService:
    """Proposals and votes; a decision (or expiry) is announced with consensus_decided."""

    def __init__(self, reader: Reader, publisher: Publisher, default_timeout_s: float) -> None:
        self.reader = reader
        self.publisher = publisher
        self.default_timeout_s = default_timeout_s

    async def propose(self, request: ProposalCreate) -> Proposal:
        """Create a proposal; inline votes may decide it at once."""
        now = utc_now()
        timeout_s = request.timeout_s if request.timeout_s is not None else self.default_timeout_s

        async def work(uow: DomainWork) -> Proposal:
            eligible = [agent.agent_id for agent in await uow.repos.agents.eligible()]
            strangers = sorted(set(request.votes) - set(eligible))
            if strangers:
                raise InvalidInput("votes", f"not eligible to vote: {', '.join(strangers[:5])}")
            proposal = Proposal(
                proposal_id=new_id("proposal"),
                proposal_type=request.proposal_type,
                data=request.data,
                threshold=request.threshold,
                status="pending",
                votes=dict(request.votes),
                eligible_voters=eligible,
                approval_rate=approval_rate(request.votes),
                created_at=now,
                expires_at=now + timedelta(seconds=timeout_s),
            )
            await uow.publish(EventType.CONSENSUS_PROPOSED, proposal.model_dump(mode="json"), COORDINATION)
            proposal = await self._settle(uow, proposal, decide(proposal.votes, len(eligible), proposal.threshold))
            await uow.repos.proposals.insert(proposal)
            return proposal

        return await self.publisher.transact(work)

    async def vote(self, proposal_id: str, request: VoteRequest) -> Proposal:
        """Record a vote; announces the decision when this vote makes one."""

        async def work(uow: DomainWork) -> tuple[Proposal, bool]:
            proposal = await self._load(uow, proposal_id)
            if proposal.status == "pending" and proposal.expires_at and proposal.expires_at <= utc_now():
                proposal = await self._settle(uow, proposal, "expired")
                await uow.repos.proposals.save(proposal)
                return proposal, True
            if proposal.status != "pending":
                raise InvalidTransition(f"proposal {proposal_id} is already {proposal.status}")
            if request.agent_id not in proposal.eligible_voters:
                raise InvalidInput("agent_id", f"agent {request.agent_id} is not an eligible voter")
            if request.agent_id in proposal.votes:
                raise InvalidTransition(f"agent {request.agent_id} has already voted")
            votes = {**proposal.votes, request.agent_id: request.approve}
            proposal = proposal.model_copy(update={"votes": votes, "approval_rate": approval_rate(votes)})
            status = decide(votes, len(proposal.eligible_voters), proposal.threshold)
            proposal = await self._settle(uow, proposal, status)
            await uow.repos.proposals.save(proposal)
            return proposal, False

        proposal, expired = await self.publisher.transact(work)
        if expired:  # the expiry committed; the vote itself came too late
            raise InvalidTransition(f"proposal {proposal_id} has expired")
        return proposal

    async def expire_due(self, now: datetime | None = None) -> int:
        """Expire every pending proposal past its timeout; returns how many."""
        now = now or utc_now()
        async with self.reader.read() as repos:
            due = await repos.proposals.expired_ids(now)

        async def expire(uow: DomainWork, proposal_id: str) -> bool:
            proposal = await uow.repos.proposals.get(proposal_id)
            if proposal is None or proposal.status != "pending":
                return False  # decided by a vote meanwhile
            await uow.repos.proposals.save(await self._settle(uow, proposal, "expired"))
            return True

        # The server's own job: it waits for room in the writer's queue rather than being refused.
        outcomes = [
            await self.publisher.transact(functools.partial(expire, proposal_id=proposal_id), wait=True)
            for proposal_id in due
        ]
        return sum(outcomes)

    async def get(self, proposal_id: str) -> Proposal:
        """One proposal, or NotFound."""
        async with self.reader.read() as repos:
            proposal = await repos.proposals.get(proposal_id)
        if proposal is None:
            raise NotFound("proposal", proposal_id)
        return proposal

    async def list(self, status: str | None, limit: int, offset: int) -> Page[Proposal]:
        """A page of proposals, oldest first."""
        async with self.reader.read() as repos:
            items, total = await repos.proposals.page(status, limit, offset)
        return Page[Proposal](items=items, total=total, limit=limit, offset=offset)

    async def _load(self, uow: DomainWork, proposal_id: str) -> Proposal:
        proposal = await uow.repos.proposals.get(proposal_id)
        if proposal is None:
            raise NotFound("proposal", proposal_id)
        return proposal

    async def _settle(self, uow: DomainWork, proposal: Proposal, status: ProposalStatus) -> Proposal:
        if status == "pending":
            return proposal
        decided = proposal.model_copy(update={"status": status, "decided_at": utc_now()})
        votes_for = sum(1 for approve in decided.votes.values() if approve)
        data = ConsensusDecidedData(
            proposal_id=decided.proposal_id,
            decision=status,
            approval_rate=decided.approval_rate or 0.0,
            votes_for=votes_for,
            votes_against=len(decided.votes) - votes_for,
        )
        await uow.publish(EventType.CONSENSUS_DECIDED, data.model_dump(mode="json"), COORDINATION)
        return decided
