"""Range requests and conditional requests on file content (RFC 9110, sections 13 and 14)."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from strongroom.base.errors import RangeNotSatisfiable
from strongroom.interfaces.api.ranges import parse_etag_list, parse_http_date, parse_range
from tests.conftest import TEST_CHUNK_SIZE, Cast

# Three full encryption chunks and a short last one, so ranges can cross chunk borders.
SIZE = 3 * TEST_CHUNK_SIZE + 1000
BODY = bytes((index * 7 + index // 251) % 256 for index in range(SIZE))
STALE_ETAG = '"00000000000000000000000000000000"'


def upload(client: httpx.Client, cast: Cast, body: bytes = BODY, path: str = "data.bin") -> str:
    """Store a file for acme's member and return its ETag."""
    alice = cast.acme_member
    response = client.put(alice.url(f"files/{path}"), content=body, headers=alice.headers)
    assert response.status_code in (200, 201)
    return response.headers["etag"]


def fetch(
    client: httpx.Client, cast: Cast, headers: dict[str, str], path: str = "data.bin"
) -> httpx.Response:
    alice = cast.acme_member
    return client.get(alice.url(f"files/{path}"), headers={**alice.headers, **headers})


# Unit tests of strongroom.interfaces.api.ranges ------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9", (0, 9)),
        ("bytes=10-", (10, 99)),
        ("bytes=-5", (95, 99)),
        ("bytes=-100", (0, 99)),
        ("bytes=-500", (0, 99)),
        ("bytes=90-150", (90, 99)),
        ("bytes=99-99", (99, 99)),
        ("bytes = 3 - 4", (3, 4)),
        ("bytes=0-99999999999999999999999", (0, 99)),
        ("bytes=-99999999999999999999999", (0, 99)),
    ],
)
def test_parse_range_single_range(header: str, expected: tuple[int, int]) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "bytes=0-1,5-6",
        "bytes=0-1, 5-6",
        "bytes=abc",
        "bytes=-",
        "bytes=5-2",
        "items=0-5",
        "0-5",
        "bytes=1.5-3",
        "bytes=--5",
    ],
)
def test_parse_range_ignores_others(header: str | None) -> None:
    assert parse_range(header, 100) is None


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=100-", 100),
        ("bytes=1000-2000", 100),
        ("bytes=-0", 100),
        ("bytes=0-", 0),
        ("bytes=99999999999999999999-", 100),
        ("bytes=99999999999999999999-99999999999999999999999", 100),
    ],
)
def test_parse_range_unsatisfiable_raises(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as caught:
        parse_range(header, size)

    assert caught.value.headers["Content-Range"] == f"bytes */{size}"
    assert caught.value.status == 416


def test_parse_etag_list_absent_is_none() -> None:
    assert parse_etag_list(None) is None


def test_parse_etag_list_splits_tags() -> None:
    assert parse_etag_list('"a", "b" ,"c"') == ['"a"', '"b"', '"c"']


def test_parse_etag_list_keeps_star() -> None:
    assert parse_etag_list("*") == ["*"]


def test_parse_etag_list_weak_tags_compare_weakly() -> None:
    assert parse_etag_list('W/"a", "b"') == ['"a"', '"b"']


def test_parse_etag_list_strong_drops_weak_tags() -> None:
    # If-Match compares strongly, and a weak tag never matches strongly.
    assert parse_etag_list('W/"a", "b"', strong=True) == ['"b"']


# Range requests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        pytest.param("bytes=0-9", 0, 9, id="first-ten"),
        pytest.param("bytes=10-", 10, SIZE - 1, id="open-end"),
        pytest.param("bytes=-5", SIZE - 5, SIZE - 1, id="suffix"),
        pytest.param(f"bytes={SIZE - 3}-{SIZE + 100}", SIZE - 3, SIZE - 1, id="clipped"),
        pytest.param(f"bytes=-{SIZE + 50}", 0, SIZE - 1, id="long-suffix"),
        pytest.param(
            f"bytes={TEST_CHUNK_SIZE - 100}-{3 * TEST_CHUNK_SIZE + 10}",
            TEST_CHUNK_SIZE - 100,
            3 * TEST_CHUNK_SIZE + 10,
            id="across-chunks",
        ),
        pytest.param(
            f"bytes={TEST_CHUNK_SIZE + 5}-{TEST_CHUNK_SIZE + 20}",
            TEST_CHUNK_SIZE + 5,
            TEST_CHUNK_SIZE + 20,
            id="inside-one-chunk",
        ),
        pytest.param(
            f"bytes={TEST_CHUNK_SIZE}-{2 * TEST_CHUNK_SIZE - 1}",
            TEST_CHUNK_SIZE,
            2 * TEST_CHUNK_SIZE - 1,
            id="one-whole-chunk",
        ),
    ],
)
def test_range_returns_exact_bytes(
    client: httpx.Client, cast: Cast, header: str, start: int, end: int
) -> None:
    upload(client, cast)

    response = fetch(client, cast, {"Range": header})

    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {start}-{end}/{SIZE}"
    assert response.headers["content-length"] == str(end - start + 1)
    assert response.content == BODY[start : end + 1]


def test_range_keeps_etag(client: httpx.Client, cast: Cast) -> None:
    etag = upload(client, cast)

    response = fetch(client, cast, {"Range": "bytes=0-9"})

    assert response.headers["etag"] == etag
    assert response.headers["accept-ranges"] == "bytes"


def test_range_past_end_is_416(client: httpx.Client, cast: Cast) -> None:
    upload(client, cast, body=b"0123456789", path="ten.txt")

    response = fetch(client, cast, {"Range": "bytes=1000-"}, path="ten.txt")

    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */10"
    assert response.headers["content-type"] == "application/problem+json"
    assert "bytes=1000-" in response.json()["detail"]


@pytest.mark.parametrize(
    "header",
    ["bytes=0-1,5-6", "bytes=abc", "items=0-5", "bytes=9-3", "bytes=-"],
    ids=["multiple", "letters", "other-unit", "reversed", "empty"],
)
def test_range_ignored_sends_whole_file(client: httpx.Client, cast: Cast, header: str) -> None:
    upload(client, cast)

    response = fetch(client, cast, {"Range": header})

    assert response.status_code == 200
    assert "content-range" not in response.headers
    assert response.content == BODY


def test_head_with_range_is_206(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    upload(client, cast)
    headers = {**alice.headers, "Range": "bytes=5-14"}

    response = client.head(alice.url("files/data.bin"), headers=headers)

    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes 5-14/{SIZE}"
    assert response.headers["content-length"] == "10"
    assert response.content == b""


# Conditional GET --------------------------------------------------------------------------


def test_if_none_match_current_is_304(client: httpx.Client, cast: Cast) -> None:
    etag = upload(client, cast)

    response = fetch(client, cast, {"If-None-Match": etag})

    assert response.status_code == 304
    assert response.headers["etag"] == etag
    assert response.content == b""


def test_if_none_match_star_is_304(client: httpx.Client, cast: Cast) -> None:
    upload(client, cast)

    response = fetch(client, cast, {"If-None-Match": "*"})

    assert response.status_code == 304


def test_if_none_match_other_is_200(client: httpx.Client, cast: Cast) -> None:
    upload(client, cast)

    response = fetch(client, cast, {"If-None-Match": STALE_ETAG})

    assert response.status_code == 200
    assert response.content == BODY


def test_if_none_match_weak_current_is_304(client: httpx.Client, cast: Cast) -> None:
    etag = upload(client, cast)

    response = fetch(client, cast, {"If-None-Match": f"{STALE_ETAG}, W/{etag}"})

    assert response.status_code == 304


def test_if_match_wrong_on_get_is_412(client: httpx.Client, cast: Cast) -> None:
    etag = upload(client, cast)

    response = fetch(client, cast, {"If-Match": STALE_ETAG})

    assert response.status_code == 412
    assert response.headers["content-type"] == "application/problem+json"
    assert etag in response.json()["detail"]


def test_if_match_current_on_get_is_200(client: httpx.Client, cast: Cast) -> None:
    etag = upload(client, cast)

    response = fetch(client, cast, {"If-Match": etag})

    assert response.status_code == 200
    assert response.content == BODY


def test_if_match_weak_on_get_is_412(client: httpx.Client, cast: Cast) -> None:
    etag = upload(client, cast)

    response = fetch(client, cast, {"If-Match": f"W/{etag}"})

    assert response.status_code == 412


def test_if_range_current_sends_range(client: httpx.Client, cast: Cast) -> None:
    etag = upload(client, cast)

    response = fetch(client, cast, {"Range": "bytes=0-9", "If-Range": etag})

    assert response.status_code == 206
    assert response.content == BODY[:10]


def test_if_range_stale_sends_whole_file(client: httpx.Client, cast: Cast) -> None:
    upload(client, cast)

    response = fetch(client, cast, {"Range": "bytes=0-9", "If-Range": STALE_ETAG})

    assert response.status_code == 200
    assert "content-range" not in response.headers
    assert response.content == BODY


def test_if_range_after_new_version_sends_whole_file(client: httpx.Client, cast: Cast) -> None:
    old_etag = upload(client, cast, body=b"first version")
    upload(client, cast, body=b"second version")

    response = fetch(client, cast, {"Range": "bytes=0-4", "If-Range": old_etag})

    assert response.status_code == 200
    assert response.content == b"second version"


# Conditional PUT --------------------------------------------------------------------------


def put(client: httpx.Client, cast: Cast, body: bytes, headers: dict[str, str]) -> httpx.Response:
    alice = cast.acme_member
    url = alice.url("files/doc.txt")
    return client.put(url, content=body, headers={**alice.headers, **headers})


def versions(client: httpx.Client, cast: Cast) -> list[int]:
    alice = cast.acme_member
    items = client.get(alice.url("versions/doc.txt"), headers=alice.headers).json()["items"]
    return [item["number"] for item in items]


def test_put_if_match_current_succeeds(client: httpx.Client, cast: Cast) -> None:
    etag = upload(client, cast, body=b"one", path="doc.txt")

    response = put(client, cast, b"two", {"If-Match": etag})

    assert response.status_code == 200
    assert response.json()["version"] == 2
    assert fetch(client, cast, {}, path="doc.txt").content == b"two"


def test_put_if_match_stale_is_412(client: httpx.Client, cast: Cast) -> None:
    stale = upload(client, cast, body=b"one", path="doc.txt")
    current = upload(client, cast, body=b"two", path="doc.txt")

    response = put(client, cast, b"three", {"If-Match": stale})

    assert response.status_code == 412
    assert response.headers["content-type"] == "application/problem+json"
    assert current in response.json()["detail"]


def test_put_if_match_stale_leaves_file(client: httpx.Client, cast: Cast) -> None:
    stale = upload(client, cast, body=b"one", path="doc.txt")
    current = upload(client, cast, body=b"two", path="doc.txt")

    put(client, cast, b"three", {"If-Match": stale})

    after = fetch(client, cast, {}, path="doc.txt")
    assert after.content == b"two"
    assert after.headers["etag"] == current
    assert versions(client, cast) == [1, 2]


def test_put_if_match_weak_current_is_412(client: httpx.Client, cast: Cast) -> None:
    etag = upload(client, cast, body=b"one", path="doc.txt")

    response = put(client, cast, b"two", {"If-Match": f"W/{etag}"})

    assert response.status_code == 412
    assert fetch(client, cast, {}, path="doc.txt").content == b"one"


def test_put_if_match_missing_file_is_412(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member

    response = put(client, cast, b"new", {"If-Match": "*"})

    assert response.status_code == 412
    assert client.get(alice.url("files/doc.txt"), headers=alice.headers).status_code == 404


def test_put_if_none_match_star_creates(client: httpx.Client, cast: Cast) -> None:
    response = put(client, cast, b"new", {"If-None-Match": "*"})

    assert response.status_code == 201
    assert fetch(client, cast, {}, path="doc.txt").content == b"new"


def test_put_if_none_match_star_existing_is_412(client: httpx.Client, cast: Cast) -> None:
    upload(client, cast, body=b"one", path="doc.txt")

    response = put(client, cast, b"two", {"If-None-Match": "*"})

    assert response.status_code == 412
    assert response.headers["content-type"] == "application/problem+json"
    assert fetch(client, cast, {}, path="doc.txt").content == b"one"
    assert versions(client, cast) == [1]


def test_parse_range_huge_last_position_is_cut() -> None:
    # More digits than int() converts by default (4,300), read without converting them.
    header = "bytes=0-" + "9" * 4301

    assert parse_range(header, 10) == (0, 9)


def test_range_long_last_position_is_206(client: httpx.Client, cast: Cast) -> None:
    upload(client, cast)

    response = fetch(client, cast, {"Range": "bytes=0-99999999999999999999999"})

    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes 0-{SIZE - 1}/{SIZE}"
    assert response.content == BODY


def test_range_long_first_position_is_416(client: httpx.Client, cast: Cast) -> None:
    upload(client, cast)

    response = fetch(client, cast, {"Range": "bytes=99999999999999999999-"})

    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{SIZE}"


# If-Unmodified-Since on PUT and DELETE -----------------------------------------------------

LONG_AGO = "Mon, 01 Jan 1990 00:00:00 GMT"
FAR_AHEAD = "Fri, 01 Jan 2100 00:00:00 GMT"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (LONG_AGO, dt.datetime(1990, 1, 1, tzinfo=dt.UTC)),
        ("Monday, 01-Jan-90 00:00:00 GMT", dt.datetime(1990, 1, 1, tzinfo=dt.UTC)),
        (None, None),
        ("", None),
        ("yesterday", None),
    ],
)
def test_parse_http_date(header: str | None, expected: dt.datetime | None) -> None:
    assert parse_http_date(header) == expected


def test_put_if_unmodified_since_before_change_is_412(client: httpx.Client, cast: Cast) -> None:
    upload(client, cast, body=b"one", path="doc.txt")

    response = put(client, cast, b"two", {"If-Unmodified-Since": LONG_AGO})

    assert response.status_code == 412, response.text
    assert "If-Unmodified-Since" in response.json()["detail"]
    assert fetch(client, cast, {}, path="doc.txt").content == b"one"
    assert versions(client, cast) == [1]


def test_put_if_unmodified_since_last_modified_succeeds(client: httpx.Client, cast: Cast) -> None:
    upload(client, cast, body=b"one", path="doc.txt")
    last_modified = fetch(client, cast, {}, path="doc.txt").headers["last-modified"]

    response = put(client, cast, b"two", {"If-Unmodified-Since": last_modified})

    assert response.status_code == 200, response.text
    assert versions(client, cast) == [1, 2]


def test_put_if_unmodified_since_new_file_ignored(client: httpx.Client, cast: Cast) -> None:
    response = put(client, cast, b"new", {"If-Unmodified-Since": LONG_AGO})

    assert response.status_code == 201, response.text


def test_put_if_match_wins_over_unmodified_since(client: httpx.Client, cast: Cast) -> None:
    etag = upload(client, cast, body=b"one", path="doc.txt")

    response = put(client, cast, b"two", {"If-Match": etag, "If-Unmodified-Since": LONG_AGO})

    assert response.status_code == 200, response.text


def test_put_invalid_unmodified_since_ignored(client: httpx.Client, cast: Cast) -> None:
    upload(client, cast, body=b"one", path="doc.txt")

    response = put(client, cast, b"two", {"If-Unmodified-Since": "yesterday"})

    assert response.status_code == 200, response.text


def test_delete_if_unmodified_since_before_change_is_412(
    client: httpx.Client, cast: Cast
) -> None:
    alice = cast.acme_member
    upload(client, cast, body=b"one", path="keep.txt")

    refused = client.delete(
        alice.url("files/keep.txt"), headers={**alice.headers, "If-Unmodified-Since": LONG_AGO}
    )
    kept = client.get(alice.url("files/keep.txt"), headers=alice.headers)
    allowed = client.delete(
        alice.url("files/keep.txt"), headers={**alice.headers, "If-Unmodified-Since": FAR_AHEAD}
    )

    assert refused.status_code == 412, refused.text
    assert kept.content == b"one"
    assert allowed.status_code == 200, allowed.text


def test_delete_with_stale_if_match_is_412(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    client.put(alice.url("files/keep.txt"), content=b"one", headers=alice.headers)

    response = client.delete(
        alice.url("files/keep.txt"), headers={**alice.headers, "If-Match": '"stale"'}
    )

    assert response.status_code == 412
    assert client.get(alice.url("files/keep.txt"), headers=alice.headers).content == b"one"
