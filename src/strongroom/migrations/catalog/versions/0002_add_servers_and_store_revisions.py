"""Add database servers, where schema and database tenants can be placed, and the revision
of each such tenant's own store.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "database_servers",
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_database_servers")),
    )
    with op.batch_alter_table("tenants") as batch_op:
        batch_op.add_column(sa.Column("store_revision", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch_op:
        batch_op.drop_column("store_revision")
    op.drop_table("database_servers")
