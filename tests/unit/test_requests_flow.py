"""Footage requests with the in-memory twins: device desk, owner grant, requester fetch, bundle.

The real daemon, Mosquitto and SeaweedFS run the same flow in tests/e2e/test_requests_cli.py;
here every refusal is checked cheaply, each against the check that guards it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.device.consent import ConsentStore
from agent.device.database import DeviceDB
from agent.device.ledger import Ledger, verify_jsonl
from agent.device.owner_commands import CommandProcessor
from agent.device.requests import Limits, RequestDesk, register_request_commands
from agent.errors import DoorwardError
from agent.owner.requests import header_key
from agent.requester.ask import RequestOptions, build_request
from agent.requester.bundle import EVIDENCE, verify_bundle
from agent.requester.fetch import fetch_into
from agent.requester.identity import RequesterIdentity
from uplink import (
    ClipObject,
    ClipUrls,
    Grant,
    GrantedClip,
    GrantEnvelope,
    Identity,
    Manifest,
    MemoryObjectStore,
    Recipient,
    b64u,
    canonical_json,
    decrypt,
    device_id_for,
    encrypt,
    key_id_for,
    public_raw,
    rewrap_header,
    seal_times,
    sign_grant,
    sign_jws,
    sign_manifest,
    std_b64_decode,
    verify_request,
)

T0 = 1_796_320_000.0
CLIP = bytes(range(256)) * 700  # 175 KiB: three age chunks


@dataclass
class World:
    tmp: Path
    db: DeviceDB
    device_key: Ed25519PrivateKey
    device_id: str
    ledger: Ledger
    proc: CommandProcessor
    desk: RequestDesk
    owner_key: Ed25519PrivateKey
    owner: Identity
    me: RequesterIdentity
    store: MemoryObjectStore
    ctr: Any

    def command(self, cmd: str, args: dict[str, Any], *, key: Ed25519PrivateKey | None = None,
                now: float = T0 + 10) -> dict[str, Any]:
        signer = key or self.owner_key
        kid = key_id_for(public_raw(signer))
        topic = f"doorward/{self.device_id}/cmd"
        token = sign_jws({"iss": kid, "aud": self.device_id, "iat": int(now),
                          "exp": int(now) + 60, "jti": f"jti-{next(self.ctr):08d}",
                          "ctr": next(self.ctr), "cmd": cmd, "topic": topic, "args": args},
                         signer, kid=kid)
        resp = self.proc.handle(token, topic, now)
        assert resp.ok, (resp.reason, resp.detail)
        return resp.result

    def ask(self, start: str = "2026-12-03T18:00:00Z", end: str = "2026-12-03T19:00:00Z",
            me: RequesterIdentity | None = None) -> tuple[str, bytes]:
        req, token = build_request(me or self.me, RequestOptions(
            self.device_id, "mqtt://x", start, end, "hit and run, case 7", "CASE-7"), now=T0)
        return req.id, token.encode("ascii")


@pytest.fixture
def world(tmp_path: Path) -> World:
    db = DeviceDB(tmp_path / "device.sqlite")
    device_key = Ed25519PrivateKey.generate()
    device_id = device_id_for(public_raw(device_key))
    consent, ledger = ConsentStore(db), Ledger(db, device_key)
    owner_key, owner = Ed25519PrivateKey.generate(), Identity.generate()
    consent.add_owner(public_raw(owner_key), str(owner.recipient), "owner", T0)
    ledger.append("pairing", {"owner": key_id_for(public_raw(owner_key)),
                              "recipient": str(owner.recipient)}, T0)
    proc = CommandProcessor(db, consent, ledger, device_id, device_key)
    desk = RequestDesk(db, ledger, lambda: [owner.recipient], device_id, device_key,
                       limits=Limits(per_key=2, total=5))
    register_request_commands(proc, desk)
    me, _ = RequesterIdentity.init(tmp_path / "requester", name="Police, precinct 7")
    return World(tmp_path, db, device_key, device_id, ledger, proc, desk, owner_key, owner, me,
                 MemoryObjectStore(), itertools.count(1))


def upload_clip(w: World, clip_id: str) -> tuple[str, Manifest, str]:
    """A sealed clip and its signed manifest in the bucket, as the device uploads them."""
    base = f"doorward/{w.device_id}/2026/12/03/{clip_id}"
    sealed = encrypt(CLIP, [w.owner.recipient])
    w.store.put_bytes(base + ".mp4.age", sealed)
    m = Manifest(device_id=w.device_id, clip_id=clip_id, seq=1, prev_manifest="0" * 64,
                 objects={"clip": ClipObject(base + ".mp4.age", len(sealed),
                                             hashlib.sha256(sealed).hexdigest())},
                 recipients=(str(w.owner.recipient),),
                 sealed_times=seal_times(started_at="2026-12-03T18:10:00Z",
                                         ended_at="2026-12-03T18:10:20Z", duration_s=20,
                                         recipients=[w.owner.recipient]),
                 uploaded_at="2026-12-03T18:11:00Z")
    token = sign_manifest(m, w.device_key)
    w.store.put_bytes(base + ".manifest.jws", token.encode("ascii"))
    return token, m, base


def owner_answer(w: World, rid: str, clip_ids: list[str], *, signer: Ed25519PrivateKey | None
                 = None, days: int = 2, record: bool = True) -> bytes:
    """What agent.owner.requests.approve sends, built from the same parts (no broker here)."""
    signer = signer or w.owner_key
    listing = w.command("requests.list", {})
    rec = next(r for r in listing["requests"] if r["id"] == rid)
    token = decrypt(std_b64_decode(rec["sealed"], "x"), [w.owner])
    request = verify_request(token)
    granted, urls = [], {}
    for cid in clip_ids:
        mtoken, m, base = upload_clip(w, cid)
        assert m.clip is not None
        sealed = w.store.objects[m.clip.key]
        hkey = header_key("doorward", w.device_id, rid, cid)
        w.store.put_bytes(hkey, rewrap_header(sealed, [w.owner], [Recipient.parse(
            request.recipient)]))
        granted.append(GrantedClip(cid, hashlib.sha256(mtoken.encode()).hexdigest(),
                                   m.clip.sha256))
        urls[cid] = ClipUrls(*(w.store.presign_get(k, 3600) for k in
                               (hkey, m.clip.key, base + ".manifest.jws")))
    ledger = w.desk.proof(rid, key_id_for(public_raw(w.owner_key)), 10**9)  # no decision
    if record:
        ledger = w.command("requests.decide", {"request": rid, "decision": "approve",
                                               "clips": clip_ids})["ledger"]
    grant = Grant(request_id=rid, device_id=w.device_id, owner=key_id_for(public_raw(signer)),
                  owner_public_key=b64u(public_raw(signer)), requester=request.requester,
                  recipient=request.recipient, clips=tuple(granted), issued_at=int(T0),
                  expires_at=int(T0) + days * 86400)
    env = GrantEnvelope(rid, token.decode(), b64u(public_raw(w.device_key)),
                        sign_grant(grant, signer), tuple(ledger), urls)
    return encrypt(canonical_json(env.to_json()), [Recipient.parse(request.recipient)])


def fetched(w: World, answer: bytes, rid: str, now: float = T0 + 100) -> Path:
    out = w.tmp / f"out-{rid}"
    fetch_into(w.me, answer, rid, out, get=w.store.get_presigned, now=now)
    return out


# -- device ---------------------------------------------------------------------------------


def test_every_request_is_recorded_and_forwarded_sealed_and_floods_are_counted(
        world: World) -> None:
    w = world
    rid, token = w.ask()
    notice = w.desk.receive(token, T0)
    assert notice is not None and "hit and run" not in notice  # the reason travels sealed
    received = [e for e in w.ledger.entries() if e.kind == "request-received"]
    assert received[0].data["request"] == rid and received[0].data["name"] == w.me.name
    assert "reason" not in received[0].data and len(received[0].data["reason_sha256"]) == 64
    assert b"hit and run" not in (w.tmp / "device.sqlite").read_bytes()  # stored sealed
    assert w.desk.receive(w.ask()[1], T0 + 1) is not None  # second from the same key: ok
    assert w.desk.receive(w.ask()[1], T0 + 2) is None  # third: over the per-key limit
    assert w.desk.receive(b"not a request", T0 + 3) is None
    listing = w.command("requests.list", {}, now=T0 + 4)
    assert listing["total"] == 2 and listing["counted"] == {"invalid": 1, "rate_limited": 1}
    counted = [e.data for e in w.ledger.entries() if e.kind == "request-received"
               and "request" not in e.data]
    assert sum(d.get("rate_limited", 0) for d in counted) == 1
    assert sum(d.get("invalid", 0) for d in counted) == 1
    assert verify_jsonl(w.ledger.export_jsonl(), w.device_key.public_key()).ok


def test_a_request_for_another_device_is_counted_not_stored(world: World) -> None:
    w = world
    other = RequesterIdentity.init(w.tmp / "other", name="x")[0]
    _req, token = build_request(other, RequestOptions(
        device_id_for(b"\x01" * 32), "mqtt://x", "2026-12-03T18:00:00Z",
        "2026-12-03T19:00:00Z", "r"), now=T0)
    assert w.desk.receive(token.encode(), T0) is None
    assert w.desk.counts() == {"invalid": 1}


def test_decisions_are_recorded_and_the_device_cannot_disclose(world: World) -> None:
    w = world
    rid, token = w.ask()
    w.desk.receive(token, T0)
    result = w.command("requests.decide", {"request": rid, "decision": "deny", "clips": None})
    assert result["state"] == "denied"
    assert [e.kind for e in w.ledger.entries()][-1] == "request-denied"
    # no command of the device hands footage to anyone: only list and decide exist for requests
    assert {c for c in w.proc._actions if c.startswith("requests.")} == {
        "requests.list", "requests.decide"}


# -- requester and bundle ---------------------------------------------------------------------


def approved(w: World, clip_ids: list[str] | None = None) -> tuple[str, Path]:
    rid, token = w.ask()
    w.desk.receive(token, T0)
    return rid, fetched(w, owner_answer(w, rid, clip_ids or ["c1", "c2"]), rid)


def test_fetch_writes_the_clips_and_a_bundle_that_verifies(world: World) -> None:
    rid, out = approved(world)
    assert (out / "c1.mp4").read_bytes() == CLIP
    report = verify_bundle(out)
    assert report.ok, str(report)
    assert report.clips == ("c1", "c2") and report.request_id == rid


def test_only_approved_clips_are_fetched(world: World) -> None:
    _rid, out = approved(world, ["c1"])
    assert sorted(p.name for p in out.glob("*.mp4")) == ["c1.mp4"]


def test_a_grant_not_signed_by_a_paired_owner_is_refused(world: World) -> None:
    w = world
    rid, token = w.ask()
    w.desk.receive(token, T0)
    vendor = Ed25519PrivateKey.generate()  # the platform, the device operator, anyone
    answer = owner_answer(w, rid, ["c1"], signer=vendor)
    with pytest.raises(DoorwardError, match="not a paired owner"):
        fetched(w, answer, rid)
    assert not (w.tmp / f"out-{rid}").exists()  # refused before anything was downloaded


def test_an_expired_grant_is_refused(world: World) -> None:
    w = world
    rid, token = w.ask()
    w.desk.receive(token, T0)
    answer = owner_answer(w, rid, ["c1"], days=1)
    with pytest.raises(DoorwardError, match="expired"):
        fetched(w, answer, rid, now=T0 + 86400)


def test_a_grant_without_the_devices_record_is_refused(world: World) -> None:
    w = world
    rid, token = w.ask()
    w.desk.receive(token, T0)
    answer = owner_answer(w, rid, ["c1"], record=False)
    with pytest.raises(DoorwardError, match="no request-approved entry"):
        fetched(w, answer, rid)
    assert not (w.tmp / f"out-{rid}").exists()


def test_an_answer_for_another_requester_opens_for_nobody_else(world: World) -> None:
    w = world
    rid, token = w.ask()
    w.desk.receive(token, T0)
    answer = owner_answer(w, rid, ["c1"])
    other = RequesterIdentity.init(w.tmp / "snoop", name="snoop")[0]
    with pytest.raises(DoorwardError, match="not sealed to you"):
        fetch_into(other, answer, rid, w.tmp / "snooped", get=w.store.get_presigned, now=T0)


def test_a_clip_altered_in_the_bucket_is_refused(world: World) -> None:
    w = world
    rid, token = w.ask()
    w.desk.receive(token, T0)
    answer = owner_answer(w, rid, ["c1"])
    key = next(k for k in w.store.objects if k.endswith("c1.mp4.age"))
    data = bytearray(w.store.objects[key])
    data[-1] ^= 1
    w.store.objects[key] = bytes(data)
    with pytest.raises(DoorwardError, match="altered"):
        fetched(w, answer, rid)
    assert not (w.tmp / f"out-{rid}").exists()


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("target", "said"), [
    ("c1.mp4", "c1.mp4: differs"), ("evidence/c1.mp4.age", "c1.mp4.age"),
    ("evidence/c1.manifest.jws", "c1.manifest.jws"), ("evidence/bundle.json:grant", "grant"),
    ("evidence/bundle.json:request", "request"), ("evidence/bundle.json:ledger", "ledger"),
    ("evidence/bundle.json:key", "file key"), ("extra-file", "not part of the bundle: c3.mp4"),
])  # fmt: skip
def test_a_tampered_bundle_fails_and_says_where(world: World, target: str, said: str) -> None:
    _, out = approved(world)
    assert verify_bundle(out).ok
    if target == "extra-file":
        (out / "c3.mp4").write_bytes(b"planted")
    elif ":" in target:
        path = out / EVIDENCE / "bundle.json"
        doc = json.loads(path.read_text())
        part = target.split(":")[1]
        if part == "ledger":
            doc["ledger"][-1]["data"]["clips"] = ["c1"]
        elif part == "key":
            doc["clips"][0]["file_key"] = "00" * 16
        else:
            tok = doc[part]
            i = len(tok) // 2
            doc[part] = tok[:i] + ("A" if tok[i] != "A" else "B") + tok[i + 1:]
        path.write_text(json.dumps(doc))
    else:
        path = out / target
        _flip(path, path.stat().st_size // 2)
    report = verify_bundle(out)
    assert not report.ok
    assert said in str(report), str(report)


def test_a_bundle_survives_a_copy_and_fails_once_a_file_is_missing(world: World) -> None:
    _, out = approved(world)
    copy = world.tmp / "copy"
    shutil.copytree(out, copy)
    assert verify_bundle(copy).ok
    (copy / EVIDENCE / "c2.manifest.jws").unlink()
    assert "c2.manifest.jws" in str(verify_bundle(copy))


def test_verify_bundle_refuses_a_grant_re_signed_by_someone_else(world: World) -> None:
    _, out = approved(world)
    path = out / EVIDENCE / "bundle.json"
    doc = json.loads(path.read_text())
    claims = __import__("uplink").peek_jws(doc["grant"])[1]
    vendor = Ed25519PrivateKey.generate()
    grant = Grant.from_claims({**claims, "iss": key_id_for(public_raw(vendor)),
                               "pub": b64u(public_raw(vendor))})
    doc["grant"] = sign_grant(grant, vendor)
    path.write_text(json.dumps(doc))
    assert "not a paired owner" in str(verify_bundle(out))


def test_verify_bundle_needs_the_devices_record_of_the_decision(world: World) -> None:
    _, out = approved(world)
    path = out / EVIDENCE / "bundle.json"
    doc = json.loads(path.read_text())
    doc["ledger"] = [e for e in doc["ledger"] if e["kind"] != "request-approved"]
    path.write_text(json.dumps(doc))
    assert "no request-approved entry" in str(verify_bundle(out))
