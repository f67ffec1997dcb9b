"""Domain errors: values with a kind; the API maps them to problem+json statuses."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every rule violation."""


class NotFound(DomainError):
    """The entity does not exist (404)."""

    def __init__(self, entity: str, entity_id: str) -> None:
        super().__init__(f"{entity} {entity_id} not found")
        self.entity = entity
        self.entity_id = entity_id


class InvalidTransition(DomainError):
    """The change is not allowed in the entity's current state (409)."""


class InvalidInput(DomainError):
    """A field is well-formed but unacceptable, e.g. it names an unknown agent (422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
