"""Strongroom's tenant tables as Django models, with the same table and column names and types.

Every table has `tenant_id` leading its primary key, as in Strongroom. Django
5.2 cannot point a ForeignKey at a composite primary key, so the reference
columns are plain UUID fields here, and the initial migration adds the
composite foreign keys in SQL. Strongroom's row-level security policies have
no counterpart: django-tenants relies on the search path alone.

When a Strongroom tenant revision adds a table or column, add it here too and
regenerate `migrations/0001_initial.py` with makemigrations, keeping the
foreign keys at its end. The benchmark's column check fails until both match.
"""

from django.db import models
from django.db.models import Q


class PlainJSONField(models.JSONField):
    """A JSON column of type `json`, as SQLAlchemy's JSON makes it; Django's JSONField makes `jsonb`."""

    def db_type(self, connection):
        return "json"


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
    expires_at = models.DateTimeField(null=True)
    invited_by = models.UUIDField(null=True)

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
    owner_id = models.UUIDField()
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
                fields=["tenant_id", "owner_id"],
                condition=Q(parent_id__isnull=True),
                name="uq_nodes_root",
            ),
        ]
        indexes = [
            models.Index(
                fields=["tenant_id", "owner_id", "deleted_at"],
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


class Upload(models.Model):
    pk = models.CompositePrimaryKey("tenant_id", "id")
    tenant_id = models.UUIDField()
    id = models.UUIDField()
    user_id = models.UUIDField()
    path = models.CharField(max_length=4096)
    upload_length = models.BigIntegerField()
    upload_offset = models.BigIntegerField()
    upload_metadata = models.CharField(max_length=4096)
    blob_id = models.UUIDField()
    chunk_size = models.IntegerField()
    key_version = models.IntegerField()
    wrapped_key = models.BinaryField()
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True)

    class Meta:
        db_table = "uploads"
        indexes = [
            models.Index(fields=["tenant_id", "expires_at"], name="ix_uploads_expires_at")
        ]


class AppPassword(models.Model):
    pk = models.CompositePrimaryKey("tenant_id", "id")
    tenant_id = models.UUIDField()
    id = models.UUIDField()
    user_id = models.UUIDField()
    name = models.CharField(max_length=200)
    password_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True)
    sign_in_recorded_at = models.DateTimeField(null=True)
    revoked_at = models.DateTimeField(null=True)

    class Meta:
        db_table = "app_passwords"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant_id", "password_hash"],
                name="uq_app_passwords_tenant_id_password_hash",
            )
        ]


class DavProperty(models.Model):
    pk = models.CompositePrimaryKey("tenant_id", "node_id", "name")
    tenant_id = models.UUIDField()
    node_id = models.UUIDField()
    name = models.CharField(max_length=1024)
    value = models.TextField()

    class Meta:
        db_table = "dav_properties"


class WebSession(models.Model):
    pk = models.CompositePrimaryKey("tenant_id", "id")
    tenant_id = models.UUIDField()
    id = models.UUIDField()
    user_id = models.UUIDField()
    token_hash = models.CharField(max_length=64)
    awaiting_second_factor = models.BooleanField()
    created_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        db_table = "web_sessions"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant_id", "token_hash"], name="uq_web_sessions_tenant_id_token_hash"
            )
        ]
        indexes = [models.Index(fields=["tenant_id", "user_id"], name="ix_web_sessions_user")]


class SecondFactor(models.Model):
    pk = models.CompositePrimaryKey("tenant_id", "user_id")
    tenant_id = models.UUIDField()
    user_id = models.UUIDField()
    wrapped_secret = models.BinaryField()
    key_version = models.IntegerField()
    confirmed_at = models.DateTimeField(null=True)
    last_used_step = models.BigIntegerField(null=True)
    created_at = models.DateTimeField()

    class Meta:
        db_table = "second_factors"


class RecoveryCode(models.Model):
    pk = models.CompositePrimaryKey("tenant_id", "id")
    tenant_id = models.UUIDField()
    id = models.UUIDField()
    user_id = models.UUIDField()
    code_hash = models.CharField(max_length=64)
    used_at = models.DateTimeField(null=True)
    created_at = models.DateTimeField()

    class Meta:
        db_table = "recovery_codes"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant_id", "user_id", "code_hash"],
                name="uq_recovery_codes_tenant_id_user_id_code_hash",
            )
        ]


class LoginRecord(models.Model):
    pk = models.CompositePrimaryKey("tenant_id", "user_id")
    tenant_id = models.UUIDField()
    user_id = models.UUIDField()
    last_login_at = models.DateTimeField(null=True)
    failures_since_login = models.IntegerField()
    last_failure_at = models.DateTimeField(null=True)

    class Meta:
        db_table = "login_records"


class Group(models.Model):
    pk = models.CompositePrimaryKey("tenant_id", "id")
    tenant_id = models.UUIDField()
    id = models.UUIDField()
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField()
    created_by = models.UUIDField(null=True)

    class Meta:
        db_table = "groups"
        constraints = [
            models.UniqueConstraint(fields=["tenant_id", "name"], name="uq_groups_tenant_id_name")
        ]


class GroupMember(models.Model):
    pk = models.CompositePrimaryKey("tenant_id", "group_id", "user_id")
    tenant_id = models.UUIDField()
    group_id = models.UUIDField()
    user_id = models.UUIDField()
    added_at = models.DateTimeField()

    class Meta:
        db_table = "group_members"
        indexes = [models.Index(fields=["tenant_id", "user_id"], name="ix_group_members_user")]


class Share(models.Model):
    pk = models.CompositePrimaryKey("tenant_id", "id")
    tenant_id = models.UUIDField()
    id = models.UUIDField()
    node_id = models.UUIDField()
    owner_id = models.UUIDField()
    user_id = models.UUIDField(null=True)
    group_id = models.UUIDField(null=True)
    permission = models.CharField(max_length=10)
    created_at = models.DateTimeField()
    created_by = models.UUIDField(null=True)
    modified_at = models.DateTimeField()

    class Meta:
        db_table = "shares"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant_id", "node_id", "user_id"],
                name="uq_shares_tenant_id_node_id_user_id",
            ),
            models.UniqueConstraint(
                fields=["tenant_id", "node_id", "group_id"],
                name="uq_shares_tenant_id_node_id_group_id",
            ),
            models.CheckConstraint(
                condition=Q(user_id__isnull=True, group_id__isnull=False)
                | Q(user_id__isnull=False, group_id__isnull=True),
                name="ck_shares_one_recipient",
            ),
            models.CheckConstraint(
                condition=Q(permission__in=["read", "write"]), name="ck_shares_permission"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant_id", "owner_id"], name="ix_shares_owner"),
            models.Index(fields=["tenant_id", "user_id"], name="ix_shares_user"),
            models.Index(fields=["tenant_id", "group_id"], name="ix_shares_group"),
        ]


class Link(models.Model):
    pk = models.CompositePrimaryKey("tenant_id", "id")
    tenant_id = models.UUIDField()
    id = models.UUIDField()
    token_hash = models.CharField(max_length=64)
    prefix = models.CharField(max_length=16)
    owner_id = models.UUIDField()
    node_id = models.UUIDField()
    kind = models.CharField(max_length=10)
    password_hash = models.CharField(max_length=200, null=True)
    expires_at = models.DateTimeField(null=True)
    max_downloads = models.IntegerField(null=True)
    download_units = models.BigIntegerField()
    created_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True)

    class Meta:
        db_table = "links"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant_id", "token_hash"], name="uq_links_tenant_id_token_hash"
            )
        ]
        indexes = [models.Index(fields=["tenant_id", "owner_id"], name="ix_links_owner")]


class UploadRequest(models.Model):
    pk = models.CompositePrimaryKey("tenant_id", "id")
    tenant_id = models.UUIDField()
    id = models.UUIDField()
    token_hash = models.CharField(max_length=64)
    prefix = models.CharField(max_length=16)
    owner_id = models.UUIDField()
    folder_id = models.UUIDField()
    title = models.CharField(max_length=200)
    password_hash = models.CharField(max_length=200, null=True)
    expires_at = models.DateTimeField(null=True)
    max_file_size = models.BigIntegerField(null=True)
    max_total_size = models.BigIntegerField(null=True)
    bytes_received = models.BigIntegerField()
    files_received = models.IntegerField()
    notify = models.BooleanField()
    created_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True)

    class Meta:
        db_table = "upload_requests"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant_id", "token_hash"], name="uq_upload_requests_tenant_id_token_hash"
            )
        ]
        indexes = [
            models.Index(fields=["tenant_id", "owner_id"], name="ix_upload_requests_owner")
        ]


class GuestInvitation(models.Model):
    pk = models.CompositePrimaryKey("tenant_id", "id")
    tenant_id = models.UUIDField()
    id = models.UUIDField()
    user_id = models.UUIDField()
    token_hash = models.CharField(max_length=64)
    invited_by = models.UUIDField()
    note = models.CharField(max_length=1000)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True)

    class Meta:
        db_table = "guest_invitations"
        indexes = [models.Index(fields=["tenant_id", "user_id"], name="ix_guest_invitations_user")]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant_id", "token_hash"], name="uq_guest_invitations_tenant_id_token_hash"
            )
        ]


class Webhook(models.Model):
    pk = models.CompositePrimaryKey("tenant_id", "id")
    tenant_id = models.UUIDField()
    id = models.UUIDField()
    url = models.CharField(max_length=2000)
    event_types = PlainJSONField()
    wrapped_secret = models.BinaryField()
    key_version = models.IntegerField()
    active = models.BooleanField()
    created_by = models.UUIDField()
    created_at = models.DateTimeField()
    modified_at = models.DateTimeField()

    class Meta:
        db_table = "webhooks"


class WebhookDelivery(models.Model):
    pk = models.CompositePrimaryKey("tenant_id", "id")
    tenant_id = models.UUIDField()
    id = models.UUIDField()
    webhook_id = models.UUIDField()
    event_id = models.UUIDField()
    event_type = models.CharField(max_length=40)
    payload = PlainJSONField()
    state = models.CharField(max_length=10)
    attempts = models.IntegerField()
    next_attempt_at = models.DateTimeField(null=True)
    last_attempt_at = models.DateTimeField(null=True)
    last_status = models.IntegerField(null=True)
    last_error = models.CharField(max_length=500, null=True)
    created_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True)

    class Meta:
        db_table = "webhook_deliveries"
        indexes = [
            models.Index(
                fields=["tenant_id", "webhook_id", "state", "created_at"],
                name="ix_webhook_deliveries_webhook",
            )
        ]


class AuditEvent(models.Model):
    pk = models.CompositePrimaryKey("tenant_id", "id")
    tenant_id = models.UUIDField()
    id = models.UUIDField()
    occurred_at = models.DateTimeField()
    actor = models.CharField(max_length=64)
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=32, null=True)
    target_id = models.CharField(max_length=64, null=True)
    address = models.CharField(max_length=64, null=True)
    old = PlainJSONField(null=True)
    new = PlainJSONField(null=True)

    class Meta:
        db_table = "audit_events"
        indexes = [
            models.Index(fields=["tenant_id", "occurred_at", "id"], name="ix_audit_events_time"),
            models.Index(
                fields=["tenant_id", "action", "occurred_at"], name="ix_audit_events_action"
            ),
        ]


class Export(models.Model):
    pk = models.CompositePrimaryKey("tenant_id", "id")
    tenant_id = models.UUIDField()
    id = models.UUIDField()
    kind = models.CharField(max_length=32)
    format = models.CharField(max_length=8)
    filters = PlainJSONField()
    requested_by = models.UUIDField()
    status = models.CharField(max_length=10)
    reason = models.CharField(max_length=500, null=True)
    attempts = models.IntegerField()
    size = models.BigIntegerField(null=True)
    sha256 = models.CharField(max_length=64, null=True)
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)
    expires_at = models.DateTimeField(null=True)

    class Meta:
        db_table = "exports"
        indexes = [
            models.Index(fields=["tenant_id", "created_at"], name="ix_exports_created"),
            models.Index(fields=["tenant_id", "status", "expires_at"], name="ix_exports_status"),
        ]
