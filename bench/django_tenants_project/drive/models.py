"""Strongroom's tenant tables as Django models, with the same table and column names and types.

Every table has `tenant_id` leading its primary key, as in Strongroom. Django
5.2 cannot point a ForeignKey at a composite primary key, so the reference
columns are plain UUID fields here, and the initial migration adds the
composite foreign keys in SQL. Strongroom's row-level security policies have
no counterpart: django-tenants relies on the search path alone.
"""

from django.db import models
from django.db.models import Q


class User(models.Model):
    pk = models.CompositePrimaryKey("tenant_id", "id")
    tenant_id = models.UUIDField()
    id = models.UUIDField()
    email = models.CharField(max_length=320)
    display_name = models.CharField(max_length=200)
    role = models.CharField(max_length=20)
    password_hash = models.CharField(max_length=200, null=True)
    status = models.CharField(max_length=20)
    created_at = models.DateTimeField()

    class Meta:
        db_table = "users"
        constraints = [
            models.UniqueConstraint(fields=["tenant_id", "email"], name="uq_users_tenant_id_email")
        ]


class ApiToken(models.Model):
    pk = models.CompositePrimaryKey("tenant_id", "id")
    tenant_id = models.UUIDField()
    id = models.UUIDField()
    user_id = models.UUIDField()
    name = models.CharField(max_length=200)
    token_hash = models.CharField(max_length=64)
    prefix = models.CharField(max_length=16)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True)
    last_used_at = models.DateTimeField(null=True)
    revoked_at = models.DateTimeField(null=True)

    class Meta:
        db_table = "api_tokens"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant_id", "token_hash"], name="uq_api_tokens_tenant_id_token_hash"
            )
        ]


class Node(models.Model):
    pk = models.CompositePrimaryKey("tenant_id", "id")
    tenant_id = models.UUIDField()
    id = models.UUIDField()
    parent_id = models.UUIDField(null=True)
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=10)
    current_version_id = models.UUIDField(null=True)
    version = models.IntegerField()
    size = models.BigIntegerField()
    created_at = models.DateTimeField()
    modified_at = models.DateTimeField()
    created_by = models.UUIDField(null=True)
    deleted_at = models.DateTimeField(null=True)
    deleted_by = models.UUIDField(null=True)

    class Meta:
        db_table = "nodes"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant_id", "parent_id", "name"],
                condition=Q(deleted_at__isnull=True),
                name="uq_nodes_live_name",
            ),
            models.UniqueConstraint(
                fields=["tenant_id"], condition=Q(parent_id__isnull=True), name="uq_nodes_root"
            ),
        ]
        indexes = [
            models.Index(
                fields=["tenant_id", "deleted_at"],
                condition=Q(deleted_at__isnull=False),
                name="ix_nodes_trash",
            )
        ]


class Blob(models.Model):
    pk = models.CompositePrimaryKey("tenant_id", "id")
    tenant_id = models.UUIDField()
    id = models.UUIDField()
    size = models.BigIntegerField()
    stored_size = models.BigIntegerField()
    chunk_size = models.IntegerField()
    key_version = models.IntegerField()
    wrapped_key = models.BinaryField()
    created_at = models.DateTimeField()

    class Meta:
        db_table = "blobs"


class Version(models.Model):
    pk = models.CompositePrimaryKey("tenant_id", "id")
    tenant_id = models.UUIDField()
    id = models.UUIDField()
    node_id = models.UUIDField()
    number = models.IntegerField()
    blob_id = models.UUIDField()
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    created_by = models.UUIDField(null=True)

    class Meta:
        db_table = "versions"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant_id", "node_id", "number"],
                name="uq_versions_tenant_id_node_id_number",
            )
        ]
        indexes = [models.Index(fields=["tenant_id", "blob_id"], name="ix_versions_blob")]


class StorageUsage(models.Model):
    tenant_id = models.UUIDField(primary_key=True)
    bytes_used = models.BigIntegerField()

    class Meta:
        db_table = "storage_usage"


class StoreState(models.Model):
    tenant_id = models.UUIDField(primary_key=True)
    accepts_writes = models.BooleanField()
    changed_at = models.DateTimeField()

    class Meta:
        db_table = "store_state"
