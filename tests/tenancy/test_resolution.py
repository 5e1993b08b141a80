"""Tenant resolution from the Host header and the `/t/{slug}` path prefix.

These are pure functions of strings, so they run without a database: the
backend fixtures would only run the same assertions twice.
"""

from __future__ import annotations

import pytest

from strongroom.base.errors import InvalidInput
from strongroom.tenancy.resolution import resolve, slug_from_host, split_path_prefix

BASE = "strongroom.test"


def test_host_names_tenant_slug() -> None:
    slug = slug_from_host("acme.strongroom.test", BASE)

    assert slug == "acme"


def test_host_with_port_names_tenant() -> None:
    slug = slug_from_host("acme.strongroom.test:8443", BASE)

    assert slug == "acme"


def test_uppercase_host_names_lowercase_slug() -> None:
    slug = slug_from_host("ACME.StrongRoom.TEST", BASE)

    assert slug == "acme"


def test_host_trailing_dot_is_ignored() -> None:
    slug = slug_from_host("acme.strongroom.test.", BASE)

    assert slug == "acme"


def test_host_trailing_dot_and_port() -> None:
    slug = slug_from_host("acme.strongroom.test.:8080", BASE)

    assert slug == "acme"


@pytest.mark.parametrize("host", ["[::1]", "[::1]:8080", "[2001:db8::1]:443"])
def test_ipv6_literal_names_no_tenant(host: str) -> None:
    slug = slug_from_host(host, BASE)

    assert slug is None


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8000", "localhost"])
def test_ip_or_other_host_names_no_tenant(host: str) -> None:
    slug = slug_from_host(host, BASE)

    assert slug is None


def test_nested_subdomain_names_no_tenant() -> None:
    slug = slug_from_host("files.acme.strongroom.test", BASE)

    assert slug is None


@pytest.mark.parametrize("host", ["strongroom.test", "strongroom.test:8080", ".strongroom.test"])
def test_base_domain_itself_names_no_tenant(host: str) -> None:
    slug = slug_from_host(host, BASE)

    assert slug is None


@pytest.mark.parametrize(
    "host", ["acme.evilstrongroom.test", "acme.strongroom.test.evil.example", "acmestrongroom.test"]
)
def test_lookalike_domain_names_no_tenant(host: str) -> None:
    slug = slug_from_host(host, BASE)

    assert slug is None


def test_empty_host_names_no_tenant() -> None:
    slug = slug_from_host("", BASE)

    assert slug is None


def test_path_prefix_splits_slug_and_rest() -> None:
    parts = split_path_prefix("/t/acme/api/v1/files/a.txt")

    assert parts == ("acme", "/api/v1/files/a.txt", "/t/acme")


def test_path_prefix_without_rest_is_root() -> None:
    parts = split_path_prefix("/t/acme")

    assert parts == ("acme", "/", "/t/acme")


def test_path_prefix_uppercase_names_lowercase_slug() -> None:
    parts = split_path_prefix("/t/ACME/api/v1/me")

    assert parts == ("acme", "/api/v1/me", "/t/ACME")


def test_path_prefix_alone_names_no_tenant() -> None:
    parts = split_path_prefix("/t/")

    assert parts == (None, "/t/", "")


@pytest.mark.parametrize("path", ["/t", "/tx/acme/api/v1/me", "/api/v1/me", "/", "/T/acme/x"])
def test_other_paths_name_no_tenant(path: str) -> None:
    parts = split_path_prefix(path)

    assert parts == (None, path, "")


def test_resolve_uses_host_form() -> None:
    resolution = resolve("acme.strongroom.test", "/api/v1/me", BASE)

    assert resolution.slug == "acme"
    assert resolution.path == "/api/v1/me"
    assert resolution.root_path == ""


def test_resolve_uses_path_form() -> None:
    resolution = resolve("127.0.0.1:8000", "/t/globex/api/v1/me", BASE)

    assert resolution.slug == "globex"
    assert resolution.path == "/api/v1/me"
    assert resolution.root_path == "/t/globex"


def test_resolve_same_tenant_in_both() -> None:
    resolution = resolve("acme.strongroom.test", "/t/acme/api/v1/me", BASE)

    assert resolution.slug == "acme"
    assert resolution.path == "/api/v1/me"


def test_resolve_without_tenant_keeps_path() -> None:
    resolution = resolve("127.0.0.1", "/healthz", BASE)

    assert resolution.slug is None
    assert resolution.path == "/healthz"


def test_resolve_host_path_conflict_raises() -> None:
    with pytest.raises(InvalidInput) as raised:
        resolve("acme.strongroom.test", "/t/globex/api/v1/me", BASE)

    assert "'acme'" in raised.value.detail
    assert "'globex'" in raised.value.detail


def test_resolve_conflict_with_uppercase_host() -> None:
    with pytest.raises(InvalidInput):
        resolve("ACME.strongroom.test:8080", "/t/globex/api/v1/me", BASE)
