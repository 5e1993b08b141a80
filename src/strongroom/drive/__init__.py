"""Drive: files, folders, versions and the trash of a tenant."""
