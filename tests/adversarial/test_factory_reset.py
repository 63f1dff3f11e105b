"""Adversarial: a factory reset leaves nothing of the previous owner (issue 12, finding 2).

The attacker is the next owner of a second-hand doorbell, or a thief who images its card right
after the reset: `sqlite3` and a raw byte search on copies of every file in the data directory
(``-wal`` and ``-shm`` included), a stranger subscribed to ``#`` on the broker, and the ordinary
owner tool. Real daemon (``doorward run`` on a simulated porch, real time, mock pins pressed with
``doorward press``), real Mosquitto, real owner tool.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.app import build_detector, build_tracker
from agent.config import parse_config
from agent.delivery.legacy_discovery import PUBLISHED_SETTING
from agent.delivery.outbox import Outbox
from agent.device.control_plane import DeviceController, UplinkHooks, open_device_state
from agent.device.database import DeviceDB
from agent.device.ledger import HEAD_SETTING, Ledger
from agent.runtime.frame_loop import Pipeline
from agent.runtime.handover import Handover
from agent.store import ClipEnd, ClipStart, ClipStore
from tests.helpers import DOORWARD, SMALL_CONFIG, doorward, doorward_json, wait_for
from tests.servers import Mosquitto
from uplink.agekeys import Identity
from uplink.keys import key_id_for, public_raw
from uplink.mqtt import InboundMessage, MqttClient, MqttSettings

# A ring keeps its event (and clip) open for 15 s after the last motion: long enough for the
# 10 s SETUP hold of a reset to land while the clip is being recorded.
CONFIG = SMALL_CONFIG + """
[events]
post_roll_s = 15.0
"""


@dataclass
class Device:
    proc: subprocess.Popen[str]
    data: Path
    broker: Mosquitto
    label: dict[str, str]

    def status(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.data / "status.json").read_text()))
        except (OSError, ValueError):
            return {}

    def press(self, button: str, hold_s: float) -> None:
        doorward("press", button, "--hold", str(hold_s), "--data-dir", str(self.data))

    def json(self, *args: str) -> Any:
        return doorward_json(*args, "--data-dir", str(self.data), "--json")

    def pair(self, owner_dir: Path) -> dict[str, Any]:
        doorward("owner", "--owner-dir", str(owner_dir), "init")
        self.press("setup", 3.5)
        wait_for(lambda: self.status().get("pairing_open"), timeout=15, what="a pairing window")
        owner(owner_dir, "pair", "--broker", self.broker.url, "--device", self.label["device_id"],
              "--setup-code", self.label["setup_code"], "--fingerprint",
              self.label["fingerprint"], "--timeout", "10")
        wait_for(lambda: self.status().get("sealing") == "owners", timeout=10, what="owner mode")
        return dict(doorward_json("owner", "--owner-dir", str(owner_dir), "show", "--json"))


def owner(owner_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return doorward("owner", "--owner-dir", str(owner_dir), *args)


class Stranger:
    """A client of someone else on the same broker, subscribed to everything."""

    def __init__(self, url: str) -> None:
        self.inbox: queue.Queue[InboundMessage] = queue.Queue()
        self.client = MqttClient(MqttSettings(url=url, client_id="stranger"),
                                 on_message=self.inbox.put)
        self.client.subscribe("#")
        self.client.start()
        assert self.client.wait_connected(10)
        self.seen: list[InboundMessage] = []

    def take(self) -> list[InboundMessage]:
        while True:
            try:
                self.seen.append(self.inbox.get_nowait())
            except queue.Empty:
                return self.seen

    def stop(self) -> None:
        self.client.stop()


@pytest.fixture
def device(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Device]:
    data, cfg = tmp_path / "device", tmp_path / "device.toml"
    cfg.write_text(CONFIG)
    proc = subprocess.Popen(
        [DOORWARD, "run", "--config", str(cfg), "--source", "sim:porch", "--realtime",
         "--data-dir", str(data), "--broker", mosquitto.url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    d = Device(proc, data, mosquitto, {})
    try:
        wait_for(lambda: (d.status().get("pid") == proc.pid and d.status().get("mqtt_connected"))
                 or proc.poll() is not None, timeout=30, what="the daemon to connect")
        assert proc.poll() is None, proc.communicate()[1]
        d.label = doorward_json("device", "label", "--json", "--data-dir", str(data))
        yield d
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                _, err = proc.communicate(timeout=60)
                print(err[-6000:])  # shown when the test fails
            except subprocess.TimeoutExpired:
                proc.kill()


def claims(jws: bytes) -> dict[str, Any]:
    middle = jws.split(b".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(middle + b"=" * (-len(middle) % 4))))


def image_card(data: Path, into: Path) -> dict[str, bytes]:
    """What a thief gets by copying every file of the data directory now (the daemon running:
    like pulling the power and imaging the card)."""
    out: dict[str, bytes] = {}
    for path in sorted(data.rglob("*")):
        if path.is_file() and not path.is_symlink():
            copy = into / path.relative_to(data)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
            out[str(path.relative_to(data))] = copy.read_bytes()
    return out


@pytest.mark.slow
def test_reset_leaves_nothing_of_the_previous_owner(device: Device, tmp_path: Path) -> None:
    stranger = Stranger(device.broker.url)
    try:
        alice = device.pair(tmp_path / "alice")
        owner(tmp_path / "alice", "consent", "grant", "--scopes", "events", "--until-revoked")
        device.press("ring", 0.3)
        clips = wait_for(lambda: device.json("clips", "list")["clips"], timeout=60,
                         what="a clip of Alice's")
        assert clips[0]["recipients"] == [alice["recipient"]]
        device.press("ring", 0.3)  # a second visitor: this clip is being recorded at the reset
        in_progress = wait_for(
            lambda: device.status().get("recording") and device.status()["last_event"].get(
                "clip_id") not in {c["id"] for c in clips}
            and device.status()["last_event"].get("clip_id"),
            timeout=20, what="a clip in progress")
        events_before = [m.payload for m in stranger.take() if m.topic.endswith("/events")]
        assert events_before and all(claims(p)["content"] == "sealed" for p in events_before)

        device.press("setup", 10.5)
        wait_for(lambda: device.status().get("sealing") == "dev-owner", timeout=45,
                 what="the reset to finish")
        wait_for(lambda: not device.json("clips", "list")["clips"], timeout=10,
                 what="clips to be wiped")
        first = json.loads(doorward("ledger", "show", "--json", "--data-dir",
                                    str(device.data)).stdout.splitlines()[1])
        assert first["kind"] == "factory-reset"

        # The card, imaged: nothing of Alice's, in any file, in any form.
        card = image_card(device.data, tmp_path / "card")
        assert any(name.endswith("-wal") for name in card), sorted(card)
        secrets = {
            "Alice's key id": alice["key_id"].encode(),
            "Alice's recipient": alice["recipient"].encode(),
            "Alice's public key": alice["public_key"].encode(),
            "the clip in progress": str(in_progress).encode(),
            **{f"clip {c['id']}": c["id"].encode() for c in clips},
            **{f"event message {i}": p.split(b".")[2] for i, p in enumerate(events_before)},
        }
        found = {what: name for what, needle in secrets.items()
                 for name, raw in card.items() if needle in raw}
        assert found == {}, f"the previous owner's data survives the reset: {found}"
        assert not list((device.data / "clips").glob(f"{in_progress}*"))
        with sqlite3.connect(tmp_path / "card" / "index.sqlite") as db:
            assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0
            assert db.execute("SELECT COUNT(*) FROM clips").fetchone()[0] == 0
        with sqlite3.connect(tmp_path / "card" / "device.sqlite") as db:
            settings = dict(db.execute("SELECT key, value FROM settings").fetchall())
            assert "event_content" not in settings, settings
            for table in ("owners", "grants", "counters", "jti_seen"):
                assert db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0, table
        with sqlite3.connect(tmp_path / "card" / "outbox.sqlite") as db:
            payloads = [bytes(p) for (p,) in db.execute(
                "SELECT payload FROM items WHERE payload IS NOT NULL AND length(payload) > 0")]
            assert payloads == [], "outbox payloads survive the reset"

        # The next owner grants only events: what she gets is sealed to her.
        stranger.take()
        stranger.seen.clear()
        device.pair(tmp_path / "bob")
        owner(tmp_path / "bob", "consent", "grant", "--scopes", "events", "--until-revoked")
        device.press("ring", 0.3)
        after = wait_for(lambda: [m.payload for m in stranger.take()
                                  if m.topic.endswith("/events")],
                         timeout=30, what="an event for the next owner")
        assert all(claims(p)["content"] == "sealed" for p in after), [claims(p) for p in after]
    finally:
        stranger.stop()


# ---- the same attack, deterministic, on the parts the daemon wires (no broker in this run) -----


def test_reset_scrubs_every_database_file(tmp_path: Path) -> None:
    """An earlier run had a broker and a bucket; this one has neither (the reset comes from the
    button). Every trace of Alice in device.sqlite, index.sqlite and outbox.sqlite, in the files
    and in their -wal, is gone after the reset; the record of retained discovery configs stays
    (it names topics only) so the next start with a broker removes them."""
    data = tmp_path / "device"
    data.mkdir()
    state = open_device_state(data)
    store = ClipStore(data, max_bytes=1 << 30, retention_days=30)
    alice_key, alice_age = public_raw(Ed25519PrivateKey.generate()), Identity.generate()
    now = time.time()
    state.consent.add_owner(alice_key, str(alice_age.recipient), "owner", now)
    state.consent.grant(["events"], None, key_id_for(alice_key), now)
    state.db.set_setting("event_content", "clear")
    state.db.set_setting(PUBLISHED_SETTING, '{"digest":"x","topics":["homeassistant/event/d/x'
                                            '/config"]}')
    state.ledger.append("setting", {"by": key_id_for(alice_key), "note": "ALICE-LEDGER"}, now)
    sink = store.open_clip("aliceclip0001", ClipStart(now, 0.0, (str(alice_age.recipient),),
                                                      "1", "ring"))
    sink.write(b"ALICE-CLIP-BYTES")
    sink.commit(ClipEnd(now + 1, 1.0))
    store.record_event(event_id="aliceevent", reason="ring", onset_s=0.0, last_motion_s=1.0,
                       peak_area=0.1, clip_id="aliceclip0001")
    outbox = Outbox(data / "outbox.sqlite")
    sent = outbox.enqueue_message("doorward/d/events", b"ALICE-PAYLOAD-SENT", "events", now=now)
    outbox.mark_sent([sent.id], now)
    outbox.enqueue_message("doorward/d/events", b"ALICE-PAYLOAD-QUEUED", "events", now=now)
    outbox.enqueue_upload({"clip_id": "aliceclip0001", "recipients": [str(alice_age.recipient)]},
                          "clips", now=now)
    outbox.close()

    cfg = parse_config("")
    pipeline = Pipeline(build_detector(cfg), build_tracker(cfg), recorder=None, store=store)
    handover = Handover(data, store, state.db, state.consent, pipeline)
    controller = DeviceController(state, inbox=queue.Queue(), buttons=None, led=None,
                                  sim_press=None, mqtt=None, on_ring=lambda: None,
                                  on_factory_reset=handover.wipe, on_paired=handover.paired)
    try:
        controller.factory_reset()
        card = image_card(data, tmp_path / "card")
        assert {"device.sqlite", "index.sqlite", "outbox.sqlite"} <= set(card)
        needles = {"key id": key_id_for(alice_key).encode(), "public key": alice_key,
                   "recipient": str(alice_age.recipient).encode(), "ledger": b"ALICE-LEDGER",
                   "clip": b"aliceclip0001", "event": b"aliceevent",
                   "clip bytes": b"ALICE-CLIP-BYTES", "sent": b"ALICE-PAYLOAD-SENT",
                   "queued": b"ALICE-PAYLOAD-QUEUED", "content setting": b"event_content"}
        found = {what: name for what, needle in needles.items()
                 for name, raw in card.items() if needle in raw}
        assert found == {}, f"the previous owner's data survives the reset: {found}"
        assert state.db.get_setting(PUBLISHED_SETTING, "") != ""  # removed at the next start
        assert {r[0] for r in state.db.query("SELECT key FROM settings")} == {
            PUBLISHED_SETTING, HEAD_SETTING}
        # Every table holds nothing of Alice's: a table added later must be wiped or named
        # here as kept, with a reason.
        kept = {("device.sqlite", "ledger"): 1,  # restarted: the factory-reset entry
                # PUBLISHED_SETTING (no broker now) and the ledger's signed head, which
                # vouches for the restarted ledger (agent/device/ledger.py HEAD_SETTING)
                ("device.sqlite", "settings"): 2,
                ("outbox.sqlite", "seq_state"): 1}  # the message chain, back at genesis
        for name in ("device.sqlite", "index.sqlite", "outbox.sqlite"):
            with sqlite3.connect(tmp_path / "card" / name) as db:
                tables = [t for (t,) in db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")]
                for table in tables:
                    if table == "sqlite_sequence":
                        continue
                    rows = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                    assert rows == kept.get((name, table), 0), (name, table, rows)
                if name == "outbox.sqlite":
                    assert db.execute("SELECT last_seq FROM seq_state").fetchone()[0] == 0
        assert [e.kind for e in state.ledger.entries()] == ["factory-reset"]
        assert (data / "device.key").exists() and (data / "setup.secret").exists()
    finally:
        store.close()
        state.db.close()


def test_a_reset_stops_the_upload_in_flight_before_the_ledger_restarts(tmp_path: Path) -> None:
    """An upload still sending when the reset lands would record its disclosure (the previous
    owner's clip, bucket and grants) in the next owner's ledger: the reset revokes everything
    first, and the revocation waits for the upload in flight to stop."""
    data = tmp_path / "device"
    state = open_device_state(data)
    calls: list[str] = []

    def revoked(scopes: list[str]) -> None:
        calls.append("revoked:" + ",".join(sorted(scopes)))

    def wipe() -> dict[str, Any]:
        calls.append("wipe")
        return {}

    controller = DeviceController(state, inbox=queue.Queue(), buttons=None, led=None,
                                  sim_press=None, mqtt=None, on_ring=lambda: None,
                                  on_factory_reset=wipe, hooks=UplinkHooks(on_revoked=revoked))
    try:
        controller.factory_reset()
    finally:
        controller.close()
        state.db.close()
    assert calls == ["revoked:clips,events,snapshots", "wipe"]
    assert [e.kind for e in Ledger(DeviceDB(data / "device.sqlite"),
                                   state.identity.key).entries()][-1] == "factory-reset"
