from strongroom.drive import models as drive_models  # noqa: F401 - registers the drive tables
from strongroom.exports import models as export_models  # noqa: F401 - registers the exports table
from strongroom.tenancy import events  # noqa: F401 - registers the audit trail table
from strongroom.tenancy import store_state  # noqa: F401 - registers the write fence table
from strongroom.tenancy import usage  # noqa: F401 - registers the usage table
from strongroom.identity import models as identity_models  # noqa: F401 - registers identity tables
from strongroom.storage.db import TenantBase
from strongroom.webhooks import models as webhook_models  # noqa: F401 - registers webhook tables
from strongroom.tenancy.migrations import run_environment

run_environment(TenantBase.metadata, "alembic_version_tenant")
