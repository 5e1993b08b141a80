"""Add app passwords for WebDAV clients, and the dead properties that WebDAV clients store.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from strongroom.migrations.row_security import enable_row_security, is_postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "app_passwords",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id", "user_id"],
            ["users.tenant_id", "users.id"],
            name=op.f("fk_app_passwords_tenant_id_user_id_users"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_app_passwords")),
        sa.UniqueConstraint(
            "tenant_id", "password_hash", name=op.f("uq_app_passwords_tenant_id_password_hash")
        ),
    )
    op.create_table(
        "dav_properties",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("node_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=1024), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "node_id"],
            ["nodes.tenant_id", "nodes.id"],
            name=op.f("fk_dav_properties_tenant_id_node_id_nodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "node_id", "name", name=op.f("pk_dav_properties")),
    )
    if is_postgresql():
        enable_row_security("app_passwords")
        enable_row_security("dav_properties")


def downgrade() -> None:
    op.drop_table("dav_properties")
    op.drop_table("app_passwords")
