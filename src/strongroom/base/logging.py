"""structlog set-up: JSON lines in production, columns in development.

Request middleware binds `request_id` and `tenant` with `log_context`, so
every event logged while serving a request carries them without each call
passing them on.

Our events and the standard-library records of uvicorn and other libraries
all end in one handler on the root logger, whose `ProcessorFormatter` runs
the same processors and renderer over both. With the JSON format every line
on standard error is then one JSON object, and one handler lock keeps lines
from different threads from mixing.

The access line of a request served on an event loop waits in the handler
for up to ACCESS_FLUSH_SECONDS, to be written with others in one call
(decision 0034). Any other line writes the waiting ones first, so the log
keeps its order. The server's shutdown and the end of the process write
them too.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any, Protocol

import orjson
import structlog

from strongroom.base import log_context

ACCESS_LOGGER_NAME = "strongroom.access"
# How long an access line may wait to be written with others, and how many may wait.
ACCESS_FLUSH_SECONDS = 0.05
MAX_WAITING_ACCESS_LINES = 128

# The handler this module put on the root logger, replaced when logging is configured again.
_handler: _LineBatchingHandler | None = None
_access_logger: structlog.typing.FilteringBoundLogger | None = None
_cache_loggers = True


def configure_logging(
    log_format: str = "json", level: str = "info", cache_loggers: bool | None = None
) -> None:
    """Render our events and every library's log records alike, on standard error.

    A logger is built once, at its first event, with the level of that
    moment, unless `cache_loggers` is False; tests turn the cache off, so that
    a later call here and `structlog.testing.capture_logs` reach every logger.
    None keeps the choice of the previous call (on at first).
    """
    global _handler, _access_logger, _cache_loggers
    if cache_loggers is not None:
        _cache_loggers = cache_loggers
    level_number = logging.getLevelName(level.upper())
    shared_processors: list[structlog.types.Processor] = [
        log_context.merge_fields,
        structlog.stdlib.add_logger_name,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if log_format == "json":
        renderer: structlog.types.Processor = structlog.processors.JSONRenderer(_to_json)
        shared_processors.append(structlog.processors.format_exc_info)
    else:
        # sys.stderr is None in a process started with file descriptor 2 closed.
        colors = sys.stderr is not None and sys.stderr.isatty()
        renderer = structlog.dev.ConsoleRenderer(colors=colors)

    structlog.configure(
        processors=[*shared_processors, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(level_number),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=_cache_loggers,
    )

    handler = _LineBatchingHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared_processors,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
        _handler.write_waiting()
    root.addHandler(handler)
    _handler = handler
    if log_format == "json":
        _access_logger = _JsonAccessLine(
            _HandlerStream(handler), level_number <= logging.INFO, shared_processors
        )
    else:
        _access_logger = structlog.wrap_logger(
            _HandlerStream(handler),
            processors=[
                *(step for step in shared_processors if step is not structlog.stdlib.add_logger_name),
                renderer,
            ],
            wrapper_class=structlog.make_filtering_bound_logger(level_number),
            cache_logger_on_first_use=_cache_loggers,
        ).bind(logger=ACCESS_LOGGER_NAME)

    # Libraries stay at warning and above, so their messages are visible but quiet;
    # uvicorn's own start and stop lines are worth having at info.
    library_level = max(level_number, logging.WARNING)
    root.setLevel(library_level)
    logging.getLogger("uvicorn.error").setLevel(max(level_number, logging.INFO))
    logging.getLogger("strongroom").setLevel(level_number)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)


def flush_access_lines() -> None:
    """Write the access lines that wait for their batch, as a server does when it stops."""
    if _handler is not None:
        _handler.write_waiting()


def access_logger() -> AccessLogger:
    """Return the logger for the line every request writes.

    It writes to the root handler's stream itself, under that handler's lock,
    skipping the standard-library record and formatter that cost more than the
    rest of a small request (docs/benchmarks.md). In the JSON format it also
    skips structlog's processors, and writes the keys they would.
    """
    if _access_logger is None:
        configure_logging()
    assert _access_logger is not None
    return _access_logger


class AccessLogger(Protocol):
    def info(self, event: str, **fields: Any) -> Any: ...


class _JsonAccessLine:
    """The access line in the JSON format, with the keys and values structlog's processors give.

    The line is at info and never carries an exception, so it needs only the
    bound context, the time and the fields. The JSON test of the access line
    in tests/test_observability.py checks every key.
    """

    def __init__(
        self,
        stream: _HandlerStream,
        enabled: bool,
        shared_processors: list[structlog.types.Processor],
    ) -> None:
        self.stream = stream
        self.enabled = enabled
        stampers = [
            step for step in shared_processors if isinstance(step, structlog.processors.TimeStamper)
        ]
        self.stamp = stampers[0]

    def info(self, event: str, **fields: Any) -> None:
        if not self.enabled:
            return
        line = dict(log_context.current())
        line.update(fields)
        line["event"] = event
        line["logger"] = ACCESS_LOGGER_NAME
        line["level"] = "info"
        self.stamp(None, "info", line)
        self.stream.msg(_to_json(line))


class _HandlerStream:
    """A structlog logger that hands rendered access lines to the root handler."""

    def __init__(self, handler: _LineBatchingHandler) -> None:
        self.handler = handler

    def msg(self, message: str) -> None:
        self.handler.write_later(message)

    info = warning = error = debug = msg


class _LineBatchingHandler(logging.StreamHandler):
    """A stream handler that writes access lines from an event loop in batches.

    Under load, writing each line took one system call per request, about 6 % of the
    event loop's time in the 4-connection listing benchmark. A line waits at most
    ACCESS_FLUSH_SECONDS, so a process killed with SIGKILL loses at most that much.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._waiting: list[str] = []
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def write_later(self, line: str) -> None:
        """Queue `line`, and write the queue now unless a running event loop can do it soon."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None

        with self.lock:
            self._waiting.append(line)
            if loop is None or len(self._waiting) >= MAX_WAITING_ACCESS_LINES:
                self._write_waiting()
                return
            if not self._timer_pending():
                self._timer_loop = loop
                loop.call_later(ACCESS_FLUSH_SECONDS, self._on_timer)

    def emit(self, record: logging.LogRecord) -> None:
        # Handler.handle holds the lock here, so the waiting lines go first and in order.
        self._write_waiting()
        super().emit(record)

    def flush(self) -> None:
        # logging.shutdown calls this at exit, which writes what still waits.
        self.write_waiting()
        super().flush()

    def write_waiting(self) -> None:
        """Write the waiting access lines now."""
        with self.lock:
            self._write_waiting()

    def _timer_pending(self) -> bool:
        # A timer on a loop that has stopped never fires: the next line starts another.
        loop = self._timer_loop
        return loop is not None and loop.is_running()

    def _on_timer(self) -> None:
        with self.lock:
            self._timer_loop = None
            self._write_waiting()

    def _write_waiting(self) -> None:
        if not self._waiting:
            return
        lines, self._waiting = self._waiting, []
        try:
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - handled as StreamHandler.emit handles it
            # A closed or broken standard error must not fail the request that logs, nor a
            # missing one: with file descriptor 2 closed at start, sys.stderr is None.
            self.handleError(logging.makeLogRecord({"msg": lines[0]}))


def _to_json(event: dict, **_options: object) -> str:
    # orjson writes a line in a fraction of the time the json module takes, and every
    # request logs one. Values it cannot encode (exceptions, paths) become their str().
    return orjson.dumps(event, default=str).decode("utf-8")
