"""structlog set-up: JSON lines in production, columns in development.

Request middleware binds `request_id` and `tenant` with
`structlog.contextvars`, so every event logged while serving a request carries
them without each call passing them on.

Our events and the standard-library records of uvicorn and other libraries
all end in one handler on the root logger, whose `ProcessorFormatter` runs
the same processors and renderer over both. With the JSON format every line
on standard error is then one JSON object, and one handler lock keeps lines
from different threads from mixing.
"""

from __future__ import annotations

import logging
import sys

import structlog

# The handler this module put on the root logger, replaced when logging is configured again.
_handler: logging.Handler | None = None


def configure_logging(log_format: str = "json", level: str = "info") -> None:
    """Render our events and every library's log records alike, on standard error."""
    global _handler
    level_number = logging.getLevelName(level.upper())
    shared_processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if log_format == "json":
        renderer: structlog.types.Processor = structlog.processors.JSONRenderer()
        shared_processors.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())

    structlog.configure(
        processors=[*shared_processors, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(level_number),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared_processors,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    _handler = handler

    # Libraries stay at warning and above, so their messages are visible but quiet;
    # uvicorn's own start and stop lines are worth having at info.
    library_level = max(level_number, logging.WARNING)
    root.setLevel(library_level)
    logging.getLogger("uvicorn.error").setLevel(max(level_number, logging.INFO))
    logging.getLogger("strongroom").setLevel(level_number)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
