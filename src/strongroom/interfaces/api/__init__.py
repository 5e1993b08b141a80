"""The HTTP API: platform routes, tenant resolution and the tenant's REST API under /api/v1."""
