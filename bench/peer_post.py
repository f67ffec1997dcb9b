"""Ceiling for the publish path: a bare aiohttp POST handler on uvloop that parses JSON and answers 202."""

from __future__ import annotations

import sys

import orjson
import uvloop
from aiohttp import web

COUNTER = [0]


async def post(request: web.Request) -> web.Response:
    orjson.loads(await request.read())
    COUNTER[0] += 1
    return web.Response(status=202, body=orjson.dumps({"event_id": COUNTER[0]}), content_type="application/json")


async def health(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


if __name__ == "__main__":
    app = web.Application()
    app.router.add_post("/ws/broadcast", post)
    app.router.add_get("/health", health)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None, loop=uvloop.new_event_loop())
