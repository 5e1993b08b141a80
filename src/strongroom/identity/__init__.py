"""Identity: a tenant's users, their roles, passwords and API tokens."""
