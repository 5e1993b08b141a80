"""Create the tenant tables: users, API tokens, the folder tree, versions, blobs and usage.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from strongroom.migrations.row_security import (
    create_tenant_role,
    enable_row_security,
    is_postgresql,
)


revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TENANT_TABLES = ("users", "api_tokens", "nodes", "blobs", "versions", "storage_usage")


def upgrade() -> None:
    op.create_table('blobs',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('stored_size', sa.BigInteger(), nullable=False),
    sa.Column('chunk_size', sa.Integer(), nullable=False),
    sa.Column('key_version', sa.Integer(), nullable=False),
    sa.Column('wrapped_key', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_blobs'))
    )
    op.create_table('nodes',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('parent_id', sa.Uuid(), nullable=True),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('current_version_id', sa.Uuid(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('modified_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deleted_by', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id', 'parent_id'], ['nodes.tenant_id', 'nodes.id'], name=op.f('fk_nodes_tenant_id_parent_id_nodes')),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_nodes'))
    )
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.create_index('ix_nodes_trash', ['tenant_id', 'deleted_at'], unique=False, sqlite_where=sa.text('deleted_at IS NOT NULL'), postgresql_where=sa.text('deleted_at IS NOT NULL'))
        batch_op.create_index('uq_nodes_live_name', ['tenant_id', 'parent_id', 'name'], unique=True, sqlite_where=sa.text('deleted_at IS NULL'), postgresql_where=sa.text('deleted_at IS NULL'))
        batch_op.create_index('uq_nodes_root', ['tenant_id'], unique=True, sqlite_where=sa.text('parent_id IS NULL'), postgresql_where=sa.text('parent_id IS NULL'))

    op.create_table('storage_usage',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('bytes_used', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', name=op.f('pk_storage_usage'))
    )
    op.create_table('users',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_users')),
    sa.UniqueConstraint('tenant_id', 'email', name=op.f('uq_users_tenant_id_email'))
    )
    op.create_table('api_tokens',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id', 'user_id'], ['users.tenant_id', 'users.id'], name=op.f('fk_api_tokens_tenant_id_user_id_users')),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('tenant_id', 'token_hash', name=op.f('uq_api_tokens_tenant_id_token_hash'))
    )
    op.create_table('versions',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('node_id', sa.Uuid(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('blob_id', sa.Uuid(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id', 'blob_id'], ['blobs.tenant_id', 'blobs.id'], name=op.f('fk_versions_tenant_id_blob_id_blobs')),
    sa.ForeignKeyConstraint(['tenant_id', 'node_id'], ['nodes.tenant_id', 'nodes.id'], name=op.f('fk_versions_tenant_id_node_id_nodes')),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_versions')),
    sa.UniqueConstraint('tenant_id', 'node_id', 'number', name=op.f('uq_versions_tenant_id_node_id_number'))
    )
    with op.batch_alter_table('versions', schema=None) as batch_op:
        batch_op.create_index('ix_versions_blob', ['tenant_id', 'blob_id'], unique=False)

    if is_postgresql():
        create_tenant_role()
        for table in TENANT_TABLES:
            enable_row_security(table)


def downgrade() -> None:
    with op.batch_alter_table('versions', schema=None) as batch_op:
        batch_op.drop_index('ix_versions_blob')

    op.drop_table('versions')
    op.drop_table('api_tokens')
    op.drop_table('users')
    op.drop_table('storage_usage')
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.drop_index('uq_nodes_root', sqlite_where=sa.text('parent_id IS NULL'), postgresql_where=sa.text('parent_id IS NULL'))
        batch_op.drop_index('uq_nodes_live_name', sqlite_where=sa.text('deleted_at IS NULL'), postgresql_where=sa.text('deleted_at IS NULL'))
        batch_op.drop_index('ix_nodes_trash', sqlite_where=sa.text('deleted_at IS NOT NULL'), postgresql_where=sa.text('deleted_at IS NOT NULL'))

    op.drop_table('nodes')
    op.drop_table('blobs')
