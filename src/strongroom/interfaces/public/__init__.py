"""The public area of a tenant: pages and downloads of links and upload requests, for people with no account."""
