"""Give each user a drive: every node gets the owner of its drive.

Until this revision a tenant had one folder tree that all its users shared.
Its nodes become the drive of the tenant's oldest admin, or of its oldest
user when it has no admin, so an upgraded tenant loses no file. A tenant
without users can only have an empty root folder, which is deleted; other
users' drives are created when they are first used.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from strongroom.migrations.row_security import rows_visible_to_owner

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The columns these steps read, typed so that tenant ids come back as UUIDs on every database.
NODES = sa.table(
    "nodes",
    sa.column("tenant_id", sa.Uuid()),
    sa.column("parent_id", sa.Uuid()),
    sa.column("owner_id", sa.Uuid()),
)

# Admins first, then the oldest account; the id breaks ties between accounts made
# in the same instant.
FIRST_OWNER = """
    SELECT users.id FROM users
    WHERE users.tenant_id = nodes.tenant_id
    ORDER BY CASE WHEN users.role = 'admin' THEN 0 ELSE 1 END, users.created_at, users.id
    LIMIT 1
"""


def upgrade() -> None:
    with rows_visible_to_owner("nodes", "users"):
        with op.batch_alter_table("nodes") as batch_op:
            batch_op.add_column(sa.Column("owner_id", sa.Uuid(), nullable=True))
        op.execute(f"UPDATE nodes SET owner_id = ({FIRST_OWNER})")
        _delete_empty_roots_without_owner()
        _check_every_node_has_owner()

        # The partial indexes are dropped and made again around the table change, because
        # on SQLite the batch operation rebuilds the table and would lose their WHERE clauses.
        _drop_indexes()
        with op.batch_alter_table("nodes", recreate="auto") as batch_op:
            batch_op.alter_column("owner_id", existing_type=sa.Uuid(), nullable=False)
            batch_op.create_foreign_key(
                op.f("fk_nodes_tenant_id_owner_id_users"),
                "users",
                ["tenant_id", "owner_id"],
                ["tenant_id", "id"],
            )
        _create_indexes(owner=True)


def downgrade() -> None:
    with rows_visible_to_owner("nodes"):
        _check_one_drive_per_tenant()
        _drop_indexes()
        with op.batch_alter_table("nodes", recreate="auto") as batch_op:
            batch_op.drop_constraint(op.f("fk_nodes_tenant_id_owner_id_users"), type_="foreignkey")
            batch_op.drop_column("owner_id")
        _create_indexes(owner=False)


def _delete_empty_roots_without_owner() -> None:
    op.execute(
        """
        DELETE FROM nodes
        WHERE owner_id IS NULL AND parent_id IS NULL
          AND NOT EXISTS (
            SELECT 1 FROM nodes AS children
            WHERE children.tenant_id = nodes.tenant_id AND children.parent_id = nodes.id
          )
        """
    )


def _check_every_node_has_owner() -> None:
    tenants = op.get_bind().scalars(
        sa.select(NODES.c.tenant_id).where(NODES.c.owner_id.is_(None)).distinct()
    ).all()
    if tenants:
        raise RuntimeError(
            f"tenants {', '.join(map(str, tenants))} have files but no user to own them; create "
            "a user in each with `strongroom user create SLUG EMAIL --role admin`, then run "
            "`strongroom migrate` again"
        )


def _check_one_drive_per_tenant() -> None:
    tenants = op.get_bind().scalars(
        sa.select(NODES.c.tenant_id)
        .where(NODES.c.parent_id.is_(None))
        .group_by(NODES.c.tenant_id)
        .having(sa.func.count() > 1)
    ).all()
    if tenants:
        raise RuntimeError(
            f"tenants {', '.join(map(str, tenants))} have more than one drive, and the revision "
            "before 0003 allows one folder tree per tenant; move every file into one drive "
            "before downgrading"
        )


def _drop_indexes() -> None:
    for name in ("uq_nodes_live_name", "uq_nodes_root", "ix_nodes_trash"):
        op.drop_index(name, table_name="nodes")


def _create_indexes(owner: bool) -> None:
    drive = ["tenant_id", "owner_id"] if owner else ["tenant_id"]
    op.create_index(
        "uq_nodes_live_name",
        "nodes",
        ["tenant_id", "parent_id", "name"],
        unique=True,
        sqlite_where=sa.text("deleted_at IS NULL"),
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "uq_nodes_root",
        "nodes",
        drive,
        unique=True,
        sqlite_where=sa.text("parent_id IS NULL"),
        postgresql_where=sa.text("parent_id IS NULL"),
    )
    op.create_index(
        "ix_nodes_trash",
        "nodes",
        [*drive, "deleted_at"],
        sqlite_where=sa.text("deleted_at IS NOT NULL"),
        postgresql_where=sa.text("deleted_at IS NOT NULL"),
    )
