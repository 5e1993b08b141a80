"""Add guest accounts: an expiry and an inviter on users, and guest invitations.

Revision ID: 0012
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

from strongroom.migrations.row_security import enable_row_security, is_postgresql

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("users", sa.Column("invited_by", sa.Uuid(), nullable=True))

    op.create_table(
        "guest_invitations",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("invited_by", sa.Uuid(), nullable=False),
        sa.Column("note", sa.String(length=1000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id", "user_id"],
            ["users.tenant_id", "users.id"],
            name=op.f("fk_guest_invitations_tenant_id_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_guest_invitations")),
        sa.UniqueConstraint(
            "tenant_id", "token_hash", name=op.f("uq_guest_invitations_tenant_id_token_hash")
        ),
    )
    op.create_index("ix_guest_invitations_user", "guest_invitations", ["tenant_id", "user_id"])

    if is_postgresql():
        enable_row_security("guest_invitations")


def downgrade() -> None:
    op.drop_index("ix_guest_invitations_user", table_name="guest_invitations")
    op.drop_table("guest_invitations")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("invited_by")
        batch.drop_column("expires_at")
