"""The one error tree of Strongroom.

Every error a user can cause or meet is a `StrongroomError` subclass with a
stable `code`, an HTTP `status` and a message that names the value at fault
and what to do. The API turns them into `application/problem+json` (RFC 9457)
and the command line prints the message and exits non-zero. Exceptions of
libraries (database, storage, crypto) are translated into this tree where they
are caught and chained with `from`.
"""

from __future__ import annotations

from typing import Any


class StrongroomError(Exception):
    code = "error"
    status = 500
    title = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        self.headers: dict[str, str] = {}


class ConfigurationError(StrongroomError):
    code = "configuration"
    title = "Invalid configuration"


class InvalidInput(StrongroomError):
    code = "invalid-input"
    status = 400
    title = "Invalid input"


class InvalidPath(InvalidInput):
    code = "invalid-path"
    title = "Invalid path"


class NotAuthenticated(StrongroomError):
    code = "not-authenticated"
    status = 401
    title = "Authentication required"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers["WWW-Authenticate"] = 'Bearer realm="strongroom"'


class Forbidden(StrongroomError):
    code = "forbidden"
    status = 403
    title = "Forbidden"


class TenantSuspended(Forbidden):
    code = "tenant-suspended"
    title = "Tenant suspended"


class ModuleDisabled(Forbidden):
    code = "module-disabled"
    title = "Module disabled"


class GuestConfined(Forbidden):
    """A guest asked for something other than what was shared with them."""

    code = "guest-confined"
    title = "Not open to guests"


class BeyondPlan(Forbidden):
    """A change needs more than the tenant's plan allows: another user, or a module outside it."""

    code = "beyond-plan"
    title = "Not included in the plan"


class NotFound(StrongroomError):
    code = "not-found"
    status = 404
    title = "Not found"


class TenantNotFound(NotFound):
    code = "tenant-not-found"
    title = "Tenant not found"


class MethodNotAllowed(StrongroomError):
    """The address exists, but not for this HTTP method; `Allow` lists the methods it takes."""

    code = "method-not-allowed"
    status = 405
    title = "Method not allowed"

    def __init__(self, detail: str, allow: str, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers["Allow"] = allow


class RequestTimeout(StrongroomError):
    code = "request-timeout"
    status = 408
    title = "Request timeout"


class Conflict(StrongroomError):
    code = "conflict"
    status = 409
    title = "Conflict"


class AlreadyExists(Conflict):
    code = "already-exists"
    title = "Already exists"


class ExportLimitReached(Conflict):
    """A request for an export past the tenant's limits on exports and their bytes."""

    code = "export-limit-reached"
    title = "Export limit reached"


class Gone(StrongroomError):
    """Something that existed can no longer be used: an expired upload, link or upload request."""

    code = "gone"
    status = 410
    title = "Gone"


class PreconditionFailed(StrongroomError):
    code = "precondition-failed"
    status = 412
    title = "Precondition failed"


class PayloadTooLarge(StrongroomError):
    code = "payload-too-large"
    status = 413
    title = "Payload too large"


class BlockedFileType(StrongroomError):
    code = "blocked-file-type"
    status = 415
    title = "File type blocked"


class RateLimited(StrongroomError):
    """Too many requests, or too many transfers at once; `Retry-After` gives the seconds to wait."""

    code = "rate-limited"
    status = 429
    title = "Too many requests"

    def __init__(self, detail: str, retry_after: int, **extra: Any) -> None:
        super().__init__(detail, retry_after=retry_after, **extra)
        self.headers["Retry-After"] = str(retry_after)


class UnsupportedMediaType(StrongroomError):
    code = "unsupported-media-type"
    status = 415
    title = "Unsupported media type"


class QuotaExceeded(StrongroomError):
    code = "quota-exceeded"
    status = 507
    title = "Storage quota exceeded"


class ServerStorageFull(StrongroomError):
    """The server's own storage, its blob store or a database, has no room left (ENOSPC, EDQUOT, SQLITE_FULL).

    The status is 507, as for QuotaExceeded, but the fault is the server's:
    the operator must free space. Its responses carry SERVER_FAULT_HEADER,
    which the request middleware reads and removes, so that the metrics
    count it among the server's errors and not as a client's full quota.
    It is logged once, where the storage error is translated, so the
    handlers that turn it into a response do not log it again.
    """

    code = "server-storage-full"
    status = 507
    title = "Server storage full"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers[SERVER_FAULT_HEADER] = self.code


# A response header that marks a 5xx as the server's fault. It never leaves the server.
SERVER_FAULT_HEADER = "X-Strongroom-Server-Fault"


class RangeNotSatisfiable(StrongroomError):
    code = "range-not-satisfiable"
    status = 416
    title = "Range not satisfiable"

    def __init__(self, detail: str, size: int) -> None:
        super().__init__(detail, size=size)
        self.headers["Content-Range"] = f"bytes */{size}"


class ChecksumMismatch(StrongroomError):
    """A request body does not match the checksum sent with it (status 460 of the tus protocol)."""

    code = "checksum-mismatch"
    status = 460
    title = "Checksum mismatch"


class ServiceUnavailable(StrongroomError):
    code = "unavailable"
    status = 503
    title = "Service unavailable"


class SchemaOutOfDate(ServiceUnavailable):
    code = "schema-out-of-date"
    title = "Database schema out of date"


class IntegrityError(StrongroomError):
    """Stored data failed its integrity check: a blob that does not decrypt, or a missing blob."""

    code = "integrity"
    status = 500
    title = "Stored data failed its integrity check"


class MissingTenantContext(RuntimeError):
    """Tenant data was queried with no tenant bound: a programming error, never a user error."""


class TooManyRequests(StrongroomError):
    code = "too-many-requests"
    status = 429
    title = "Too many requests"

    def __init__(self, detail: str, retry_after: int, **extra: object) -> None:
        super().__init__(detail, retry_after=retry_after, **extra)
        self.headers["Retry-After"] = str(retry_after)


class PasswordRequired(NotAuthenticated):
    """A link or upload request with a password, opened without it or with a wrong one."""

    code = "password-required"
    title = "Password required"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers["WWW-Authenticate"] = 'Basic realm="strongroom link", charset="UTF-8"'
