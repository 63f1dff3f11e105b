"""Open the owner's sealed answer, download each granted clip, check it, write the bundle.

Usage::

    sealed = wait_for_answer(me, request_id)             # retained on the answer topic
    ids = fetch_into(me, sealed, out_dir, get=http_get)  # DoorwardError if anything is off

``fetch_into`` refuses, before downloading anything: an answer that is not sealed to this
requester, a denial (it says so, with the owner's reason), a grant not signed by an owner whom a
device-signed ledger entry names as paired, a grant for another request or requester, an expired
grant. Then per clip: the manifest's SHA-256 as granted and its device signature, the sealed
object's SHA-256 as the manifest and grant say, the requester header joined to the payload opens
with this requester's identity. Only then is anything written; the bundle is verified again as
``doorward verify-bundle`` would.
"""

from __future__ import annotations

import hashlib
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from agent.errors import DoorwardError
from agent.requester.ask import Broker, answer_topic, recall
from agent.requester.bundle import BundleClip, ledger_story_problem, verify_bundle, write_bundle
from agent.requester.identity import RequesterIdentity
from uplink import (
    Grant,
    GrantEnvelope,
    UplinkError,
    b64u_decode,
    check_ledger_entry,
    decrypt,
    device_id_for,
    ed25519_public_from_raw,
    file_key_of,
    join_header,
    loads_strict,
    paired_owner_ids,
    verify_grant,
    verify_manifest,
    verify_request,
)

MAX_OBJECT_BYTES = 2 << 30
Getter = Callable[[str], bytes]


def http_get(url: str) -> bytes:
    """GET a presigned URL (the bucket refuses it once expired: 403)."""
    if not url.startswith(("https://", "http://")):
        raise DoorwardError(f"refusing a non-HTTP URL in the grant: {url[:40]!r}")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            data: bytes = resp.read(MAX_OBJECT_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise DoorwardError(f"the bucket refused a download ({exc.code}): the grant's links "
                            "have expired or were withdrawn; ask the owner again") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DoorwardError(f"cannot download from the bucket: {exc}") from exc
    if len(data) > MAX_OBJECT_BYTES:
        raise DoorwardError("an object in the grant is larger than any clip can be")
    return data


def wait_for_answer(me: RequesterIdentity, request_id: str, *, timeout: float = 15.0) -> bytes:
    """The sealed answer to ``request_id`` (retained by the broker), or DoorwardError."""
    doc = recall(me, request_id)
    topic = answer_topic(doc["device"], request_id)
    with Broker(doc["broker"], timeout) as b:
        b.connect([topic])
        payload = b.wait(lambda m: m.topic == topic, timeout)
    if payload is None:
        raise DoorwardError(f"no answer to {request_id} yet: the owner has not decided "
                            "(try again later)")
    return payload


def open_answer(me: RequesterIdentity, sealed: bytes, request_id: str,
                now: float) -> tuple[GrantEnvelope, Grant]:
    """The envelope and its verified grant (DoorwardError for a denial or anything invalid)."""
    try:
        env = GrantEnvelope.from_json(loads_strict(decrypt(sealed, [me.identity])))
    except (UplinkError, ValueError) as exc:
        raise DoorwardError(f"the answer to {request_id} is not sealed to you or is "
                            f"malformed: {exc}") from exc
    if env.request_id != request_id:
        raise DoorwardError(f"the answer is for {env.request_id}, not {request_id}")
    if env.grant is None:
        why = f": {env.denied_reason}" if env.denied_reason else ""
        raise DoorwardError(f"the owner denied request {request_id}{why}")
    try:
        raw = b64u_decode(env.device_public_key)
        device_key = ed25519_public_from_raw(raw)
        for e in env.ledger:
            problem = check_ledger_entry(e, device_key)
            if problem:
                raise DoorwardError(f"the answer's ledger proof is broken: {problem}")
        request = verify_request(env.request)
        grant = verify_grant(env.grant, paired_owner_ids(env.ledger), now=now)
    except UplinkError as exc:
        raise DoorwardError(f"the grant for {request_id} is refused: {exc}") from exc
    if (request.id, request.requester, request.device_id) != (request_id, me.key_id,
                                                               device_id_for(raw)) \
            or (grant.request_id, grant.requester, grant.device_id) != (
                request_id, me.key_id, request.device_id):
        raise DoorwardError("the grant does not answer your request to this device: refused")
    story = ledger_story_problem([dict(e) for e in env.ledger], request.id, request.reason_hash,
                                 grant)
    if story:
        raise DoorwardError(f"the grant for {request_id} is refused: {story}")
    if sorted(env.urls) != sorted(grant.clip_ids()):
        raise DoorwardError("the answer's links do not match the granted clips: refused")
    return env, grant


def fetch_into(me: RequesterIdentity, sealed_answer: bytes, request_id: str, out: Path, *,
               get: Getter = http_get, now: float | None = None) -> list[str]:
    """Check and download every granted clip, then write ``out`` (see the module doc)."""
    env, grant = open_answer(me, sealed_answer, request_id, time.time() if now is None else now)
    device_key = ed25519_public_from_raw(b64u_decode(env.device_public_key))
    clips: list[BundleClip] = []
    for granted in grant.clips:
        urls = env.urls[granted.id]
        manifest = get(urls.manifest)
        if hashlib.sha256(manifest).hexdigest() != granted.manifest_sha256:
            raise DoorwardError(f"{granted.id}: the manifest is not the one the owner granted")
        sealed = get(urls.sealed)
        digest = hashlib.sha256(sealed).hexdigest()
        try:
            m = verify_manifest(manifest, device_key)
            if m.clip is None or m.clip.sha256 != digest or digest != granted.sealed_sha256:
                raise DoorwardError(f"{granted.id}: the sealed clip's SHA-256 is not the one "
                                    "the device signed: altered in the bucket")
            joined = join_header(get(urls.header), sealed)
            plaintext = decrypt(joined, [me.identity])
            file_key = file_key_of(joined, [me.identity])
        except UplinkError as exc:
            raise DoorwardError(f"{granted.id}: {exc}") from exc
        clips.append(BundleClip(granted.id, file_key, sealed, manifest.decode("ascii"),
                                plaintext))
    write_bundle(out, device_public_key=env.device_public_key, request=env.request,
                 grant=str(env.grant), ledger=[dict(e) for e in env.ledger], clips=clips)
    report = verify_bundle(out)
    if not report.ok:
        raise DoorwardError(f"the bundle written to {out} does not verify: {report}")
    return grant.clip_ids()
