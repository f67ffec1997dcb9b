"""GET /events: read the durable event log over REST (SPEC §4)."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, Field, ValidationError, field_validator

from client_sdk.protocol import ID_PATTERN, MAX_EVENT_ID, AnyEnvelope, EventPage, unknown_event_types, unknown_rooms
from server.api.bodies import json_response
from server.api.docs import documented
from server.api.keys import EVENT_LOG
from server.api.problem import Problem, validation_problem
from server.api.security import requires
from server.auth import Role

MAX_PAGE = 1000


class EventQuery(BaseModel):
    """Query parameters of GET /events; lists are comma-separated or repeated."""

    model_config = {"extra": "forbid"}

    after: int = Field(0, ge=0, le=MAX_EVENT_ID)
    limit: int = Field(100, ge=1, le=MAX_PAGE)
    # Bounded so a query always fits one request line (aiohttp's limit is 8 KiB).
    rooms: list[Annotated[str, Field(max_length=80, pattern=ID_PATTERN)]] | None = Field(None, max_length=20)
    event_types: list[Annotated[str, Field(max_length=80, pattern=r"^[a-z0-9_.-]+$")]] | None = Field(
        None, max_length=20
    )

    @field_validator("rooms")
    @classmethod
    def _known_rooms(cls, value: list[str] | None) -> list[str] | None:
        bad = unknown_rooms(value or [])
        if bad:
            raise ValueError(f"unknown room(s): {', '.join(bad[:5])}")
        return value

    @field_validator("event_types")
    @classmethod
    def _known_types(cls, value: list[str] | None) -> list[str] | None:
        bad = unknown_event_types(value or [])
        if bad:
            raise ValueError(f"unknown event type(s): {', '.join(bad[:5])}")
        return value


def _read_query(request: web.Request) -> EventQuery:
    raw: dict[str, object] = {}
    for key in set(request.query.keys()):
        values = request.query.getall(key)
        if key in {"rooms", "event_types"}:
            raw[key] = [item for value in values for item in value.split(",") if item]
        elif len(values) > 1:
            raise Problem(400, f"query parameter {key} given more than once")
        else:
            raw[key] = values[0]
    try:
        return EventQuery.model_validate(raw)
    except ValidationError as exc:
        raise validation_problem(exc) from None


@requires(Role.VIEWER)
@documented("Read the event log", query=EventQuery, response=EventPage, errors=(400, 401, 422), tag="events")
async def list_events(request: web.Request) -> web.Response:
    """Events after `after`, in id order, optionally for rooms (plus deployment-wide) and types."""
    query = _read_query(request)
    event_log = request.app[EVENT_LOG]
    head = await event_log.head()
    found = await event_log.read(
        query.after, rooms=query.rooms, event_types=query.event_types, up_to=head, limit=query.limit
    )
    # With a selective filter a page may be short while more matches lie further on; the
    # cursor then still advances, so paging always terminates.
    next_after = found[-1].event_id if len(found) == query.limit else head
    page = EventPage(
        items=[AnyEnvelope.model_validate(event.envelope()) for event in found],
        next_after=max(next_after, query.after),
        head=head,
        epoch=await event_log.epoch(),
        pruned_through=await event_log.pruned_through(),
    )
    return json_response(page)


def add_routes(app: web.Application) -> None:
    """Register GET /events."""
    app.router.add_get("/events", list_events)
