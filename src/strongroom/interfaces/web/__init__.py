"""The web UI at each tenant's base URL: Jinja2 pages, htmx and one small script of our own."""
