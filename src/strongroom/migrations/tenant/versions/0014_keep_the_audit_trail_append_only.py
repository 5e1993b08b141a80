"""Keep the audit trail append-only for the application, and note when WebDAV sign-ins were recorded.

On PostgreSQL the tenant role loses UPDATE and DELETE on `audit_events`, so
application transactions can only read and add events. Deleting events
(retention, tenant deletion, a move dropping the old copy) switches to the
`strongroom_audit_purge` role, which may only read and delete them, under
the same row-level security. Both roles are cluster-wide; the grants are per
schema and database, so this runs in every tenant store.

`app_passwords.sign_in_recorded_at` is when the last successful WebDAV
sign-in with the app password was written to the trail, so that it is written
at most once per period instead of once per request.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

from strongroom.migrations.row_security import create_audit_purge_role, is_postgresql
from strongroom.tenancy.isolation import AUDIT_PURGE_ROLE, TENANT_ROLE

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "app_passwords",
        sa.Column("sign_in_recorded_at", sa.DateTime(timezone=True), nullable=True),
    )
    if is_postgresql():
        create_audit_purge_role()
        op.execute(f"REVOKE UPDATE, DELETE ON audit_events FROM {TENANT_ROLE}")
        op.execute(f"GRANT SELECT, DELETE ON audit_events TO {AUDIT_PURGE_ROLE}")


def downgrade() -> None:
    if is_postgresql():
        op.execute(f"REVOKE SELECT, DELETE ON audit_events FROM {AUDIT_PURGE_ROLE}")
        op.execute(f"GRANT UPDATE, DELETE ON audit_events TO {TENANT_ROLE}")
    op.drop_column("app_passwords", "sign_in_recorded_at")
