"""Add the write fence of each tenant store, open for every tenant that has a store.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from strongroom.migrations.row_security import enable_row_security, is_postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "store_state",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("accepts_writes", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_store_state")),
    )
    # Every tenant with a store has its usage counter there, so it gets an open fence.
    op.execute(
        "INSERT INTO store_state (tenant_id, accepts_writes, changed_at) "
        "SELECT tenant_id, TRUE, CURRENT_TIMESTAMP FROM storage_usage"
    )
    if is_postgresql():
        enable_row_security("store_state")


def downgrade() -> None:
    op.drop_table("store_state")
