"""The catalog: slug rules, tenant creation with its first key, status, key versions and quotas."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from strongroom.base.errors import AlreadyExists, InvalidInput
from strongroom.identity.users import create_user, list_users
from strongroom.runtime import Runtime
from strongroom.tenancy.lifecycle import provision_tenant
from strongroom.tenancy.models import TenantKeyRow, TenantRow
from tests.conftest import PASSWORD


def key_versions(runtime: Runtime, tenant_id: object) -> list[int]:
    with runtime.catalog.session() as session:
        query = (
            select(TenantKeyRow.version)
            .where(TenantKeyRow.tenant_id == tenant_id)
            .order_by(TenantKeyRow.version)
        )
        return list(session.scalars(query))


def count_rows(runtime: Runtime, model: type) -> int:
    with runtime.catalog.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


@contextmanager
def failure_after_key_row_is_written() -> Iterator[None]:
    """Fail any session's flush right after it has written a tenant key row.

    A failure at that point is the one that could leave a key without a tenant,
    or a tenant without a key, if the two rows were not in one transaction.
    """

    def fail_on_key_row(session: Session, _context: Any) -> None:
        if any(isinstance(row, TenantKeyRow) for row in session.new):
            raise RuntimeError("injected failure after the tenant key row was written")

    event.listen(Session, "after_flush", fail_on_key_row)
    try:
        yield
    finally:
        event.remove(Session, "after_flush", fail_on_key_row)


@pytest.mark.parametrize(
    "slug",
    ["abc", "acme", "a-b", "9lives", "acme-2026", "a1-b2-c3", "x" * 63],
)
def test_create_tenant_accepts_valid_slug(runtime: Runtime, slug: str) -> None:
    tenant = runtime.catalog.create_tenant(slug)

    assert tenant.slug == slug
    assert runtime.catalog.get_tenant(slug).id == tenant.id


@pytest.mark.parametrize(
    "slug",
    [
        "Acme",
        "ACME",
        "-acme",
        "acme-",
        "ab",
        "a",
        "",
        "x" * 64,
        "ac_me",
        "ac.me",
        "ac me",
        "acmé",
    ],
)
def test_create_tenant_rejects_invalid_slug(runtime: Runtime, slug: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        runtime.catalog.create_tenant(slug)

    assert "3 to 63 lowercase letters, digits and hyphens" in raised.value.detail
    assert repr(slug) in raised.value.detail
    assert runtime.catalog.list_tenants() == []


@pytest.mark.parametrize("slug", ["api", "www", "admin", "static"])
def test_create_tenant_rejects_reserved_slug(runtime: Runtime, slug: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        runtime.catalog.create_tenant(slug)

    assert "reserved" in raised.value.detail
    assert runtime.catalog.list_tenants() == []


def test_create_tenant_rejects_duplicate_slug(runtime: Runtime) -> None:
    first = runtime.catalog.create_tenant("acme", "Acme")

    with pytest.raises(AlreadyExists) as raised:
        runtime.catalog.create_tenant("acme", "Another Acme")

    assert "'acme' is taken" in raised.value.detail
    assert [tenant.id for tenant in runtime.catalog.list_tenants()] == [first.id]
    assert runtime.catalog.get_tenant("acme").name == "Acme"


def test_create_tenant_adds_one_key_version(runtime: Runtime) -> None:
    tenant = runtime.catalog.create_tenant("acme")

    assert key_versions(runtime, tenant.id) == [1]
    assert runtime.keyring.current(tenant.id).version == 1


def test_create_tenant_failure_leaves_no_key(runtime: Runtime) -> None:
    with failure_after_key_row_is_written(), pytest.raises(RuntimeError, match="injected"):
        runtime.catalog.create_tenant("acme")

    assert count_rows(runtime, TenantKeyRow) == 0
    assert count_rows(runtime, TenantRow) == 0
    assert runtime.catalog.find_tenant("acme") is None


@pytest.mark.parametrize("slug", ["acme\x00", "\x00", "ACME", "ac me", "a" * 300])
def test_find_tenant_impossible_slug_is_none(runtime: Runtime, slug: str) -> None:
    # Slugs come from URLs. PostgreSQL rejects a NUL byte in text with an error, which
    # reached the client as a 500 before the catalog stopped asking for such slugs.
    runtime.catalog.create_tenant("acme")

    found = runtime.catalog.find_tenant(slug)

    assert found is None


def test_suspend_sets_status_suspended(runtime: Runtime) -> None:
    runtime.catalog.create_tenant("acme")

    returned = runtime.catalog.set_status("acme", "suspended")

    assert returned.status == "suspended"
    assert runtime.catalog.get_tenant("acme").status == "suspended"


def test_resume_sets_status_active(runtime: Runtime) -> None:
    runtime.catalog.create_tenant("acme")
    runtime.catalog.set_status("acme", "suspended")

    returned = runtime.catalog.set_status("acme", "active")

    assert returned.status == "active"
    assert runtime.catalog.get_tenant("acme").status == "active"


def test_suspend_and_resume_keep_data(runtime: Runtime, isolation: str) -> None:
    tenant = provision_tenant(runtime.catalog, runtime.stores, "acme", isolation=isolation)
    with runtime.stores.session(tenant, write=True) as session:
        create_user(session, "ada@acme.test", PASSWORD)
        create_user(session, "bob@acme.test", PASSWORD)

    runtime.catalog.set_status("acme", "suspended")
    runtime.catalog.set_status("acme", "active")

    with runtime.stores.session(tenant) as session:
        emails = [user.email for user in list_users(session)]
    assert emails == ["ada@acme.test", "bob@acme.test"]
    assert key_versions(runtime, tenant.id) == [1]
    assert runtime.catalog.get_tenant("acme").id == tenant.id


def test_set_status_rejects_other_states(runtime: Runtime) -> None:
    runtime.catalog.create_tenant("acme")

    with pytest.raises(InvalidInput) as raised:
        runtime.catalog.set_status("acme", "deleting")

    assert "'deleting'" in raised.value.detail
    assert runtime.catalog.get_tenant("acme").status == "active"


def test_add_key_version_counts_up(runtime: Runtime) -> None:
    tenant = runtime.catalog.create_tenant("acme")

    second = runtime.catalog.add_key_version(tenant.id)
    third = runtime.catalog.add_key_version(tenant.id)

    assert second == 2
    assert third == 3
    assert key_versions(runtime, tenant.id) == [1, 2, 3]


def test_add_key_version_becomes_current(runtime: Runtime) -> None:
    tenant = runtime.catalog.create_tenant("acme")
    first_key = runtime.keyring.current(tenant.id).key

    runtime.catalog.add_key_version(tenant.id)

    current = runtime.keyring.current(tenant.id)
    assert current.version == 2
    assert current.key != first_key
    assert runtime.keyring.version(tenant.id, 1).key == first_key


def test_add_key_version_leaves_other_tenants(runtime: Runtime) -> None:
    acme = runtime.catalog.create_tenant("acme")
    globex = runtime.catalog.create_tenant("globex")

    runtime.catalog.add_key_version(acme.id)

    assert key_versions(runtime, globex.id) == [1]


def test_create_tenant_rejects_negative_quota(runtime: Runtime) -> None:
    with pytest.raises(InvalidInput) as raised:
        runtime.catalog.create_tenant("acme", quota_bytes=-1)

    assert "negative" in raised.value.detail
    assert runtime.catalog.list_tenants() == []


def test_set_quota_rejects_negative_quota(runtime: Runtime) -> None:
    runtime.catalog.create_tenant("acme", quota_bytes=1000)

    with pytest.raises(InvalidInput) as raised:
        runtime.catalog.set_quota("acme", -5)

    assert "negative" in raised.value.detail
    assert runtime.catalog.get_tenant("acme").quota_bytes == 1000


def test_set_quota_accepts_zero_and_none(runtime: Runtime) -> None:
    runtime.catalog.create_tenant("acme")

    runtime.catalog.set_quota("acme", 0)
    zero = runtime.catalog.get_tenant("acme").quota_bytes
    runtime.catalog.set_quota("acme", None)
    unlimited = runtime.catalog.get_tenant("acme").quota_bytes

    assert zero == 0
    assert unlimited is None
