"""Which URLs a webhook may have, and which addresses a delivery may connect to.

Tenant admins choose the URLs, and the server makes the requests from inside
the operator's network. Without a check, a tenant admin could make the server
call internal services (a database console, a cloud metadata endpoint at
169.254.169.254) and read their response statuses in the delivery list. So, unless the
operator turns `webhook_block_private_addresses` off, every address that is
not public is refused, and `webhook_blocked_networks` adds the operator's own
networks. URLs are checked when they are saved, by their text, and again at
each delivery, on every address their host resolves to. The delivery then
connects to one of the checked addresses, so a DNS answer that changes
between the check and the connection cannot redirect it.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from strongroom.base.config import IPNetwork, Settings
from strongroom.base.errors import InvalidInput
from strongroom.base.logging import get_logger
from strongroom.webhooks.models import MAX_URL_LENGTH

log = get_logger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
SCHEMES = {"http": 80, "https": 443}
# Digits, dots and hexadecimal: what the legacy IPv4 forms of inet_aton are made of.
LEGACY_IPV4 = re.compile(r"[0-9a-fx.]+", re.IGNORECASE)
HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)", re.IGNORECASE)
MAX_HOST_NAME_LENGTH = 253


class BlockedAddress(Exception):
    """A delivery's host resolved to an address that the settings forbid, or to none."""


@dataclass(frozen=True)
class Target:
    """The destination of a delivery: the URL's parts and the checked address to connect to."""

    url: SplitResult
    host: str
    port: int
    address: IPAddress


def check_url(text: str, settings: Settings) -> str:
    """Return the URL with surrounding blanks removed, or raise InvalidInput saying what to fix.

    A host given as a name is only resolved at delivery, because a name that
    does not resolve yet may be set up later.
    """
    url = text.strip()
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(
            f"the webhook URL has {len(url)} characters; use at most {MAX_URL_LENGTH}"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise InvalidInput(f"{url!r} is not a valid URL ({error}); use https://HOST/PATH") from None
    if parts.scheme not in SCHEMES:
        raise InvalidInput(
            f"the webhook URL {url!r} uses the scheme {parts.scheme or 'none'!r}; use http or https"
        )
    if not parts.hostname:
        raise InvalidInput(f"the webhook URL {url!r} has no host; use https://HOST/PATH")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(
            "the webhook URL contains a user name or password, which would be stored and shown "
            "in plain text; remove it and have the receiver check the signature instead"
        )
    if parts.fragment:
        raise InvalidInput(f"the webhook URL {url!r} has a fragment (#...); remove it")
    if port == 0:
        raise InvalidInput(f"the webhook URL {url!r} has port 0; use a port from 1 to 65535")
    _check_host_text(parts.hostname, url, settings)
    return url


def _check_host_text(host: str, url: str, settings: Settings) -> None:
    """Reject an address literal or a local name that deliveries would refuse anyway."""
    reason = None
    address = parse_address(host)
    if address is not None:
        reason = blocked_reason(address, settings)
    elif settings.webhook_block_private_addresses and _is_local_name(host):
        reason = "it names this machine"
    if reason is not None:
        raise InvalidInput(
            f"the webhook URL {url!r} is not allowed because {reason}; use a public address, "
            "or ask the operator to allow private addresses for webhooks"
        )
    if address is None and not is_host_name(host):
        raise InvalidInput(
            f"the webhook URL {url!r} has the host {host!r}, which is neither an IP address nor "
            "a valid DNS name; use a name of letters, digits, hyphens and dots, or an address"
        )


def parse_address(host: str) -> IPAddress | None:
    """Return the IP address that a URL's host spells, or None when the host is a name.

    Resolvers accept more spellings of IPv4 than `ipaddress` does: the legacy
    forms of `inet_aton` (`127.1`, `2130706433`, `0x7f000001`, octal `0177.0.0.1`),
    a trailing dot, and a zone after `%`. Each of them is read here as the
    address it names, so that the checks see the address a delivery would reach.
    """
    text = host.removesuffix(".").partition("%")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    # inet_aton ignores anything after a blank, so only plain numeric forms reach it.
    if not LEGACY_IPV4.fullmatch(text):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        return None


def is_host_name(host: str) -> bool:
    """Return True when the host is a valid DNS host name (RFC 1123), international ones included.

    A name whose last label is all digits is rejected too, because no top-level
    domain is numeric and resolvers may read such a name as an address.
    """
    name = host.removesuffix(".")
    try:
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = ascii_name.split(".")
    if len(ascii_name) > MAX_HOST_NAME_LENGTH or labels[-1].isdigit():
        return False
    return all(HOST_LABEL.fullmatch(label) for label in labels)


def _is_local_name(host: str) -> bool:
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def blocked_reason(address: IPAddress, settings: Settings) -> str | None:
    """Return why deliveries may not connect to the address, or None when they may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for network in settings.webhook_blocked_network_list:
        if _contains(network, address):
            return f"{address} is in the blocked network {network}"
    if settings.webhook_block_private_addresses and not address.is_global:
        return f"{address} is not a public address"
    if settings.webhook_block_private_addresses and address.is_multicast:
        return f"{address} is a multicast address"
    return None


def _contains(network: IPNetwork, address: IPAddress) -> bool:
    return network.version == address.version and address in network


def resolve_target(url: str, settings: Settings) -> Target:
    """Resolve the URL's host and return where to connect; raise BlockedAddress if none may be used.

    Every address the host resolves to is checked, so that a name with one
    public and one private address is refused as a whole.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or SCHEMES[parts.scheme]
    addresses = _resolve(host, port)
    if not addresses:
        raise BlockedAddress(f"the host {host!r} resolved to no address")
    for address in addresses:
        reason = blocked_reason(address, settings)
        if reason is not None:
            # The address stays in the operator's log: tenant admins see only that it is blocked,
            # so deliveries cannot map the operator's internal names to addresses.
            log.info("webhook_address_blocked", host=host, reason=reason)
            raise BlockedAddress(
                f"the host {host!r} resolves to an address that webhooks may not reach; use a "
                "public address, or ask the operator which networks are blocked"
            )
    return Target(url=parts, host=host, port=port, address=addresses[0])


def _resolve(host: str, port: int) -> Sequence[IPAddress]:
    address = parse_address(host)
    if address is not None:
        return [address]
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise BlockedAddress(f"the host {host!r} could not be resolved: {error}") from None
    addresses: list[IPAddress] = []
    for _family, _type, _protocol, _name, sockaddr in found:
        # An IPv6 link-local address carries a zone ("%eth0"), which ip_address rejects.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses
