"""`immune-core listen`: print events as JSON lines, across disconnects and server restarts."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from typing import Any

import orjson

from client_sdk.client import Event, ImmuneClient
from client_sdk.errors import ConnectRefused, EventDecodeError, ImmuneError
from client_sdk.protocol import ConnectedData

log = logging.getLogger("immune.listen")


def add_listen_command(subparsers: Any) -> None:
    """Register `listen` on the `immune-core` parser."""
    listen = subparsers.add_parser("listen", help="print events as JSON lines (resumes after disconnects)")
    listen.add_argument("--url", default=os.environ.get("IMMUNE_URL", "http://127.0.0.1:8000"))
    listen.add_argument("--token", default=os.environ.get("IMMUNE_TOKEN"), help="JWT (or IMMUNE_TOKEN)")
    listen.add_argument("--room", action="append", default=[], dest="rooms", help="repeatable")
    listen.add_argument("--type", action="append", default=[], dest="event_types", help="repeatable")
    listen.add_argument("--last-event-id", type=int, default=None, help="resume after this id")
    listen.add_argument("--count", type=int, default=0, help="exit after this many events (0 = run until stopped)")
    listen.add_argument(
        "--connect-timeout", type=float, default=15.0, help="seconds to wait for the first connection (default 15)"
    )
    listen.set_defaults(func=run_listen)


def run_listen(args: argparse.Namespace) -> int:
    """Entry point of `immune-core listen`: a first connection that fails is one line on stderr, exit 2."""
    # Reconnect warnings after the first connection go to stderr as plain lines; stdout stays JSON.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="immune-core listen: %(message)s")
    try:
        return asyncio.run(_listen(args))
    except KeyboardInterrupt:
        return 130
    except ImmuneError as exc:
        reason = f"{args.url} refused the connection: {exc}" if isinstance(exc, ConnectRefused) else str(exc)
        print(f"immune-core: error: {' '.join(reason.split())}", file=sys.stderr)
        return 2


def _print(record: dict[str, Any]) -> None:
    sys.stdout.buffer.write(orjson.dumps(record) + b"\n")
    sys.stdout.flush()


async def _listen(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)

    def gap(data: ConnectedData) -> None:
        _print({"gap": True, "last_event_id": data.last_event_id, "epoch": data.epoch})

    client = ImmuneClient(
        args.url,
        token=args.token,
        rooms=args.rooms,
        event_types=args.event_types,
        last_event_id=args.last_event_id,
        on_gap=gap,
    )
    received = 0

    async def pump() -> None:
        nonlocal received
        event: Event
        while True:
            try:
                async for event in client.events():
                    _print(event.model_dump(mode="json"))
                    received += 1
                    if args.count and received >= args.count:
                        stop.set()
            except EventDecodeError as exc:  # reported on stderr, then the next events follow
                log.error("%s", exc)

    try:
        # The first connection is not retried: a wrong URL or token is said at once.
        await client.connect(timeout_s=args.connect_timeout, retry=False)
    except BaseException:
        await client.close()
        raise
    pumping = asyncio.create_task(pump())
    await stop.wait()
    pumping.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await pumping
    await client.close()
    return 0
