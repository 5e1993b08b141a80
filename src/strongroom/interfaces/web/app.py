"""Mounting the web UI on the application, beside the REST API under the same tenant base URL."""

from __future__ import annotations

from fastapi import FastAPI

from strongroom.interfaces.web import (
    account,
    admin,
    assets,
    audit,
    auth,
    browser,
    exports,
    invitations,
    shared,
    sharing,
    tenant_admin,
    trash,
    usage,
)
from strongroom.interfaces.web.pages import build_state
from strongroom.runtime import Runtime


def include_web(app: FastAPI, runtime: Runtime) -> None:
    app.state.web = build_state(runtime)
    for module in (
        auth,
        browser,
        shared,
        invitations,
        sharing,
        trash,
        account,
        admin,
        audit,
        exports,
        usage,
        tenant_admin,
        assets,
    ):
        app.include_router(module.router)
