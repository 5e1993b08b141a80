"""Add hourly usage per tenant, the bookkeeping of its writers, and operator API tokens.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_hours",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("bytes_in", sa.BigInteger(), nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), nullable=False),
        sa.Column("storage_bytes", sa.BigInteger(), nullable=True),
        sa.Column("storage_byte_hours", sa.BigInteger(), nullable=False),
        sa.Column("active_users", sa.Integer(), nullable=False),
        sa.Column("rolled_up_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "hour", name=op.f("pk_usage_hours")),
    )
    op.create_index("ix_usage_hours_hour", "usage_hours", ["hour"])
    op.create_table(
        "usage_active_users",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id", "hour", "user_id", name=op.f("pk_usage_active_users")
        ),
    )
    op.create_index("ix_usage_active_users_hour", "usage_active_users", ["hour"])
    op.create_table(
        "meter_flushes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("flushed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meter_flushes")),
    )
    op.create_table(
        "usage_rollups",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("hour", name=op.f("pk_usage_rollups")),
    )
    op.create_table(
        "operator_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_operator_tokens_token_hash")),
    )


def downgrade() -> None:
    op.drop_table("operator_tokens")
    op.drop_table("usage_rollups")
    op.drop_table("meter_flushes")
    op.drop_index("ix_usage_active_users_hour", table_name="usage_active_users")
    op.drop_table("usage_active_users")
    op.drop_index("ix_usage_hours_hour", table_name="usage_hours")
    op.drop_table("usage_hours")
