"""Add groups, their members, and shares of files and folders with users and groups.

Revision ID: 0008
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from strongroom.migrations.row_security import enable_row_security, is_postgresql

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None

NEW_TABLES = ("groups", "group_members", "shares")


def upgrade() -> None:
    op.create_table(
        "groups",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_groups")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_groups_tenant_id_name")),
    )
    op.create_table(
        "group_members",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "group_id"],
            ["groups.tenant_id", "groups.id"],
            name=op.f("fk_group_members_tenant_id_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "user_id"],
            ["users.tenant_id", "users.id"],
            name=op.f("fk_group_members_tenant_id_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "group_id", "user_id", name=op.f("pk_group_members")),
    )
    op.create_index("ix_group_members_user", "group_members", ["tenant_id", "user_id"])
    op.create_table(
        "shares",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("node_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("group_id", sa.Uuid(), nullable=True),
        sa.Column("permission", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(user_id IS NULL) <> (group_id IS NULL)", name=op.f("ck_shares_one_recipient")
        ),
        sa.CheckConstraint("permission IN ('read', 'write')", name=op.f("ck_shares_permission")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "node_id"],
            ["nodes.tenant_id", "nodes.id"],
            name=op.f("fk_shares_tenant_id_node_id_nodes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "owner_id"],
            ["users.tenant_id", "users.id"],
            name=op.f("fk_shares_tenant_id_owner_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "user_id"],
            ["users.tenant_id", "users.id"],
            name=op.f("fk_shares_tenant_id_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "group_id"],
            ["groups.tenant_id", "groups.id"],
            name=op.f("fk_shares_tenant_id_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_shares")),
        sa.UniqueConstraint(
            "tenant_id", "node_id", "user_id", name=op.f("uq_shares_tenant_id_node_id_user_id")
        ),
        sa.UniqueConstraint(
            "tenant_id", "node_id", "group_id", name=op.f("uq_shares_tenant_id_node_id_group_id")
        ),
    )
    op.create_index("ix_shares_owner", "shares", ["tenant_id", "owner_id"])
    op.create_index("ix_shares_user", "shares", ["tenant_id", "user_id"])
    op.create_index("ix_shares_group", "shares", ["tenant_id", "group_id"])

    if is_postgresql():
        for table in NEW_TABLES:
            enable_row_security(table)


def downgrade() -> None:
    for table in reversed(NEW_TABLES):
        op.drop_table(table)
