"""The owner's side of footage requests: list, approve (re-wrap, presign, grant), deny.

``doorward owner requests list|approve|deny`` and the owner app's Requests page use this module.

- list: the signed command ``requests.list``; the device answers with each stored request sealed
  to the owners (opened and verified here: signed by the requester key it names, addressed to this
  device) and the counts of rate-limited and invalid ones. Each request gets the clips whose
  (sealed) capture times overlap its window, from the bucket's verified manifests.
- approve: only clips in the request's window (a clip outside it is refused: the owner decides
  about what was asked for). For each clip: download the sealed object, check it against its
  device-signed manifest, open its age header with the owner's identity and write a new header
  for the requester's recipient only (same file key, new MAC; :func:`uplink.rewrap_header`),
  stored as ``<prefix>/<device>/requests/<request>/<clip>.hdr`` — the clip itself is not
  re-uploaded. Then the device records ``request-approved`` (signed command ``requests.decide``)
  and returns the device-signed ledger entries that prove it; only after that the owner-signed
  grant, with presigned GET URLs valid until the grant expires, is sealed to the requester and
  published retained on ``doorward/<device>/answer/<request>``.
- deny: ``requests.decide`` with ``deny``, then a sealed denial on the same topic.

Choices: a grant lasts ``--days`` (default 2, at most 7: SigV4 presigned URLs cannot outlive 7
days, and a short life limits what a leaked link discloses); at most :data:`MAX_CLIPS` clips per
grant (the answer must fit one MQTT message); the bucket flags, once given, are remembered in
``requests-bucket.json`` in the owner directory.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from agent.errors import DoorwardError
from agent.owner.client import BrokerOptions, _Session, command
from agent.owner.keyring import OwnerKeyring, PairedDevice
from agent.owner.uplink_cli import _manifests, open_store, sealed_object
from uplink import (
    ClipUrls,
    FootageRequest,
    Grant,
    GrantedClip,
    GrantEnvelope,
    Manifest,
    ObjectStore,
    Recipient,
    UplinkError,
    b64u,
    canonical_json,
    decrypt,
    device_topic,
    encrypt,
    rewrap_header,
    sign_grant,
    std_b64_decode,
    unseal_times,
    verify_request,
)

MAX_CLIPS = 40
DEFAULT_DAYS = 2
MAX_DAYS = 7
BUCKET_MEMORY = "requests-bucket.json"
BUCKET_FLAGS = ("bucket", "endpoint_url", "prefix", "region", "addressing_style")


class Presigner(Protocol):
    def presign_get(self, key: str, expires_s: int) -> str: ...


def answer_topic(device_id: str, request_id: str) -> str:
    return device_topic(device_id, "answer", request_id)


def header_key(prefix: str, device_id: str, request_id: str, clip_id: str) -> str:
    return "/".join(p for p in (prefix.strip("/"), device_id, "requests", request_id,
                                f"{clip_id}.hdr") if p)


@dataclass(frozen=True)
class Listed:
    """One request as the owner sees it: the device's record and the opened, verified request."""

    id: str
    state: str
    received_at: int
    approved: list[str]
    request: FootageRequest | None  # None: sealed to an owner key that is not this one
    clips: list[str]
    token: str = ""  # the requester-signed request, as received

    def to_json(self) -> dict[str, Any]:
        r = self.request
        return {"id": self.id, "state": self.state, "received_at": self.received_at,
                "requester": {"key_id": r.requester, "name": r.name} if r else None,
                "from": r.start if r else None, "to": r.end if r else None,
                "reason": r.reason if r else None, "case": r.case if r else None,
                "clips": self.clips, "approved": self.approved}


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def clips_in_window(ring: OwnerKeyring, manifests: list[tuple[str, Manifest]],
                    req: FootageRequest) -> list[tuple[str, Manifest]]:
    """Verified clips (with video) whose sealed capture times overlap the request's window."""
    start, end = req.window()
    out = []
    for token, m in manifests:
        if m.clip is None:
            continue
        try:
            t = unseal_times(m, [ring.identity])
            began, ended = _epoch(str(t["started_at"])), _epoch(str(t["ended_at"]))
        except (UplinkError, ValueError, KeyError):
            continue  # cannot tell when it was recorded: never offered
        if began < end and ended > start:
            out.append((token, m))
    return sorted(out, key=lambda it: it[1].seq)


def list_requests(ring: OwnerKeyring, device: PairedDevice, broker: BrokerOptions,
                  manifests: list[tuple[str, Manifest]] | None,
                  timeout: float = 15.0) -> tuple[list[Listed], dict[str, int]]:
    """The device's requests (opened) with their clips in window, and the counted others."""
    reply = command(ring, device, broker, "requests.list", {}, timeout)
    result = reply.get("result", {})
    listed = []
    for rec in result.get("requests", []):
        token, req = _open(ring, device, rec)
        clips = [m.clip_id for _, m in clips_in_window(ring, manifests or [], req)] if req else []
        listed.append(Listed(str(rec["id"]), str(rec["state"]), int(rec["received_at"]),
                             list(rec.get("clips", [])), req, clips, token))
    return listed, {str(k): int(v) for k, v in result.get("counted", {}).items()}


def _open(ring: OwnerKeyring, device: PairedDevice,
          rec: dict[str, Any]) -> tuple[str, FootageRequest | None]:
    if not rec.get("sealed"):
        return "", None
    try:
        token = decrypt(std_b64_decode(rec["sealed"], "sealed request"), [ring.identity])
        req = verify_request(token)
    except (UplinkError, ValueError):
        return "", None
    if req.device_id != device.device_id or req.id != rec["id"]:
        return "", None
    return token.decode("ascii"), req


def _find(listed: list[Listed], request_id: str) -> Listed:
    found = next((x for x in listed if x.id == request_id), None)
    if found is None or found.request is None:
        raise DoorwardError(f"no request {request_id} on the device (or not readable with this "
                            "owner key): see `doorward owner requests list`")
    if found.state != "pending":
        raise DoorwardError(f"request {request_id} is already {found.state}")
    return found


def approve(ring: OwnerKeyring, device: PairedDevice, broker: BrokerOptions,
            store: ObjectStore, prefix: str, request_id: str, clip_ids: list[str] | None,
            days: int, *, timeout: float = 15.0, now: float | None = None) -> Grant:
    """Approve (see the module doc); returns the grant that was sent."""
    if not 1 <= days <= MAX_DAYS:
        raise DoorwardError(f"--days must be 1..{MAX_DAYS} (presigned links cannot live longer)")
    if not hasattr(store, "presign_get"):
        raise DoorwardError("this bucket cannot make presigned links")
    presigner: Presigner = store  # type: ignore[assignment]
    manifests, _ = _manifests(store, prefix, device)
    listed, _ = list_requests(ring, device, broker, manifests, timeout)
    item = _find(listed, request_id)
    req = item.request
    assert req is not None
    window = {m.clip_id: (token, m) for token, m in clips_in_window(ring, manifests, req)}
    chosen = list(window) if clip_ids is None else list(dict.fromkeys(clip_ids))
    outside = [c for c in chosen if c not in window]
    if outside or not chosen:
        raise DoorwardError(f"clips {outside or chosen} are not in the request's window "
                            f"{req.start} .. {req.end}: only clips in it can be approved"
                            if chosen else "no clips in the request's window: deny it instead")
    if len(chosen) > MAX_CLIPS:
        raise DoorwardError(f"at most {MAX_CLIPS} clips per approval; approve fewer")
    granted, urls = _rewrap_all(ring, store, prefix, device, req, [window[c] for c in chosen])
    reply = command(ring, device, broker, "requests.decide",
                    {"request": req.id, "decision": "approve", "clips": chosen}, timeout)
    ledger = list(reply["result"]["ledger"])
    at = int(time.time() if now is None else now)
    try:
        grant = Grant(request_id=req.id, device_id=device.device_id, owner=ring.key_id,
                      owner_public_key=b64u(ring.public_raw), requester=req.requester,
                      recipient=req.recipient, clips=tuple(granted), issued_at=at,
                      expires_at=at + days * 86400)
        life = grant.expires_at - at
        links = {c: ClipUrls(*(presigner.presign_get(k, life) for k in keys))
                 for c, keys in urls.items()}
        envelope = GrantEnvelope(req.id, item.token, device.public_key,
                                 sign_grant(grant, ring.key), tuple(ledger), links)
    except UplinkError as exc:
        raise DoorwardError(f"cannot make the grant for {req.id}: {exc}") from exc
    _send(broker, device, req, envelope, timeout)
    return grant


def _rewrap_all(ring: OwnerKeyring, store: ObjectStore, prefix: str, device: PairedDevice,
                req: FootageRequest, items: list[tuple[str, Manifest]]
                ) -> tuple[list[GrantedClip], dict[str, tuple[str, str, str]]]:
    granted, urls = [], {}
    recipient = Recipient.parse(req.recipient)
    for token, m in items:
        assert m.clip is not None
        sealed = sealed_object(store, m.clip)  # checked against the signed manifest
        try:
            header = rewrap_header(sealed, [ring.identity], [recipient])
        except UplinkError as exc:
            raise DoorwardError(f"cannot re-wrap clip {m.clip_id}: {exc}") from exc
        key = header_key(prefix, device.device_id, req.id, m.clip_id)
        try:
            store.put_bytes(key, header)
        except UplinkError as exc:
            raise DoorwardError(f"cannot store {key}: {exc}") from exc
        manifest_key = m.clip.key.removesuffix(".mp4.age") + ".manifest.jws"
        granted.append(GrantedClip(m.clip_id, hashlib.sha256(token.encode("ascii")).hexdigest(),
                                   m.clip.sha256))
        urls[m.clip_id] = (key, m.clip.key, manifest_key)
    return granted, urls


def deny(ring: OwnerKeyring, device: PairedDevice, broker: BrokerOptions, request_id: str,
         reason: str | None, *, timeout: float = 15.0) -> None:
    listed, _ = list_requests(ring, device, broker, None, timeout)
    item = _find(listed, request_id)
    req = item.request
    assert req is not None
    command(ring, device, broker, "requests.decide",
            {"request": req.id, "decision": "deny", "clips": None}, timeout)
    envelope = GrantEnvelope(req.id, item.token, device.public_key, None, (), {}, reason)
    _send(broker, device, req, envelope, timeout)


def _send(broker: BrokerOptions, device: PairedDevice, req: FootageRequest,
          envelope: GrantEnvelope, timeout: float) -> None:
    try:
        sealed = encrypt(canonical_json(envelope.to_json()), [Recipient.parse(req.recipient)])
        with _Session(broker, [], timeout) as s:
            s.publish(answer_topic(device.device_id, req.id), sealed, retain=True)
    except UplinkError as exc:
        raise DoorwardError(f"the decision on {req.id} is recorded on the device, but the answer "
                            f"could not be sent: {exc}") from exc


# -- remembered bucket flags ----------------------------------------------------------------------

def bucket_flags(owner_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The bucket flags given now, else the ones remembered; given ones are remembered."""
    path = owner_dir / BUCKET_MEMORY
    remembered: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    given = {k: getattr(args, k, None) for k in BUCKET_FLAGS}
    if given["bucket"]:
        flags = {k: v for k, v in given.items() if v is not None}
        path.write_text(json.dumps(flags, indent=1) + "\n")
        return flags
    return remembered


def store_from(flags: dict[str, Any]) -> tuple[ObjectStore, str] | None:
    if not flags.get("bucket"):
        return None
    prefix = flags.get("prefix") or "doorward"
    return open_store(flags["bucket"], endpoint_url=flags.get("endpoint_url"), prefix=prefix,
                      region=flags.get("region") or "us-east-1",
                      addressing_style=flags.get("addressing_style") or "auto"), prefix
