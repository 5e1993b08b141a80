"""The exports table as migration 0013 makes it: the model's shape, and forced row security."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from strongroom.runtime import Runtime
from strongroom.storage.db import TenantBase
from tests.test_migrations import differences


def test_exports_migration_matches_model(runtime: Runtime) -> None:
    found = differences(runtime.engine, TenantBase.metadata)

    assert found == []
    assert "exports" in inspect(runtime.engine).get_table_names()


@pytest.mark.parametrize("level", ["postgres-shared"], indirect=True)
def test_exports_row_security_forced(runtime: Runtime) -> None:
    query = text(
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = 'exports'"
    )

    with runtime.engine.connect() as connection:
        enabled, forced = connection.execute(query).one()
        policies = connection.scalars(
            text("SELECT policyname FROM pg_policies WHERE tablename = 'exports'")
        ).all()

    assert enabled is True
    assert forced is True
    assert policies == ["tenant_isolation"]
