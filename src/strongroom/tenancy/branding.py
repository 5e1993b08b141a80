"""Tenant branding: the display name, colour and logo that every web page of a tenant shows.

Branding is the `branding` section of the tenant's settings in the catalog.
The logo is kept there too, base64-encoded, which is why it is small: at
most MAX_LOGO_BYTES, in a raster format that browsers show without running
anything (SVG can carry scripts, so it is not accepted).
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
import unicodedata
import uuid
from dataclasses import dataclass

from strongroom.base.errors import InvalidInput
from strongroom.tenancy.catalog import Catalog
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.events import Actor, Target, record_event
from strongroom.tenancy.isolation import TenantStores

SECTION = "branding"
DEFAULT_COLOUR = "#1d4e89"
MAX_DISPLAY_NAME = 100
MAX_LOGO_BYTES = 100 * 1024
COLOUR_PATTERN = re.compile(r"#[0-9a-f]{6}")

# Media types by the first bytes of the file, as each format's specification fixes them.
LOGO_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


@dataclass(frozen=True)
class Branding:
    display_name: str
    colour: str
    logo_type: str | None = None
    # The start of the logo's SHA-256, which changes the logo's URL when the logo changes.
    logo_digest: str | None = None

    @property
    def text_colour(self) -> str:
        """Return black or white, whichever reads better on the brand colour (WCAG luminance)."""
        red, green, blue = (int(self.colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
        luminance = 0.2126 * _linear(red) + 0.7152 * _linear(green) + 0.0722 * _linear(blue)
        return "#111111" if luminance > 0.179 else "#ffffff"


def _linear(channel: float) -> float:
    return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4


def check_display_name(name: str) -> str:
    cleaned = unicodedata.normalize("NFC", name).strip()
    if not cleaned:
        raise InvalidInput("the display name is empty; give the name people should see")
    if len(cleaned) > MAX_DISPLAY_NAME:
        raise InvalidInput(
            f"the display name has {len(cleaned)} characters; use at most {MAX_DISPLAY_NAME}"
        )
    if any(unicodedata.category(c) in {"Cc", "Cf", "Zl", "Zp"} for c in cleaned):
        raise InvalidInput("the display name contains control or invisible characters; remove them")
    return cleaned


def check_colour(colour: str) -> str:
    value = colour.strip().lower()
    if not COLOUR_PATTERN.fullmatch(value):
        raise InvalidInput(f"{colour!r} is not a colour; write it as #rrggbb, such as #1d4e89")
    return value


def logo_media_type(data: bytes) -> str:
    """Return the logo's media type from its first bytes, or raise InvalidInput."""
    if len(data) > MAX_LOGO_BYTES:
        raise InvalidInput(
            f"the logo has {len(data)} bytes; use an image of at most {MAX_LOGO_BYTES // 1024} KiB"
        )
    for signature, media_type in LOGO_SIGNATURES:
        if data.startswith(signature):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    raise InvalidInput("the logo is not a PNG, JPEG, GIF or WebP image; upload one of those")


def branding_of(tenant: TenantInfo, settings: dict) -> Branding:
    section = settings.get(SECTION) or {}
    logo = section.get("logo")
    return Branding(
        display_name=section.get("display_name") or tenant.name,
        colour=section.get("colour") or DEFAULT_COLOUR,
        logo_type=logo["media_type"] if logo else None,
        logo_digest=logo["sha256"][:16] if logo else None,
    )


def get_logo(catalog: Catalog, tenant: TenantInfo) -> tuple[bytes, str] | None:
    """Return the tenant's logo and its media type, or None when it has none."""
    logo = (catalog.tenant_settings(tenant.id).get(SECTION) or {}).get("logo")
    if not logo:
        return None
    return base64.b64decode(logo["data"]), logo["media_type"]


def set_branding(
    catalog: Catalog,
    stores: TenantStores,
    tenant: TenantInfo,
    actor: Actor,
    display_name: str,
    colour: str,
    logo: bytes | None = None,
    remove_logo: bool = False,
) -> Branding:
    """Check and store the tenant's branding; the logo stays unless a new one or removal is given."""
    section = {"display_name": check_display_name(display_name), "colour": check_colour(colour)}
    before = catalog.tenant_settings(tenant.id).get(SECTION) or {}
    current = before.get("logo")
    if logo:
        section["logo"] = {
            "media_type": logo_media_type(logo),
            "sha256": hashlib.sha256(logo).hexdigest(),
            "data": base64.b64encode(logo).decode("ascii"),
        }
    elif current and not remove_logo:
        section["logo"] = current
    settings = catalog.set_settings_section(tenant.id, SECTION, section)
    old, new = _audited(before), _audited(section)
    if old != new:
        record_event(
            stores, tenant, "branding_changed", actor, target=Target("tenant", tenant.id),
            old=old, new=new,
        )
    return branding_of(tenant, settings)


def _audited(section: dict) -> dict:
    """Return the branding as the audit trail records it: the logo by its digest, not its bytes."""
    logo = section.get("logo")
    return {
        "display_name": section.get("display_name"),
        "colour": section.get("colour"),
        "logo_sha256": logo["sha256"] if logo else None,
    }


class BrandingCache:
    """Branding read recently, so that a page costs no catalog query in the common case.

    An entry lives `seconds`; a change made through this process replaces it
    at once, and one made by another replica shows here within `seconds`.
    """

    def __init__(self, catalog: Catalog, seconds: float) -> None:
        self.catalog = catalog
        self.seconds = seconds
        self._entries: dict[uuid.UUID, tuple[float, Branding]] = {}
        self._lock = threading.Lock()

    def get(self, tenant: TenantInfo) -> Branding:
        with self._lock:
            entry = self._entries.get(tenant.id)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        branding = branding_of(tenant, self.catalog.tenant_settings(tenant.id))
        self.put(tenant.id, branding)
        return branding

    def put(self, tenant_id: uuid.UUID, branding: Branding) -> None:
        if self.seconds <= 0:
            return
        with self._lock:
            if len(self._entries) >= 10_000:
                self._entries.clear()
            self._entries[tenant_id] = (time.monotonic() + self.seconds, branding)
