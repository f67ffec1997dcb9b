"""structlog configuration: one JSON line per event in production (a console renderer for development).

Library loggers (engineio, socketio, aiohttp, asyncio, warnings) go through the same processors
via structlog's ProcessorFormatter, so every line of the process is one JSON object; exceptions
become a structured `exception` field (type, value, frames; no locals), never a multi-line traceback.
"""

from __future__ import annotations

import logging
import sys

import structlog

from server.config import Settings

LIBRARY_LEVELS = {
    # Engine.IO and Socket.IO log every packet at INFO, and a client's garbage at ERROR once per
    # process; the server reports what matters itself (engine.py), so only their warnings show.
    "engineio": logging.WARNING,
    "socketio": logging.WARNING,
    "aiohttp.access": logging.WARNING,
}


def configure_logging(settings: Settings) -> None:
    """Route structlog and stdlib logging through one processor chain, one line per event."""
    level = logging.getLevelName(settings.log_level.upper())
    if not isinstance(level, int):
        level = logging.INFO
    console = settings.log_format == "console"
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer()
    )
    # The console renderer prints exceptions itself; JSON gets them as a structured field.
    # Locals stay out: they would put tokens and request bodies in the log.
    as_dict = structlog.processors.ExceptionRenderer(structlog.tracebacks.ExceptionDictTransformer(show_locals=False))
    exceptions: list[structlog.typing.Processor] = [] if console else [as_dict]
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    structlog.configure(
        processors=[*shared, *exceptions, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *exceptions, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(level, logging.WARNING))
    for name, library_level in LIBRARY_LEVELS.items():
        library = logging.getLogger(name)
        library.setLevel(max(level, library_level))
        for old in list(library.handlers):  # engineio/socketio add a plain stderr handler of their own
            library.removeHandler(old)
        library.propagate = True
    logging.captureWarnings(True)
