"""A tenant's estate for the attacks: data made through the API, what an attacker is handed,
and what it must never see.

Every name carries a random suffix, so that a name found in a response can
only have come from this tenant. Sizes are odd for the victim and even for the
intruder, and every body the intruder uploads has an even length. So the
intruder's own sizes and usage are always even, and an odd size in a response
can only be a victim's size or usage total.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.conftest import TEST_CHUNK_SIZE, Member

# Sizes of the seven versions an estate holds, for the victim. The intruder's are one less.
VERSION_SIZES = {
    "plan 1": 1001,
    "plan 2": 1003,
    "budget": 2 * TEST_CHUNK_SIZE + 123,  # three chunks, the last one short
    "ledger 1": 1005,
    "ledger 2": 1007,
    "old": 1009,
    "inner": 1011,
}
# The length of the victim's unfinished resumable upload, and the bytes it has received.
UPLOAD_LENGTH = 3001
UPLOAD_RECEIVED = 1013
TUS = {"Tus-Resumable": "1.0.0"}


@dataclass
class Estate:
    """What one tenant holds, sorted into what an attacker may be given and what it may not."""

    admin: Member
    member: Member
    suffix: str
    # Handed to the attacker: paths, and ids as the API returned them.
    paths: list[str] = field(default_factory=list)
    node_ids: list[str] = field(default_factory=list)
    version_ids: list[str] = field(default_factory=list)
    token_ids: list[str] = field(default_factory=list)
    app_password_ids: list[str] = field(default_factory=list)
    trash_ids: list[str] = field(default_factory=list)
    user_ids: list[str] = field(default_factory=list)
    upload_ids: list[str] = field(default_factory=list)
    share_ids: list[str] = field(default_factory=list)
    group_ids: list[str] = field(default_factory=list)
    link_ids: list[str] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    webhook_ids: list[str] = field(default_factory=list)
    delivery_ids: list[str] = field(default_factory=list)
    guest_ids: list[str] = field(default_factory=list)
    export_ids: list[str] = field(default_factory=list)
    # The tokens of its public links and upload requests: the victim's are never handed to
    # the intruder, except to show that they fail under the intruder's base URL.
    public_tokens: list[str] = field(default_factory=list)
    # Never handed out: ids, text and numbers only this tenant's own users can see.
    hidden_ids: list[str] = field(default_factory=list)
    hidden_text: list[str] = field(default_factory=list)
    sizes: set[int] = field(default_factory=set)
    # The e-mail addresses of its users, hidden unless the other tenant has the same one.
    emails: list[str] = field(default_factory=list)
    # Secrets of this tenant's tokens, for attacks where this estate is the intruder.
    tokens: list[str] = field(default_factory=list)
    # Paths whose content and versions a snapshot reads.
    live_files: list[str] = field(default_factory=list)

    @property
    def slug(self) -> str:
        return self.admin.tenant.slug

    @property
    def file_names(self) -> list[str]:
        """The last names of the handed-out paths, for routes that take one file name."""
        return sorted({path.rsplit("/", 1)[-1] for path in self.paths if path})

    @property
    def names(self) -> list[str]:
        """Every file and folder name in the handed-out paths."""
        return sorted({name for path in self.paths for name in path.split("/") if name})

    def ids_of(self, kind: str) -> list[str]:
        return {
            "node": self.node_ids,
            "version": self.version_ids,
            "token": self.token_ids,
            "app password": self.app_password_ids,
            "trash": self.trash_ids,
            "user": self.user_ids,
            "upload": self.upload_ids,
            "share": self.share_ids,
            "group": self.group_ids,
            "link": self.link_ids,
            "upload request": self.request_ids,
            "webhook": self.webhook_ids,
            "webhook delivery": self.delivery_ids,
            "guest": self.guest_ids,
            "export": self.export_ids,
        }[kind]

    @property
    def all_ids(self) -> list[str]:
        return [
            *self.node_ids,
            *self.version_ids,
            *self.token_ids,
            *self.app_password_ids,
            *self.trash_ids,
            *self.user_ids,
            *self.upload_ids,
            *self.share_ids,
            *self.group_ids,
            *self.link_ids,
            *self.request_ids,
            *self.webhook_ids,
            *self.delivery_ids,
            *self.guest_ids,
            *self.export_ids,
        ]

    @property
    def recipients(self) -> list[dict[str, str]]:
        """The users and groups a share could name, as the body of a new share names them."""
        users = [{"user_id": user_id} for user_id in self.user_ids]
        return users + [{"group_id": group_id} for group_id in self.group_ids]


def call(client: httpx.Client, member: Member, method: str, path: str, **kwargs: Any) -> Any:
    response = client.request(method, member.url(path), headers=member.headers, **kwargs)
    assert response.is_success, f"{method} {path}: {response.status_code} {response.text}"
    return response.json()


def content(slug: str, label: str, size: int) -> tuple[bytes, str]:
    """Return a body of `size` bytes and the marker it repeats, so any slice of it names it."""
    marker = f"[{slug} {label} {secrets.token_hex(6)}]"
    repeated = marker * (size // len(marker) + 1)
    return repeated[:size].encode(), marker


def build_estate(client: httpx.Client, admin: Member, member: Member, odd: bool) -> Estate:
    """Fill a tenant through its API: files with versions, a hidden folder, trash, a token and
    an app password."""
    estate = Estate(admin=admin, member=member, suffix=secrets.token_hex(4))
    slug, s = admin.tenant.slug, estate.suffix
    shift = 0 if odd else -1
    docs, plan, budget = f"docs-{s}", f"docs-{s}/plan-{s}.txt", f"docs-{s}/budget-{s}.bin"
    vault, ledger = f"vault-{s}", f"vault-{s}/ledger-{s}.txt"
    archive, old = f"archive-{s}", f"archive-{s}/old-{s}.txt"
    gone, inner = f"gone-{s}", f"gone-{s}/inner-{s}.txt"

    # Subscribed first, so that the uploads below make deliveries. No job consumer runs in
    # these tests, so the deliveries stay pending and nothing is sent.
    subscribe_webhook(client, estate)

    stored: dict[str, dict] = {}
    for label, (who, path) in {
        "plan 1": (member, plan),
        "plan 2": (member, plan),
        "budget": (admin, budget),
        "ledger 1": (admin, ledger),
        "ledger 2": (admin, ledger),
        "old": (member, old),
        "inner": (member, inner),
    }.items():
        body, marker = content(slug, label, VERSION_SIZES[label] + shift)
        stored[label] = call(client, who, "PUT", f"files/{path}", content=body)
        estate.hidden_text += [marker, hashlib.sha256(body).hexdigest()]
        estate.sizes.add(len(body))
    trashed_file = call(client, member, "DELETE", f"files/{old}")
    trashed_folder = call(client, member, "DELETE", f"folders/{gone}")
    spare = call(client, member, "POST", "tokens", json={"name": f"spare-{s}"})
    device = call(client, member, "POST", "me/app-passwords", json={"name": f"device-{s}"})

    folders = {
        path: call(client, admin, "GET", f"folders/{path}")["id"] for path in ("", docs, vault)
    }
    estate.paths = ["", docs, plan, budget, archive, old, gone, inner]
    estate.live_files = [plan, budget, ledger]
    estate.node_ids = [folders[""], folders[docs], stored["plan 2"]["id"], stored["budget"]["id"]]
    estate.node_ids += [call(client, member, "GET", f"folders/{archive}")["id"]]
    estate.node_ids += [trashed_file["id"], trashed_folder["id"], stored["inner"]["id"]]
    estate.trash_ids = [trashed_file["id"], trashed_folder["id"]]
    # Each file is in the drive of the user who uploaded it.
    for owner, path in ((member, plan), (admin, budget)):
        versions = call(client, owner, "GET", f"versions/{path}")["items"]
        estate.version_ids += [version["id"] for version in versions]
    ledger_versions = call(client, admin, "GET", f"versions/{ledger}")["items"]
    estate.hidden_ids = [
        folders[vault],
        stored["ledger 2"]["id"],
        *(v["id"] for v in ledger_versions),
    ]
    estate.hidden_ids.append(str(admin.tenant.id))
    estate.hidden_text += [vault, f"ledger-{s}.txt", f"spare-{s}", f"device-{s}"]
    estate.hidden_text.append(device["password"])
    estate.app_password_ids = [device["id"]]

    estate.tokens = [admin.token, member.token, spare["token"]]
    for someone in (admin, member):
        estate.token_ids += [t["id"] for t in call(client, someone, "GET", "tokens")["items"]]
        estate.hidden_text += [t["prefix"] for t in call(client, someone, "GET", "tokens")["items"]]
        me = call(client, someone, "GET", "me")
        estate.user_ids.append(me["id"])
    estate.hidden_text += estate.tokens
    start_upload(client, estate, f"inbox-{s}/upload-{s}.bin", shift)
    add_public_links(client, estate, budget, docs, vault)
    guest = call(client, member, "POST", "guests", json={"email": f"guest-{s}@{slug}.example.test"})
    estate.guest_ids = [guest["id"]]
    # No job consumer runs in these tests, so the export stays queued.
    export = call(client, admin, "POST", "admin/exports", json={"kind": "audit"})
    estate.export_ids = [export["id"]]
    estate.emails = [admin.email, member.email, guest["email"]]
    estate.sizes.add(call(client, admin, "GET", "usage")["used_bytes"])
    share_with_group(client, estate, docs, archive)
    # The budget as the group reaches it: its path inside the shared folder.
    estate.paths.append(f"budget-{s}.bin")
    webhook = estate.webhook_ids[0]
    made = call(client, admin, "GET", f"webhooks/{webhook}/deliveries")["items"]
    estate.delivery_ids = [delivery["id"] for delivery in made]
    assert estate.delivery_ids, "the uploads made no webhook deliveries"
    return estate


def subscribe_webhook(client: httpx.Client, estate: Estate) -> None:
    """Subscribe a webhook of the admin to every event; its URL and secret are hidden."""
    url = f"https://hooks-{estate.suffix}.example.test/in"
    events = ["file.created", "file.updated", "file.deleted", "share.created", "link.created"]
    webhook = call(client, estate.admin, "POST", "webhooks", json={"url": url, "events": events})
    estate.webhook_ids = [webhook["id"]]
    estate.hidden_text += [url, webhook["secret"]]


def start_upload(client: httpx.Client, estate: Estate, path: str, shift: int) -> None:
    """Create the member's unfinished resumable upload and send part of it."""
    member = estate.member
    metadata = "filename " + base64.b64encode(path.encode()).decode()
    length, received = UPLOAD_LENGTH + shift, UPLOAD_RECEIVED + shift
    headers = {**member.headers, **TUS, "Upload-Length": str(length), "Upload-Metadata": metadata}
    created = client.post(member.url("uploads/"), headers=headers)
    assert created.status_code == 201, created.text
    url = created.headers["location"]
    body, marker = content(estate.slug, "upload", received)
    appended = client.patch(
        url,
        content=body,
        headers={
            **member.headers,
            **TUS,
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert appended.status_code == 204, appended.text
    estate.upload_ids.append(url.rsplit("/", 1)[-1])
    estate.hidden_text += [marker, metadata, path.rsplit("/", 1)[-1]]
    estate.sizes.update({length, received})


def share_with_group(client: httpx.Client, estate: Estate, docs: str, archive: str) -> None:
    """Make a group of both users, share the admin's docs with it to write, and the member's
    archive with the admin to read."""
    admin, member = estate.admin, estate.member
    team = f"team-{estate.suffix}"
    group = call(client, admin, "POST", "groups", json={"name": team})
    call(client, admin, "PUT", f"groups/{group['id']}/members/{member.user_id}")
    to_group = {"path": docs, "group_id": group["id"], "permission": "write"}
    to_admin = {"path": archive, "user_id": str(admin.user_id), "permission": "read"}
    estate.share_ids = [
        call(client, admin, "POST", "shares", json=to_group)["id"],
        call(client, member, "POST", "shares", json=to_admin)["id"],
    ]
    estate.group_ids = [group["id"]]
    estate.hidden_text.append(team)


def add_public_links(
    client: httpx.Client, estate: Estate, file_path: str, folder_path: str, drop_folder: str
) -> None:
    """Share a file and a folder by link, and open an upload request into the hidden folder."""
    admin = estate.admin
    made = [
        call(client, admin, "POST", "links", json={"path": file_path}),
        call(client, admin, "POST", "links", json={"path": folder_path}),
    ]
    request = call(client, admin, "POST", "upload-requests", json={"path": drop_folder})
    estate.link_ids = [link["id"] for link in made]
    estate.request_ids = [request["id"]]
    estate.public_tokens = [item["url"].rsplit("/", 1)[-1] for item in [*made, request]]
    estate.hidden_text += estate.public_tokens


def snapshot(client: httpx.Client, estate: Estate) -> dict[str, Any]:
    """Read, through the tenant's own tokens, everything an attack could change."""
    drives = {}
    tokens = {}
    shares = {}
    for someone in (estate.admin, estate.member):
        drives[someone.email] = drive_snapshot(client, someone, estate.live_files)
        for token in call(client, someone, "GET", "tokens")["items"]:
            token.pop("last_used")  # the snapshot's own requests move it
            tokens[token["id"]] = token
    app_passwords = {}
    for someone in (estate.admin, estate.member):
        for item in call(client, someone, "GET", "me/app-passwords")["items"]:
            app_passwords[item["id"]] = item
    uploads = {}
    for upload_id in estate.upload_ids:
        reply = client.head(
            estate.member.url(f"uploads/{upload_id}"), headers={**estate.member.headers, **TUS}
        )
        uploads[upload_id] = (reply.status_code, reply.headers.get("upload-offset"))
    for someone in (estate.admin, estate.member):
        shares[someone.email] = {
            "own": call(client, someone, "GET", "shares")["items"],
            "received": call(client, someone, "GET", "shared-with-me")["items"],
        }
    groups = [
        call(client, estate.admin, "GET", f"groups/{group['id']}")
        for group in call(client, estate.admin, "GET", "groups")["items"]
    ]
    return {
        "drives": drives,
        "tokens": tokens,
        "uploads": uploads,
        "app_passwords": app_passwords,
        "shares": shares,
        "groups": groups,
        "usage": call(client, estate.admin, "GET", "usage"),
        "links": call(client, estate.admin, "GET", "links")["items"],
        "upload requests": call(client, estate.admin, "GET", "upload-requests")["items"],
        "webhooks": call(client, estate.admin, "GET", "webhooks")["items"],
        "webhook deliveries": [
            call(client, estate.admin, "GET", f"webhooks/{webhook}/deliveries")["items"]
            for webhook in estate.webhook_ids
        ],
        "guests": call(client, estate.admin, "GET", "guests")["items"],
        "exports": call(client, estate.admin, "GET", "admin/exports")["items"],
    }


def drive_snapshot(client: httpx.Client, owner: Member, live_files: list[str]) -> dict[str, Any]:
    """Read the folders and trash of one user's drive, and the files of `live_files` it holds."""
    tree: dict[str, list] = {}
    folders = [""]
    while folders:
        path = folders.pop()
        tree[path] = call(client, owner, "GET", f"folders/{path}")["items"]
        folders += [item["path"] for item in tree[path] if item["type"] == "folder"]
    in_drive = {item["path"] for items in tree.values() for item in items}

    contents = {}
    versions = {}
    for path in [path for path in live_files if path in in_drive]:
        contents[path] = client.get(owner.url(f"files/{path}"), headers=owner.headers).content
        versions[path] = call(client, owner, "GET", f"versions/{path}")["items"]
    trash = call(client, owner, "GET", "trash")["items"]
    return {"tree": tree, "contents": contents, "versions": versions, "trash": trash}
