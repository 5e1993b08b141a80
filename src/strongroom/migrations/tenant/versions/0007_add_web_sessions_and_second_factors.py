"""Add the tables of the web UI's logins: sessions, second factors, recovery codes, login records.

Revision ID: 0007
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from strongroom.migrations.row_security import enable_row_security, is_postgresql

revision = "0007"
down_revision = "0003"
branch_labels = None
depends_on = None

NEW_TABLES = ("web_sessions", "second_factors", "recovery_codes", "login_records")


def _user_key(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", "user_id"],
        ["users.tenant_id", "users.id"],
        name=op.f(f"fk_{table}_tenant_id_user_id_users"),
    )


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("awaiting_second_factor", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        _user_key("web_sessions"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_web_sessions")),
        sa.UniqueConstraint(
            "tenant_id", "token_hash", name=op.f("uq_web_sessions_tenant_id_token_hash")
        ),
    )
    op.create_index("ix_web_sessions_user", "web_sessions", ["tenant_id", "user_id"])
    op.create_table(
        "second_factors",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("wrapped_secret", sa.LargeBinary(), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_step", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _user_key("second_factors"),
        sa.PrimaryKeyConstraint("tenant_id", "user_id", name=op.f("pk_second_factors")),
    )
    op.create_table(
        "recovery_codes",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _user_key("recovery_codes"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_recovery_codes")),
        sa.UniqueConstraint(
            "tenant_id",
            "user_id",
            "code_hash",
            name=op.f("uq_recovery_codes_tenant_id_user_id_code_hash"),
        ),
    )
    op.create_table(
        "login_records",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failures_since_login", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=True),
        _user_key("login_records"),
        sa.PrimaryKeyConstraint("tenant_id", "user_id", name=op.f("pk_login_records")),
    )
    if is_postgresql():
        for table in NEW_TABLES:
            enable_row_security(table)


def downgrade() -> None:
    op.drop_table("login_records")
    op.drop_table("recovery_codes")
    op.drop_table("second_factors")
    op.drop_index("ix_web_sessions_user", table_name="web_sessions")
    op.drop_table("web_sessions")
