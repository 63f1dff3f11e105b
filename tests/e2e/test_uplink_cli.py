"""End to end: consent-gated delivery to a real Mosquitto and a real SeaweedFS S3, through the CLI.

The owner is provisioned straight into the device's database (pairing itself is tested in
test_pairing_cli.py); consent is always granted and revoked with the owner tool's signed commands.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    DOORWARD,
    age_decrypt,
    doorward,
    doorward_json,
    ffprobe,
    pair_for_test,
    plain_mp4,
    wait_for,
)
from tests.servers import Mosquitto
from tests.servers_s3 import SeaweedS3
from uplink.agekeys import load_identities
from uplink.chain_check import ChainChecker
from uplink.keys import b64u_decode
from uplink.messages import EventBody, verify_message
from uplink.mqtt import InboundMessage, MqttClient, MqttSettings

pytestmark = pytest.mark.slow


@dataclass
class Rig:
    """A device data dir with a provisioned owner, a broker and a bucket."""

    tmp: Path
    data: Path
    owner_dir: Path
    label: dict[str, str]
    broker: Mosquitto
    s3: SeaweedS3
    bucket: str

    def config(self, extra: str = "") -> Path:
        path = self.tmp / "device.toml"
        path.write_text(f"""
[camera]
width = 640
height = 360
[s3]
bucket = "{self.bucket}"
endpoint_url = "{self.s3.url}"
addressing_style = "path"
{extra}
""")
        return path

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.s3.access_key,
                "AWS_SECRET_ACCESS_KEY": self.s3.secret_key, "AWS_DEFAULT_REGION": "us-east-1"}

    def run(self, scene: str, *args: str,
            config_extra: str = "") -> subprocess.CompletedProcess[str]:
        return doorward("run", "--config", str(self.config(config_extra)), "--source",
                        f"sim:{scene}", "--data-dir", str(self.data), "--broker", self.broker.url,
                        "--exit-at-eof", *args, env=self.env)

    def start(self, scene: str, *args: str, config_extra: str = "") -> subprocess.Popen[str]:
        return subprocess.Popen(
            [DOORWARD, "run", "--config", str(self.config(config_extra)), "--source",
             f"sim:{scene}", "--data-dir", str(self.data), "--broker", self.broker.url, *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **self.env})

    def owner(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return doorward("owner", "--owner-dir", str(self.owner_dir), *args, check=check,
                        env=self.env)

    def objects(self) -> list[str]:
        client = self.s3.client()
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def object_bytes(self, key: str) -> bytes:
        return bytes(self.s3.client().get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def connected(self, proc: subprocess.Popen[str]) -> None:
        """Wait until *this* daemon (not a stale status file) is connected to the broker."""
        wait_for(lambda: (self.status().get("pid") == proc.pid
                          and self.status().get("mqtt_connected")) or proc.poll() is not None,
                 timeout=30, what="the daemon to connect")
        assert proc.poll() is None, proc.communicate()[1]

    def grant(self, *args: str) -> None:
        """Grant consent with the owner tool's signed command, through a briefly running daemon."""
        proc = self.start("porch", "--realtime")
        try:
            self.connected(proc)
            self.owner("consent", "grant", *args)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)

    def status(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.data / "status.json").read_text()))
        except (OSError, ValueError):
            return {}


def provision(tmp: Path, broker: Mosquitto, s3: SeaweedS3, bucket: str) -> Rig:
    p = pair_for_test(tmp, broker.url)
    return Rig(tmp, p.data, p.owner_dir, p.label, broker, s3, bucket)


@pytest.fixture
def rig(tmp_path: Path, mosquitto: Mosquitto, seaweed: SeaweedS3) -> Rig:
    return provision(tmp_path, mosquitto, seaweed, seaweed.create_bucket("uplink"))


class Subscriber:
    """A subscriber to ``doorward/#`` collecting everything in order."""

    def __init__(self, url: str, *, persistent: bool = False) -> None:
        self.inbox: queue.Queue[InboundMessage] = queue.Queue()
        # reconnect_max_s: back within 2 s of a broker restart (paho's default backoff could
        # keep it away for 32 s after a 30 s outage, past the drain below).
        # resume_session: clean start off from the first connection. Mosquitto 2.0.11 (Debian 12)
        # keeps over its restart only sessions begun that way: one begun with clean start on
        # (even with a session expiry) is gone after a restart, and what the device published
        # before this subscriber was back was acknowledged "no matching subscribers" and lost.
        self.client = MqttClient(MqttSettings(url=url, client_id="test-subscriber",
                                              session_expiry_s=3600 if persistent else 0,
                                              resume_session=persistent, reconnect_max_s=2),
                                 on_message=self.inbox.put)
        self.client.subscribe("doorward/#")
        self.client.start()
        assert self.client.wait_connected(10)
        self.got: list[InboundMessage] = []

    def drain(self, until: float = 0.5) -> list[InboundMessage]:
        """Collect until nothing arrived for ``until`` seconds."""
        while True:
            try:
                self.got.append(self.inbox.get(timeout=until))
            except queue.Empty:
                return self.got

    def stop(self) -> None:
        self.client.stop()


class MosquittoSub:
    """The real ``mosquitto_sub -v`` (Debian mosquitto-clients) on a topic filter."""

    def __init__(self, port: int, topic: str) -> None:
        exe = shutil.which("mosquitto_sub")
        assert exe, "mosquitto_sub is missing: install mosquitto-clients (scripts/test does)"
        self.proc = subprocess.Popen([exe, "-p", str(port), "-h", "127.0.0.1", "-t", topic, "-v",
                                      "-q", "1"], stdout=subprocess.PIPE, text=True)

    def lines(self) -> list[tuple[str, str]]:
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        return [tuple(line.split(" ", 1)) for line in out.splitlines() if " " in line]  # type: ignore[misc]


def device_key(rig: Rig) -> bytes:
    return b64u_decode(rig.label["public_key"])


def verified_events(rig: Rig, msgs: list[InboundMessage]) -> list[Any]:
    ident = load_identities(rig.owner_dir / "identity.txt")
    out = []
    for m in msgs:
        if m.topic.endswith("/events") or m.topic.endswith("/clips"):
            out.append(verify_message(m.payload, device_key(rig), identities=ident))
    return out


def test_visit_delivers_signed_events_and_sealed_clip(rig: Rig, tmp_path: Path) -> None:
    sub = Subscriber(rig.broker.url)
    cli_sub = MosquittoSub(rig.broker.port, "doorward/#")
    rig.grant("--scopes", "events,snapshots,clips", "--until-revoked")
    rig.run("visit")  # drains the outbox before exiting
    msgs = sub.drain()
    sub.stop()
    seen_by_cli = [p for t, p in cli_sub.lines() if t.endswith("/events")]
    assert seen_by_cli  # what mosquitto_sub printed verifies with the device's public key
    owner_ident = load_identities(rig.owner_dir / "identity.txt")
    assert all(verify_message(p, device_key(rig), identities=owner_ident) for p in seen_by_cli)
    events = verified_events(rig, msgs)
    kinds = [e.body.kind for e in events if isinstance(e.body, EventBody)]
    assert "motion-started" in kinds and "clip-sealed" in kinds and "motion-ended" in kinds
    assert any(e.message.typ == "uploaded" for e in events)
    assert all(e.message.content == "sealed" for e in events)
    chain = ChainChecker()
    issues = [i for m in msgs if not m.topic.endswith(("/cmd", "/resp")) and "/pair/" not in m.topic
              for i in chain.feed(verify_message(m.payload, device_key(rig)), retained=m.retain)]
    assert issues == []  # every seq once, in order, linked
    keys = rig.objects()
    assert any(k.endswith(".mp4.age") for k in keys)
    assert any(k.endswith(".jpg.age") for k in keys)
    assert any(k.endswith(".manifest.jws") for k in keys)
    for k in keys:
        assert not plain_mp4(rig.object_bytes(k)), k  # no plaintext video in the bucket
        assert rig.label["device_id"] in k and "T" not in k.rsplit("/", 1)[-1].split(".")[0]
    listing = json.loads(rig.owner("clips", "list", "--bucket", rig.bucket, "--endpoint-url",
                                   rig.s3.url, "--addressing-style", "path", "--json").stdout)
    assert listing["chain"]["ok"] and listing["clips"]
    clip_id = listing["clips"][0]["clip_id"]
    fetched = tmp_path / "fetched.mp4"
    rig.owner("clips", "fetch", clip_id, "-o", str(fetched), "--bucket", rig.bucket,
              "--endpoint-url", rig.s3.url, "--addressing-style", "path")
    local = json.loads(doorward("clips", "list", "--data-dir", str(rig.data), "--json").stdout)
    mine = next(c for c in local["clips"] if c["id"] == clip_id)
    direct = tmp_path / "direct.mp4"
    assert age_decrypt(rig.owner_dir / "identity.txt", Path(mine["path"]), direct).returncode == 0
    assert fetched.read_bytes() == direct.read_bytes()
    assert ffprobe(fetched)["codec"] == "h264"
    assert mine["delivered"]
    ledger = doorward("ledger", "show", "--json", "--data-dir", str(rig.data)).stdout
    assert '"kind":"disclosure"' in ledger and rig.bucket in ledger


def test_without_consent_only_status_leaves(rig: Rig) -> None:
    sub = Subscriber(rig.broker.url)
    everything = MosquittoSub(rig.broker.port, "#")
    rig.run("visit")
    msgs = sub.drain()
    sub.stop()
    assert msgs and {m.topic.rsplit("/", 1)[-1] for m in msgs} == {"status"}
    topics = {t for t, _ in everything.lines()}
    assert topics == {f"doorward/{rig.label['device_id']}/status"}
    assert rig.objects() == []
    assert json.loads(doorward("clips", "list", "--data-dir", str(rig.data), "--json").stdout)[
        "clips"]  # recorded locally all the same


def test_revoke_while_uploads_are_queued(tmp_path: Path, mosquitto: Mosquitto,
                                         seaweed_private: SeaweedS3) -> None:
    rig = provision(tmp_path, mosquitto, seaweed_private, seaweed_private.create_bucket("rv"))
    rig.grant("--scopes", "clips", "--days", "1")
    rig.s3.stop()  # the bucket is unreachable: the visit's clip waits in the outbox
    rig.run("visit", "--drain-timeout", "2")
    assert rig.status()["outbox"], "the upload should be queued"
    proc = rig.start("porch", "--realtime")
    try:
        rig.connected(proc)
        rig.owner("consent", "revoke", "--scopes", "clips")
        wait_for(lambda: not rig.status().get("outbox", {}).get("upload:clips"), timeout=10,
                 what="the queued upload to be dropped")
        rig.s3.restart()
        rig.s3.client().head_bucket(Bucket=rig.bucket)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    # Only the ledger checkpoint published while clips consent was in force (at the grant).
    assert [k for k in rig.objects() if "/ledger/" not in k] == []
    ledger = doorward("ledger", "show", "--json", "--data-dir", str(rig.data)).stdout
    assert '"kind":"outbox-drop"' in ledger and "consent revoked" in ledger
    assert '"kind":"disclosure"' not in ledger


def test_bucket_outage_uploads_once_when_it_returns(tmp_path: Path, mosquitto: Mosquitto,
                                                   seaweed_private: SeaweedS3) -> None:
    rig = provision(tmp_path, mosquitto, seaweed_private, seaweed_private.create_bucket("bo"))
    rig.grant("--scopes", "clips,snapshots", "--days", "1")
    rig.s3.stop()
    rig.run("cat", "--drain-timeout", "2")
    rig.s3.restart()
    rig.run("passerby")  # the next start delivers the backlog, then its own clips
    keys = rig.objects()
    clips = [k for k in keys if k.endswith(".mp4.age")]
    manifests = [k for k in keys if k.endswith(".manifest.jws")]
    local = json.loads(doorward("clips", "list", "--data-dir", str(rig.data), "--json").stdout)
    assert len(clips) == len(manifests) == len(local["clips"]) >= 2  # each exactly once
    listing = json.loads(rig.owner("clips", "list", "--bucket", rig.bucket, "--endpoint-url",
                                   rig.s3.url, "--addressing-style", "path", "--json").stdout)
    assert listing["chain"]["ok"]


def test_broker_outage_every_event_arrives_once_in_order(tmp_path: Path,
                                                         seaweed: SeaweedS3) -> None:
    broker = Mosquitto(tmp_path / "mq", persistent=True)
    broker.start()
    try:
        rig = provision(tmp_path, broker, seaweed, seaweed.create_bucket("mq"))
        sub = Subscriber(broker.url, persistent=True)
        proc = rig.start("busy", "--realtime", "--exit-at-eof")
        try:
            rig.connected(proc)
            rig.owner("consent", "grant", "--scopes", "events", "--days", "1")
            wait_for(lambda: rig.status().get("events", 0) >= 1, timeout=30, what="an event")
            broker.stop()
            outage_end = time.monotonic() + 30  # the visits go on while the broker is away
            wait_for(lambda: time.monotonic() > outage_end, timeout=40, what="the outage",
                     interval=0.5)
            broker.restart()
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            # The daemon handed every message to the broker before exiting (it warns and keeps
            # the rest for its next start otherwise): what is missing below is then the
            # subscriber's to collect, not the device's to send.
            assert "outbox not drained" not in err, err
        finally:
            proc.kill()
        # Back on the restarted broker (its session, and the messages queued for it there while
        # it was away, restored) before the drain's 2 s of silence starts counting.
        assert sub.client.wait_connected(30)
        msgs = sub.drain(until=2.0)
        sub.stop()
    finally:
        broker.stop()
    events = verified_events(rig, msgs)
    seqs = [e.message.seq for e in events]
    assert seqs == sorted(set(seqs)), seqs  # exactly once per seq, in order
    chain = ChainChecker()
    assert [i for e in events for i in chain.feed(e) if i.kind != "gap"] == []
    kinds = [e.body.kind for e in events if isinstance(e.body, EventBody)]
    recorded = doorward_json("events", "list", "--data-dir", str(rig.data), "--json")["events"]
    assert kinds.count("motion-started") == kinds.count("motion-ended") == len(recorded) >= 1


def test_sigkill_during_multipart_upload_resumes(rig: Rig) -> None:
    rig.grant("--scopes", "clips", "--days", "1")
    extra = ("multipart_threshold_bytes = 5242880\npart_size_bytes = 5242880\n"
             "[recording]\ncrf = 4\nbitrate_kbps = 50000")  # no cap: a big clip, several parts
    proc = rig.start("visit", "--exit-at-eof", config_extra=extra)

    def parts_done() -> int:
        path = rig.data / "outbox.sqlite"
        if not path.exists():  # never create it: the daemon owns it
            return 0
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                rows = db.execute("SELECT progress FROM items WHERE kind = 'upload'").fetchall()
            finally:
                db.close()
        except sqlite3.Error:
            return 0
        for (progress,) in rows:
            if progress and "clip_parts" in progress:
                state = json.loads(json.loads(progress)["clip_parts"])
                return len(state["parts"])
        return 0

    try:
        wait_for(lambda: parts_done() >= 1 or proc.poll() is not None, timeout=120,
                 what="a multipart upload in progress", interval=0.01)
        assert proc.poll() is None, "the upload finished before it could be interrupted"
        proc.kill()
        proc.wait(timeout=10)
    finally:
        proc.kill()
    done_before = parts_done()
    uploads = rig.s3.client().list_multipart_uploads(Bucket=rig.bucket).get("Uploads", [])
    assert len(uploads) == 1  # left open for the resume
    rig.run("cat", config_extra=extra)
    assert rig.s3.client().list_multipart_uploads(Bucket=rig.bucket).get("Uploads", []) == []
    listing = json.loads(rig.owner("clips", "list", "--bucket", rig.bucket, "--endpoint-url",
                                   rig.s3.url, "--addressing-style", "path", "--json").stdout)
    assert listing["chain"]["ok"]
    local = json.loads(doorward("clips", "list", "--data-dir", str(rig.data), "--json").stdout)
    visit = max(local["clips"], key=lambda c: c["bytes"])
    assert visit["bytes"] > 2 * 5242880 and done_before >= 1
    key = next(k for k in rig.objects() if k.endswith(f"{visit['id']}.mp4.age"))
    assert rig.object_bytes(key) == Path(visit["path"]).read_bytes()
