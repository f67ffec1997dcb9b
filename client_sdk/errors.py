"""Typed errors of the SDK: one class per protocol error code and per REST status family."""

from __future__ import annotations

from typing import Any

from client_sdk.protocol import ErrorCode


class ImmuneError(Exception):
    """Base of every error the SDK raises."""


class RequestError(ImmuneError):
    """A client event answered with `success: false`."""

    code: ErrorCode = ErrorCode.INTERNAL_ERROR

    def __init__(self, message: str, details: Any = None, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code


class InvalidRequest(RequestError):
    code = ErrorCode.INVALID_REQUEST


class UnknownRoom(RequestError):
    code = ErrorCode.UNKNOWN_ROOM


class Forbidden(RequestError):
    code = ErrorCode.FORBIDDEN


class UnknownEventType(RequestError):
    code = ErrorCode.UNKNOWN_EVENT_TYPE


class RateLimited(RequestError):
    code = ErrorCode.RATE_LIMITED

    @property
    def retry_after_s(self) -> float | None:
        """Seconds the server asked us to wait."""
        value = self.details.get("retry_after_s") if isinstance(self.details, dict) else None
        return float(value) if value is not None else None


class UnknownAction(RequestError):
    code = ErrorCode.UNKNOWN_ACTION


class InternalError(RequestError):
    code = ErrorCode.INTERNAL_ERROR


REQUEST_ERRORS: dict[ErrorCode, type[RequestError]] = {
    cls.code: cls
    for cls in (InvalidRequest, UnknownRoom, Forbidden, UnknownEventType, RateLimited, UnknownAction, InternalError)
}


def request_error(code: str, message: str, details: Any = None) -> RequestError:
    """The typed exception for an error code (unknown codes become a plain RequestError)."""
    try:
        parsed = ErrorCode(code)
    except ValueError:
        return RequestError(message, details)
    return REQUEST_ERRORS.get(parsed, RequestError)(message, details, code=parsed)


class ConnectRefused(ImmuneError):
    """The server refused the connect (`connect_error` with a code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ServerUnreachable(ImmuneError, TimeoutError):
    """No connection could be made; the message names the URL and the last reason (refused, DNS, timeout)."""


class EventDecodeError(ImmuneError):
    """A received event did not match the protocol; reported (on_error or from `events()`), never skipped."""

    def __init__(self, event_type: str, event_id: int | None, payload: Any, reason: str) -> None:
        super().__init__(f"event {event_id} ({event_type}) does not match the protocol: {' '.join(reason.split())}")
        self.event_type = event_type
        self.event_id = event_id
        self.payload = payload
        self.reason = reason


class NotConnected(ImmuneError):
    """A request was made while no connection is up."""


class ApiError(ImmuneError):
    """A REST call answered with a problem+json error."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.detail = str(problem.get("detail") or problem.get("title") or status)
        self.errors: list[dict[str, Any]] = list(problem.get("errors") or [])
        super().__init__(f"{status} {self.detail}")


class Unauthorized(ApiError):
    """401: missing, invalid or expired token."""


class AccessDenied(ApiError):
    """403: the token's role does not allow this."""


class NotFound(ApiError):
    """404."""


class Conflict(ApiError):
    """409: invalid state transition."""


class PayloadTooLarge(ApiError):
    """413."""


class ValidationFailed(ApiError):
    """422 with per-field `errors`."""


class TooManyRequests(ApiError):
    """429; `retry_after_s` from the Retry-After header."""

    retry_after_s: float | None = None


API_ERRORS: dict[int, type[ApiError]] = {
    401: Unauthorized,
    403: AccessDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationFailed,
    429: TooManyRequests,
}
