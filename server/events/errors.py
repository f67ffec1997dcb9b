"""Why a write was not taken: values with a code the REST layer turns into 503 + Retry-After (SPEC §6)."""

from __future__ import annotations


class WriteRefused(Exception):
    """A write that did not commit for a reason the caller may retry later."""

    code = "unavailable"

    def __init__(self, detail: str, retry_after_s: int = 1) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after_s = retry_after_s


class Overloaded(WriteRefused):
    """The writer's queue is full; nothing was queued."""

    code = "overloaded"


class StoreUnavailable(WriteRefused):
    """The database could not commit (locked by another process, disk full, connection lost)."""

    code = "unavailable"
