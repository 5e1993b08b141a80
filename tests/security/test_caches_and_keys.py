"""Caches and dedup keys that must carry the tenant: blob keys, the tenant cache, the keyring.

- Two tenants uploading the same bytes to the same path get distinct blobs:
  ids, store keys under their own tenant's prefix, wrapped keys and
  ciphertext. Nothing is deduplicated, not even by the content hash that both
  versions share.
- `tenant_scoped_key` never builds one key for two tenants, nor a key below
  another tenant's prefix, whatever the parts.
- The catalog's tenant cache returns a tenant only for its exact slug, from
  the database and from the cache alike, and drops a cached miss once a tenant
  takes the slug.
- The keyring gives each tenant its own key, and a tenant key row moved to the
  other tenant does not unwrap.

Blob files and blob keys moved between tenants are tested in
tests/drive/test_encryption_at_rest.py.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from strongroom.base.errors import IntegrityError
from strongroom.base.scoping import tenant_scoped_key
from strongroom.drive.content import blob_key
from strongroom.drive.models import BlobRow, VersionRow
from strongroom.runtime import Runtime
from strongroom.tenancy.catalog import Catalog
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.keys import Keyring
from strongroom.tenancy.models import TenantKeyRow
from tests.conftest import Cast
from tests.security.conftest import PROPERTY_SETTINGS
from tests.security.tally import Tally

FAMILY = "caches and keys"

# A part of a key: anything but a path separator, and not a dot segment.
KEY_PARTS = st.text(min_size=1, max_size=20).filter(
    lambda part: "/" not in part and part not in {".", ".."}
)


# Identical uploads ----------------------------------------------------------------------


def only_blob(runtime: Runtime, tenant: TenantInfo) -> tuple[BlobRow, VersionRow]:
    query = select(BlobRow, VersionRow).join(
        VersionRow, (VersionRow.tenant_id == BlobRow.tenant_id) & (VersionRow.blob_id == BlobRow.id)
    )
    with runtime.stores.session(tenant) as session:
        blob, version = session.execute(query).one()
    return blob, version


def stored_bytes(runtime: Runtime, key: str) -> bytes:
    with runtime.blobs.reader(key) as reader:
        return reader.read_at(0, reader.size)


def test_identical_uploads_share_nothing(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    body = b"the same bytes in two tenants " * 100
    for member in (cast.acme_member, cast.globex_member):
        client.put(member.url("files/same.txt"), content=body, headers=member.headers)

    acme_blob, acme_version = only_blob(runtime, cast.acme)
    globex_blob, globex_version = only_blob(runtime, cast.globex)
    acme_key, globex_key = (
        blob_key(cast.acme.id, acme_blob.id),
        blob_key(cast.globex.id, globex_blob.id),
    )

    assert acme_version.sha256 == globex_version.sha256  # a content hash alone names both
    assert acme_blob.id != globex_blob.id
    assert acme_key.startswith(f"tenants/{cast.acme.id}/")
    assert globex_key.startswith(f"tenants/{cast.globex.id}/")
    assert acme_blob.wrapped_key != globex_blob.wrapped_key
    assert stored_bytes(runtime, acme_key) != stored_bytes(runtime, globex_key)
    assert list(runtime.blobs.iter_keys(f"tenants/{cast.acme.id}")) == [acme_key]
    assert list(runtime.blobs.iter_keys(f"tenants/{cast.globex.id}")) == [globex_key]


@PROPERTY_SETTINGS
@given(
    tenants=st.lists(st.uuids(), min_size=2, max_size=2, unique=True),
    first=st.lists(KEY_PARTS, min_size=1, max_size=4),
    second=st.lists(KEY_PARTS, min_size=1, max_size=4),
)
def test_scoped_keys_stay_under_tenant(
    tenants: list[uuid.UUID], first: list[str], second: list[str]
) -> None:
    one, other = tenants

    key = tenant_scoped_key(one, *first)
    other_key = tenant_scoped_key(other, *second)

    assert key != other_key
    assert key.startswith(f"tenants/{one}/")
    assert not key.startswith(f"tenants/{other}/")


@pytest.mark.parametrize("part", ["", ".", "..", "a/b", "../x"])
def test_scoped_key_rejects_escaping_part(part: str) -> None:
    with pytest.raises(ValueError):
        tenant_scoped_key(uuid.uuid4(), "blobs", part)


# The tenant cache -----------------------------------------------------------------------


@pytest.fixture
def caching_catalog(runtime: Runtime) -> Catalog:
    """A catalog that caches lookups for a minute, where the test settings cache none."""
    return Catalog(runtime.engine, runtime.keyring, cache_seconds=60)


SLUG_LOOKALIKES = ["acme", "globex", "ACME", "Acme", " acme", "acme ", "acme.", "acme\x00",
                   "\u0430cme", "acme\u200b", "ａｃｍｅ", "acme-", "globex/acme"]  # fmt: skip


@PROPERTY_SETTINGS
@given(slug=st.one_of(st.sampled_from(SLUG_LOOKALIKES), st.text(max_size=70)))
def test_tenant_cache_matches_exact_slug(
    slug: str, caching_catalog: Catalog, cast: Cast, tally: Tally, where: str
) -> None:
    tally.attempt(FAMILY, where)

    first = caching_catalog.find_tenant(slug)
    cached = caching_catalog.find_tenant(slug)

    assert first == cached
    assert first is None or first.slug == slug


def test_tenant_cache_forgets_unknown_slug(caching_catalog: Catalog) -> None:
    assert caching_catalog.find_tenant("initech") is None

    created = caching_catalog.create_tenant("initech")

    assert caching_catalog.find_tenant("initech") == created


# The keyring ----------------------------------------------------------------------------


def test_keyring_keys_differ_per_tenant(runtime: Runtime, cast: Cast) -> None:
    acme_key = runtime.keyring.current(cast.acme.id)
    globex_key = runtime.keyring.current(cast.globex.id)

    assert acme_key.key != globex_key.key
    assert acme_key.tenant_id == cast.acme.id
    assert globex_key.tenant_id == cast.globex.id


def test_tenant_key_moved_to_other_fails(runtime: Runtime, cast: Cast) -> None:
    # Damage by hand: acme's key row gets globex's wrapped key, which is bound to globex.
    with runtime.catalog.session(write=True) as session:
        rows = {row.tenant_id: row for row in session.scalars(select(TenantKeyRow))}
        rows[cast.acme.id].wrapped_key = rows[cast.globex.id].wrapped_key
    fresh = Keyring(runtime.keyring.master_key, runtime.engine)

    with pytest.raises(IntegrityError) as raised:
        fresh.current(cast.acme.id)

    assert "does not unwrap" in raised.value.detail
