"""Sending attacks at the live server and judging the replies.

A `Probe` is one request an intruder sends, and the `Oracle` judges its
reply. A reply leaks when it is a server error, a success where only the
victim's own token may succeed, or a status other than the expected one. It
also leaks when it contains anything of the victim that the intruder had not
sent itself: ids, names, contents, hashes, token secrets, sizes or the usage
total. An id the intruder put in a URL may come back in the error message,
but the name of a file it never named may not. The `Attacker` sends probes,
counts them, and after each round compares the victim with its snapshot.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import httpx

from tests.security.estate import Estate, snapshot
from tests.security.raw_http import Reply, send_raw
from tests.security.routes import (
    FILES_FORM,
    GROUP_NAME,
    MODULES,
    MOVE,
    NEW_EXPORT,
    NEW_GUEST,
    NEW_LINK,
    NEW_SHARE,
    NEW_TOKEN,
    NEW_UPLOAD_REQUEST,
    NEW_WEBHOOK,
    PARAMETER_KINDS,
    PASSWORD_FORM,
    PERMISSION,
    RESTORE,
    SETTINGS,
    TUS,
    TUS_APPEND,
    TUS_CREATION,
    UPLOAD,
    WEBHOOK_CHANGE,
    Route,
)
from tests.security.tally import Tally

BASE_DOMAIN = "strongroom.test"

# Even in length, like every size of the intruder's own files (see estate.py).
INTRUDER_BODY = b"written by an intruder"
# Where an intruder would have the victim's events sent.
INTRUDER_WEBHOOK_URL = "https://intruder.example.test/collect"
FILES_FORM_BOUNDARY = "intruder-boundary"
FILES_FORM_BODY = (
    f"--{FILES_FORM_BOUNDARY}\r\n"
    'Content-Disposition: form-data; name="csrf"\r\n\r\nforged\r\n'
    f"--{FILES_FORM_BOUNDARY}\r\n"
    'Content-Disposition: form-data; name="files"; filename="dropped.txt"\r\n'
    "Content-Type: text/plain\r\n\r\n"
).encode() + INTRUDER_BODY + f"\r\n--{FILES_FORM_BOUNDARY}--\r\n".encode()

UUID_PATTERN = re.compile(
    r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.IGNORECASE
)
NUMBER_PATTERN = re.compile(r"\b\d+\b")
TEMPLATE_PARAMETER = re.compile(r"\{(\w+)(?::\w+)?\}")


def squash(text: str) -> str:
    """Lowercase without hyphens, so an id matches in any of the spellings a UUID parser accepts."""
    return text.lower().replace("-", "")


@dataclass(frozen=True)
class Probe:
    """One request of an intruder."""

    route: Route
    target: str  # path and query as sent, already percent-encoded where needed
    host: str | None = None  # None keeps the client's own Host header
    token: str | None = None
    body: bytes = b""
    content_type: str | None = None
    raw: bool = False  # send through raw_http, exactly as written
    guarded: bool = False  # a success would mean the victim served the intruder
    expect: frozenset[int] | None = None
    extra_headers: tuple[tuple[str, str], ...] = ()
    # Headers the route's protocol needs to reach its handler, such as tus's.
    protocol_headers: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        host = f" Host: {self.host}" if self.host is not None else ""
        return f"{self.route.method} {self.target}{host}"

    @property
    def sent_text(self) -> str:
        """Return everything the intruder wrote, decoded, for the oracle's record of what it sent."""
        parts = [
            self.target,
            unquote(self.target),
            self.host or "",
            *(v for _, v in self.extra_headers),
            *(v for _, v in self.protocol_headers),
            *map(decoded_metadata, self.protocol_headers),
        ]
        return "\n".join([*parts, self.body.decode("latin-1")])


def decoded_metadata(header: tuple[str, str]) -> str:
    """Return the path a tus Upload-Metadata header names in base64, for the record of what was sent."""
    name, value = header
    if name != "Upload-Metadata":
        return ""
    return base64.b64decode(value.partition(" ")[2]).decode()


def fill(route: Route, values: dict[str, str]) -> str:
    """Put the values into the route's path, encoding ids fully and paths all but their slashes."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        safe = "/" if PARAMETER_KINDS[name] == "path" else ""
        return quote(values[name], safe=safe)

    return TEMPLATE_PARAMETER.sub(value, route.path)


def body_for(
    route: Route, source: str, destination: str, overwrite: bool, recipient: dict[str, str]
) -> dict[str, Any]:
    """Return a body that would do harm if it got through, with its content type and the
    headers its protocol needs.

    `recipient` names a user or group, as `{"user_id": ...}` or `{"group_id": ...}`,
    for a new share of `source`.
    """
    tus = (("Tus-Resumable", "1.0.0"),)
    if route.body == UPLOAD:
        return {"body": INTRUDER_BODY, "content_type": "application/octet-stream"}
    document: dict[str, object] | None = None
    if route.body == MOVE:
        document = {"from": source, "to": destination, "overwrite": overwrite}
    elif route.body in (NEW_TOKEN, GROUP_NAME):
        document = {"name": "intruder"}
    elif route.body == NEW_SHARE:
        document = {"path": source, "permission": "write", **recipient}
    elif route.body == PERMISSION:
        document = {"permission": "write"}
    elif route.body in (NEW_LINK, NEW_UPLOAD_REQUEST):
        document = {"path": source}
    elif route.body == RESTORE:
        document = {"number": 1}
    elif route.body in (NEW_WEBHOOK, WEBHOOK_CHANGE):
        document = {"url": INTRUDER_WEBHOOK_URL, "events": ["file.created"], "active": True}
    elif route.body == NEW_GUEST:
        document = {"email": "invited.by.intruder@example.test"}
    elif route.body == NEW_EXPORT:
        document = {"kind": "audit"}
    if document is not None:
        return {"body": json.dumps(document).encode(), "content_type": "application/json"}
    if route.body == PASSWORD_FORM:
        return {
            "body": b"password=a+guessed+password&csrf=forged",
            "content_type": "application/x-www-form-urlencoded",
        }
    if route.body == FILES_FORM:
        return {
            "body": FILES_FORM_BODY,
            "content_type": f"multipart/form-data; boundary={FILES_FORM_BOUNDARY}",
        }
    if route.body == SETTINGS:
        return {
            "body": json.dumps({"display_name": "intruder"}).encode(),
            "content_type": "application/merge-patch+json",
        }
    if route.body == MODULES:
        return {"body": json.dumps({"versioning": False}).encode(), "content_type": "application/json"}
    if route.body == TUS_CREATION:
        # A value may be empty, and then has no space before it (the root's path is "").
        metadata = " ".join(["filename", base64.b64encode(source.encode()).decode()]).strip()
        creation = (("Upload-Length", str(len(INTRUDER_BODY))), ("Upload-Metadata", metadata))
        return {"protocol_headers": tus + creation}
    if route.body == TUS_APPEND:
        return {
            "body": INTRUDER_BODY,
            "content_type": "application/offset+octet-stream",
            "protocol_headers": (*tus, ("Upload-Offset", "0")),
        }
    if route.body == TUS:
        return {"protocol_headers": tus}
    return {}


@dataclass
class Oracle:
    """The judge of replies: what in them is the victim's and was not sent by the intruder."""

    victim: Estate
    intruder: Estate
    known: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.ids = {squash(text): f"id {text}" for text in self.victim.all_ids}
        self.ids.update({squash(text): f"hidden id {text}" for text in self.victim.hidden_ids})
        self.names = self.victim.names
        # An address both tenants have is the intruder's own as well.
        emails = set(self.victim.emails) - set(self.intruder.emails)
        self.secrets = [*self.victim.hidden_text, *sorted(emails)]

    def learn(self, probe: Probe) -> None:
        """Record the victim's ids and names that the probe contains, as known from now on."""
        text = probe.sent_text
        squashed = squash(text)
        self.known.update(marker for marker in self.ids if marker in squashed)
        self.known.update(name for name in self.names if name in text)

    def findings(self, probe: Probe, reply: Reply) -> list[str]:
        found = []
        if reply.status >= 500:
            found.append(f"server error {reply.status}")
        if probe.guarded and 200 <= reply.status < 300:
            found.append(f"status {reply.status}: a tenant route answered another tenant's token")
        if probe.expect is not None and reply.status not in probe.expect:
            found.append(f"status {reply.status}, expected one of {sorted(probe.expect)}")
        return found + self.leaked(reply)

    def leaked(self, reply: Reply) -> list[str]:
        text = reply.body.decode("latin-1") + "\n" + "\n".join(reply.headers.values())
        squashed = squash(text)
        found = [
            label
            for marker, label in self.ids.items()
            if marker in squashed and marker not in self.known
        ]
        found += [f"name {name}" for name in self.names if name in text and name not in self.known]
        found += [f"secret {marker[:24]}" for marker in self.secrets if marker in text]
        found += [f"number {n}" for n in numbers_in(reply) if n in self.victim.sizes]
        return found


def numbers_in(reply: Reply) -> set[int]:
    """Return the numbers in a reply: in JSON, in the length headers of file content, and in
    the offset and length headers of resumable uploads.

    The length of other bodies (metrics, for one) grows with the session and is no size of a file.
    """
    content_type = reply.headers.get("content-type", "")
    uploads = [reply.headers.get("upload-offset", ""), reply.headers.get("upload-length", "")]
    found = {int(n) for n in NUMBER_PATTERN.findall(" ".join(uploads))}
    if content_type == "application/octet-stream":
        lengths = [reply.headers.get("content-length", ""), reply.headers.get("content-range", "")]
        return found | {int(n) for n in NUMBER_PATTERN.findall(" ".join(lengths))}
    if "json" not in content_type:
        return found
    try:
        document = json.loads(reply.body)
    except ValueError:
        return found
    return found | set(_json_numbers(document))


def _json_numbers(value: Any) -> Iterator[int]:
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        yield value
    elif isinstance(value, str):
        # Ids would give false matches when a group of four hex digits happens to be a size.
        yield from (int(n) for n in NUMBER_PATTERN.findall(UUID_PATTERN.sub(" ", value)))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _json_numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_numbers(item)


class Leak(AssertionError):
    """An attack got something of the victim, or changed it."""


@dataclass
class Attacker:
    """The sender of one test's probes, which counts them and checks the victim after each round."""

    client: httpx.Client
    port: int
    victim: Estate
    intruder: Estate
    tally: Tally
    family: str
    where: str
    oracle: Oracle = field(init=False)
    baseline: dict[str, Any] = field(init=False)
    round: list[Probe] = field(default_factory=list)
    # Parts of the victim's snapshot that the intruder may change: the tenant's usage,
    # when the intruder is a user of the victim's own tenant.
    ignored: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.oracle = Oracle(self.victim, self.intruder)
        self.baseline = snapshot(self.client, self.victim)

    def send(self, probe: Probe) -> Reply:
        self.oracle.learn(probe)
        self.round.append(probe)
        self.tally.attempt(self.family, self.where)
        reply = self._deliver(probe)
        found = self.oracle.findings(probe, reply)
        if found:
            self.tally.leak(self.family, self.where)
            raise Leak(f"{probe}: {'; '.join(found)}\nreply: {reply.status} {reply.body[:300]!r}")
        return reply

    def end_round(self) -> None:
        """Compare the victim with its snapshot from before the test, through its own tokens."""
        probes, self.round = self.round, []
        now = snapshot(self.client, self.victim)
        changed = sorted(
            key for key in now if key not in self.ignored and now[key] != self.baseline[key]
        )
        if changed:
            self.tally.leak(self.family, self.where)
            sent = "\n".join(map(str, probes))
            raise Leak(f"the victim's {', '.join(changed)} changed during these requests:\n{sent}")

    def _deliver(self, probe: Probe) -> Reply:
        headers = [*probe.extra_headers, *probe.protocol_headers]
        if probe.token is not None:
            headers.append(("Authorization", f"Bearer {probe.token}"))
        if probe.content_type is not None:
            headers.append(("Content-Type", probe.content_type))
        if probe.raw:
            host = probe.host if probe.host is not None else f"127.0.0.1:{self.port}"
            encoded = [(b"Host", host.encode("utf-8"))]
            encoded += [(name.encode(), value.encode("utf-8")) for name, value in headers]
            return send_raw(
                self.port, probe.route.method, probe.target.encode(), encoded, probe.body
            )
        if probe.host is not None:
            headers.append(("Host", probe.host))
        response = self.client.request(
            probe.route.method, probe.target, headers=headers, content=probe.body or None
        )
        return Reply(
            response.status_code,
            {name.lower(): value for name, value in response.headers.items()},
            response.content,
        )
