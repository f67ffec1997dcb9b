"""The practical ceiling: aiohttp WebSockets speaking just enough Engine.IO/Socket.IO, writing one
pre-encoded frame per socket for each broadcast (no rooms, no acks, no log)."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import orjson
from aiohttp import WSMsgType, web

SOCKETS: dict[web.WebSocketResponse, asyncio.Transport] = {}


def text_frame(data: bytes) -> bytes:
    """One unmasked server → client text frame (RFC 6455)."""
    size = len(data)
    if size < 126:
        header = bytes([0x81, size])
    elif size < 65536:
        header = bytes([0x81, 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([0x81, 127]) + size.to_bytes(8, "big")
    return header + data


async def socket_io(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False, heartbeat=None)
    await ws.prepare(request)
    await ws.send_str('0{"sid":"raw","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}')
    async for msg in ws:
        if msg.type != WSMsgType.TEXT:
            break
        if msg.data.startswith("40"):
            await ws.send_str('40{"sid":"raw"}')
            assert request.transport is not None
            SOCKETS[ws] = request.transport
        elif msg.data == "3":
            continue
    SOCKETS.pop(ws, None)
    return ws


async def broadcast(request: web.Request) -> web.Response:
    count = int(request.query.get("count", "1"))
    pad = "x" * int(request.query.get("pad", "150"))
    for i in range(count):
        payload = {"event_type": "custom.bench", "event_id": i, "data": {"t": time.time() * 1000, "pad": pad}}
        frame = text_frame(b"42" + orjson.dumps(["custom.bench", payload]))
        for transport in SOCKETS.values():
            transport.write(frame)
    return web.Response(text="ok")


async def health(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    app = web.Application()
    app.router.add_get("/socket.io/", socket_io)
    app.router.add_get("/broadcast", broadcast)
    app.router.add_get("/health", health)
    port = int(os.environ.get("PORT", "0") or sys.argv[1])
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(app, host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main()
