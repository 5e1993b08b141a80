"""Add plans, per-tenant limit overrides and module choices; move the quota into the overrides.

A tenant's storage quota becomes the `storage_bytes` override of its plan.
Every existing tenant is on the `default` plan, which this revision creates
without limits and with every module, so no tenant's limits change.

Revision ID: 0003
Revises: 0002
"""

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

MODULES = ["public_links", "upload_requests", "versioning", "webdav", "guests", "webhooks"]

tenants = sa.table(
    "tenants",
    sa.column("id", sa.Uuid()),
    sa.column("quota_bytes", sa.BigInteger()),
    sa.column("limit_overrides", sa.JSON()),
)


def upgrade() -> None:
    plans = op.create_table(
        "plans",
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("storage_bytes", sa.BigInteger(), nullable=True),
        sa.Column("max_users", sa.Integer(), nullable=True),
        sa.Column("max_file_size", sa.BigInteger(), nullable=True),
        sa.Column("requests_per_minute", sa.Integer(), nullable=True),
        sa.Column("user_requests_per_minute", sa.Integer(), nullable=True),
        sa.Column("bandwidth_bytes_per_second", sa.BigInteger(), nullable=True),
        sa.Column("concurrent_transfers", sa.Integer(), nullable=True),
        sa.Column("modules", sa.JSON(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_plans")),
    )
    now = dt.datetime.now(dt.UTC)
    op.bulk_insert(
        plans,
        [
            {
                "name": "default",
                "description": "No limits, every module",
                "modules": MODULES,
                "settings": {},
                "created_at": now,
                "updated_at": now,
            }
        ],
    )

    with op.batch_alter_table("tenants") as batch_op:
        batch_op.add_column(
            sa.Column("limit_overrides", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
        batch_op.add_column(
            sa.Column("modules", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )

    connection = op.get_bind()
    quotas = connection.execute(
        sa.select(tenants.c.id, tenants.c.quota_bytes).where(tenants.c.quota_bytes.is_not(None))
    ).all()
    for tenant_id, quota_bytes in quotas:
        connection.execute(
            tenants.update()
            .where(tenants.c.id == tenant_id)
            .values(limit_overrides={"storage_bytes": quota_bytes})
        )

    with op.batch_alter_table("tenants") as batch_op:
        batch_op.alter_column("limit_overrides", server_default=None)
        batch_op.alter_column("modules", server_default=None)
        batch_op.drop_column("quota_bytes")


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch_op:
        batch_op.add_column(sa.Column("quota_bytes", sa.BigInteger(), nullable=True))

    # Only the storage override survives: the older schema has no place for the others.
    connection = op.get_bind()
    overrides = connection.execute(sa.select(tenants.c.id, tenants.c.limit_overrides)).all()
    for tenant_id, limit_overrides in overrides:
        quota_bytes = (limit_overrides or {}).get("storage_bytes")
        if quota_bytes is not None:
            connection.execute(
                tenants.update().where(tenants.c.id == tenant_id).values(quota_bytes=quota_bytes)
            )

    with op.batch_alter_table("tenants") as batch_op:
        batch_op.drop_column("modules")
        batch_op.drop_column("limit_overrides")
    op.drop_table("plans")
