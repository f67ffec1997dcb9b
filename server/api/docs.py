"""Route documentation attached to handlers; the OpenAPI document is generated from it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class RouteDoc:
    """What a route takes and answers, for OpenAPI."""

    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    emits: tuple[str, ...] = ()
    tag: str = "api"
    public: bool = False  # answers without a token
    content_type: str = "application/json"


def documented(
    summary: str,
    *,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    errors: tuple[int, ...] = (),
    emits: tuple[str, ...] = (),
    tag: str = "api",
    public: bool = False,
    content_type: str = "application/json",
) -> Callable[[F], F]:
    """Attach a RouteDoc to a handler."""

    if body is not None:  # every JSON body may be refused for its media type (415)
        errors = tuple(sorted({*errors, 415}))

    def mark(handler: F) -> F:
        doc = RouteDoc(summary, body, query, response, status, errors, emits, tag, public, content_type)
        handler.route_doc = doc  # type: ignore[attr-defined]
        return handler

    return mark
