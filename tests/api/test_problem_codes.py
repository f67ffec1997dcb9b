"""Every problem+json carries a `code`, aiohttp's own 404, 405 and 413 included; the favicon needs no token."""

from __future__ import annotations

import pytest

from tests.support import RunningServer, rest


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("GET", "/no/such/route", {}, 404, "not_found"),
        ("GET", "/agents/nope", {}, 404, "not_found"),
        ("PUT", "/agents", {"json": {}}, 405, "method_not_allowed"),
        (
            "POST",
            "/alerts",
            {"data": b"{not json", "headers": {"Content-Type": "application/json"}},
            400,
            "invalid_request",
        ),
        ("POST", "/alerts", {"json": {"level": "loud", "message": "x"}}, 422, "invalid_request"),
        (
            "POST",
            "/agents",
            {"data": b'{"a": "' + b"x" * 200_000 + b'"}', "headers": {"Content-Type": "application/json"}},
            413,
            "payload_too_large",
        ),
        ("GET", "/vendor/not-allow-listed.js", {}, 404, "not_found"),
    ],
)
async def test_every_problem_has_a_code(
    server: RunningServer, method: str, path: str, kwargs: dict[str, object], status: int, code: str
) -> None:
    got, body, response = await rest(server, method, path, **kwargs)
    assert got == status, body
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert body["code"] == code and body["status"] == status, body


async def test_the_favicon_answers_without_a_token(server: RunningServer) -> None:
    status, body, response = await rest(server, "GET", "/favicon.ico", role=None)
    assert status == 200 and response.headers["Content-Type"] == "image/svg+xml"
    assert "<svg" in body
