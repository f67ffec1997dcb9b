"""One error type for the real-time protocol: a code the client can act on."""

from __future__ import annotations

from typing import Any

from client_sdk.protocol import Ack, AckError, ErrorCode


class ProtocolError(Exception):
    """A request or connect refused with one of the codes of SPEC §3/§5."""

    def __init__(self, code: ErrorCode, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def to_ack(self) -> Ack:
        """The failed ack for this error."""
        return Ack(success=False, message=self.message, error=AckError(code=self.code, details=self.details))

    def to_connect_error(self) -> dict[str, Any]:
        """The `connect_error` data for this error."""
        body: dict[str, Any] = {"code": self.code.value, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body
