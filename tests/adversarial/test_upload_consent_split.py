"""Issue 12, finding 1, with in-process fakes (fast, deterministic: the lane is stepped by hand):
which objects leave under which consent, and that nothing stays in the bucket without its
manifest when an upload ends unfinished.

The design, read from agent/delivery/queueing.py: a sealed clip is queued under scope ``clips`` when
clips consent is in force (its snapshot goes along only while ``snapshots`` consent is in force
too), else under ``snapshots`` when it has a snapshot and snapshots consent is in force (the
snapshot alone, with a manifest naming only ``snapshot``; before issue 12 that manifest was
refused, so the snapshot stayed in the bucket without one and the upload retried forever).
Consent is asked again at the moment of sending, before every 64 KiB of every body.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.delivery.lanes import LaneContext, lane_ports
from agent.delivery.outbox import Outbox, drop_records
from agent.delivery.outbox_worker import OutboxWorker
from agent.delivery.ports import Ports
from agent.delivery.queueing import Delivery
from agent.device.consent import ConsentStore
from agent.device.database import DeviceDB
from agent.device.identity import DeviceIdentity
from agent.device.ledger import Ledger
from agent.paths import DataDir
from agent.store import ClipRecord
from uplink.agekeys import Identity
from uplink.manifest import verify_manifest
from uplink.memory_store import MemoryObjectStore
from uplink.s3_errors import S3Unavailable
from uplink.s3_multipart import CHECK_EVERY_BYTES, CheckedReader

KiB = 1024


@dataclass
class Device:
    data: Path
    identity: DeviceIdentity
    db: DeviceDB
    consent: ConsentStore
    ledger: Ledger
    delivery: Delivery
    store: MemoryObjectStore
    worker: OutboxWorker
    lane_outbox: Outbox
    ports: Ports
    clock: list[float]

    def grant(self, *scopes: str) -> None:
        self.consent.grant(scopes, time.time() + 3600, by="k-test", now=time.time())

    def revoke(self, *scopes: str) -> None:
        self.consent.revoke(scopes, "k-test", time.time())
        self.delivery.purge(scopes, "consent revoked")

    def seal(self, tmp: Path, clip_bytes: int = 200 * KiB, snap_bytes: int = 70 * KiB,
             clip_id: str = "c1") -> ClipRecord:
        clip, snap = tmp / f"{clip_id}.mp4.age", tmp / f"{clip_id}.jpg.age"
        clip.write_bytes(b"c" * clip_bytes)
        snap.write_bytes(b"s" * snap_bytes)
        rec = ClipRecord(id=clip_id, path=clip, snapshot_path=snap,
                         started_at="2026-12-03T10:00:00+00:00",
                         ended_at="2026-12-03T10:00:09+00:00", source_start_s=0.0,
                         source_end_s=9.0, duration_s=9.0, bytes=clip_bytes, truncated=False,
                         recipients=tuple(self.consent.recipients()), delivered=False,
                         event_id="1")
        self.delivery.clip_sealed(rec)
        return rec

    def step(self, times: int = 1) -> None:
        for _ in range(times):
            self.worker.step("uploads", self.lane_outbox, self.ports)

    def pending(self) -> dict[str, int]:
        return self.lane_outbox.pending()

    def suffixes(self) -> list[str]:
        """What kinds of object the bucket holds (each key's part after its first dot)."""
        return sorted(k.split(".", 1)[1] for k in self.store.objects)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.ledger.entries()]

    def entries(self, kind: str) -> list[dict[str, Any]]:
        return [dict(e.data) for e in self.ledger.entries() if e.kind == kind]

    def manifest_objects(self) -> dict[str, str]:
        token = next(v for k, v in self.store.objects.items() if k.endswith(".manifest.jws"))
        manifest = verify_manifest(token, self.identity.key.public_key())
        return {name: obj.key for name, obj in manifest.objects.items()}


@pytest.fixture
def device(tmp_path: Path) -> Iterator[Device]:
    data = tmp_path / "device"
    identity = DeviceIdentity.load_or_create(data)
    db = DeviceDB(DataDir(data).device_db)
    consent, ledger = ConsentStore(db), Ledger(db, identity.key)
    consent.add_owner(Ed25519PrivateKey.generate().public_key().public_bytes_raw(),
                      str(Identity.generate().recipient), "owner", time.time())
    outbox = Outbox(DataDir(data).outbox_db, on_drop=lambda items: [
        ledger.append("outbox-drop", e, time.time()) for e in drop_records(items)])
    store = MemoryObjectStore()
    ctx = LaneContext(data, identity, None, lambda: store, "doorward", "bucket", queue.Queue())
    ports = lane_ports(ctx, "uploads")
    clock = [0.0]  # the worker's clock runs this far ahead of time.time()
    worker = OutboxWorker(DataDir(data).outbox_db, lambda lane: ports, lanes=("uploads",),
                          clock=lambda: time.time() + clock[0])
    lane_outbox = Outbox(DataDir(data).outbox_db, on_drop=ports.on_drop)
    delivery = Delivery(outbox, identity, db, consent, recipients=lambda: (),
                        uploads_enabled=True, messages_enabled=False, wake=lambda: None)
    try:
        yield Device(data, identity, db, consent, ledger, delivery, store, worker, lane_outbox,
                     ports, clock)
    finally:
        lane_outbox.close()
        if ports.close is not None:
            ports.close()
        outbox.close()
        db.close()


# ---- the consent split at upload ---------------------------------------------------------------


def test_snapshots_only_consent_uploads_only_the_snapshot(device: Device, tmp_path: Path) -> None:
    device.grant("snapshots")
    device.seal(tmp_path)
    device.step()
    assert device.suffixes() == ["jpg.age", "manifest.jws"]
    objects = device.manifest_objects()  # signed, and names the snapshot as what it is
    assert list(objects) == ["snapshot"] and objects["snapshot"].endswith(".jpg.age")
    assert device.pending() == {}
    assert device.entries("disclosure")[0]["scope"] == "snapshots"


def test_clips_only_consent_uploads_the_clip_without_its_snapshot(device: Device,
                                                                 tmp_path: Path) -> None:
    device.grant("clips")
    device.seal(tmp_path)
    device.step()
    assert device.suffixes() == ["manifest.jws", "mp4.age"]
    assert list(device.manifest_objects()) == ["clip"]


def test_clips_and_snapshots_consent_uploads_both(device: Device, tmp_path: Path) -> None:
    device.grant("clips", "snapshots")
    device.seal(tmp_path)
    device.step()
    assert device.suffixes() == ["jpg.age", "manifest.jws", "mp4.age"]
    assert sorted(device.manifest_objects()) == ["clip", "snapshot"]


def test_events_consent_alone_uploads_nothing(device: Device, tmp_path: Path) -> None:
    device.grant("events")
    device.seal(tmp_path)
    device.step()
    assert device.store.objects == {} and device.pending() == {}


def test_snapshots_revoked_while_the_snapshot_is_sent_keeps_it_out(device: Device,
                                                                  tmp_path: Path) -> None:
    device.grant("clips", "snapshots")
    device.store.before_put = lambda key: device.consent.revoke(
        ["snapshots"], "k-test", time.time()) if key.endswith(".jpg.age") else None
    device.seal(tmp_path)
    device.step()
    assert device.suffixes() == ["manifest.jws", "mp4.age"]  # the clip still goes
    assert list(device.manifest_objects()) == ["clip"]


# ---- a revocation mid-body, and unfinished uploads -----------------------------------------------


def test_revoke_mid_body_stops_within_64_kib_and_nothing_is_stored(device: Device,
                                                                  tmp_path: Path) -> None:
    device.grant("clips", "snapshots")
    checks_at_revoke: list[int] = []

    def revoke_on_clip(key: str) -> None:
        if key.endswith(".mp4.age"):
            checks_at_revoke.append(device.store.checks)
            device.revoke("clips", "snapshots")

    device.store.before_put = revoke_on_clip
    device.seal(tmp_path, clip_bytes=1024 * KiB)
    device.step()
    assert device.store.objects == {} and device.pending() == {}
    assert device.store.checks == checks_at_revoke[0] + 1  # stopped before the first 64 KiB
    assert "disclosure" not in device.kinds() and "withdrawn" not in device.kinds()
    assert device.entries("outbox-drop")  # it never left: an outbox-drop is the truth


def test_revoke_after_the_clip_was_stored_withdraws_it_and_says_so(device: Device,
                                                                  tmp_path: Path) -> None:
    device.grant("clips", "snapshots")
    device.store.before_put = lambda key: device.revoke("clips", "snapshots") \
        if key.endswith(".jpg.age") else None
    device.seal(tmp_path)
    device.step()
    assert device.store.objects == {} and device.pending() == {}
    kinds = device.kinds()
    assert "outbox-drop" not in kinds
    assert kinds.index("disclosure") < kinds.index("withdrawn")
    disclosed = device.entries("disclosure")[0]["objects"]
    assert len(disclosed) == 1 and disclosed[0].endswith(".mp4.age")
    assert device.entries("withdrawn")[0]["objects"] == disclosed


def test_queued_retry_that_had_stored_its_clip_is_withdrawn_on_revoke(device: Device,
                                                                     tmp_path: Path) -> None:
    """A first attempt stores the clip, then the bucket fails; the revocation comes while the
    upload waits to retry: the clip must not stay in the bucket without a manifest."""
    device.grant("clips", "snapshots")
    device.store.fail_puts[".jpg.age"] = S3Unavailable("bucket endpoint away")
    device.seal(tmp_path)
    device.step()
    assert device.suffixes() == ["mp4.age"] and device.pending()
    device.store.fail_puts.clear()
    device.revoke("clips", "snapshots")
    assert device.pending(), "kept for the lane to withdraw, not dropped as never sent"
    with device.lane_outbox.transaction() as db:
        db.execute("UPDATE items SET next_attempt_at = 0")
    device.step()
    assert device.store.objects == {} and device.pending() == {}
    assert "outbox-drop" not in device.kinds()
    assert device.entries("withdrawn")[0]["objects"][0].endswith(".mp4.age")


def test_permanent_failure_after_the_clip_was_stored_withdraws_it(device: Device,
                                                                  tmp_path: Path) -> None:
    device.grant("clips", "snapshots")
    rec = device.seal(tmp_path)
    device.store.before_put = lambda key: rec.snapshot_path.unlink() \
        if key.endswith(".jpg.age") and rec.snapshot_path else None
    device.step()
    assert device.store.objects == {} and device.pending() == {}
    assert "withdrawn" in device.kinds() and "outbox-drop" not in device.kinds()


def test_upload_expiring_in_the_queue_after_storing_its_clip_is_withdrawn(
        device: Device, tmp_path: Path) -> None:
    device.consent.grant(["clips", "snapshots"], None, by="k-test", now=time.time())
    device.store.fail_puts[".jpg.age"] = S3Unavailable("bucket endpoint away")
    device.seal(tmp_path)
    device.step()
    assert device.suffixes() == ["mp4.age"] and device.pending()
    device.store.fail_puts.clear()
    device.clock[0] = 31 * 86400.0  # past the upload's 30 days in the outbox
    device.step()
    assert device.store.objects == {} and device.pending() == {}
    assert "outbox-drop" not in device.kinds()
    assert "expired" in device.entries("withdrawn")[0]["reason"]


# ---- the streaming body ------------------------------------------------------------------------


def test_checked_reader_checks_before_the_first_byte_and_every_64_kib(tmp_path: Path) -> None:
    path = tmp_path / "body"
    path.write_bytes(bytes(range(256)) * 1024)  # 256 KiB
    calls: list[int] = []
    with CheckedReader(path, 1000, 200 * KiB, lambda: calls.append(0)) as body:
        data = b"".join(iter(lambda: body.read(10_000), b""))
        assert data == path.read_bytes()[1000:1000 + 200 * KiB]
        assert len(calls) == -(-200 * KiB // CHECK_EVERY_BYTES)  # 4: at 0, 64, 128, 192 KiB
        body.seek(0)
        assert body.read(5) == data[:5] and len(body) == 200 * KiB


def test_checked_reader_keeps_what_check_raised(tmp_path: Path) -> None:
    path = tmp_path / "body"
    path.write_bytes(b"x" * (200 * KiB))
    stop = RuntimeError("consent withdrawn")
    allowed = [True]

    def check() -> None:
        if not allowed[0]:
            raise stop

    with CheckedReader(path, 0, 200 * KiB, check) as body:
        assert len(body.read(CHECK_EVERY_BYTES)) == CHECK_EVERY_BYTES
        allowed[0] = False
        with pytest.raises(RuntimeError):
            body.read(1)
        assert body.stopped is stop
        with pytest.raises(RuntimeError):  # every later read too, whatever wraps the first
            body.read(1)
