"""One HTTP attempt of a delivery: a POST to the checked address, with short timeouts.

The request goes to the address that `addresses.resolve_target` checked,
while the Host header and the TLS server name stay the URL's host, so that
virtual hosts and certificates work as for a request by name. Redirects are
not followed, because their target would escape the address check, and the
response body is never read, so a receiver cannot make the worker hold a
large response in memory.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlunsplit

import httpx

from strongroom import __version__
from strongroom.webhooks.addresses import Target

USER_AGENT = f"Strongroom-Webhooks/{__version__}"


@dataclass(frozen=True)
class Outcome:
    """The end of an attempt: the response status, or the error that prevented a response."""

    status: int | None
    error: str | None

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def post(target: Target, body: bytes, headers: dict[str, str], timeout: float) -> Outcome:
    """POST the body to the target and return how it ended; network failures are not raised."""
    request_headers = {
        **headers,
        "Host": _host_header(target),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }
    extensions = {}
    if target.url.scheme == "https" and not _is_address(target.host):
        extensions["sni_hostname"] = target.host
    try:
        # trust_env is off so that proxy variables cannot send the request around the check.
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            request = client.build_request(
                "POST",
                _address_url(target),
                content=body,
                headers=request_headers,
                extensions=extensions,
            )
            # Streamed and closed unread: only the status matters.
            response = client.send(request, stream=True)
            response.close()
            status = response.status_code
    except httpx.TimeoutException:
        return Outcome(None, f"timed out after {timeout:g} seconds")
    except httpx.HTTPError as error:
        return Outcome(None, f"{type(error).__name__}: {error}")
    if 200 <= status < 300:
        return Outcome(status, None)
    return Outcome(status, f"the receiver responded with HTTP {status}")


def _address_url(target: Target) -> str:
    address = str(target.address)
    if target.address.version == 6:
        address = f"[{address}]"
    path = target.url.path or "/"
    return urlunsplit((target.url.scheme, f"{address}:{target.port}", path, target.url.query, ""))


def _host_header(target: Target) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    default = 443 if target.url.scheme == "https" else 80
    return host if target.port == default else f"{host}:{target.port}"


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
