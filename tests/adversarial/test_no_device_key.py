"""Adversarial: the device never holds a key that opens its own clips (issue 12, finding 5).

The attacker holds the device (or its card) and the bucket: a clip sealed to the development
owner ``<data-dir>/dev-owner.key`` is opened by the key lying next to it, so such a clip must
exist only for development sources (``sim:``, ``file:``), die with the key at pairing, and
never reach the bucket. A real camera (``picamera2``, ``v4l2:``) records nothing without a
paired owner. Real daemon, real Mosquitto, real SeaweedFS, the real age CLI.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.app import RunOptions, open_local
from agent.config import parse_config
from agent.delivery.lanes import LaneContext, lane_ports
from agent.delivery.outbox import Outbox
from agent.delivery.outbox_worker import OutboxWorker
from agent.delivery.queueing import Delivery
from agent.device.consent import ConsentStore
from agent.device.database import DeviceDB
from agent.device.identity import DeviceIdentity
from agent.paths import DataDir
from agent.store import ClipEnd, ClipRecord, ClipStart
from agent.tools.status_report import status_document
from tests.helpers import DOORWARD, SMALL_CONFIG, age_decrypt, doorward, doorward_json, wait_for
from tests.servers import Mosquitto
from tests.servers_s3 import SeaweedS3
from uplink.age import encrypt
from uplink.agekeys import Identity, load_identities
from uplink.keys import public_raw
from uplink.objectstore import S3Settings

# ---- v4l2 is a real camera ---------------------------------------------------------------------


@pytest.mark.parametrize("source", ["v4l2:/dev/video9", "picamera2"])
def test_a_real_camera_records_nothing_without_an_owner(tmp_path: Path, source: str) -> None:
    data = tmp_path / "device"
    local = open_local(parse_config(""), RunOptions(data_dir=str(data), source=source))
    try:
        assert local.policy.mode == "not-recording"
        assert local.policy.recipients() == ()
        assert not DataDir(data).dev_owner_key.exists()
        doc = status_document(data, max_bytes=1 << 30, broker_configured=False,
                              bucket_configured=False)
        assert any("not recording" in p and "pair" in p for p in doc["problems"]), doc
    finally:
        local.store.close()
        local.device.db.close()


@pytest.mark.parametrize("source", ["sim:porch", "file:/nowhere.mp4"])
def test_only_development_sources_use_a_development_owner(tmp_path: Path, source: str) -> None:
    data = tmp_path / "device"
    local = open_local(parse_config(""), RunOptions(data_dir=str(data), source=source))
    try:
        assert local.policy.mode == "dev-owner"
        (dev,) = local.policy.recipients()
        assert dev == load_identities(DataDir(data).dev_owner_key)[0].recipient
    finally:
        local.store.close()
        local.device.db.close()


def test_a_pairing_cut_short_is_finished_at_the_next_start(tmp_path: Path) -> None:
    """Power lost between storing the owner and retiring the development owner: the next start
    deletes the dev-sealed clips and the key before anything is recorded or sent."""
    data = tmp_path / "device"
    first = open_local(parse_config(""), RunOptions(data_dir=str(data), source="sim:porch"))
    (dev,) = first.policy.recipients()
    sink = first.store.open_clip("devclip", ClipStart(time.time(), 0.0, (str(dev),), "1", "ring"))
    sink.write(b"sealed to the development owner")
    sink.commit(ClipEnd(time.time() + 1, 1.0))
    owner = Identity.generate()
    first.device.consent.add_owner(public_raw(Ed25519PrivateKey.generate()),
                                   str(owner.recipient), "owner", time.time())
    first.store.close()
    first.device.db.close()
    again = open_local(parse_config(""), RunOptions(data_dir=str(data), source="sim:porch"))
    try:
        assert not DataDir(data).dev_owner_key.exists()
        assert again.store.list_clips() == []
        assert again.policy.recipients() == (owner.recipient,)
    finally:
        again.store.close()
        again.device.db.close()


# ---- queue time and send time ------------------------------------------------------------------


@dataclass
class Paired:
    data: Path
    identity: DeviceIdentity
    db: DeviceDB
    consent: ConsentStore
    owner: Identity
    dev: Identity


@pytest.fixture
def paired(tmp_path: Path) -> Iterator[Paired]:
    """A paired device with clips consent in force, and a development key lying around (as if
    pairing had been interrupted before retiring it)."""
    data = tmp_path / "device"
    data.mkdir()
    identity = DeviceIdentity.load_or_create(data)
    db = DeviceDB(DataDir(data).device_db)
    consent = ConsentStore(db)
    owner, dev = Identity.generate(), Identity.generate()
    consent.add_owner(public_raw(Ed25519PrivateKey.generate()), str(owner.recipient), "owner",
                      time.time())
    consent.grant(["clips", "snapshots", "events"], None, "k-test", time.time())
    try:
        yield Paired(data, identity, db, consent, owner, dev)
    finally:
        db.close()


def sealed_clip(p: Paired, clip_id: str, *, to: Identity) -> ClipRecord:
    path = p.data / f"{clip_id}.mp4.age"
    path.write_bytes(encrypt(b"\x00\x00\x00\x18ftypisom" + os.urandom(2048), [to.recipient]))
    now = datetime.now(UTC).isoformat()
    return ClipRecord(id=clip_id, path=path, snapshot_path=None, started_at=now, ended_at=now,
                      source_start_s=0.0, source_end_s=1.0, duration_s=1.0, bytes=2048,
                      truncated=False, recipients=(str(to.recipient),), delivered=False,
                      event_id="1", reason="ring", started_at_s=time.time())


def test_a_dev_sealed_clip_is_never_queued(paired: Paired) -> None:
    outbox = Outbox(DataDir(paired.data).outbox_db)
    try:
        delivery = Delivery(outbox, paired.identity, paired.db, paired.consent,
                            recipients=lambda: (), uploads_enabled=True, messages_enabled=False,
                            wake=lambda: None)
        delivery.clip_sealed(sealed_clip(paired, "devclip", to=paired.dev))
        assert [i.spec for i in outbox.items() if i.kind == "upload"] == []
        delivery.clip_sealed(sealed_clip(paired, "ownerclip", to=paired.owner))
        assert [i.spec["clip_id"] for i in outbox.items()  # type: ignore[index]
                if i.kind == "upload"] == ["ownerclip"]
    finally:
        outbox.close()


def test_a_dev_sealed_clip_already_queued_is_never_sent(paired: Paired, seaweed: SeaweedS3,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Queued by an older version (or before pairing finished): the uploads lane refuses it at
    send time against a real bucket, and the owner's clip behind it still goes."""
    bucket = seaweed.create_bucket("devkey")
    for name, value in (("AWS_ACCESS_KEY_ID", seaweed.access_key),
                        ("AWS_SECRET_ACCESS_KEY", seaweed.secret_key),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    from uplink.s3 import S3ObjectStore  # boto3 only for this test, as in agent.app

    settings = S3Settings(bucket=bucket, endpoint_url=seaweed.url, prefix="",
                          region="us-east-1", addressing_style="path", max_attempts=1)
    ctx = LaneContext(paired.data, paired.identity, None, lambda: S3ObjectStore(settings), "",
                      bucket, queue.Queue())
    outbox = Outbox(DataDir(paired.data).outbox_db)
    try:
        for clip_id, who in (("devclip", paired.dev), ("ownerclip", paired.owner)):
            rec = sealed_clip(paired, clip_id, to=who)
            outbox.enqueue_upload({"clip_id": rec.id, "clip": str(rec.path), "snapshot": None,
                                   "started_at": rec.started_at, "ended_at": rec.ended_at,
                                   "duration_s": 1.0, "recipients": list(rec.recipients)},
                                  "clips", now=time.time())
        ports = lane_ports(ctx, "uploads")
        worker = OutboxWorker(DataDir(paired.data).outbox_db, lambda lane: ports,
                              lanes=("uploads",))
        lane_outbox = Outbox(DataDir(paired.data).outbox_db, on_drop=ports.on_drop)
        for _ in range(4):
            worker.step("uploads", lane_outbox, ports)
        lane_outbox.close()
        if ports.close is not None:
            ports.close()
        keys = [o["Key"] for o in seaweed.client().list_objects_v2(Bucket=bucket)
                .get("Contents", [])]
        assert not [k for k in keys if "devclip" in k], keys
        assert [k for k in keys if "ownerclip" in k], keys
        states = {i.spec["clip_id"]: i.state for i in outbox.items()}  # type: ignore[index]
        assert states == {"devclip": "dropped", "ownerclip": "sent"}
    finally:
        outbox.close()


# ---- the real daemon ---------------------------------------------------------------------------

CONFIG = SMALL_CONFIG + """
[events]
"""


@dataclass
class Device:
    proc: subprocess.Popen[str]
    data: Path
    label: dict[str, str]
    broker: str = ""

    def status(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.data / "status.json").read_text()))
        except (OSError, ValueError):
            return {}

    def press(self, button: str, hold_s: float) -> None:
        doorward("press", button, "--hold", str(hold_s), "--data-dir", str(self.data))

    def clips(self) -> list[dict[str, Any]]:
        return list(doorward_json("clips", "list", "--json", "--data-dir",
                                  str(self.data))["clips"])

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=60)
        return err


def start(tmp_path: Path, *args: str, extra: str = "", extra_events: str = "post_roll_s = 15.0\n",
          env: dict[str, str] | None = None) -> Device:
    """The daemon on a simulated porch in real time; ``extra_events`` goes into ``[events]``
    (by default a ring keeps its clip open 15 s: long enough to pair meanwhile)."""
    data, cfg = tmp_path / "device", tmp_path / "device.toml"
    cfg.write_text(CONFIG + extra_events + extra)
    proc = subprocess.Popen(
        [DOORWARD, "run", "--config", str(cfg), "--source", "sim:porch", "--realtime",
         "--data-dir", str(data), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})})
    d = Device(proc, data, {})
    wait_for(lambda: (d.status().get("pid") == proc.pid and d.status().get("state") == "running")
             or proc.poll() is not None, timeout=30, what="the daemon to run")
    assert proc.poll() is None, proc.communicate()[1]
    d.label = doorward_json("device", "label", "--json", "--data-dir", str(data))
    return d


def ring_until_a_clip(d: Device, *, attempts: int = 6) -> list[dict[str, Any]]:
    """Ring (a visitor) until a clip is stored: a ring during an event already under way only
    extends it, so ring again until one lands in a new event."""
    for _ in range(attempts):
        d.press("ring", 0.3)
        try:
            return list(wait_for(d.clips, timeout=20, what="a clip"))
        except AssertionError:
            continue
    raise AssertionError(f"no clip after {attempts} rings")


@pytest.mark.slow
def test_a_reset_never_seals_to_the_deleted_development_key(tmp_path: Path) -> None:
    d = start(tmp_path, extra_events="post_roll_s = 2.0\n")
    try:
        first = ring_until_a_clip(d)
        dev = DataDir(d.data).dev_owner_key
        assert age_decrypt(dev, Path(first[0]["path"]), tmp_path / "a").returncode == 0
        old_dev = dev.read_bytes()
        d.press("setup", 10.5)
        wait_for(lambda: not d.clips(), timeout=30, what="the reset to wipe the clips")
        after = ring_until_a_clip(d)
        # Whatever it is sealed to, it is not the key the reset destroyed, and the key it is
        # sealed to is on disk for the developer (a development source).
        assert dev.exists(), "sealed to a development key that no longer exists"
        assert dev.read_bytes() != old_dev
        assert age_decrypt(dev, Path(after[0]["path"]), tmp_path / "b").returncode == 0
    finally:
        d.stop()


@pytest.mark.slow
def test_pairing_retires_the_development_key(tmp_path: Path, mosquitto: Mosquitto,
                                             seaweed: SeaweedS3) -> None:
    bucket = seaweed.create_bucket("pairing")
    env = {"AWS_ACCESS_KEY_ID": seaweed.access_key, "AWS_SECRET_ACCESS_KEY": seaweed.secret_key,
           "AWS_DEFAULT_REGION": "us-east-1"}
    d = start(tmp_path, "--broker", mosquitto.url, env=env, extra=f"""
[s3]
bucket = "{bucket}"
endpoint_url = "{seaweed.url}"
addressing_style = "path"
""")
    owner_dir = tmp_path / "owner"
    try:
        d.press("ring", 0.3)
        dev_clips = wait_for(d.clips, timeout=60, what="a clip sealed to the development owner")
        d.press("ring", 0.3)  # this one is being recorded, sealed to the dev key, at pairing
        in_progress = wait_for(
            lambda: d.status().get("recording") and d.status()["last_event"].get("clip_id"),
            timeout=20, what="a clip in progress")
        doorward("owner", "--owner-dir", str(owner_dir), "init")
        d.press("setup", 3.5)
        wait_for(lambda: d.status().get("pairing_open"), timeout=15, what="the pairing window")
        doorward("owner", "--owner-dir", str(owner_dir), "pair", "--broker", mosquitto.url,
                 "--device", d.label["device_id"], "--setup-code", d.label["setup_code"],
                 "--fingerprint", d.label["fingerprint"], "--timeout", "10", env=env)
        me = doorward_json("owner", "--owner-dir", str(owner_dir), "show", "--json")
        doorward("owner", "--owner-dir", str(owner_dir), "consent", "grant", "--scopes",
                 "events,snapshots,clips", "--until-revoked", env=env)
        assert not DataDir(d.data).dev_owner_key.exists(), "the development key survives pairing"
        wait_for(lambda: not d.status().get("recording"), timeout=60,
                 what="the visit's clip to end")
        d.press("ring", 0.3)  # a visitor after pairing: uploaded, sealed to the owner
        wait_for(lambda: any(k.endswith(".mp4.age") for k in keys(seaweed, bucket)),
                 timeout=90, what="an upload")
        wait_for(lambda: not d.status().get("recording"), timeout=60, what="no clip recording")
        wait_for(lambda: doorward_json("status", "--json", "--data-dir", str(d.data))
                 .get("queues", {}).get("uploads") == 0, timeout=60, what="uploads to drain")
    finally:
        d.stop()
    stored = d.clips()
    assert all(c["recipients"] == [me["recipient"]] for c in stored), stored
    gone = {c["id"] for c in dev_clips} | {str(in_progress)}
    assert not gone & {c["id"] for c in stored}
    assert not [p for p in (d.data / "clips").iterdir() if p.name.split(".")[0] in gone]
    uploaded = [k for k in keys(seaweed, bucket) if k.endswith(".age")]
    assert uploaded and not [k for k in uploaded if any(g in k for g in gone)], uploaded
    ident = Path(me["identity_file"])
    for key in uploaded:  # every object in the bucket opens with the owner's key
        blob = tmp_path / "obj.age"
        blob.write_bytes(seaweed.client().get_object(Bucket=bucket, Key=key)["Body"].read())
        assert age_decrypt(ident, blob, tmp_path / "obj").returncode == 0, key


def keys(seaweed: SeaweedS3, bucket: str) -> list[str]:
    pages = seaweed.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))
