"""The browser contract with Node's real socket.io-client@4 (SPEC §3, §5)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.js_runner import run_js
from tests.support import RunningServer

pytestmark = pytest.mark.node


def by_step(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {line["step"]: line for line in lines}


async def test_socket_io_client_connects_joins_filters_and_receives(server: RunningServer) -> None:
    steps = by_step(
        await run_js(
            "browser_contract.mjs",
            {"URL": server.url, "TOKEN": server.token("viewer", sub="web"), "ADMIN_TOKEN": server.token()},
        )
    )
    connected = steps["connected"]["data"]
    assert connected["client_id"] == "browser-1" and connected["user"] == "web"
    assert connected["rooms"] == ["tasks"] and connected["recovered"] is None

    join = steps["join"]["ack"]
    assert join["success"] is True and join["data"] == {"room": "agents", "rooms": ["tasks", "agents"]}
    bad = steps["join_bad"]["ack"]
    assert bad["success"] is False and bad["error"]["code"] == "unknown_room"
    assert steps["subscribe"]["ack"]["data"] == {"event_types": ["agent_created"]}
    assert steps["unknown"]["ack"]["error"]["code"] == "unknown_action"

    event = steps["event"]
    envelope = event["envelope"]
    assert envelope["event_type"] == "agent_created" and envelope["room"] == "agents"
    assert envelope["event_id"] == event["broadcast_id"]
    assert envelope["data"]["agent_id"] == "a-1"
    # The filter held back custom.noise: only `connected` and the matching event arrived.
    assert event["names"] == ["connected", "agent_created"]
