"""A bare HTTP/1.1 client for requests that httpx would correct before sending.

httpx removes dot segments from paths and encodes what it finds unsafe, so a
request such as `GET /t/globex/../acme/api/v1/me` never leaves it as written.
This client writes the request line and headers exactly as given, one
connection per request, and reads the response until the server closes.
It talks only to the test server on 127.0.0.1.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Reply:
    """A response as the attacker receives it: status, headers (lowercase names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes


def send_raw(
    port: int, method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
) -> Reply:
    lines = [method.encode("ascii") + b" " + target + b" HTTP/1.1"]
    lines += [name + b": " + value for name, value in headers]
    lines += [b"Content-Length: " + str(len(body)).encode(), b"Connection: close", b"", b""]
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_SECONDS) as connection:
        connection.sendall(b"\r\n".join(lines) + body)
        received = _read_all(connection)
    return parse_response(received, head=method == "HEAD")


def _read_all(connection: socket.socket) -> bytes:
    pieces = []
    while piece := connection.recv(65536):
        pieces.append(piece)
    return b"".join(pieces)


def parse_response(data: bytes, head: bool = False) -> Reply:
    header_block, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = header_block.split(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.decode("latin-1").partition(":")
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    if head:
        return Reply(status, headers, b"")
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    return Reply(status, headers, body)


def _dechunk(data: bytes) -> bytes:
    pieces = []
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        pieces.append(data[:size])
        data = data[size + 2 :]
    return b"".join(pieces)
