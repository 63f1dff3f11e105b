"""End to end: live view with the real daemon and Mosquitto, through ``doorward owner live``.

One real-time daemon for the module (lean: CI's budget). Security first: an unsigned, a
stranger-signed and a replayed ``live.start`` start nothing; then a 10 s session to an MP4 that
ffprobe reads, while a stranger subscribed to ``#`` sees no MP4 box name in any payload, the
session ends by itself, the ledger shows it and the daemon drops no frame.
"""

from __future__ import annotations

import json
import os
import queue
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

from agent.owner.keyring import OwnerKeyring
from tests.helpers import (
    DOORWARD,
    SMALL_CONFIG,
    doorward,
    ffprobe,
    pair_for_test,
    wait_for,
)
from tests.servers import Mosquitto
from uplink.jws import sign as sign_jws
from uplink.keys import b64u, key_id_for, public_raw
from uplink.mqtt import InboundMessage, MqttClient, MqttSettings

pytestmark = [pytest.mark.slow, pytest.mark.serial]  # serial: no dropped frame

MP4_BOXES = (b"ftyp", b"moov", b"moof", b"mdat")


def box_openings(mp4: bytes, length: int = 24) -> list[bytes]:
    """The first ``length`` bytes of each top-level box of ``mp4``: its size, its name and the
    start of its content. A payload carrying the plaintext stream carries these; ciphertext
    matches one by chance with odds of 2^-192 per position (a bare 4-byte name has odds of
    2^-32 per position, over megabytes of ciphertext: CI once saw ``moof`` in a sealed chunk)."""
    out, at = [], 0
    while at + 8 <= len(mp4):
        size = int.from_bytes(mp4[at:at + 4], "big")
        assert size >= 8 and mp4[at + 4:at + 8].isalnum(), f"no MP4 box at {at}: {mp4[at:at + 8]!r}"
        out.append(mp4[at:at + length])
        at += size
    return out


@dataclass
class Live:
    tmp: Path
    data: Path
    owner_dir: Path
    device_id: str
    broker: Mosquitto
    proc: subprocess.Popen[str]
    ring: OwnerKeyring

    def owner(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return doorward("owner", "--owner-dir", str(self.owner_dir), *args, check=check)

    def status(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.data / "status.json").read_text()))
        except (OSError, ValueError):
            return {}

    def ledger(self, kind: str) -> list[dict[str, Any]]:
        db = sqlite3.connect(f"file:{self.data / 'device.sqlite'}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT data FROM ledger WHERE kind = ?", (kind,)).fetchall()
        finally:
            db.close()
        return [json.loads(r[0]) for r in rows]


class Listener:
    """Everything on ``topic``, as a stranger with broker access would see it."""

    def __init__(self, url: str, topic: str = "#") -> None:
        self.inbox: queue.Queue[InboundMessage] = queue.Queue()
        self.client = MqttClient(MqttSettings(url=url, client_id=f"stranger-{os.getpid()}-"
                                              f"{time.monotonic_ns()}"), on_message=self.inbox.put)
        self.client.subscribe(topic)
        self.client.start()
        assert self.client.wait_connected(10)

    def drain(self, quiet_s: float) -> list[InboundMessage]:
        got = []
        while True:
            try:
                got.append(self.inbox.get(timeout=quiet_s))
            except queue.Empty:
                return got

    def stop(self) -> None:
        self.client.stop()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("live")
    broker = Mosquitto(tmp / "broker")
    broker.start()
    p = pair_for_test(tmp, broker.url)
    data, label, ring = p.data, p.label, p.ring
    cfg = tmp / "small.toml"
    cfg.write_text(SMALL_CONFIG)
    proc = subprocess.Popen(
        [DOORWARD, "run", "--config", str(cfg), "--source", "sim:porch", "--realtime",
         "--data-dir", str(data), "--broker", broker.url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rig = Live(tmp, data, tmp / "owner", label["device_id"], broker, proc, ring)
    try:
        wait_for(lambda: (rig.status().get("pid") == proc.pid
                          and rig.status().get("mqtt_connected")) or proc.poll() is not None,
                 timeout=30, what="the daemon to connect")
        assert proc.poll() is None, proc.communicate()[1]
        yield rig
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        broker.stop()


def _token(rig: Live, key: Ed25519PrivateKey, ctr: int, *, kid: str | None = None) -> bytes:
    """A live.start signed by ``key``, claiming to come from ``kid`` (default: key's own id)."""
    now = int(time.time())
    topic = f"doorward/{rig.device_id}/cmd"
    kid = kid or key_id_for(public_raw(key))
    claims = {"iss": kid, "aud": rig.device_id, "iat": now, "exp": now + 120,
              "jti": b64u(os.urandom(16)), "ctr": ctr, "cmd": "live.start",
              "topic": topic, "args": {"seconds": 2, "session": None}}
    return sign_jws(claims, key, kid=kid).encode("ascii")


def _sessions(messages: list[InboundMessage], device_id: str) -> set[str]:
    prefix = f"doorward/{device_id}/live/"
    return {m.topic[len(prefix):] for m in messages if m.topic.startswith(prefix)}


def test_unsigned_stranger_signed_and_replayed_live_start_start_nothing(live: Live) -> None:
    listener = Listener(live.broker.url, f"doorward/{live.device_id}/live/#")
    pub = MqttClient(MqttSettings(url=live.broker.url, client_id="attacker"),
                     on_message=lambda _m: None)
    pub.start()
    assert pub.wait_connected(10)
    cmd = f"doorward/{live.device_id}/cmd"
    try:
        good = _token(live, live.ring.key, live.ring.next_counter(live.device_id))
        header, claims, sig = good.split(b".")
        pub.publish(cmd, header + b"." + claims + b".", qos=1)  # unsigned (signature stripped)
        pub.publish(cmd, header + b"." + claims + b"." + b"A" * len(sig), qos=1)  # forged
        pub.publish(cmd, b'{"cmd": "live.start", "args": {"seconds": 5}}', qos=1)
        stranger = Ed25519PrivateKey.generate()
        pub.publish(cmd, _token(live, stranger, 2**40), qos=1)  # a stranger's own key
        pub.publish(cmd, _token(live, stranger, 2**40, kid=live.ring.key_id), qos=1)  # posing
        assert _sessions(listener.drain(3.0), live.device_id) == set(), \
            "a command without the owner's signature started live view"
        pub.publish(cmd, good, qos=1)  # the genuine one: exactly one session ...
        pub.publish(cmd, good, qos=1)  # ... and its replay starts no second one
        time.sleep(0.2)
        pub.publish(cmd, good, qos=1)
        sessions = _sessions(listener.drain(4.0), live.device_id)
        assert len(sessions) == 1, f"a replayed live.start started {len(sessions)} sessions"
    finally:
        pub.stop()
        listener.stop()


def test_owner_live_writes_a_playable_mp4_and_strangers_see_no_video(live: Live) -> None:
    stranger = Listener(live.broker.url, "#")
    dropped_before = live.status().get("dropped_frames", 0)
    out = live.tmp / "x.mp4"
    try:
        started = time.monotonic()
        result = live.owner("live", "--seconds", "10", "-o", str(out), "--json")
        took = time.monotonic() - started
        seen = stranger.drain(1.0)
    finally:
        stranger.stop()
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["ended"] == "device: duration", summary  # the device ended it by itself
    assert took < 25, f"owner live --seconds 10 took {took:.1f} s"
    probe = ffprobe(out)
    assert probe["codec"] == "h264"
    assert 8.0 <= probe["duration"] <= 12.0, (probe, summary, live.ledger("live-view"))
    live_msgs = [m for m in seen if "/live/" in m.topic]
    assert len(live_msgs) > 100, f"the stranger saw only {len(live_msgs)} live messages"
    openings = box_openings(out.read_bytes())  # what the owner decrypted: the plaintext stream
    assert {o[4:8] for o in openings} >= set(MP4_BOXES), [o[4:8] for o in openings]
    for m in seen:
        for opening in openings:
            assert opening not in m.payload, f"{opening[4:8]!r} box readable on {m.topic}"
    entries = [e for e in live.ledger("live-view") if e["session"] == summary["session"]]
    assert len(entries) == 1, live.ledger("live-view")
    e = entries[0]
    assert e["by"] == live.ring.key_id and e["bytes"] > 0 and 9 <= e["to"] - e["from"] <= 12
    assert e["reason"] == "duration"
    assert live.status().get("dropped_frames", 0) == dropped_before, "live view dropped frames"
