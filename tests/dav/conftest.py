"""Fixtures for WebDAV tests: app passwords for the cast, and Debian's WebDAV clients."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import httpx
import pytest

from strongroom.base.config import Settings
from strongroom.identity.app_passwords import create_app_password
from strongroom.identity.users import access_user_by_email
from strongroom.runtime import Runtime
from strongroom.tenancy.context import TenantInfo
from tests.conftest import Cast, LiveServer, Member
from tests.services import MissingService
from tests.services.fixtures import require_service

# Small, so that the rate-limit test needs few requests; no client test fails a login.
FAILURES_PER_MINUTE = 5


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"basic_auth_failures_per_minute": FAILURES_PER_MINUTE})


@dataclass(frozen=True)
class DavUser:
    """A member of the cast with an app password, and the tenant's WebDAV root on the live server."""

    member: Member
    password: str
    root: str

    @property
    def email(self) -> str:
        return self.member.email

    @property
    def tenant(self) -> TenantInfo:
        return self.member.tenant

    @property
    def auth(self) -> httpx.BasicAuth:
        return httpx.BasicAuth(self.email, self.password)

    def url(self, path: str = "") -> str:
        return self.root + path


def add_app_password(runtime: Runtime, member: Member, server: LiveServer) -> DavUser:
    with runtime.stores.session(member.tenant, write=True) as session:
        user = access_user_by_email(session, member.email)
        _row, secret = create_app_password(session, user, "tests")
    return DavUser(member, secret, f"{server.url}/t/{member.tenant.slug}/dav/")


@pytest.fixture
def acme_dav(runtime: Runtime, cast: Cast, live_server: LiveServer) -> DavUser:
    return add_app_password(runtime, cast.acme_member, live_server)


@pytest.fixture
def globex_dav(runtime: Runtime, cast: Cast, live_server: LiveServer) -> DavUser:
    return add_app_password(runtime, cast.globex_member, live_server)


def client_program(name: str) -> str:
    """Return the path of a WebDAV client from Debian's package of the same name, or skip."""
    path = shutil.which(name)
    if path is None:
        require_service(MissingService(name, name))
    return path
