"""Tenant slugs: the name a tenant is reached by, in host names and in `/t/{slug}`."""

from __future__ import annotations

import re

from strongroom.base.errors import InvalidInput

SLUG_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]{1,61})[a-z0-9]")

# Names that are, or may become, the platform's own host names or paths.
RESERVED_SLUGS = frozenset(
    {
        "admin", "api", "app", "assets", "auth", "autoconfig", "autodiscover", "cdn", "dav",
        "default", "docs", "ftp", "help", "imap", "login", "logout", "mail", "metrics",
        "ns1", "ns2", "operator", "pop", "pop3", "public", "root", "smtp", "static",
        "status", "strongroom", "support", "system", "tenant", "tenants", "test", "webdav",
        "webmail", "www",
    }
)


def can_be_slug(text: str) -> bool:
    """Return True if some tenant could have `text` as its slug, without asking the catalog."""
    return SLUG_PATTERN.fullmatch(text) is not None


def check_slug(slug: str) -> str:
    """Return the slug if it is valid and free to use, else raise InvalidInput saying why."""
    if not can_be_slug(slug):
        raise InvalidInput(
            f"tenant slug {slug!r} is invalid: use 3 to 63 lowercase letters, digits and "
            "hyphens, starting and ending with a letter or digit"
        )
    if "--" in slug:
        raise InvalidInput(
            f"tenant slug {slug!r} is invalid: two hyphens in a row are reserved for "
            "internationalised domain names"
        )
    if slug in RESERVED_SLUGS:
        raise InvalidInput(
            f"tenant slug {slug!r} is reserved for the platform's own names; choose another"
        )
    return slug
