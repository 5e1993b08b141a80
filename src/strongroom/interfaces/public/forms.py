"""Form bodies of the public area: small URL-encoded forms, and multipart uploads as a stream.

Starlette's own multipart parser spools each file to a temporary file, which
would put an outsider's upload on disk unencrypted. `MultipartReader` feeds
the parts of the body one by one instead: small fields stay in memory, and
each file's bytes go to a sink as they arrive, which for an upload request
is an encrypting blob upload.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol
from urllib.parse import parse_qs

import anyio
from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header

from strongroom.base.errors import InvalidInput, PayloadTooLarge

MAX_FORM_BYTES = 64 * 1024
MAX_FIELD_BYTES = 4096


async def read_small_form(request: Request) -> dict[str, str]:
    """Read an application/x-www-form-urlencoded body of at most MAX_FORM_BYTES."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise InvalidInput(
            f"the form was sent as {content_type or 'no content type'!r}; send it as "
            "application/x-www-form-urlencoded"
        )
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > MAX_FORM_BYTES:
            raise PayloadTooLarge(f"the form is larger than {MAX_FORM_BYTES} bytes", limit=MAX_FORM_BYTES)
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


class FileSink(Protocol):
    """The destination of the bytes of one file part."""

    def feed(self, data: bytes) -> None: ...

    def finish(self) -> None: ...

    def abort(self) -> None: ...


class MultipartReader:
    """Parse a multipart/form-data body fed piece by piece, in a worker thread.

    `on_field(name, value)` gets each field that is not a file, once it is
    complete. `open_file(field name, file name)` returns the sink for a file
    part, or None to skip it. Their errors stop the parse and reach the caller
    of `feed`; the open sink, if any, is aborted.
    """

    def __init__(
        self,
        content_type: str,
        on_field: Callable[[str, str], None],
        open_file: Callable[[str, str], FileSink | None],
    ) -> None:
        kind, options = parse_options_header(content_type)
        boundary = options.get(b"boundary")
        if kind != b"multipart/form-data" or not boundary:
            raise InvalidInput(
                "send the files as multipart/form-data with a boundary, as an HTML form with "
                'enctype="multipart/form-data" does'
            )
        self._on_field = on_field
        self._open_file = open_file
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._field: tuple[str, bytearray] | None = None
        self._sink: FileSink | None = None
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value_part,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )

    async def read(self, request: Request) -> None:
        """Read the whole body of the request, parsing it in a worker thread as it arrives."""
        try:
            async for piece in request.stream():
                if piece:
                    await anyio.to_thread.run_sync(self._parser.write, piece)
            await anyio.to_thread.run_sync(self._parser.finalize)
        except BaseException:
            # Shielded: in a cancelled scope, anyio.to_thread raises before it runs anything.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.abort)
            raise
        if self._sink is not None or self._field is not None:
            raise InvalidInput("the form's body ends in the middle of a part; send it again")

    def abort(self) -> None:
        if self._sink is not None:
            sink, self._sink = self._sink, None
            sink.abort()

    # Parser callbacks -------------------------------------------------------------------

    def _part_begin(self) -> None:
        self._headers = {}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_part(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_name.strip().lower()] = self._header_value.strip()
        self._header_name = self._header_value = b""

    def _headers_finished(self) -> None:
        _disposition, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", errors="replace")
        if b"filename" not in options:
            self._field = (name, bytearray())
            return
        filename = options[b"filename"].decode("utf-8", errors="replace")
        # Old browsers send the whole path of the file on the sender's machine.
        filename = filename.replace("\\", "/").rsplit("/", 1)[-1]
        self._sink = self._open_file(name, filename)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._sink is not None:
            self._sink.feed(data[start:end])
        elif self._field is not None:
            value = self._field[1]
            value += data[start:end]
            if len(value) > MAX_FIELD_BYTES:
                raise PayloadTooLarge(
                    f"the form field {self._field[0]!r} is longer than {MAX_FIELD_BYTES} bytes",
                    limit=MAX_FIELD_BYTES,
                )

    def _part_end(self) -> None:
        if self._sink is not None:
            sink, self._sink = self._sink, None
            sink.finish()
        elif self._field is not None:
            name, value = self._field
            self._field = None
            self._on_field(name, value.decode("utf-8", errors="replace"))
