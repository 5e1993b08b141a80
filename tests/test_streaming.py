"""Large transfers stream: a 256 MiB round trip through a server process with flat memory."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx

from tests.services.strongroom import StrongroomProcess

MIB = 1024 * 1024
SIZE = 256 * MIB
# The server may hold a few chunks per transfer; a buffered body would need 256 MiB more.
RSS_LIMIT = 200 * MIB


def _body(digest: "hashlib._Hash") -> Iterator[bytes]:
    block = bytearray(MIB)
    for index in range(SIZE // MIB):
        # Every mebibyte differs, so a chunk served from the wrong offset changes the hash.
        block[:8] = index.to_bytes(8, "big")
        piece = bytes(block)
        digest.update(piece)
        yield piece


def test_large_file_round_trip_streams(strongroom_process: StrongroomProcess) -> None:
    server = strongroom_process
    token = server.make_member("acme", "alice@acme.test")
    server.start()
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{server.url}/t/acme/api/v1/files/large.bin"
    sent = hashlib.sha256()

    stored = httpx.put(url, content=_body(sent), headers=headers, timeout=300)
    received = hashlib.sha256()
    received_size = 0
    with httpx.stream("GET", url, headers=headers, timeout=300) as response:
        for piece in response.iter_bytes():
            received.update(piece)
            received_size += len(piece)

    assert stored.status_code == 201
    assert stored.json()["size"] == SIZE
    assert stored.json()["sha256"] == sent.hexdigest()
    assert received_size == SIZE
    assert received.hexdigest() == sent.hexdigest()
    peak = server.peak_rss_bytes()
    assert peak < RSS_LIMIT, f"server peak RSS {peak // MIB} MiB"
