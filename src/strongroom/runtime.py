"""Wiring: build the engine, catalog, tenant stores, keyring and blob store from the settings.

The command line and the web application both start from `build_runtime`, so
they see the same objects configured the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from strongroom.base.config import Settings
from strongroom.drive.files import create_root
from strongroom.storage.blobs import BlobStore, open_blob_store
from strongroom.storage.db import make_engine
from strongroom.tenancy import migrations
from strongroom.tenancy.catalog import Catalog
from strongroom.tenancy.isolation import TenantStores
from strongroom.tenancy.keys import Keyring, load_master_key


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    catalog: Catalog
    stores: TenantStores
    keyring: Keyring
    blobs: BlobStore

    def close(self) -> None:
        self.engine.dispose()


def build_runtime(settings: Settings, migrate: bool | None = None) -> Runtime:
    """Open everything the settings name; migrate first if asked or if the embedded default allows.

    Raises SchemaOutOfDate when the database is behind the code and migrating
    on start is off.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    master_key = load_master_key(settings)
    engine = make_engine(settings.resolved_database_url)

    try:
        if migrate if migrate is not None else settings.should_auto_migrate:
            migrations.upgrade(engine)
        else:
            migrations.check_up_to_date(engine)
    except BaseException:
        # The caller gets no runtime to close, so the pooled connections would leak.
        engine.dispose()
        raise

    keyring = Keyring(master_key, engine)
    return Runtime(
        settings=settings,
        engine=engine,
        catalog=Catalog(engine, keyring, cache_seconds=settings.tenant_cache_seconds),
        stores=TenantStores(engine, initializers=[create_root]),
        keyring=keyring,
        blobs=open_blob_store(settings.resolved_blob_dir),
    )
