"""Wiring: build the engine, catalog, tenant stores, keyring and blob store from the settings.

The command line and the web application both start from `build_runtime`, so
they see the same objects configured the same way.
"""

from __future__ import annotations

import gc
import os
import stat
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from sqlalchemy import Engine

from strongroom.base.config import Settings
from strongroom.base.logging import get_logger
from strongroom.base.mail import Mailer
from strongroom.exports import models as export_models  # noqa: F401 - registers the exports table
from strongroom.identity.tokens import TokenCache
from strongroom.storage.blobs import BlobStore, open_blob_store
from strongroom.storage.db import make_engine
from strongroom.tenancy import migrations
from strongroom.tenancy.catalog import Catalog
from strongroom.tenancy.fair_share import FairShare
from strongroom.tenancy.isolation import TenantStores
from strongroom.tenancy.jobs import Job, JobQueue, open_huey
from strongroom.tenancy.keys import Keyring, load_master_key
from strongroom.tenancy.lifecycle import start_usage
from strongroom.tenancy.metering import Meter
from strongroom.tenancy.servers import get_server
from strongroom.tenancy.store_state import open_store
from strongroom.tenancy.upgrades import upgrade_tenant_stores
from strongroom.webhooks import models as webhook_models  # noqa: F401 - registers webhook tables

log = get_logger(__name__)

# A Redis call that waits longer than this for the server fails, so that a hung Redis does not
# hold request threads. REDIS_RETRIES more attempts follow a connection error or a timeout.
REDIS_TIMEOUT_SECONDS = 5.0
REDIS_RETRIES = 2


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    catalog: Catalog
    stores: TenantStores
    keyring: Keyring
    blobs: BlobStore
    tokens: TokenCache
    fair_share: FairShare
    mailer: Mailer
    meter: Meter

    @cached_property
    def jobs(self) -> JobQueue:
        """The job queue, opened on first use, with every job of every domain registered."""
        huey = open_huey(self.settings, self.keyring.master_key)
        return JobQueue(huey, self, all_jobs())

    @cached_property
    def redis(self) -> Redis | None:
        """A Redis client for synchronous callers, built on first use; None without a Redis URL."""
        if self.settings.redis_url is None:
            return None
        return open_redis(self.settings.redis_url)

    def close(self) -> None:
        self.mailer.wait()
        if "jobs" in self.__dict__:
            self.jobs.close()
        if self.__dict__.get("redis") is not None:
            self.redis.close()
        self.stores.close()
        self.engine.dispose()


def all_jobs() -> list[Job]:
    """Return every job of every domain, as the job queue registers them."""
    # Imported here: the job modules import the domain modules, and some of those
    # import this module.
    from strongroom.drive import retention
    from strongroom.exports import building, expiry
    from strongroom.tenancy import audit_retention, rollups
    from strongroom.webhooks import deliveries
    from strongroom.webhooks import retention as webhook_retention

    jobs = [*rollups.JOBS, *retention.JOBS, *deliveries.JOBS, *webhook_retention.JOBS]
    return [*jobs, *building.JOBS, *expiry.JOBS, *audit_retention.JOBS]


def build_runtime(settings: Settings, migrate: bool | None = None) -> Runtime:
    """Open everything the settings name; migrate first if asked or if the embedded default allows.

    Raises SchemaOutOfDate when the database is behind the code and migrating
    on start is off.
    """
    ensure_data_dir(settings.data_dir)
    master_key = load_master_key(settings)
    engine = open_engine(settings)

    migrating = migrate if migrate is not None else settings.should_auto_migrate
    try:
        if migrating:
            migrations.upgrade(engine)
        else:
            migrations.check_up_to_date(engine)
    except BaseException:
        # The caller gets no runtime to close, so the pooled connections would leak.
        engine.dispose()
        raise

    keyring = Keyring(master_key, engine)
    catalog, stores = open_catalog(settings, engine, keyring)
    if migrating:
        # Tenant schemas and files too, or the embedded default would serve them behind.
        # A store that fails stays `migrating`, its requests get 503, and the rest start.
        upgrade_tenant_stores(settings, catalog, stores)
    return Runtime(
        settings=settings,
        engine=engine,
        catalog=catalog,
        stores=stores,
        keyring=keyring,
        blobs=open_blob_store(settings.resolved_blob_dir),
        tokens=TokenCache(settings.token_cache_seconds),
        fair_share=FairShare(settings.redis_url),
        mailer=Mailer(settings),
        meter=Meter(engine),
    )


def open_engine(settings: Settings) -> Engine:
    return make_engine(
        settings.resolved_database_url, prepared_statements=settings.prepared_statements
    )


def open_redis(url: str) -> Redis:
    """Return a Redis client whose calls fail after REDIS_TIMEOUT_SECONDS instead of hanging."""
    return Redis.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), REDIS_RETRIES),
    )


def open_catalog(
    settings: Settings, engine: Engine, keyring: Keyring | None = None
) -> tuple[Catalog, TenantStores]:
    """Open the catalog and the tenant stores it places; without a keyring, no tenant can be made."""
    catalog = Catalog(engine, keyring, cache_seconds=settings.tenant_cache_seconds)
    stores = TenantStores(
        engine,
        initializers=[start_usage, open_store],
        server_urls=lambda name: get_server(catalog, name).url,
        data_dir=settings.data_dir.resolve(),
        open_databases=settings.open_tenant_databases,
        open_files=settings.open_tenant_files,
        pool_size=settings.tenant_pool_size,
        prepared_statements=settings.prepared_statements,
    )
    return catalog, stores


def ensure_data_dir(path: Path) -> None:
    """Create the data directory for its owner alone, or warn when an existing one is not.

    An existing directory keeps its mode, because the operator may have opened
    it on purpose, to a backup user's group for example.
    """
    try:
        # The umask can only narrow 0700, so the directory is never open to others, not even
        # for a moment. The chmod then restores bits that an unusual umask removed.
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            resolved = path.resolve()
            log.warning(
                "data_dir_open_to_others",
                path=str(resolved),
                mode=oct(mode),
                advice=f"run `chmod 700 {resolved}` so that only its owner can open it",
            )
        return
    os.chmod(path, 0o700)


def freeze_start_up_objects() -> None:
    """Keep the objects made at start-up out of the garbage collector's full passes.

    Start-up leaves over 200,000 long-lived objects (routes, models, table
    metadata, compiled statements). A full collection scanned them all and
    took about 50 ms on a 2-core machine, a pause of every request in flight,
    which showed as the slowest requests of a busy server. Frozen, they are
    skipped until `gc.unfreeze`.
    """
    gc.collect()
    gc.freeze()
