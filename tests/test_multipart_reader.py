"""Reading a multipart upload as a stream: what a cancelled request leaves behind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio

from strongroom.interfaces.public.forms import MultipartReader

BOUNDARY = "strongroom-test-boundary"


class RecordingSink:
    """A file sink that records what happened to it."""

    def __init__(self) -> None:
        self.fed: list[bytes] = []
        self.aborted = False

    def feed(self, data: bytes) -> None:
        self.fed.append(data)

    def finish(self) -> None:
        raise AssertionError("the file part never ended")

    def abort(self) -> None:
        self.aborted = True


class StalledRequest:
    """A request whose body starts a file part and then sends nothing more."""

    async def stream(self) -> AsyncIterator[bytes]:
        yield (
            f"--{BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\n'
            "first bytes of the file, and more to come"
        ).encode()
        await anyio.sleep_forever()
        yield b""


def test_cancelled_read_aborts_open_file() -> None:
    # A cancelled cancel scope makes anyio.to_thread raise before it runs anything, so
    # an unshielded abort never ran and the blob's temporary file stayed behind.
    sink = RecordingSink()
    reader = MultipartReader(
        f"multipart/form-data; boundary={BOUNDARY}", lambda _name, _value: None, lambda *_: sink
    )

    async def read() -> None:
        request: Any = StalledRequest()
        with anyio.move_on_after(0.5):
            await reader.read(request)

    anyio.run(read)

    assert sink.fed
    assert sink.aborted
