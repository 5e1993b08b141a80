"""Tenant resolution: the tenant a request names, by its host `{slug}.{base domain}` or path `/t/{slug}`."""

from __future__ import annotations

from dataclasses import dataclass

from strongroom.base.errors import InvalidInput

PATH_PREFIX = "/t/"


@dataclass(frozen=True)
class Resolution:
    slug: str | None
    path: str
    root_path: str


def slug_from_host(host: str, base_domain: str) -> str | None:
    """Return the first label of `host` when the rest is the base domain, else None."""
    name = host.strip().lower()
    if name.startswith("["):
        return None  # an IPv6 literal names no tenant
    name = name.rsplit(":", 1)[0] if ":" in name else name
    name = name.rstrip(".")
    suffix = "." + base_domain
    if not name.endswith(suffix):
        return None
    label = name[: -len(suffix)]
    return label if label and "." not in label else None


def split_path_prefix(path: str) -> tuple[str | None, str, str]:
    """Split `/t/{slug}/rest` into (slug, "/rest", "/t/{slug}"); other paths give (None, path, "").

    The slug is returned in lower case, the form slugs are stored in, because the
    host form is case-insensitive too. The root path keeps the request's spelling,
    so that it remains a prefix of the request's path.
    """
    if not path.startswith(PATH_PREFIX):
        return None, path, ""
    slug, _, rest = path[len(PATH_PREFIX) :].partition("/")
    if not slug:
        return None, path, ""
    return slug.lower(), "/" + rest, PATH_PREFIX + slug


def resolve(host: str, path: str, base_domain: str) -> Resolution:
    """Find the tenant slug a request names; raise InvalidInput when host and path name two."""
    host_slug = slug_from_host(host, base_domain)
    path_slug, rest, root = split_path_prefix(path)
    if host_slug and path_slug and host_slug != path_slug:
        raise InvalidInput(
            f"the host names tenant {host_slug!r} but the path names tenant {path_slug!r}; "
            "use one of the two"
        )
    if path_slug:
        return Resolution(path_slug, rest, root)
    return Resolution(host_slug, path, "")
