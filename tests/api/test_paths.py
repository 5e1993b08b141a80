"""Path rules: Unicode normalisation, forbidden names and size limits, alone and through the API."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from strongroom.base.errors import InvalidPath
from strongroom.drive.models import BlobRow, NodeRow, VersionRow
from strongroom.drive.paths import (
    MAX_DEPTH,
    MAX_NAME_BYTES,
    MAX_PATH_BYTES,
    check_name,
    join_path,
    split_path,
)
from strongroom.runtime import Runtime
from tests.conftest import Cast

NFC_NAME = "caf\u00e9.txt"
NFD_NAME = "cafe\u0301.txt"


def stored_files(runtime: Runtime) -> list[Path]:
    """Every file below the blob store, unfinished uploads included."""
    return sorted(path for path in runtime.settings.resolved_blob_dir.rglob("*") if path.is_file())


def row_counts(runtime: Runtime, cast: Cast) -> tuple[int, int, int]:
    with runtime.stores.session(cast.acme) as session:
        nodes = session.scalar(select(func.count()).select_from(NodeRow))
        versions = session.scalar(select(func.count()).select_from(VersionRow))
        blobs = session.scalar(select(func.count()).select_from(BlobRow))
    return nodes, versions, blobs


# Unit tests of strongroom.drive.paths ---------------------------------------------------


def test_check_name_normalises_to_nfc() -> None:
    assert check_name(NFD_NAME) == NFC_NAME


def test_split_path_normalises_every_name() -> None:
    assert split_path(f"{NFD_NAME}/{NFD_NAME}") == (NFC_NAME, NFC_NAME)


def test_split_path_ignores_outer_slashes() -> None:
    assert split_path("/reports/2026/") == ("reports", "2026")


@pytest.mark.parametrize("path", ["", "/", "//"])
def test_split_path_root_is_empty(path: str) -> None:
    assert split_path(path) == ()


def test_join_path_inverts_split_path() -> None:
    path = "reports/2026/q1.txt"

    assert join_path(split_path(path)) == path


@pytest.mark.parametrize("name", [".", ".."])
def test_split_path_rejects_dot_segments(name: str) -> None:
    with pytest.raises(InvalidPath) as caught:
        split_path(f"docs/{name}/plan.txt")

    assert f"name 2 ({name!r})" in caught.value.detail
    assert "'.' and '..' cannot be" in caught.value.detail
    assert caught.value.extra["segment"] == 2


def test_split_path_rejects_doubled_slash() -> None:
    with pytest.raises(InvalidPath) as caught:
        split_path("docs//plan.txt")

    assert "name 2 ('') is empty" in caught.value.detail
    assert "doubled '/'" in caught.value.detail


@pytest.mark.parametrize("character", ["\x00", "\x01", "\x1f", "\x7f", "\x85"])
def test_split_path_rejects_control_characters(character: str) -> None:
    with pytest.raises(InvalidPath) as caught:
        split_path(f"docs/plan{character}.txt")

    assert f"U+{ord(character):04X}" in caught.value.detail
    assert "name 2" in caught.value.detail


def test_check_name_rejects_slash() -> None:
    with pytest.raises(InvalidPath) as caught:
        check_name("a/b")

    assert "contains '/'" in caught.value.detail


@pytest.mark.parametrize(
    "name",
    [
        "a" * MAX_NAME_BYTES,
        "\u00e9" * 127 + "a",  # 2 bytes each
        "\u20ac" * 85,  # 3 bytes each
        "\U0001f600" * 63 + "abc",  # 4 bytes each
    ],
    ids=["ascii", "two-byte", "three-byte", "four-byte"],
)
def test_check_name_accepts_255_bytes(name: str) -> None:
    assert len(name.encode("utf-8")) == MAX_NAME_BYTES

    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["a" * 256, "\u00e9" * 128, "\u20ac" * 85 + "a", "\U0001f600" * 64],
    ids=["ascii", "two-byte", "three-byte", "four-byte"],
)
def test_check_name_rejects_256_bytes(name: str) -> None:
    assert len(name.encode("utf-8")) == MAX_NAME_BYTES + 1

    with pytest.raises(InvalidPath) as caught:
        check_name(name, 1)

    assert "is 256 bytes in UTF-8" in caught.value.detail
    assert "at most 255" in caught.value.detail


def test_check_name_measures_bytes_after_nfc() -> None:
    # 'e' and a combining accent are 3 bytes in NFD but 2 as the precomposed letter.
    decomposed = "e\u0301" * 100

    assert check_name(decomposed) == "\u00e9" * 100


def test_split_path_accepts_4096_bytes() -> None:
    names = ["a" * 250] * 16
    names.append("b" * (MAX_PATH_BYTES - len("/".join(names)) - 1))
    path = "/".join(names)
    assert len(path) == MAX_PATH_BYTES

    assert split_path(path) == tuple(names)


def test_split_path_rejects_4097_bytes() -> None:
    names = ["a" * 250] * 16
    names.append("b" * (MAX_PATH_BYTES - len("/".join(names))))

    with pytest.raises(InvalidPath) as caught:
        split_path("/".join(names))

    assert "the path is 4097 bytes" in caught.value.detail
    assert "at most 4096" in caught.value.detail


# Names made of letters, digits, punctuation and spaces, with combining marks, and not
# blank. NFC makes at most 12 bytes of UTF-8 from one character (U+1D160), so 20
# characters fit in 255 bytes.
valid_names = st.text(
    alphabet=st.characters(categories=["L", "M", "N", "P", "Zs"], exclude_characters="/"),
    min_size=1,
    max_size=20,
).filter(lambda name: unicodedata.normalize("NFC", name) not in {".", ".."} and name.strip())


@given(st.lists(valid_names, min_size=1, max_size=6))
def test_split_path_returns_nfc_names(names: list[str]) -> None:
    split = split_path("/".join(names))

    assert split == tuple(unicodedata.normalize("NFC", name) for name in names)
    assert split_path(join_path(split)) == split


# The same rules through the API -----------------------------------------------------------


def test_put_nfd_name_is_stored_as_nfc(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member

    response = client.put(alice.url(f"files/{NFD_NAME}"), content=b"accent", headers=alice.headers)

    assert response.status_code == 201
    assert response.json()["name"] == NFC_NAME
    assert response.json()["path"] == NFC_NAME


def test_get_nfc_name_finds_nfd_upload(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    client.put(alice.url(f"files/{NFD_NAME}"), content=b"accent", headers=alice.headers)

    response = client.get(alice.url(f"files/{NFC_NAME}"), headers=alice.headers)

    assert response.status_code == 200
    assert response.content == b"accent"


def test_nfd_and_nfc_uploads_are_one_file(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    client.put(alice.url(f"files/{NFD_NAME}"), content=b"typed on macOS", headers=alice.headers)

    second = client.put(
        alice.url(f"files/{NFC_NAME}"), content=b"typed on Linux", headers=alice.headers
    )

    assert second.status_code == 200
    assert second.json()["version"] == 2
    items = client.get(alice.url("folders/"), headers=alice.headers).json()["items"]
    assert [item["name"] for item in items] == [NFC_NAME]


def test_folder_listing_nfd_path_finds_folder(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    client.put(alice.url(f"files/{NFC_NAME}/inner.txt"), content=b"x", headers=alice.headers)

    response = client.get(alice.url(f"folders/{NFD_NAME}"), headers=alice.headers)

    assert response.status_code == 200
    assert response.json()["path"] == NFC_NAME
    assert [item["name"] for item in response.json()["items"]] == ["inner.txt"]


# Each bad path as sent on the wire, with a fragment that its problem detail must contain.
REJECTED_PATHS = [
    pytest.param("docs/%2E/plan.txt", "name 2 ('.')", id="dot"),
    pytest.param("docs/%2E%2E/plan.txt", "name 2 ('..')", id="dot-dot"),
    pytest.param(
        "docs/plan%00.txt",
        "name 2 ('plan\\x00.txt') contains the control character U+0000",
        id="nul",
    ),
    pytest.param(
        "docs/plan%01.txt",
        "name 2 ('plan\\x01.txt') contains the control character U+0001",
        id="soh",
    ),
    pytest.param(
        "docs/plan%7F.txt",
        "name 2 ('plan\\x7f.txt') contains the control character U+007F",
        id="del",
    ),
    pytest.param(
        "docs//plan.txt", "name 2 ('') is empty; remove the doubled '/'", id="doubled-slash"
    ),
    pytest.param(
        "docs/" + "a" * 256, "name 2 ('" + "a" * 256 + "') is 256 bytes", id="long-ascii-name"
    ),
    pytest.param(
        "docs/" + "%C3%A9" * 128,
        "name 2 ('" + "\u00e9" * 128 + "') is 256 bytes in UTF-8",
        id="long-two-byte-name",
    ),
    pytest.param("/".join(["a" * 255] * 17), "the path is 4351 bytes", id="long-path"),
]
REJECTED_PATHS_ONLY = [pytest.param(param.values[0], id=param.id) for param in REJECTED_PATHS]


@pytest.mark.parametrize(("path", "fault"), REJECTED_PATHS)
def test_put_bad_path_is_400_problem(
    client: httpx.Client, cast: Cast, path: str, fault: str
) -> None:
    alice = cast.acme_member

    response = client.put(alice.url(f"files/{path}"), content=b"x", headers=alice.headers)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:strongroom:problem:invalid-path"
    assert fault in response.json()["detail"]


@pytest.mark.parametrize("path", REJECTED_PATHS_ONLY)
def test_put_bad_path_stores_nothing(
    client: httpx.Client, runtime: Runtime, cast: Cast, path: str
) -> None:
    alice = cast.acme_member
    rows_before = row_counts(runtime, cast)
    files_before = stored_files(runtime)

    response = client.put(alice.url(f"files/{path}"), content=b"x" * 1000, headers=alice.headers)

    assert response.status_code == 400
    assert row_counts(runtime, cast) == rows_before
    assert stored_files(runtime) == files_before


# Folder routes share the checks of file routes, so a few kinds of fault cover them.
FOLDER_CASES = [param for param in REJECTED_PATHS if param.id in {"dot-dot", "nul", "long-path"}]


@pytest.mark.parametrize(("path", "fault"), FOLDER_CASES)
def test_make_folder_bad_path_is_400(
    client: httpx.Client, runtime: Runtime, cast: Cast, path: str, fault: str
) -> None:
    alice = cast.acme_member
    rows_before = row_counts(runtime, cast)

    response = client.post(alice.url(f"folders/{path}"), headers=alice.headers)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert fault in response.json()["detail"]
    assert row_counts(runtime, cast) == rows_before


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
def test_file_route_bad_path_is_400(client: httpx.Client, cast: Cast, method: str) -> None:
    alice = cast.acme_member
    url = alice.url("files/docs/%2E%2E/plan.txt")

    response = client.request(method, url, headers=alice.headers)

    assert response.status_code == 400


def test_move_bad_destination_is_400(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    client.put(alice.url("files/plan.txt"), content=b"x", headers=alice.headers)
    request = {"from": "plan.txt", "to": "docs/../plan.txt"}

    response = client.post(alice.url("move"), json=request, headers=alice.headers)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert "name 2 ('..')" in response.json()["detail"]


def test_put_255_byte_names_accepted(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    ascii_name = "a" * 255
    accented_name = "\u00e9" * 127 + "a"

    ascii_put = client.put(alice.url(f"files/{ascii_name}"), content=b"1", headers=alice.headers)
    accented_put = client.put(
        alice.url(f"files/{accented_name}"), content=b"2", headers=alice.headers
    )

    assert ascii_put.status_code == 201
    assert accented_put.status_code == 201
    items = client.get(alice.url("folders/"), headers=alice.headers).json()["items"]
    assert sorted(item["name"] for item in items) == sorted([ascii_name, accented_name])


def test_put_4096_byte_path_accepted(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    names = ["a" * 250] * 16
    names.append("b" * (MAX_PATH_BYTES - len("/".join(names)) - 1))
    path = "/".join(names)

    response = client.put(alice.url(f"files/{path}"), content=b"deep", headers=alice.headers)

    assert response.status_code == 201
    assert client.get(alice.url(f"files/{path}"), headers=alice.headers).content == b"deep"


@pytest.mark.parametrize(
    ("name", "fault"),
    [
        ("invoice\u202etxt.exe", "U+202E"),
        ("zero\u200bwidth", "U+200B"),
        ("\ufeffbom", "U+FEFF"),
        ("line\u2028break", "U+2028"),
        ("   ", "blank"),
        ("\u00a0", "blank"),
        ("bad\ufffd", "UTF-8"),
    ],
)
def test_check_name_rejects_deceptive(name: str, fault: str) -> None:
    with pytest.raises(InvalidPath) as raised:
        check_name(name)

    assert fault in raised.value.detail


def test_check_name_keeps_zero_width_joiner() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467.jpg"

    assert check_name(family) == family


def test_split_path_rejects_too_deep() -> None:
    with pytest.raises(InvalidPath) as raised:
        split_path("/".join(["d"] * (MAX_DEPTH + 1)))

    assert f"at most {MAX_DEPTH}" in raised.value.detail


def test_invalid_utf8_upload_is_400(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member

    response = client.put(alice.url("files/%ff%fe.txt"), content=b"x", headers=alice.headers)

    assert response.status_code == 400
    assert "UTF-8" in response.json()["detail"]
