"""REST routes of the domain (SPEC §6): agents, tasks, election, consensus, alerts."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from client_sdk.protocol import (
    Agent,
    AgentStatus,
    AgentType,
    EventType,
    Proposal,
    ProposalStatus,
    Task,
    TaskStatus,
)
from client_sdk.rest_models import (
    Accepted,
    AgentActionRequest,
    AgentActionResult,
    AgentCreate,
    AgentUpdate,
    AlertRequest,
    ElectionResult,
    ElectionState,
    Page,
    ProposalCreate,
    TaskCreate,
    TaskUpdate,
    VoteRequest,
)
from server.api.bodies import json_response, parse_body, parse_query
from server.api.docs import documented
from server.api.keys import DOMAIN, PUBLISHER
from server.api.security import requires
from server.auth import Role

WRITE_ERRORS = (400, 401, 403, 413, 422, 503)


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=1_000_000)


class AgentQuery(PageQuery):
    agent_type: AgentType | None = None
    status: AgentStatus | None = None


class TaskQuery(PageQuery):
    status: TaskStatus | None = None


class ProposalQuery(PageQuery):
    status: ProposalStatus | None = None


def _id(request: web.Request, name: str) -> str:
    return request.match_info[name]


@requires(Role.OPERATOR)
@documented(
    "Create an agent",
    body=AgentCreate,
    response=Agent,
    status=201,
    errors=WRITE_ERRORS,
    emits=("agent_created",),
    tag="agents",
)
async def create_agent(request: web.Request) -> web.Response:
    body = await parse_body(request, AgentCreate)
    return json_response(await request.app[DOMAIN].agents.create(body), status=201)


@requires(Role.VIEWER)
@documented("List agents", query=AgentQuery, response=Page[Agent], errors=(401, 422), tag="agents")
async def list_agents(request: web.Request) -> web.Response:
    query = parse_query(request, AgentQuery)
    page = await request.app[DOMAIN].agents.list(query.agent_type, query.status, query.limit, query.offset)
    return json_response(page)


@requires(Role.VIEWER)
@documented("Get an agent", response=Agent, errors=(401, 404), tag="agents")
async def get_agent(request: web.Request) -> web.Response:
    return json_response(await request.app[DOMAIN].agents.get(_id(request, "agent_id")))


@requires(Role.OPERATOR)
@documented(
    "Update an agent",
    body=AgentUpdate,
    response=Agent,
    errors=(*WRITE_ERRORS, 404),
    emits=("agent_updated", "agent_status_changed"),
    tag="agents",
)
async def update_agent(request: web.Request) -> web.Response:
    body = await parse_body(request, AgentUpdate)
    return json_response(await request.app[DOMAIN].agents.update(_id(request, "agent_id"), body))


@requires(Role.OPERATOR)
@documented("Delete an agent", status=204, errors=(401, 403, 404, 503), emits=("agent_deleted",), tag="agents")
async def delete_agent(request: web.Request) -> web.Response:
    await request.app[DOMAIN].agents.delete(_id(request, "agent_id"))
    return web.Response(status=204)


@requires(Role.OPERATOR)
@documented(
    "Run an agent action",
    body=AgentActionRequest,
    response=AgentActionResult,
    errors=(*WRITE_ERRORS, 404, 409),
    emits=("agent_action", "agent_status_changed"),
    tag="agents",
)
async def act(request: web.Request) -> web.Response:
    body = await parse_body(request, AgentActionRequest)
    return json_response(await request.app[DOMAIN].agents.act(_id(request, "agent_id"), body))


@requires(Role.OPERATOR)
@documented(
    "Create a task",
    body=TaskCreate,
    response=Task,
    status=201,
    errors=(*WRITE_ERRORS, 409),
    emits=("task_created", "task_assigned"),
    tag="tasks",
)
async def create_task(request: web.Request) -> web.Response:
    body = await parse_body(request, TaskCreate)
    return json_response(await request.app[DOMAIN].tasks.create(body), status=201)


@requires(Role.VIEWER)
@documented("List tasks", query=TaskQuery, response=Page[Task], errors=(401, 422), tag="tasks")
async def list_tasks(request: web.Request) -> web.Response:
    query = parse_query(request, TaskQuery)
    return json_response(await request.app[DOMAIN].tasks.list(query.status, query.limit, query.offset))


@requires(Role.VIEWER)
@documented("Get a task", response=Task, errors=(401, 404), tag="tasks")
async def get_task(request: web.Request) -> web.Response:
    return json_response(await request.app[DOMAIN].tasks.get(_id(request, "task_id")))


@requires(Role.OPERATOR)
@documented(
    "Move a task to a new status",
    body=TaskUpdate,
    response=Task,
    errors=(*WRITE_ERRORS, 404, 409),
    emits=("task_assigned", "task_started", "task_completed", "task_failed", "task_cancelled"),
    tag="tasks",
)
async def update_task(request: web.Request) -> web.Response:
    body = await parse_body(request, TaskUpdate)
    return json_response(await request.app[DOMAIN].tasks.transition(_id(request, "task_id"), body))


@requires(Role.OPERATOR)
@documented(
    "Run a leader election",
    response=ElectionResult,
    errors=(401, 403, 503),
    emits=("election_triggered", "leader_elected"),
    tag="coordination",
)
async def trigger_election(request: web.Request) -> web.Response:
    return json_response(await request.app[DOMAIN].election.trigger())


@requires(Role.VIEWER)
@documented("Current term and leader", response=ElectionState, errors=(401,), tag="coordination")
async def get_election(request: web.Request) -> web.Response:
    return json_response(await request.app[DOMAIN].election.state())


@requires(Role.OPERATOR)
@documented(
    "Propose",
    body=ProposalCreate,
    response=Proposal,
    status=201,
    errors=WRITE_ERRORS,
    emits=("consensus_proposed", "consensus_decided"),
    tag="coordination",
)
async def propose(request: web.Request) -> web.Response:
    body = await parse_body(request, ProposalCreate)
    return json_response(await request.app[DOMAIN].consensus.propose(body), status=201)


@requires(Role.OPERATOR)
@documented(
    "Vote on a proposal",
    body=VoteRequest,
    response=Proposal,
    errors=(*WRITE_ERRORS, 404, 409),
    emits=("consensus_decided",),
    tag="coordination",
)
async def vote(request: web.Request) -> web.Response:
    body = await parse_body(request, VoteRequest)
    return json_response(await request.app[DOMAIN].consensus.vote(_id(request, "proposal_id"), body))


@requires(Role.VIEWER)
@documented("List proposals", query=ProposalQuery, response=Page[Proposal], errors=(401, 422), tag="coordination")
async def list_proposals(request: web.Request) -> web.Response:
    query = parse_query(request, ProposalQuery)
    return json_response(await request.app[DOMAIN].consensus.list(query.status, query.limit, query.offset))


@requires(Role.VIEWER)
@documented("Get a proposal", response=Proposal, errors=(401, 404), tag="coordination")
async def get_proposal(request: web.Request) -> web.Response:
    return json_response(await request.app[DOMAIN].consensus.get(_id(request, "proposal_id")))


@requires(Role.OPERATOR)
@documented(
    "Raise an alert",
    body=AlertRequest,
    response=Accepted,
    status=202,
    errors=WRITE_ERRORS,
    emits=("alert_triggered",),
    tag="system",
)
async def post_alert(request: web.Request) -> web.Response:
    body = await parse_body(request, AlertRequest)
    event = await request.app[PUBLISHER].publish(
        EventType.ALERT_TRIGGERED, body.model_dump(mode="json"), ["system"], wait=False
    )
    return json_response(Accepted(event_id=event.event_id), status=202)


def add_routes(app: web.Application) -> None:
    """Register the domain routes."""
    r = app.router
    r.add_post("/agents", create_agent)
    r.add_get("/agents", list_agents)
    r.add_get("/agents/{agent_id}", get_agent)
    r.add_patch("/agents/{agent_id}", update_agent)
    r.add_delete("/agents/{agent_id}", delete_agent)
    r.add_post("/agents/{agent_id}/actions", act)
    r.add_post("/coordination/tasks", create_task)
    r.add_get("/coordination/tasks", list_tasks)
    r.add_get("/coordination/tasks/{task_id}", get_task)
    r.add_patch("/coordination/tasks/{task_id}", update_task)
    r.add_post("/coordination/election/trigger", trigger_election)
    r.add_get("/coordination/election", get_election)
    r.add_post("/coordination/consensus/propose", propose)
    r.add_post("/coordination/consensus/{proposal_id}/votes", vote)
    r.add_get("/coordination/consensus", list_proposals)
    r.add_get("/coordination/consensus/{proposal_id}", get_proposal)
    r.add_post("/alerts", post_alert)
