"""Looking at the database the way an attacker with a raw connection would.

The tenant tables come from two places: the models' metadata, and the live
catalog of PostgreSQL, where they are the tables of the schema with a
`tenant_id` column, catalog tables aside. So a table added by a migration
without a model, or by hand, is attacked too.
"""

from __future__ import annotations

import uuid
from typing import Any

from psycopg.types.json import Json
from sqlalchemy import text
from sqlalchemy.engine import Connection

from strongroom.drive import links, resumable, shares, transfers, upload_requests
from strongroom.drive.files import Preconditions
from strongroom.drive.models import READ
from strongroom.drive.paths import split_path
from strongroom.exports import building, requests
from strongroom.identity import groups, guests
from strongroom.identity.tokens import Principal
from strongroom.identity.users import access_user
from strongroom.runtime import Runtime
from strongroom.storage.db import CatalogBase, TenantBase
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.events import Target, record_event, user_actor
from strongroom.tenancy.isolation import TENANT_ROLE, TENANT_SETTING
from strongroom.webhooks import subscriptions
from strongroom.webhooks.events import emit
from strongroom.webhooks.models import EVENT_TYPES, FILE_CREATED
from tests.conftest import drive_owner

# Raised by PostgreSQL when a row-security policy rejects a row.
INSUFFICIENT_PRIVILEGE = "42501"
# Raised when the tenant setting is text that is not a UUID.
INVALID_TEXT_REPRESENTATION = "22P02"


def store_file(runtime: Runtime, tenant: TenantInfo, path: str, data: bytes) -> None:
    """Upload a file through the drive's own upload steps, into the drive of the tests' owner."""
    names = split_path(path)
    owner = drive_owner(runtime, tenant)
    upload = transfers.begin_upload(runtime, tenant, owner, names, Preconditions(), len(data))
    upload.feed(data)
    transfers.commit_upload(runtime, tenant, owner, names, upload, owner, Preconditions())


def start_upload(runtime: Runtime, tenant: TenantInfo, user_id: uuid.UUID) -> None:
    """Create an unfinished resumable upload, so that the uploads table has a row of the tenant."""
    principal = Principal(user_id=user_id, role="member", token_id=None)
    resumable.create_upload(runtime, tenant, principal, f"inbox/{tenant.slug}.bin", 11, "")


def share_with_group(runtime: Runtime, tenant: TenantInfo, member: uuid.UUID) -> None:
    """Share the tests' owner's "docs" folder with a new group that has `member` in it."""
    owner = drive_owner(runtime, tenant)
    with runtime.stores.session(tenant, write=True) as session:
        group = groups.create_group(session, f"team of {tenant.slug}", owner)
        groups.add_member(session, group.id, member)
        recipient = shares.Recipient(group_id=group.id)
        shares.create_share(session, owner, split_path("docs"), recipient, READ)


def share_by_link(runtime: Runtime, tenant: TenantInfo, path: str) -> None:
    """Make a public link to the tests' owner's file at `path`, and an upload request into its folder."""
    names = split_path(path)
    owner = drive_owner(runtime, tenant)
    with runtime.stores.session(tenant, write=True) as session:
        links.create_link(session, owner, names, None, None, None)
        upload_requests.create_upload_request(session, owner, names[:-1])


def subscribe_webhook(runtime: Runtime, tenant: TenantInfo) -> None:
    """Subscribe a webhook for the tests' owner and record one event, so both webhook tables have rows."""
    owner = drive_owner(runtime, tenant)
    url = f"https://hooks.{tenant.slug}.example.test/in"
    with runtime.stores.session(tenant, write=True) as session:
        subscriptions.create_webhook(session, runtime.keyring, runtime.settings, owner, url, EVENT_TYPES)
    deliveries = emit(runtime, tenant, FILE_CREATED, {"file": {"id": str(uuid.uuid4())}})
    assert len(deliveries) == 1, "the webhook event made no delivery"


def record_audit_event(runtime: Runtime, tenant: TenantInfo, user_id: uuid.UUID) -> None:
    """Write an audit event of the tenant, so that the audit trail has a row of it."""
    record_event(
        runtime.stores,
        tenant,
        "settings_changed",
        user_actor(user_id, "127.0.0.1"),
        target=Target("tenant", tenant.id),
        old={"time_zone": "UTC"},
        new={"time_zone": "Europe/Paris"},
    )


def invite_guest(runtime: Runtime, tenant: TenantInfo, inviter_id: uuid.UUID) -> None:
    """Invite a guest of the tenant, so that the invitations table has a row of it."""
    with runtime.stores.session(tenant, write=True) as session:
        inviter = access_user(session, inviter_id)
        guests.invite_guest(
            session, tenant, inviter, f"guest@{tenant.slug}.example.test", user_actor(inviter_id)
        )


def build_export(runtime: Runtime, tenant: TenantInfo, admin_id: uuid.UUID) -> None:
    """Request an audit export and build it at once, so the exports table has a row of the tenant."""
    with runtime.stores.session(tenant, write=True) as session:
        export = requests.request_export(
            session,
            tenant,
            user_actor(admin_id),
            admin_id,
            "audit",
            {},
            None,
            runtime.settings.export_max_held_bytes,
        )
    building.build_export(runtime, tenant, str(export.id))


def tenant_tables(connection: Connection) -> list[str]:
    """Every tenant table: in the metadata, or in the live schema with a `tenant_id` column."""
    live = connection.scalars(
        text(
            """
            SELECT c.relname FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_attribute a ON a.attrelid = c.oid
            WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
              AND a.attname = 'tenant_id' AND NOT a.attisdropped
            """
        )
    )
    found = {*TenantBase.metadata.tables, *live} - set(CatalogBase.metadata.tables)
    return sorted(found)


def enter_role(connection: Connection, setting: str | None) -> None:
    """Switch the open transaction to the tenant role, with the tenant setting if one is given."""
    connection.execute(text("SELECT set_config('role', :role, true)"), {"role": TENANT_ROLE})
    if setting is not None:
        connection.execute(
            text("SELECT set_config(:name, :value, true)"),
            {"name": TENANT_SETTING, "value": setting},
        )


def sample_row(connection: Connection, table: str, tenant_id: uuid.UUID) -> dict[str, Any]:
    """Read one row of the tenant as the login role, with a fresh `id` where the table has one.

    JSON values come back as dicts and lists, which psycopg sends again only wrapped in Json.
    """
    row = (
        connection.execute(
            text(f"SELECT * FROM {table} WHERE tenant_id = :tenant LIMIT 1"), {"tenant": tenant_id}
        )
        .mappings()
        .one()
    )
    # psycopg reads JSON columns as Python values but writes dicts and lists only when wrapped.
    copy = {
        name: Json(value) if isinstance(value, dict | list) else value
        for name, value in row.items()
    }
    if "id" in copy:
        copy["id"] = uuid.uuid4()
    return copy


def insert_statement(table: str, row: dict[str, Any]) -> Any:
    columns = ", ".join(row)
    values = ", ".join(f":{name}" for name in row)
    return text(f"INSERT INTO {table} ({columns}) VALUES ({values})")
