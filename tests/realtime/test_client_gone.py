"""A client that leaves in the middle of the WebSocket upgrade is not an error of the server's."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support import ServerProcess

UPGRADE = (
    "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n"
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _upgrade_then_reset(port: int) -> None:
    """Ask for the upgrade and reset the TCP connection at once (SO_LINGER 0: RST, not FIN)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(UPGRADE.format(port=port).encode())
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def test_a_client_that_resets_during_the_upgrade_leaves_no_error_line(served: ServerProcess) -> None:
    """Before the fix, about one in four such resets logged aiohttp's "Error handling request" with a traceback."""
    for _ in range(200):
        _upgrade_then_reset(served.port)
    async with aiohttp.ClientSession() as http, http.get(f"{served.url}/health") as response:
        assert response.status == 200  # the server answers others; every reset has been handled by now
    served.stop()
    lines = (served.data_dir / "server.log").read_text().splitlines()
    errors = [line for line in lines if '"level": "error"' in line or '"exception"' in line]
    assert errors == []
