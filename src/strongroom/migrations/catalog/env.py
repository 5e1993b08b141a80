from strongroom.storage.db import CatalogBase
from strongroom.tenancy import models  # noqa: F401 - registers the catalog tables
from strongroom.tenancy.migrations import run_environment

run_environment(CatalogBase.metadata, "alembic_version_catalog")
