"""The WsgiDAV provider over the drive: each URL below `{base}/dav/` is a file or folder of the drive.

Resources call the drive functions that the REST API calls, with the tenant
and user of the request, so WebDAV follows the same rules: paths checked and
normalised, contents encrypted, quotas enforced, deletes sent to the trash.
Dead properties are rows of the tenant (`strongroom.drive.properties`), keyed
by the node, so they follow a file through moves and the trash.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import mimetypes
import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError as DatabaseIntegrityError
from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_FORBIDDEN,
    HTTP_METHOD_NOT_ALLOWED,
    HTTP_NOT_FOUND,
    DAVError,
)
from wsgidav.dav_provider import DAVCollection, DAVNonCollection, DAVProvider
from wsgidav.xml_tools import etree, string_to_xml

from strongroom.base.errors import InvalidPath
from strongroom.base.logging import get_logger
from strongroom.drive import files, properties, transfers, trash
from strongroom.drive.copies import copy_file
from strongroom.drive.files import Names, Preconditions
from strongroom.drive.models import FILE, FOLDER, NodeRow
from strongroom.drive.paths import check_name, split_path
from strongroom.interfaces import webhook_events
from strongroom.interfaces.web.browser import content_disposition
from strongroom.interfaces.web.security import DOWNLOAD_POLICY
from strongroom.interfaces.webdav.authentication import DavRequest, dav_request_of
from strongroom.interfaces.webdav.errors import dav_errors
from strongroom.interfaces.webdav.streams import DecryptedReader, EncryptingWriter

log = get_logger(__name__)

# The URL path of the WebDAV root in this request: /t/{slug}/dav, or /dav on a tenant's host.
# WsgiDAV reads one mount path per provider, for the hrefs it writes and the Destination
# headers it parses, so the provider returns the mount path of the current request.
request_mount_path: contextvars.ContextVar[str] = contextvars.ContextVar(
    "request_mount_path", default=""
)


class DriveProvider(DAVProvider):
    """Maps WebDAV paths to the drive of the request's tenant."""

    @property  # type: ignore[override]
    def mount_path(self) -> str:
        return request_mount_path.get()

    @mount_path.setter
    def mount_path(self, _value: str) -> None:
        """Ignore WsgiDAV's fixed mount path, which would be wrong for one of the two URL forms."""

    def get_resource_inst(self, path: str | None, environ: dict[str, Any]) -> _Resource | None:
        request = dav_request_of(environ)
        if path is None:
            return None  # WsgiDAV requests the parent of the root this way
        try:
            names = split_path(path)
        except InvalidPath:
            return None  # nothing can exist at an invalid path
        owner_id = request.principal.user_id
        with dav_errors(), request.runtime.stores.session(request.tenant) as session:
            node = files.get_node(session, owner_id, names)
        if node is None and not names:
            # A drive's root folder is made on its first use, which may be a WebDAV client.
            with dav_errors(), request.runtime.stores.session(request.tenant, write=True) as session:
                node = files.ensure_root(session, owner_id)
        if node is None:
            return None
        return resource_of(path, environ, names, node)


def resource_of(
    path: str, environ: dict[str, Any], names: Names, node: NodeRow | None
) -> _Resource:
    if node is not None and node.kind == FOLDER:
        return FolderResource(path, environ, names, node)
    return FileResource(path, environ, names, node)


def _timestamp(moment: dt.datetime) -> float:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return aware.timestamp()


def _declared_length(environ: dict[str, Any]) -> int | None:
    length = environ.get("CONTENT_LENGTH")
    return int(length) if length and length.isdigit() else None


def _names_of(dest_path: str) -> Names:
    with dav_errors():
        return split_path(dest_path)


class _Resource:
    """The behaviour that files and folders share: live dates, dead properties, delete and move.

    `node` is None only for a file that a PUT is about to create.
    """

    names: Names
    node: NodeRow | None
    environ: dict[str, Any]
    path: str
    is_collection: bool

    def _setup(self, names: Names, node: NodeRow | None) -> None:
        self.names = names
        self.node = node
        self.request: DavRequest = dav_request_of(self.environ)

    def _session(self, write: bool = False) -> Any:
        return self.request.runtime.stores.session(self.request.tenant, write=write)

    @property
    def user_id(self) -> uuid.UUID:
        return self.request.principal.user_id

    def get_creation_date(self) -> float | None:
        return _timestamp(self.node.created_at) if self.node is not None else None

    def get_last_modified(self) -> float | None:
        return _timestamp(self.node.modified_at) if self.node is not None else None

    def get_display_name(self) -> str:
        return self.names[-1] if self.names else ""

    # Dead properties ------------------------------------------------------------------

    def get_property_names(self, *, is_allprop: bool) -> list[str]:
        names = super().get_property_names(is_allprop=is_allprop)  # type: ignore[misc]
        if self.node is not None:
            with dav_errors(), self._session() as session:
                names.extend(properties.get_properties(session, self.node.id))
        return names

    def get_property_value(self, name: str) -> Any:
        if not _is_dead(name) or self.node is None:
            return super().get_property_value(name)  # type: ignore[misc]
        with dav_errors(), self._session() as session:
            value = properties.get_property(session, self.node.id, name)
        if value is None:
            raise DAVError(HTTP_NOT_FOUND)
        return string_to_xml(value)

    @dav_errors()  # PROPPATCH writes the text of any other exception into its response
    def set_property_value(self, name: str, value: Any, *, dry_run: bool = False) -> Any:
        if not _is_dead(name):
            return super().set_property_value(name, value, dry_run=dry_run)  # type: ignore[misc]
        if self.node is None:
            raise DAVError(HTTP_FORBIDDEN, "the file has no content yet; PUT it first")
        text = None if value is None else etree.tostring(value, encoding="unicode")
        with dav_errors():
            if dry_run:
                if text is not None:
                    properties.check_property(name, text)
                return None
            with self._session(write=True) as session:
                if text is None:
                    properties.remove_property(session, self.node.id, name)
                else:
                    properties.set_property(session, self.node.id, name, text)
        return None

    def remove_all_properties(self, *, recursive: bool) -> None:
        """Keep the properties: they belong to the node, which a delete moves to the trash."""

    # Delete and move --------------------------------------------------------------------

    def support_recursive_delete(self) -> bool:
        return True

    # WsgiDAV would write the text of any other exception into its response.
    @dav_errors()
    def delete(self) -> None:
        """Move the file or folder, with everything in it, to the trash, and drop its locks."""
        kind = FOLDER if self.is_collection else FILE
        with dav_errors(), self._session(write=True) as session:
            trashed = trash.trash_node(session, self.user_id, self.names, self.user_id, kind)
        self.remove_all_locks(recursive=True)  # type: ignore[attr-defined]
        log.info("webdav_trashed", node_id=str(self.node.id) if self.node else None)
        if kind == FILE:
            runtime, tenant = self.request.runtime, self.request.tenant
            webhook_events.file_trashed(runtime, tenant, trashed, self.user_id, "/".join(self.names))

    def support_recursive_move(self, dest_path: str) -> bool:
        return True

    @dav_errors()
    def move_recursive(self, dest_path: str) -> None:
        """Move or rename; WsgiDAV has already trashed what was in the way if Overwrite allowed it."""
        destination = _names_of(dest_path)
        with dav_errors(), self._session(write=True) as session:
            files.move_node(session, self.user_id, self.names, destination, False, self.user_id)
        self.remove_all_locks(recursive=True)  # type: ignore[attr-defined]

    def _copy_properties_to(self, destination: Names) -> None:
        if self.node is None:
            return
        with dav_errors(), self._session(write=True) as session:
            target = files.access_node(session, self.user_id, destination)
            properties.copy_properties(session, self.node.id, target.id)


def _is_dead(name: str) -> bool:
    return not name.startswith("{DAV:}")


class FolderResource(_Resource, DAVCollection):
    def __init__(self, path: str, environ: dict[str, Any], names: Names, node: NodeRow) -> None:
        DAVCollection.__init__(self, path, environ)
        self._setup(names, node)

    def get_member_names(self) -> list[str]:
        return [member.names[-1] for member in self.get_member_list()]

    def get_member_list(self) -> list[_Resource]:
        assert self.node is not None
        with dav_errors(), self._session() as session:
            children = files.list_children(session, self.node)
        base = self.path.rstrip("/")
        return [
            resource_of(f"{base}/{child.name}", self.environ, (*self.names, child.name), child)
            for child in children
        ]

    def get_member(self, name: str) -> _Resource | None:
        return self.provider.get_resource_inst(f"{self.path.rstrip('/')}/{name}", self.environ)

    def create_empty_resource(self, name: str) -> FileResource:
        """Return the file about to be written at `name`.

        A PUT creates the file when its body is stored, so that a new file starts
        at version 1. A LOCK of an unmapped URL creates an empty file at once,
        as RFC 4918 (section 7.3) requires.
        """
        with dav_errors():
            names = (*self.names, check_name(name))
        path = f"{self.path.rstrip('/')}/{name}"
        resource = FileResource(path, self.environ, names, None)
        if self.environ.get("REQUEST_METHOD") == "LOCK":
            resource.store_empty()
        return resource

    def create_collection(self, name: str) -> None:
        with dav_errors():
            names = (*self.names, check_name(name))
            try:
                with self._session(write=True) as session:
                    files.make_folder(session, self.user_id, names, self.user_id)
            except DatabaseIntegrityError as error:
                # A parallel MKCOL of the same folder won. RFC 4918 gives 405 for MKCOL on an
                # existing collection, and clients read it as "the folder exists".
                raise DAVError(HTTP_METHOD_NOT_ALLOWED, context_info="the folder exists") from error

    @dav_errors()
    def copy_move_single(self, dest_path: str, *, is_move: bool) -> None:
        """Copy the folder alone: WsgiDAV copies its members one by one after it."""
        destination = _names_of(dest_path)
        with dav_errors(), self._session(write=True) as session:
            files.ensure_folders(session, self.user_id, destination, self.user_id)
        self._copy_properties_to(destination)


class FileResource(_Resource, DAVNonCollection):
    def __init__(
        self, path: str, environ: dict[str, Any], names: Names, node: NodeRow | None
    ) -> None:
        DAVNonCollection.__init__(self, path, environ)
        self._setup(names, node)
        self._writer: EncryptingWriter | None = None

    def get_content_length(self) -> int:
        return self.node.size if self.node is not None else 0

    def get_content_type(self) -> str:
        guessed, _encoding = mimetypes.guess_type(self.names[-1])
        return guessed or "application/octet-stream"

    def get_etag(self) -> str | None:
        if self.node is None or self.node.current_version_id is None:
            return None
        return self.node.current_version_id.hex

    def support_etag(self) -> bool:
        return True

    def support_ranges(self) -> bool:
        return True

    def finalize_headers(self, environ: dict[str, Any], response_headers: list) -> None:
        """Send a file as the web UI's downloads do, so that a browser never runs it as a page.

        The guessed Content-Type stays for WebDAV clients that show it. The attachment,
        nosniff and the sandbox keep an HTML file inert on the tenant's origin.
        """
        response_headers.extend(
            [
                ("Content-Disposition", content_disposition(self.names[-1])),
                ("X-Content-Type-Options", "nosniff"),
                ("Content-Security-Policy", DOWNLOAD_POLICY),
            ]
        )

    @dav_errors()
    def handle_move(self, dest_path: str) -> bool:
        """Refuse a rename to a blocked ending before WsgiDAV clears the destination.

        Return False, so that WsgiDAV goes on with the move as usual.
        """
        transfers.check_file_allowed(self.request.tenant, _names_of(dest_path)[-1])
        return False

    def get_content(self) -> DecryptedReader:
        runtime, tenant = self.request.runtime, self.request.tenant
        with dav_errors():
            download = transfers.open_download(runtime, tenant, self.user_id, self.names)
        # NOTE: metered as a whole download when it starts; WsgiDAV reads ranges and
        # abandoned bodies through the same reader, so the bytes out can be overcounted.
        runtime.meter.record_download(tenant)
        runtime.meter.record_bytes_out(tenant, download.blob.size)
        return DecryptedReader(runtime.blobs, download)

    def begin_write(self, *, content_type: str | None = None) -> EncryptingWriter:
        self._writer = self._open_upload(_declared_length(self.environ))
        return self._writer

    def end_write(self, *, with_errors: bool) -> None:
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        if with_errors:
            writer.upload.abort()
            return
        self._commit(writer, _declared_length(self.environ))

    def store_empty(self) -> None:
        """Store the file with no content; the body of the request is the LOCK's, not the file's."""
        self._commit(self._open_upload(0), 0)

    def _open_upload(self, declared: int | None) -> EncryptingWriter:
        runtime, tenant = self.request.runtime, self.request.tenant
        with dav_errors():
            upload = transfers.begin_upload(
                runtime, tenant, self.user_id, self.names, Preconditions(), declared
            )
        return EncryptingWriter(upload)

    def _commit(self, writer: EncryptingWriter, declared: int | None) -> None:
        upload = writer.upload
        if declared is not None and upload.size != declared:
            upload.abort()
            raise DAVError(
                HTTP_BAD_REQUEST,
                f"the body has {upload.size} bytes, but Content-Length declared {declared}",
            )
        runtime, tenant = self.request.runtime, self.request.tenant
        with dav_errors():
            self.node, version = transfers.commit_upload(
                runtime, tenant, self.user_id, self.names, upload, self.user_id, Preconditions()
            )
        runtime.meter.record_upload(tenant, version.size)
        log.info("webdav_file_stored", node_id=str(self.node.id), version=version.number)
        webhook_events.file_stored(
            runtime,
            tenant,
            self.node,
            version.number,
            version.size,
            self.user_id,
            "/".join(self.names),
        )

    @dav_errors()
    def copy_move_single(self, dest_path: str, *, is_move: bool) -> None:
        destination = _names_of(dest_path)
        runtime, tenant = self.request.runtime, self.request.tenant
        with dav_errors():
            copy_file(runtime, tenant, self.user_id, self.names, destination, self.user_id)
        self._copy_properties_to(destination)
