"""Row-level security for tenant tables on PostgreSQL, shared by the tenant migrations.

Each tenant table gets a forced policy that lets a row through only when its
`tenant_id` equals the transaction's `strongroom.tenant_id` setting. An unset
setting reads as NULL, so a query that forgot its tenant sees no rows and
writes none. Application transactions switch to the `strongroom_tenant` role,
which owns nothing and has no BYPASSRLS, so the policy applies even when the
login role owns the tables or is a superuser.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from alembic import op

from strongroom.tenancy.isolation import AUDIT_PURGE_ROLE, TENANT_ROLE, TENANT_SETTING

CURRENT_TENANT = f"NULLIF(current_setting('{TENANT_SETTING}', true), '')::uuid"


def create_tenant_role() -> None:
    _create_switchable_role(TENANT_ROLE)


def create_audit_purge_role() -> None:
    """Create the role that may delete audit events, which the tenant role may not."""
    _create_switchable_role(AUDIT_PURGE_ROLE)


def _create_switchable_role(role: str) -> None:
    """Create a role that owns nothing and cannot bypass row security, unless it exists."""
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
                CREATE ROLE {role} NOLOGIN NOBYPASSRLS NOINHERIT;
            END IF;
        END
        $$
        """
    )
    # The login role must be a member to switch to the role per transaction.
    op.execute(f"GRANT {role} TO CURRENT_USER")
    op.execute(f"GRANT USAGE ON SCHEMA {current_schema()} TO {role}")


def enable_row_security(table: str) -> None:
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} "
        f"USING (tenant_id = {CURRENT_TENANT}) WITH CHECK (tenant_id = {CURRENT_TENANT})"
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {TENANT_ROLE}")


@contextmanager
def rows_visible_to_owner(*tables: str) -> Iterator[None]:
    """Let a migration read and change every tenant's rows of `tables`, for the block only.

    Forced row-level security hides every row from the tables' owner too, so
    a data migration run by an owner without superuser rights would see no
    rows. Outside PostgreSQL this does nothing. ALTER TABLE is transactional
    there, so a migration that fails midway leaves the policy forced.
    """
    if not is_postgresql():
        yield
        return
    for table in tables:
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    yield
    for table in tables:
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")


def current_schema() -> str:
    return op.get_bind().exec_driver_sql("SELECT current_schema()").scalar_one()


def is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"
