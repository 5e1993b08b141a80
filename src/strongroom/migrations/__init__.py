"""Alembic scripts: `catalog` for the platform's tables, `tenant` for every tenant store."""
