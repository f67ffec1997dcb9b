"""`immune-core serve | migrate | token | config | listen`."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import json
import math
import sys
from typing import Any, NoReturn

from pydantic import ValidationError

from server.auth import AuthError, KeyConfigError, TokenAuthority
from server.config import ConfigError, Settings, load_settings

# Each command imports what only it needs inside its function: `serve` pulls in aiohttp,
# python-socketio and SQLAlchemy (~1.3 s), which `token`, `config`, `listen` and `--help` never use.

TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (exit status 2), pointing at --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parse_ttl(text: str) -> float:
    """`90`, `30s`, `15m`, `1h` or `7d` as seconds (an argparse type: a bad value is a usage error)."""
    number, unit = (text[:-1], text[-1]) if text and text[-1] in TTL_UNITS else (text, "s")
    try:
        seconds = float(number) * TTL_UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 90, 30m, 1h, 7d)") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: must be more than 0")
    return seconds


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("host", "port", "data_dir", "database_url", "redis_url", "log_format", "log_level"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return load_settings(**overrides)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the server until SIGINT/SIGTERM."""
    from aiohttp import web

    from server.api.security import AUTHORITY
    from server.app import build_app
    from server.bind import bind_listeners, bound_port
    from server.logging_setup import configure_logging

    settings = _settings(args)
    configure_logging(settings)
    # A fatal signal (SIGBUS from SQLite's memory-mapped -shm on a full disk, SIGSEGV) ends the
    # process without Python's help: leave its traceback as the last lines of the log.
    faulthandler.enable(file=sys.stderr, all_threads=True)
    app = build_app(settings)  # raises KeyConfigError for an unusable key, before anything listens
    listeners = bind_listeners(settings.host, settings.port)  # a busy port: ConfigError, one line
    shown_host = "127.0.0.1" if settings.host in {"0.0.0.0", "::"} else settings.host
    link = f"http://{shown_host}:{bound_port(listeners)}/"
    authority = app[AUTHORITY]

    async def announce(_app: web.Application) -> None:
        # Runs after the database is migrated, on sockets that already listen: the link works.
        if authority.can_mint:
            token = authority.mint("admin", ["admin"], ttl_s=12 * 3600)
            print(
                f"Dashboard: {link}#token={token}\n"
                "(admin token valid 12 h; mint others with `immune-core token --role viewer --sub NAME`)",
                flush=True,
            )
        else:  # public-key deployments cannot mint; they bring their own tokens
            print(f"Dashboard: {link} ({authority.algorithm} tokens)", flush=True)

    app.on_startup.append(announce)
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    web.run_app(app, sock=listeners, loop=loop, print=None, shutdown_timeout=5.0)
    return 0


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency, but optional at runtime
        return asyncio.new_event_loop()


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply database migrations and exit."""
    from server.store.db import Database

    async def run() -> None:
        db = Database(_settings(args).resolved_database_url())
        await db.migrate()
        await db.close()

    asyncio.run(run())
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    """Mint a token signed with this deployment's secret."""
    from server.logging_setup import configure_logging

    settings = _settings(args)
    configure_logging(settings)  # warnings go to stderr; stdout carries only the token
    authority = TokenAuthority(settings)  # mint() refuses (AuthError) on public-key deployments
    print(authority.mint(args.sub, [args.role], ttl_s=args.ttl, rooms=args.rooms))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    """Print the effective configuration, secrets masked (or the README's table of settings)."""
    if args.markdown:
        from server.config_table import config_table

        print(config_table())
        return 0
    print(json.dumps(_settings(args).masked(), indent=2, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    parser = OneLineParser(prog="immune-core", description="Active Immune Core real-time event server")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", dest="data_dir")
        p.add_argument("--database-url", dest="database_url")

    serve = sub.add_parser("serve", help="run the server")
    common(serve)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--redis-url", dest="redis_url")
    serve.add_argument("--log-format", dest="log_format", choices=["json", "console"])
    serve.add_argument("--log-level", dest="log_level", choices=["debug", "info", "warning", "error", "critical"])
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    common(migrate)
    migrate.set_defaults(func=cmd_migrate)

    token = sub.add_parser("token", help="mint a JWT")
    common(token)
    token.add_argument("--role", choices=["viewer", "operator", "admin"], default="viewer")
    token.add_argument("--sub", required=True)
    token.add_argument("--ttl", type=parse_ttl, default="1h", help="e.g. 90 (seconds), 30m, 1h, 7d")
    token.add_argument("--rooms", nargs="*", help="glob patterns of joinable rooms")
    token.set_defaults(func=cmd_token)

    config = sub.add_parser("config", help="print the effective configuration")
    common(config)
    config.add_argument("--markdown", action="store_true", help="print the table of every setting instead")
    config.set_defaults(func=cmd_config)

    try:
        from client_sdk.cli import add_listen_command
    except ImportError:
        pass
    else:
        add_listen_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `immune-core` console script."""
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except (KeyConfigError, AuthError, ConfigError) as exc:
        # A configuration mistake, not a bug: one line on stderr, no traceback.
        return _refuse(str(exc))
    except ValidationError as exc:
        return _refuse("; ".join(_setting_problem(error) for error in exc.errors()))
    return result


def _refuse(message: str) -> int:
    print("immune-core: error: " + " ".join(message.split()), file=sys.stderr)
    return 2


def _setting_problem(error: Any) -> str:
    """`IMMUNE_PORT: Input should be less than or equal to 65535` from one pydantic error."""
    field, *within = error["loc"] or ("",)
    where = "".join(f"[{part}]" for part in within)  # an item of a list setting: IMMUNE_X[0]
    return f"IMMUNE_{str(field).upper()}{where}: {error['msg']}" if field else str(error["msg"])


if __name__ == "__main__":
    sys.exit(main())
