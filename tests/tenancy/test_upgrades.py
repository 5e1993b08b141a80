"""`strongroom migrate` over every store: resuming, failures, maintenance responses and canaries.

There is one tenant revision so far, so a store "behind" is made by taking it
back to before that revision, as a release that predates the store's tables
would have left it, and recording no revision for it in the catalog. A store
that cannot migrate is one whose version table names a revision no script
has, as a store written by a newer release would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from strongroom.base.errors import ConfigurationError, InvalidInput, TenantNotFound
from strongroom.runtime import Runtime
from strongroom.storage.db import TenantBase
from strongroom.tenancy import migrations, upgrades
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.lifecycle import provision_tenant
from strongroom.tenancy.upgrades import UpgradeReport, tenant_head, upgrade_every_store
from tests.conftest import Cast

# These tests check the revisions that migrating records, so `cast` really migrates.
pytestmark = pytest.mark.real_migrations

OWN_STORE_LEVELS = ("sqlite-database", "postgres-schema", "postgres-database")
VERSION_TABLE = migrations.STORE_KINDS["tenant"]


def own_store_levels(*names: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("level", names or OWN_STORE_LEVELS, indirect=True)


def on_store(runtime: Runtime, tenant: TenantInfo, action: Callable[[Connection], object]) -> None:
    """Run `action(connection)` in one transaction on the tenant's own store."""
    with runtime.stores.engine_for(tenant).begin() as connection:
        if tenant.isolation == "schema":
            connection.execute(text(f'SET LOCAL search_path TO "{tenant.placement}"'))
        action(connection)


def take_back(runtime: Runtime, tenant: TenantInfo) -> None:
    """Leave the tenant's store as it was before its first revision, and the catalog unaware."""
    # A migration's transaction, because SQLite rebuilds `users` to drop its columns, which
    # only works while its foreign keys are not enforced.
    with migrations.migration_transaction(runtime.stores.engine_for(tenant)) as connection:
        if tenant.isolation == "schema":
            connection.execute(text(f'SET LOCAL search_path TO "{tenant.placement}"'))
        command.downgrade(migrations.alembic_config("tenant", connection), "base")
    runtime.catalog.finish_store_migration(tenant.id, None)


def break_store(runtime: Runtime, tenant: TenantInfo) -> None:
    """Stamp the store with a revision that no script has, so that migrating it fails."""
    on_store(
        runtime,
        tenant,
        lambda connection: connection.execute(
            text(f"UPDATE {VERSION_TABLE} SET version_num = 'ffff'")
        ),
    )
    runtime.catalog.finish_store_migration(tenant.id, None)


def mend_store(runtime: Runtime, tenant: TenantInfo) -> None:
    head = tenant_head()
    on_store(
        runtime,
        tenant,
        lambda connection: connection.execute(
            text(f"UPDATE {VERSION_TABLE} SET version_num = :head"), {"head": head}
        ),
    )


def store_tables(runtime: Runtime, tenant: TenantInfo) -> set[str]:
    schema = tenant.placement if tenant.isolation == "schema" else None
    return set(inspect(runtime.stores.engine_for(tenant)).get_table_names(schema=schema))


def migrate(runtime: Runtime, **options: object) -> UpgradeReport:
    return upgrade_every_store(
        runtime.settings,
        runtime.catalog,
        runtime.stores,
        **options,  # type: ignore[arg-type]
    )


def recorded(runtime: Runtime, slug: str) -> str | None:
    return runtime.catalog.get_tenant(slug).store_revision


# Every store, and only the stores behind ----------------------------------------------


@own_store_levels()
def test_new_tenant_records_its_revision(runtime: Runtime, cast: Cast) -> None:
    assert recorded(runtime, "acme") == tenant_head()


@own_store_levels()
def test_migrate_brings_store_to_head(runtime: Runtime, cast: Cast) -> None:
    take_back(runtime, cast.acme)

    migrate(runtime)

    assert store_tables(runtime, cast.acme) == set(TenantBase.metadata.tables) | {VERSION_TABLE}
    assert recorded(runtime, "acme") == tenant_head()


@own_store_levels()
def test_migrate_skips_stores_at_head(runtime: Runtime, cast: Cast) -> None:
    report = migrate(runtime)

    assert report.outcomes == []
    assert report.up_to_date == 2


@own_store_levels()
def test_migrate_resumes_with_unrecorded_store(runtime: Runtime, cast: Cast) -> None:
    take_back(runtime, cast.globex)

    report = migrate(runtime)

    assert [outcome.tenant.slug for outcome in report.outcomes] == ["globex"]
    assert report.up_to_date == 1


@own_store_levels("sqlite-database", "postgres-schema")
def test_migrate_jobs_reach_every_store(
    runtime: Runtime, cast: Cast, isolation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One store per worker, so that six stores take the worker processes.
    monkeypatch.setattr(upgrades, "STORES_PER_WORKER", 1)
    tenants = [
        provision_tenant(runtime.catalog, runtime.stores, f"extra-{number}", isolation=isolation)
        for number in range(4)
    ]
    for tenant in [cast.acme, cast.globex, *tenants]:
        take_back(runtime, tenant)

    report = migrate(runtime, jobs=3)

    assert len(report.outcomes) == 6
    assert report.failures == []
    assert {recorded(runtime, tenant.slug) for tenant in tenants} == {tenant_head()}


@own_store_levels("sqlite-database")
def test_migrate_few_stores_without_workers(
    runtime: Runtime, cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_pool(*_arguments: object, **_options: object) -> None:
        raise AssertionError("two stores should not start worker processes")

    monkeypatch.setattr(upgrades, "ProcessPoolExecutor", no_pool)
    take_back(runtime, cast.acme)
    take_back(runtime, cast.globex)

    report = migrate(runtime, jobs=2)

    assert report.failures == []
    assert recorded(runtime, "acme") == tenant_head()
    assert recorded(runtime, "globex") == tenant_head()


@own_store_levels("sqlite-database")
def test_migrate_reports_progress_per_store(runtime: Runtime, cast: Cast) -> None:
    take_back(runtime, cast.acme)
    take_back(runtime, cast.globex)
    totals: list[int] = []
    done: list[str] = []

    migrate(
        runtime, on_plan=totals.append, on_outcome=lambda outcome: done.append(outcome.tenant.slug)
    )

    assert totals == [2]
    assert sorted(done) == ["acme", "globex"]


def test_migrate_rejects_zero_jobs(runtime: Runtime) -> None:
    with pytest.raises(InvalidInput, match="--jobs 0"):
        migrate(runtime, jobs=0)


# One tenant's failure -----------------------------------------------------------------


@own_store_levels()
def test_migrate_failure_names_tenant_and_error(runtime: Runtime, cast: Cast) -> None:
    break_store(runtime, cast.globex)

    report = migrate(runtime)

    assert [outcome.tenant.slug for outcome in report.failures] == ["globex"]
    assert "ffff" in str(report.failures[0].error)


@own_store_levels()
def test_migrate_failure_lets_others_finish(runtime: Runtime, cast: Cast) -> None:
    break_store(runtime, cast.globex)
    take_back(runtime, cast.acme)

    migrate(runtime)

    assert recorded(runtime, "acme") == tenant_head()
    assert runtime.catalog.get_tenant("acme").status == "active"


@own_store_levels()
def test_migrate_failed_tenant_answers_503(
    runtime: Runtime, cast: Cast, client: httpx.Client
) -> None:
    break_store(runtime, cast.globex)
    migrate(runtime)
    member = cast.globex_member

    response = client.get(member.url("folders/"), headers=member.headers)

    assert response.status_code == 503
    assert "migrated to this version's database schema" in response.json()["detail"]
    assert response.headers["retry-after"] == "60"


@own_store_levels()
def test_store_behind_answers_503_before_migrate(
    runtime: Runtime, cast: Cast, client: httpx.Client
) -> None:
    take_back(runtime, cast.globex)
    member = cast.globex_member

    response = client.get(member.url("folders/"), headers=member.headers)

    assert response.status_code == 503
    assert "migrated to this version's database schema" in response.json()["detail"]


@own_store_levels()
def test_migrate_failed_tenant_leaves_others_serving(
    runtime: Runtime, cast: Cast, client: httpx.Client
) -> None:
    break_store(runtime, cast.globex)
    migrate(runtime)
    member = cast.acme_member

    response = client.get(member.url("folders/"), headers=member.headers)

    assert response.status_code == 200


@own_store_levels()
def test_migrate_again_reopens_mended_tenant(
    runtime: Runtime, cast: Cast, client: httpx.Client
) -> None:
    break_store(runtime, cast.globex)
    migrate(runtime)
    mend_store(runtime, cast.globex)

    report = migrate(runtime)

    member = cast.globex_member
    assert [outcome.tenant.slug for outcome in report.outcomes] == ["globex"]
    assert client.get(member.url("folders/"), headers=member.headers).status_code == 200


@own_store_levels("sqlite-database")
def test_migrate_keeps_suspended_tenant_suspended(runtime: Runtime, cast: Cast) -> None:
    runtime.catalog.set_status("acme", "suspended")
    take_back(runtime, cast.acme)

    migrate(runtime)

    assert runtime.catalog.get_tenant("acme").status == "suspended"


# Canaries ------------------------------------------------------------------------------


@own_store_levels()
def test_migrate_canary_failure_stops_others(runtime: Runtime, cast: Cast) -> None:
    break_store(runtime, cast.acme)
    take_back(runtime, cast.globex)

    report = migrate(runtime, canaries=["acme"])

    assert report.stopped_by_canary is True
    assert report.not_started == 1
    assert recorded(runtime, "globex") is None


@own_store_levels("sqlite-database", "postgres-schema")
def test_migrate_canary_goes_first(runtime: Runtime, cast: Cast) -> None:
    take_back(runtime, cast.acme)
    take_back(runtime, cast.globex)

    report = migrate(runtime, canaries=["globex"])

    assert [outcome.tenant.slug for outcome in report.outcomes] == ["globex", "acme"]


def test_migrate_unknown_canary_is_rejected(runtime: Runtime) -> None:
    with pytest.raises(TenantNotFound, match="no tenant has the slug 'nobody'"):
        migrate(runtime, canaries=["nobody"])


# Extra revisions --------------------------------------------------------------------------

EXTRA_REVISION = '''"""Add a column to the folder tree, as a revision outside the product would."""

import sqlalchemy as sa
from alembic import op

revision = "extra_1"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("nodes", sa.Column("extra_note", sa.String(200), nullable=True))


def downgrade() -> None:
    op.drop_column("nodes", "extra_note")
'''


@pytest.fixture
def extra_migrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder with one revision after the product's newest, named by the environment."""
    folder = tmp_path / "extra-migrations"
    folder.mkdir()
    (folder / "extra_1_add_note.py").write_text(EXTRA_REVISION.format(head=tenant_head()))
    monkeypatch.setenv(migrations.EXTRA_TENANT_MIGRATIONS, str(folder))
    tenant_head.cache_clear()
    try:
        yield folder
    finally:
        # The head is cached per process, and later tests must see the product's own again.
        tenant_head.cache_clear()


@own_store_levels("sqlite-database")
def test_extra_revision_is_new_head(runtime: Runtime, cast: Cast, extra_migrations: Path) -> None:
    report = migrate(runtime)

    assert report.head == "extra_1"
    assert [outcome.revision for outcome in report.outcomes] == ["extra_1", "extra_1"]
    assert recorded(runtime, "acme") == "extra_1"


@own_store_levels("sqlite-database")
def test_extra_revision_adds_column(runtime: Runtime, cast: Cast, extra_migrations: Path) -> None:
    migrate(runtime)

    columns = inspect(runtime.stores.engine_for(cast.globex)).get_columns("nodes")
    assert "extra_note" in {column["name"] for column in columns}


def test_extra_migrations_missing_folder_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(migrations.EXTRA_TENANT_MIGRATIONS, str(tmp_path / "missing"))

    with pytest.raises(ConfigurationError) as raised:
        migrations.head_revision("tenant")

    assert raised.value.detail == (
        f"STRONGROOM_EXTRA_TENANT_MIGRATIONS: {tmp_path / 'missing'} is not a folder; point it "
        "at the folder of the extra tenant revisions, or unset it"
    )
