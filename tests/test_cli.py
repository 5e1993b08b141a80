"""The real `strongroom` command, run as a subprocess on a data directory of its own."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import stat
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url, select

from strongroom.base.config import load_settings
from strongroom.drive import files, transfers
from strongroom.drive.content import blob_key, read_range
from strongroom.drive.files import Preconditions
from strongroom.drive.models import BlobRow
from strongroom.drive.paths import split_path
from strongroom.identity import guests
from strongroom.identity.passwords import verify_password
from strongroom.identity.users import access_user_by_email
from strongroom.runtime import Runtime, build_runtime
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.events import AuditEventRow, user_actor
from strongroom.tenancy.upgrades import tenant_head
from strongroom.tenancy.usage import get_usage
from tests.conftest import drive_owner
from tests.services.strongroom import StrongroomProcess

UUID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PASSWORD = "a long cli password"
ALICE = "alice@acme.test"
# Rich fits tables to the terminal. Without one it assumes 80 columns and cuts ids short.
WIDE_TERMINAL = {"COLUMNS": "250"}
# The server must see a suspension or a revocation made by the command at once.
NO_TENANT_CACHE = {"STRONGROOM_TENANT_CACHE_SECONDS": "0"}


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[StrongroomProcess]:
    """The command on an empty embedded data directory. `start()` also serves it."""
    process = StrongroomProcess(tmp_path / "data", extra_env={**WIDE_TERMINAL, **NO_TENANT_CACHE})
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def acme_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with the tenant `acme` and its member alice, made once for the module:
    each command costs a second or two of start-up, so tests copy this instead of re-running it.
    Its first command also creates the key file, whose warning would otherwise add a line to
    the standard error of the command under test."""
    process = StrongroomProcess(tmp_path_factory.mktemp("acme") / "data")
    assert process.cli("tenant", "create", "acme", "--name", "Acme").returncode == 0
    created = process.cli("user", "create", "acme", ALICE, "--password-stdin", stdin=PASSWORD)
    assert created.returncode == 0, created.stderr
    return process.data_dir


@pytest.fixture
def acme(acme_template: Path, tmp_path: Path) -> Iterator[StrongroomProcess]:
    data_dir = tmp_path / "data"
    shutil.copytree(acme_template, data_dir)
    process = StrongroomProcess(data_dir, extra_env={**WIDE_TERMINAL, **NO_TENANT_CACHE})
    try:
        yield process
    finally:
        process.stop()


@contextmanager
def open_runtime(process: StrongroomProcess) -> Iterator[Runtime]:
    """The same data directory opened in the test process, to set up files and check rows."""
    runtime = build_runtime(load_settings(data_dir=process.data_dir))
    try:
        yield runtime
    finally:
        runtime.close()


def upload(runtime: Runtime, slug: str, path: str, body: bytes) -> uuid.UUID:
    """Store a file through the same functions as the API and return its blob id."""
    tenant = runtime.catalog.get_tenant(slug)
    owner = drive_owner(runtime, tenant)
    names = split_path(path)
    pending = transfers.begin_upload(runtime, tenant, owner, names, Preconditions(), len(body))
    pending.feed(body)
    transfers.commit_upload(runtime, tenant, owner, names, pending, owner, Preconditions())
    with runtime.stores.session(tenant) as session:
        node = files.access_node(session, owner, names)
        _version, blob = files.current_content(session, node)
    return blob.id


def read_file(runtime: Runtime, slug: str, path: str) -> bytes:
    tenant = runtime.catalog.get_tenant(slug)
    download = transfers.open_download(
        runtime, tenant, drive_owner(runtime, tenant), split_path(path)
    )
    size = download.blob.size
    return b"".join(read_range(runtime.blobs, download.blob, download.tenant_key, 0, size - 1))


def show(process: StrongroomProcess, slug: str) -> dict[str, object]:
    result = process.cli("tenant", "show", slug)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def catalog_entry(process: StrongroomProcess, slug: str) -> TenantInfo:
    """The tenant as the catalog has it, read in the test process, which is faster than `show`."""
    with open_runtime(process) as runtime:
        return runtime.catalog.get_tenant(slug)


def stderr_lines(result: object) -> list[str]:
    return result.stderr.splitlines()  # type: ignore[attr-defined]


# Tenants ------------------------------------------------------------------------------


def test_tenant_create_prints_slug_and_id(cli: StrongroomProcess) -> None:
    result = cli.cli("tenant", "create", "acme")

    assert result.returncode == 0, result.stderr
    assert re.fullmatch(
        rf"created tenant acme \({UUID_PATTERN.pattern}\) on plan default\n", result.stdout
    )


def test_tenant_create_sets_name_and_quota(acme: StrongroomProcess) -> None:
    acme.cli("tenant", "create", "globex", "--name", "Globex Corp", "--quota", "5000")

    tenant = catalog_entry(acme, "globex")

    assert tenant.name == "Globex Corp"
    assert tenant.quota_bytes == 5000


def test_tenant_create_quota_zero_is_kept(acme: StrongroomProcess) -> None:
    acme.cli("tenant", "create", "frozen", "--quota", "0")

    tenant = catalog_entry(acme, "frozen")

    assert tenant.quota_bytes == 0


def test_tenant_list_shows_every_tenant(acme: StrongroomProcess) -> None:
    acme.cli("tenant", "create", "globex", "--name", "Globex Corp")

    result = acme.cli("tenant", "list")

    assert result.returncode == 0, result.stderr
    assert "Acme" in result.stdout
    assert "Globex Corp" in result.stdout


def test_tenant_list_json_prints_line_each(acme: StrongroomProcess) -> None:
    acme.cli("tenant", "create", "globex")

    result = acme.cli("tenant", "list", "--json")

    listed = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(t["slug"], t["status"], t["isolation"]) for t in listed] == [
        ("acme", "active", "shared"),
        ("globex", "active", "shared"),
    ]


def test_tenant_list_json_keeps_bracketed_name(acme: StrongroomProcess) -> None:
    acme.cli("tenant", "create", "globex", "--name", "Globex [beta] [/old]")

    result = acme.cli("tenant", "list", "--json")

    names = [json.loads(line)["name"] for line in result.stdout.splitlines()]
    assert names == ["Acme", "Globex [beta] [/old]"]


def test_tenant_show_reports_used_bytes(acme: StrongroomProcess) -> None:
    with open_runtime(acme) as runtime:
        upload(runtime, "acme", "a.bin", b"x" * 1000)
        upload(runtime, "acme", "b.bin", b"y" * 234)

    described = show(acme, "acme")

    assert described["slug"] == "acme"
    assert described["used_bytes"] == 1234


def test_tenant_suspend_sets_status(acme: StrongroomProcess) -> None:
    result = acme.cli("tenant", "suspend", "acme")

    assert result.returncode == 0, result.stderr
    assert catalog_entry(acme, "acme").status == "suspended"


def test_tenant_suspend_blocks_api_requests(acme: StrongroomProcess) -> None:
    token = acme.cli("token", "create", "acme", ALICE).stdout.strip()
    acme.start()

    acme.cli("tenant", "suspend", "acme")

    response = httpx.get(
        f"{acme.url}/t/acme/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code == 403
    assert "suspended" in response.json()["detail"]


def test_tenant_resume_sets_status_active(acme: StrongroomProcess) -> None:
    acme.cli("tenant", "suspend", "acme")

    result = acme.cli("tenant", "resume", "acme")

    assert result.returncode == 0, result.stderr
    assert catalog_entry(acme, "acme").status == "active"


def test_tenant_set_quota_changes_quota(acme: StrongroomProcess) -> None:
    result = acme.cli("tenant", "set-quota", "acme", "4096")

    assert result.stdout == "quota of tenant acme: 4096 bytes\n"
    assert catalog_entry(acme, "acme").quota_bytes == 4096


def test_tenant_set_quota_omitted_is_unlimited(acme: StrongroomProcess) -> None:
    acme.cli("tenant", "set-quota", "acme", "4096")

    result = acme.cli("tenant", "set-quota", "acme")

    assert result.stdout == "quota of tenant acme: unlimited\n"
    assert catalog_entry(acme, "acme").quota_bytes is None


def test_tenant_rotate_key_rewraps_blob_keys(acme: StrongroomProcess) -> None:
    with open_runtime(acme) as runtime:
        upload(runtime, "acme", "a.bin", b"first")
        upload(runtime, "acme", "b.bin", b"second")

    result = acme.cli("tenant", "rotate-key", "acme")

    assert result.returncode == 0, result.stderr
    assert "now uses key version 2; re-wrapped 2 blob keys" in result.stdout
    with open_runtime(acme) as runtime:
        tenant = runtime.catalog.get_tenant("acme")
        with runtime.stores.session(tenant) as session:
            versions = set(session.scalars(select(BlobRow.key_version)))
    assert versions == {2}


def test_tenant_rotate_key_keeps_files_readable(acme: StrongroomProcess) -> None:
    body = os.urandom(50_000)
    with open_runtime(acme) as runtime:
        upload(runtime, "acme", "a.bin", body)

    acme.cli("tenant", "rotate-key", "acme")

    with open_runtime(acme) as runtime:
        assert read_file(runtime, "acme", "a.bin") == body


# Users --------------------------------------------------------------------------------


def test_user_create_reads_password_from_stdin(acme: StrongroomProcess) -> None:
    result = acme.cli(
        "user", "create", "acme", "bob@acme.test", "--role", "admin", "--password-stdin",
        stdin="another long password\n",
    )

    assert result.returncode == 0, result.stderr
    assert "another long password" not in result.stdout + result.stderr
    with open_runtime(acme) as runtime:
        tenant = runtime.catalog.get_tenant("acme")
        with runtime.stores.session(tenant) as session:
            user = access_user_by_email(session, "bob@acme.test")
    assert user.role == "admin"
    assert verify_password(user.password_hash, "another long password")


def test_user_create_makes_drive(acme: StrongroomProcess) -> None:
    result = acme.cli("user", "create", "acme", "bob@acme.test", "--password-stdin", stdin=PASSWORD)

    assert result.returncode == 0, result.stderr
    with open_runtime(acme) as runtime:
        tenant = runtime.catalog.get_tenant("acme")
        with runtime.stores.session(tenant) as session:
            user = access_user_by_email(session, "bob@acme.test")
            root = files.get_root(session, user.id)
    assert root is not None
    assert root.owner_id == user.id


def test_user_create_empty_stdin_is_rejected(acme: StrongroomProcess) -> None:
    result = acme.cli("user", "create", "acme", "bob@acme.test", "--password-stdin", stdin="")

    assert result.returncode == 1
    assert len(stderr_lines(result)) == 1
    assert "standard input held no password" in result.stderr


def test_user_create_prints_generated_password_once(acme: StrongroomProcess) -> None:
    result = acme.cli("user", "create", "acme", "bob@acme.test")

    lines = [line for line in result.stdout.splitlines() if line.startswith("password: ")]
    assert len(lines) == 1
    password = lines[0].removeprefix("password: ")
    assert result.stdout.count(password) == 1
    assert "shown only this once" in result.stderr
    with open_runtime(acme) as runtime:
        tenant = runtime.catalog.get_tenant("acme")
        with runtime.stores.session(tenant) as session:
            user = access_user_by_email(session, "bob@acme.test")
    assert verify_password(user.password_hash, password)


def test_user_list_shows_users_and_roles(acme: StrongroomProcess) -> None:
    acme.cli("user", "create", "acme", "root@acme.test", "--role", "admin")

    result = acme.cli("user", "list", "acme")

    assert result.returncode == 0, result.stderr
    rows = {line.split()[1]: line.split()[3] for line in result.stdout.splitlines() if "@" in line}
    assert rows == {ALICE: "member", "root@acme.test": "admin"}


def test_user_create_duplicate_is_rejected(acme: StrongroomProcess) -> None:
    result = acme.cli("user", "create", "acme", ALICE.upper(), "--password-stdin", stdin=PASSWORD)

    assert result.returncode == 1
    assert len(stderr_lines(result)) == 1
    assert ALICE in result.stderr


def test_user_create_bad_role_is_rejected(acme: StrongroomProcess) -> None:
    result = acme.cli("user", "create", "acme", "bob@acme.test", "--role", "overlord")

    assert result.returncode == 1
    assert len(stderr_lines(result)) == 1
    assert "'overlord'" in result.stderr
    assert result.stdout == ""


# Tokens -------------------------------------------------------------------------------


def test_token_create_rejects_guest(acme: StrongroomProcess) -> None:
    with open_runtime(acme) as runtime:
        tenant = runtime.catalog.get_tenant("acme")
        with runtime.stores.session(tenant, write=True) as session:
            inviter = access_user_by_email(session, ALICE)
            guests.invite_guest(
                session, tenant, inviter, "gus@partner.example", user_actor(inviter.id)
            )

    result = acme.cli("token", "create", "acme", "gus@partner.example")

    assert result.returncode != 0
    assert "gus@partner.example is a guest, and guests get no API tokens" in result.stderr
    assert result.stdout == ""


def test_token_create_prints_only_token(acme: StrongroomProcess) -> None:
    result = acme.cli("token", "create", "acme", ALICE, "--name", "ci")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("sr_")
    assert result.stdout == lines[0] + "\n"


def test_token_create_works_against_api(acme: StrongroomProcess) -> None:
    token = acme.cli("token", "create", "acme", ALICE).stdout.strip()
    acme.start()

    response = httpx.get(
        f"{acme.url}/t/acme/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )

    assert response.status_code == 200
    assert response.json()["email"] == ALICE


def test_token_list_prints_no_secrets(acme: StrongroomProcess) -> None:
    first = acme.cli("token", "create", "acme", ALICE, "--name", "laptop").stdout.strip()
    second = acme.cli("token", "create", "acme", ALICE, "--name", "backup").stdout.strip()

    result = acme.cli("token", "list", "acme")

    assert result.returncode == 0, result.stderr
    assert "laptop" in result.stdout
    assert "backup" in result.stdout
    assert first not in result.stdout
    assert second not in result.stdout


def test_token_list_piped_keeps_whole_ids(acme: StrongroomProcess) -> None:
    # A long name makes the table wider than the 80 columns of a terminal.
    acme.cli("token", "create", "acme", ALICE, "--name", "n" * 60)

    listed = acme.cli("token", "list", "acme", ALICE).stdout

    assert len(UUID_PATTERN.findall(listed)) == 1
    assert "n" * 60 in listed


def test_token_revoke_makes_token_fail(acme: StrongroomProcess) -> None:
    token = acme.cli("token", "create", "acme", ALICE).stdout.strip()
    [token_id] = UUID_PATTERN.findall(acme.cli("token", "list", "acme", ALICE).stdout)
    acme.start()

    revoked = acme.cli("token", "revoke", "acme", token_id)

    assert revoked.returncode == 0, revoked.stderr
    response = httpx.get(
        f"{acme.url}/t/acme/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code == 401


def test_token_commands_audited_as_operator(acme: StrongroomProcess) -> None:
    made = acme.cli("user", "create", "acme", "boss@acme.test", "--role", "admin")
    admin_token = acme.cli("token", "create", "acme", "boss@acme.test").stdout.strip()
    token = acme.cli("token", "create", "acme", ALICE, "--name", "ci").stdout.strip()
    [token_id] = UUID_PATTERN.findall(acme.cli("token", "list", "acme", ALICE).stdout)
    acme.cli("token", "revoke", "acme", token_id)
    acme.start()

    response = httpx.get(
        f"{acme.url}/t/acme/api/v1/audit",
        params={"actor": "operator"},
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=10,
    )

    assert made.returncode == 0, made.stderr
    assert response.status_code == 200, response.text
    found = response.json()["items"]
    assert [event["action"] for event in found] == [
        "token_revoked",
        "token_created",
        "token_created",
        "user_created",
        "user_created",
    ]
    assert {event["address"] for event in found} == {None}
    assert found[0]["target"] == {"type": "token", "id": token_id}
    assert found[1]["new"]["name"] == "ci"
    assert token not in response.text
    assert admin_token not in response.text


def test_token_revoke_unknown_id_is_rejected(acme: StrongroomProcess) -> None:
    unknown = str(uuid.uuid4())

    result = acme.cli("token", "revoke", "acme", unknown)

    assert result.returncode == 1
    assert len(stderr_lines(result)) == 1
    assert unknown in result.stderr


# Guests ---------------------------------------------------------------------------------

GUEST = "visitor@partner.example"


def invite_guest(process: StrongroomProcess) -> str:
    """Invite a guest of acme as alice, through the function the API calls; return the guest id."""
    with open_runtime(process) as runtime:
        tenant = runtime.catalog.get_tenant("acme")
        with runtime.stores.session(tenant, write=True) as session:
            alice = access_user_by_email(session, ALICE)
            invitation = guests.invite_guest(session, tenant, alice, GUEST, user_actor(alice.id))
        return str(invitation.guest.id)


def guest_events(process: StrongroomProcess) -> list[AuditEventRow]:
    with open_runtime(process) as runtime:
        tenant = runtime.catalog.get_tenant("acme")
        with runtime.stores.session(tenant) as session:
            query = select(AuditEventRow).where(AuditEventRow.action == "guest_ended")
            return list(session.scalars(query))


def test_guest_list_shows_guests(acme: StrongroomProcess) -> None:
    guest_id = invite_guest(acme)

    result = acme.cli("guest", "list", "acme")

    assert result.returncode == 0, result.stderr
    [row] = [line for line in result.stdout.splitlines() if GUEST in line]
    assert "invited" in row
    assert guest_id in row
    assert ALICE not in result.stdout


def test_guest_end_ends_and_records_operator(acme: StrongroomProcess) -> None:
    guest_id = invite_guest(acme)

    result = acme.cli("guest", "end", "acme", guest_id)

    assert result.returncode == 0, result.stderr
    assert guest_id in result.stdout
    listed = acme.cli("guest", "list", "acme").stdout
    assert "ended" in next(line for line in listed.splitlines() if GUEST in line)
    [event] = guest_events(acme)
    assert event.actor == "operator"
    assert event.address is None
    assert (event.target_type, event.target_id) == ("user", guest_id)
    assert event.old == {"state": "invited"}


@pytest.mark.parametrize("guest_id", [str(uuid.UUID(int=7)), "not-an-id"], ids=["unknown", "malformed"])
def test_guest_end_unknown_id_is_rejected(acme: StrongroomProcess, guest_id: str) -> None:
    result = acme.cli("guest", "end", "acme", guest_id)

    assert result.returncode == 1
    assert len(stderr_lines(result)) == 1
    assert guest_id in result.stderr
    assert guest_events(acme) == []


def test_guest_end_of_member_is_rejected(acme: StrongroomProcess) -> None:
    [alice_id] = UUID_PATTERN.findall(
        next(line for line in acme.cli("user", "list", "acme").stdout.splitlines() if ALICE in line)
    )

    result = acme.cli("guest", "end", "acme", alice_id)

    assert result.returncode == 1
    assert alice_id in result.stderr
    listed = acme.cli("user", "list", "acme").stdout
    assert "active" in next(line for line in listed.splitlines() if ALICE in line)


# Rejected requests and bad configuration -----------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("tenant", "show", "nowhere"),
        ("token", "create", "nowhere", ALICE),
    ],
    ids=["tenant-show", "token-create"],
)
def test_unknown_tenant_is_rejected(acme: StrongroomProcess, command: tuple[str, ...]) -> None:
    result = acme.cli(*command)

    assert result.returncode == 1
    assert len(stderr_lines(result)) == 1
    assert "'nowhere'" in result.stderr


def test_unknown_tenant_with_brackets_is_named(acme: StrongroomProcess) -> None:
    result = acme.cli("tenant", "show", "[/x]")

    assert result.returncode == 1
    assert stderr_lines(result) == [
        "error: no tenant has the slug '[/x]'; see `strongroom tenant list`"
    ]


def test_tenant_create_reserved_slug_is_rejected(acme: StrongroomProcess) -> None:
    result = acme.cli("tenant", "create", "admin")

    assert result.returncode == 1
    assert len(stderr_lines(result)) == 1
    assert "'admin' is reserved" in result.stderr


def test_tenant_create_taken_slug_is_rejected(acme: StrongroomProcess) -> None:
    result = acme.cli("tenant", "create", "acme")

    assert result.returncode == 1
    assert len(stderr_lines(result)) == 1
    assert "'acme' is taken" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("STRONGROOM_PORT", "abc"),
        ("STRONGROOM_DATABASE_URL", "mysql://x"),
        ("STRONGROOM_MASTER_KEY", base64.b64encode(b"0123456789").decode()),
    ],
)
def test_bad_configuration_exits_with_two(
    acme: StrongroomProcess, variable: str, value: str
) -> None:
    acme.env[variable] = value

    result = acme.cli("tenant", "list")

    assert result.returncode == 2
    assert variable in result.stderr


# Consistency check --------------------------------------------------------------------


@pytest.fixture
def damaged(acme: StrongroomProcess) -> tuple[StrongroomProcess, str, uuid.UUID]:
    """acme with an orphan blob file and a file whose blob file was deleted.

    Returns the process, the orphan's key and the id of the blob that is gone.
    """
    with open_runtime(acme) as runtime:
        upload(runtime, "acme", "kept.txt", b"kept")
        lost = upload(runtime, "acme", "lost.txt", b"lost")
        tenant = runtime.catalog.get_tenant("acme")
        root = runtime.settings.resolved_blob_dir
    (root / blob_key(tenant.id, lost)).unlink()
    orphan_key = blob_key(tenant.id, uuid.uuid4())
    orphan = root / orphan_key
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"left by a crash")
    # Younger files may belong to an upload still in flight, which check leaves alone.
    an_hour_ago = time.time() - 3600
    os.utime(orphan, (an_hour_ago, an_hour_ago))
    return acme, orphan_key, lost


def test_check_clean_store_exits_zero(acme: StrongroomProcess) -> None:
    with open_runtime(acme) as runtime:
        upload(runtime, "acme", "a.txt", b"fine")

    result = acme.cli("check")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no problems" in result.stdout


def test_check_lists_orphan_and_missing_blob(
    damaged: tuple[StrongroomProcess, str, uuid.UUID],
) -> None:
    process, orphan_key, lost = damaged

    result = process.cli("check")

    assert result.returncode == 1
    assert f"acme: orphan blob {orphan_key} (found)" in result.stdout
    assert f"acme: blob {lost} is missing from the store" in result.stdout


def test_check_repair_removes_orphan_blob(
    damaged: tuple[StrongroomProcess, str, uuid.UUID],
) -> None:
    process, orphan_key, _lost = damaged

    result = process.cli("check", "--repair", "--grace", "0")

    assert result.returncode == 0, result.stdout + result.stderr
    with open_runtime(process) as runtime:
        assert not runtime.blobs.exists(orphan_key)


def test_check_repair_removes_rows_without_content(
    damaged: tuple[StrongroomProcess, str, uuid.UUID],
) -> None:
    process, _orphan_key, _lost = damaged

    process.cli("check", "--repair", "--grace", "0")

    with open_runtime(process) as runtime:
        tenant = runtime.catalog.get_tenant("acme")
        owner = drive_owner(runtime, tenant)
        with runtime.stores.session(tenant) as session:
            assert files.get_node(session, owner, split_path("lost.txt")) is None
            assert files.get_node(session, owner, split_path("kept.txt")) is not None
            assert get_usage(session) == len(b"kept")


def test_check_after_repair_exits_zero(
    damaged: tuple[StrongroomProcess, str, uuid.UUID],
) -> None:
    process, _orphan_key, _lost = damaged
    process.cli("check", "--repair", "--grace", "0")

    result = process.cli("check")

    assert result.returncode == 0, result.stdout + result.stderr


# PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture
def postgres_cli(tmp_path: Path, postgres_database: str) -> Iterator[StrongroomProcess]:
    process = StrongroomProcess(
        tmp_path / "data",
        extra_env={
            **WIDE_TERMINAL,
            "STRONGROOM_DATABASE_URL": postgres_database,
            "STRONGROOM_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
        },
    )
    try:
        yield process
    finally:
        process.stop()


def test_cli_postgres_unmigrated_says_migrate(postgres_cli: StrongroomProcess) -> None:
    result = postgres_cli.cli("tenant", "list")

    assert result.returncode == 1
    assert "run `strongroom migrate`" in result.stderr


def test_cli_postgres_creates_tenant_user_token(postgres_cli: StrongroomProcess) -> None:
    assert postgres_cli.cli("migrate").returncode == 0
    postgres_cli.cli("tenant", "create", "acme", "--quota", "1000")
    postgres_cli.cli("user", "create", "acme", ALICE, "--password-stdin", stdin=PASSWORD)

    token = postgres_cli.cli("token", "create", "acme", ALICE)

    assert token.returncode == 0, token.stderr
    assert token.stdout.startswith("sr_")
    listing = postgres_cli.cli("tenant", "list", "--json").stdout
    listed = [json.loads(line) for line in listing.splitlines()]
    assert [(t["slug"], t["quota_bytes"]) for t in listed] == [("acme", 1000)]
    assert not (postgres_cli.data_dir / "master.key").exists()


def test_cli_postgres_creates_schema_tenant(postgres_cli: StrongroomProcess) -> None:
    assert postgres_cli.cli("migrate").returncode == 0

    created = postgres_cli.cli("tenant", "create", "acme", "--isolation", "schema")

    assert created.returncode == 0, created.stderr
    shown = show(postgres_cli, "acme")
    assert (shown["isolation"], shown["placement"]) == ("schema", f"tenant_{uuid.UUID(shown['id']).hex}")


# Isolation levels and servers ---------------------------------------------------------


def test_tenant_create_schema_on_sqlite_is_rejected(cli: StrongroomProcess) -> None:
    result = cli.cli("tenant", "create", "acme", "--isolation", "schema")

    assert result.returncode == 1
    assert "the schema isolation level needs PostgreSQL" in result.stderr


def test_tenant_create_schema_on_sqlite_keeps_no_tenant(cli: StrongroomProcess) -> None:
    cli.cli("tenant", "create", "acme", "--isolation", "schema")

    listing = cli.cli("tenant", "list", "--json")

    assert listing.stdout == ""


def test_tenant_create_database_shows_its_file(cli: StrongroomProcess) -> None:
    cli.cli("tenant", "create", "acme", "--isolation", "database")

    shown = show(cli, "acme")

    assert shown["isolation"] == "database"
    assert re.fullmatch(rf"tenants/{shown['id']}-[0-9a-f]{{8}}\.db", shown["placement"])
    assert (cli.data_dir / str(shown["placement"])).is_file()


def test_tenant_create_unknown_level_is_rejected(cli: StrongroomProcess) -> None:
    result = cli.cli("tenant", "create", "acme", "--isolation", "private")

    assert result.returncode == 2
    assert "private" in result.stderr


@pytest.fixture
def server_url(postgres_database: str) -> str:
    return postgres_database


def test_server_add_prints_masked_url(cli: StrongroomProcess, server_url: str) -> None:
    password = str(make_url(server_url).password)

    result = cli.cli("server", "add", "second", server_url)

    assert result.returncode == 0, result.stderr
    assert "added server second at postgresql+psycopg://postgres:***@" in result.stdout
    assert password not in result.stdout + result.stderr


def test_server_list_masks_password(cli: StrongroomProcess, server_url: str) -> None:
    password = str(make_url(server_url).password)
    cli.cli("server", "add", "second", server_url)

    result = cli.cli("server", "list")

    assert "second" in result.stdout
    assert "***" in result.stdout
    assert password not in result.stdout


def test_server_add_unreachable_hides_password(cli: StrongroomProcess) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://strongroom:hunter2-secret@127.0.0.1:{port}/strongroom"

    result = cli.cli("server", "add", "far", url)

    assert result.returncode == 1
    assert "cannot connect to server 'far'" in result.stderr
    assert "hunter2-secret" not in result.stdout + result.stderr


def test_server_remove_with_tenant_is_rejected(cli: StrongroomProcess, server_url: str) -> None:
    cli.cli("server", "add", "second", server_url)
    cli.cli("tenant", "create", "acme", "--isolation", "database", "--server", "second")

    result = cli.cli("server", "remove", "second")

    assert result.returncode == 1
    assert "server 'second' still holds tenants acme" in result.stderr


def test_server_remove_empty_server_works(cli: StrongroomProcess, server_url: str) -> None:
    cli.cli("server", "add", "second", server_url)

    result = cli.cli("server", "remove", "second")

    assert result.returncode == 0, result.stderr
    assert "second" not in cli.cli("server", "list").stdout


# Migrating every store -----------------------------------------------------------------


@pytest.fixture
def two_files(cli: StrongroomProcess) -> StrongroomProcess:
    """Two database tenants, beta and gamma, each in a SQLite file of its own."""
    for slug in ("beta", "gamma"):
        cli.cli("tenant", "create", slug, "--isolation", "database")
    return cli


def mark_behind(process: StrongroomProcess, *slugs: str) -> None:
    """Record no revision for the tenants' stores, as a release before their tables would.

    Done last: any other command on the embedded default migrates such stores as it starts.
    """
    with open_runtime(process) as runtime:
        for slug in slugs:
            runtime.catalog.finish_store_migration(runtime.catalog.get_tenant(slug).id, None)


def spoil_store(process: StrongroomProcess, slug: str) -> None:
    """Overwrite a tenant's SQLite file with bytes that are no database."""
    placement = show(process, slug)["placement"]
    (process.data_dir / str(placement)).write_bytes(b"not a database at all" * 100)


def test_migrate_reports_each_kind_of_store(two_files: StrongroomProcess) -> None:
    mark_behind(two_files, "beta", "gamma")

    result = two_files.cli("migrate", "--jobs", "2")

    assert result.returncode == 0, result.stderr
    assert "catalog: at revision" in result.stdout
    assert "tenant stores: 2 migrated to" in result.stdout


def test_migrate_twice_finds_stores_at_head(two_files: StrongroomProcess) -> None:
    mark_behind(two_files, "beta", "gamma")
    two_files.cli("migrate")

    result = two_files.cli("migrate")

    assert f"0 migrated to {tenant_head()}, 2 already there, 0 failed" in result.stdout


def test_migrate_failure_exits_naming_tenant(two_files: StrongroomProcess) -> None:
    spoil_store(two_files, "gamma")
    mark_behind(two_files, "beta", "gamma")

    result = two_files.cli("migrate")

    assert result.returncode == 1
    assert "error: tenant gamma (database tenants/" in result.stderr
    assert "file is not a database" in result.stderr


def test_migrate_failure_still_migrates_others(two_files: StrongroomProcess) -> None:
    spoil_store(two_files, "gamma")
    mark_behind(two_files, "beta", "gamma")

    result = two_files.cli("migrate")

    assert f"tenant stores: 1 migrated to {tenant_head()}, 0 already there, 1 failed" in result.stdout


def test_migrate_canary_failure_says_stopped(two_files: StrongroomProcess) -> None:
    spoil_store(two_files, "gamma")
    mark_behind(two_files, "beta", "gamma")

    result = two_files.cli("migrate", "--canary", "gamma")

    assert result.returncode == 1
    assert "a canary failed, so the other 1 tenant stores were left as they were" in result.stderr


# Damaged blobs and folder loops -------------------------------------------------------


def grow_blob(process: StrongroomProcess, slug: str, blob_id: uuid.UUID) -> None:
    """Add a byte to a stored blob, as a disk fault or a partial copy of a backup could."""
    with open_runtime(process) as runtime:
        tenant = runtime.catalog.get_tenant(slug)
        path = runtime.settings.resolved_blob_dir / blob_key(tenant.id, blob_id)
    with path.open("ab") as handle:
        handle.write(b"\0")


def test_check_lists_damaged_blob(acme: StrongroomProcess) -> None:
    with open_runtime(acme) as runtime:
        blob_id = upload(runtime, "acme", "report.txt", b"quarterly figures")
    grow_blob(acme, "acme", blob_id)

    result = acme.cli("check", "--grace", "0")

    assert result.returncode == 1
    assert f"acme: blob {blob_id} is damaged (rows refer to it)" in result.stdout


def test_check_repair_damaged_keeps_older_version(acme: StrongroomProcess) -> None:
    with open_runtime(acme) as runtime:
        upload(runtime, "acme", "report.txt", b"first draft")
        blob_id = upload(runtime, "acme", "report.txt", b"second draft")
    grow_blob(acme, "acme", blob_id)

    result = acme.cli("check", "--repair", "--grace", "0")

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"acme: blob {blob_id} is damaged (rows and blob removed)" in result.stdout
    with open_runtime(acme) as runtime:
        assert read_file(runtime, "acme", "report.txt") == b"first draft"


def test_check_verify_lists_altered_blob(acme: StrongroomProcess) -> None:
    with open_runtime(acme) as runtime:
        blob_id = upload(runtime, "acme", "report.txt", b"quarterly figures")
        tenant = runtime.catalog.get_tenant("acme")
        path = runtime.settings.resolved_blob_dir / blob_key(tenant.id, blob_id)
    altered = bytearray(path.read_bytes())
    altered[-1] ^= 0x01
    path.write_bytes(altered)

    result = acme.cli("check", "--verify", "--grace", "0")

    assert result.returncode == 1
    assert f"acme: blob {blob_id} is damaged (rows refer to it)" in result.stdout


def make_folder_loop(process: StrongroomProcess) -> tuple[uuid.UUID, uuid.UUID]:
    """Folders a/b with a moved below b, as a race between two moves once could leave them."""
    with open_runtime(process) as runtime:
        tenant = runtime.catalog.get_tenant("acme")
        owner = drive_owner(runtime, tenant)
        with runtime.stores.session(tenant, write=True) as session:
            outer = files.make_folder(session, owner, split_path("a"), owner)
            inner = files.make_folder(session, owner, split_path("a/b"), owner)
            outer.parent_id = inner.id
    return outer.id, inner.id


def test_check_lists_folder_loop_with_ids(acme: StrongroomProcess) -> None:
    outer, inner = make_folder_loop(acme)

    result = acme.cli("check")

    assert result.returncode == 1
    [line] = [line for line in result.stdout.splitlines() if line.startswith("acme: folder loop")]
    assert str(outer) in line
    assert str(inner) in line
    assert "manual repair" in line


def test_check_repair_folder_loop_still_fails(acme: StrongroomProcess) -> None:
    make_folder_loop(acme)

    result = acme.cli("check", "--repair")

    assert result.returncode == 1
    assert "folder loops need manual repair" in result.stdout


# Data directory permissions -----------------------------------------------------------


def test_data_dir_created_for_owner_only(cli: StrongroomProcess) -> None:
    result = cli.cli("tenant", "list")

    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(cli.data_dir.stat().st_mode) == 0o700


def test_database_files_created_for_owner_only(cli: StrongroomProcess) -> None:
    names = ["strongroom.db", "strongroom.db-wal", "strongroom.db-shm"]

    # The open runtime keeps a connection, so the -wal and -shm files exist meanwhile.
    with open_runtime(cli):
        modes = {name: stat.S_IMODE((cli.data_dir / name).stat().st_mode) for name in names}

    assert modes == dict.fromkeys(names, 0o600)


def test_open_data_dir_warns_with_fix(cli: StrongroomProcess) -> None:
    cli.data_dir.mkdir(mode=0o755)
    cli.data_dir.chmod(0o755)

    result = cli.cli("tenant", "list")

    assert result.returncode == 0, result.stderr
    [warning] = [line for line in stderr_lines(result) if "data_dir_open_to_others" in line]
    assert str(cli.data_dir) in warning
    assert f"chmod 700 {cli.data_dir}" in warning


def test_open_data_dir_keeps_its_mode(cli: StrongroomProcess) -> None:
    cli.data_dir.mkdir(mode=0o750)
    cli.data_dir.chmod(0o750)

    cli.cli("tenant", "list")

    assert stat.S_IMODE(cli.data_dir.stat().st_mode) == 0o750


def test_serve_on_busy_port_makes_no_demo(tmp_path: Path) -> None:
    server = StrongroomProcess(tmp_path / "data")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()

        result = server.cli("serve", "--port", str(taken.getsockname()[1]))

    assert result.returncode == 1
    assert "export TOKEN" not in result.stderr
    assert "STRONGROOM_PORT" in result.stderr
    listed = server.cli("tenant", "list", "--json")
    assert listed.stdout.strip() == ""


def test_tenant_move_changes_placement(acme: StrongroomProcess) -> None:
    with open_runtime(acme) as runtime:
        upload(runtime, "acme", "kept.txt", b"moved along")

    moved = acme.cli("tenant", "move", "acme", "--isolation", "database")

    assert moved.returncode == 0, moved.stderr
    assert "each count and checksum verified" in moved.stdout
    described = show(acme, "acme")
    assert (described["isolation"], described["status"]) == ("database", "active")
    with open_runtime(acme) as runtime:
        assert read_file(runtime, "acme", "kept.txt") == b"moved along"


def test_tenant_move_to_schema_on_sqlite_is_rejected(acme: StrongroomProcess) -> None:
    result = acme.cli("tenant", "move", "acme", "--isolation", "schema")

    assert result.returncode != 0
    assert "needs PostgreSQL" in result.stderr
    assert show(acme, "acme")["isolation"] == "shared"
