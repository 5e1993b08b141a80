"""Folder routes on the caller's own drive: list, create, trash, and moves of files and folders."""

from __future__ import annotations

import uuid

import anyio
from fastapi import APIRouter, Response

from strongroom.drive import files as drive_files
from strongroom.drive import listing, transfers
from strongroom.drive import trash as drive_trash
from strongroom.drive.models import FILE, FOLDER
from strongroom.drive.paths import join_path, split_path
from strongroom.interfaces.api.dependencies import (
    API_PREFIX,
    PrincipalDep,
    RuntimeDep,
    TenantDep,
    parse_object_id,
)
from strongroom.interfaces.api.schemas import FolderListing, MoveRequest, NodeOut, listing_json
from strongroom.runtime import Runtime
from strongroom.tenancy.context import TenantInfo

router = APIRouter(prefix=API_PREFIX, tags=["folders"])

# The first part of the keys under which listings are kept by an inline reader.
LISTING = "folder listing"


@router.get(
    "/folders/{path:path}",
    response_model=FolderListing,
    response_class=Response,
    summary="List a folder; '' is the root",
)
async def list_folder(
    path: str, runtime: RuntimeDep, tenant: TenantDep, principal: PrincipalDep
) -> Response:
    # Clients list folders more than they do anything else. HotPaths serves this route
    # (see app.py), SQLite is read on the event loop's thread, one statement runs, and
    # the JSON of FolderListing is written by hand (tests/api/test_folders.py compares
    # the two). On SQLite the JSON is kept until the database changes (decision 0027).
    names = split_path(path)
    owner_id = principal.user_id
    reader = runtime.stores.inline_reader(tenant) if len(names) <= listing.MAX_JOINED_DEPTH else None
    try:
        if reader is not None:
            body = reader.cached(
                (LISTING, tenant.id, owner_id, names),
                lambda connection: listing_json(
                    listing.list_folder_sqlite(connection, tenant.id, owner_id, names)
                ),
            )
        else:
            found = await anyio.to_thread.run_sync(_read_listing, runtime, tenant, owner_id, names)
            body = listing_json(found)
    except listing.DriveNotCreated:
        body = listing_json(await anyio.to_thread.run_sync(_create_drive, runtime, tenant, owner_id))
    return Response(body, media_type="application/json")


def _read_listing(
    runtime: Runtime, tenant: TenantInfo, owner_id: uuid.UUID, names: tuple[str, ...]
) -> listing.Listing:
    with runtime.stores.connect(tenant) as connection:
        return listing.list_folder(connection, tenant.id, owner_id, names)


def _create_drive(runtime: Runtime, tenant: TenantInfo, owner_id: uuid.UUID) -> listing.Listing:
    """Create the root folder of a drive listed before its first write, and list it empty."""
    with runtime.stores.session(tenant, write=True) as session:
        root = drive_files.ensure_root(session, owner_id)
    return listing.Listing(folder_id=str(root.id), path="", entries=[])


@router.post(
    "/folders/{path:path}",
    response_model=NodeOut,
    status_code=201,
    summary="Create a folder and any missing parents",
)
def make_folder(
    path: str, runtime: RuntimeDep, tenant: TenantDep, principal: PrincipalDep
) -> NodeOut:
    names = split_path(path)
    with runtime.stores.session(tenant, write=True) as session:
        folder = drive_files.make_folder(session, principal.user_id, names, principal.user_id)
    return NodeOut.of(folder, join_path(names))


@router.delete(
    "/folders/{path:path}", response_model=NodeOut, summary="Move a folder and its contents to the trash"
)
def delete_folder(
    path: str, runtime: RuntimeDep, tenant: TenantDep, principal: PrincipalDep
) -> NodeOut:
    names = split_path(path)
    with runtime.stores.session(tenant, write=True) as session:
        folder = drive_trash.trash_node(
            session, principal.user_id, names, principal.user_id, FOLDER
        )
    return NodeOut.of(folder, join_path(names))


@router.post("/move", response_model=NodeOut, summary="Move or rename a file or folder")
def move(
    request: MoveRequest, runtime: RuntimeDep, tenant: TenantDep, principal: PrincipalDep
) -> NodeOut:
    source = split_path(request.source)
    destination = split_path(request.destination)
    with runtime.stores.session(tenant, write=True) as session:
        # A rename must not give a file an ending that uploads may not have. The root
        # is left to move_node, which explains why it cannot move.
        owner_id = principal.user_id
        if source and destination and drive_files.access_node(session, owner_id, source).kind == FILE:
            transfers.check_file_allowed(tenant, destination[-1])
        node = drive_files.move_node(
            session, principal.user_id, source, destination, request.overwrite, principal.user_id
        )
        sha256 = drive_files.current_sha256(session, node)
    return NodeOut.of(node, join_path(destination), sha256)


@router.get("/nodes/{node_id}", response_model=NodeOut, summary="A file or folder by its id")
def get_node(
    node_id: str, runtime: RuntimeDep, tenant: TenantDep, principal: PrincipalDep
) -> NodeOut:
    with runtime.stores.session(tenant) as session:
        node = drive_files.access_node_by_id(
            session, principal.user_id, parse_object_id(node_id, "file or folder")
        )
        path = drive_files.path_of(session, node)
        trashed = drive_files.is_trashed(session, node)
        sha256 = drive_files.current_sha256(session, node)
    return NodeOut.of(node, path, sha256, trashed=trashed)
