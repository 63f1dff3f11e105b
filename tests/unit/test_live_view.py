"""agent.delivery.live_view over the loopback broker: a signed live.start opens a session sealed
to the requester, it ends by itself, by live.stop or when publishing fails (never the recording's
problem), a viewer cannot start one, and the ledger records each session."""

from __future__ import annotations

import itertools
import queue
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from agent.delivery.live_view import LiveViews, register_live_commands
from agent.device.control_plane import DeviceState, open_device_state
from agent.recording.encoder import EncodedPacket, StreamInfo, X264Encoder
from agent.recording.recorder import PrerollRing
from tests.unit.twinrig import T0, TIMEOUT, Owner, peer
from uplink import LiveReceiver, LiveSegment, UplinkError, verify_reply
from uplink.keys import key_id_for
from uplink.loopback_mqtt import LoopbackBroker, LoopbackMqttClient
from uplink.mqtt_types import InboundMessage, MqttSettings

W, H, FPS = 160, 96, 15


class Source:
    """The Recorder's side the sessions need: stream, ring, wall time of a source time."""

    def __init__(self) -> None:
        self.encoder = X264Encoder(W, H, FPS)
        self.stream_info = StreamInfo.of(self.encoder)
        self.ring = PrerollRing(3.0)
        self.n = 0

    def wall_time(self, t: float) -> float:
        return T0 + t

    def frame(self) -> list[EncodedPacket]:
        img = np.full((H * 3 // 2, W), 16, dtype=np.uint8)
        img[: H, (self.n * 3) % W] = 235
        packets = self.encoder.encode(img, self.n / FPS)
        self.n += 1
        for p in packets:
            self.ring.push(p)
        return packets


@dataclass
class Rig:
    state: DeviceState
    owner: Owner
    viewer: Owner
    views: LiveViews
    source: Source
    now: list[float]
    inbox: queue.Queue[InboundMessage]
    device: LoopbackMqttClient
    watcher: LoopbackMqttClient
    last_reply: str = ""

    def frames(self, n: int) -> None:
        for _ in range(n):
            self.now[0] += 1 / FPS
            self.views.on_packets(self.source.frame(), self.now[0])

    def command(self, who: Owner, cmd: str, args: dict[str, object]) -> dict[str, object]:
        topic = f"doorward/{self.state.identity.device_id}/cmd"
        resp = self.state.processor.handle(who.command(cmd, args, self.now[0]), topic, self.now[0])
        self.last_reply = self.state.processor.respond(resp, self.now[0])
        return {"ok": resp.ok, "reason": resp.reason, **resp.result}

    def received(self, session: str, who: Owner | None = None) -> list[LiveSegment]:
        rx = LiveReceiver(self.state.identity.key.public_key(), [(who or self.owner).age], session)
        out: list[LiveSegment] = []
        while True:
            try:
                msg = self.inbox.get(timeout=0.3)
            except queue.Empty:
                return out
            out += rx.feed(msg.payload)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    state = open_device_state(tmp_path)
    device_id = state.identity.device_id
    owner, viewer = Owner(device_id), Owner(device_id)
    viewer._ctr = itertools.count(10_000)  # jti-NNNNNNNN: the two members' jtis must differ
    state.consent.add_owner(owner.public, owner.recipient, "owner", T0)
    state.consent.add_owner(viewer.public, viewer.recipient, "viewer", T0)
    broker = LoopbackBroker()
    client = broker.client(MqttSettings(url="mqtt://localhost", client_id=device_id),
                           on_message=lambda _m: None)
    client.start()
    assert client.wait_connected(TIMEOUT)
    watcher, inbox = peer(broker, "owner-tool", f"doorward/{device_id}/live/#")
    now = [T0]
    source = Source()
    views = LiveViews(client, device_id, state.identity.key, state.ledger, state.consent.owner,
                      source, wall=lambda: now[0])
    register_live_commands(state.processor, views, state.db, state.ledger, state.consent)
    try:
        yield Rig(state, owner, viewer, views, source, now, inbox, client, watcher)
    finally:
        watcher.stop()
        client.stop()
        state.db.close()


def test_a_session_starts_from_the_ring_and_ends_by_itself(rig: Rig) -> None:
    rig.frames(20)  # a keyframe and some in the ring before anyone asks
    r = rig.command(rig.owner, "live.start", {"seconds": 2, "session": None})
    assert r["ok"], r
    rig.frames(45)  # 3 s: the session ran out after 2
    got = rig.received(str(r["session"]))
    kinds = [g.kind for g in got]
    assert kinds[0] == "init" and kinds[-1] == "end" and got[-1].reason == "duration"
    chunks = [g for g in got if g.kind == "chunk"]
    assert chunks[0].key, "the session must start at a keyframe (from the ring)"
    assert 2 * FPS <= len(chunks) <= 2 * FPS + FPS + 1, len(chunks)  # 2 s + at most a GOP
    assert not rig.views.sessions
    entries = [e for e in rig.state.ledger.entries() if e.kind == "live-view"]
    assert len(entries) == 1
    data = entries[0].data
    assert data["by"] == key_id_for(rig.owner.public) and data["session"] == r["session"]
    assert data["bytes"] > 0 and data["reason"] == "duration" and data["to"] - data["from"] >= 2


def test_only_the_requester_can_open_it(rig: Rig) -> None:
    rig.frames(16)
    r = rig.command(rig.owner, "live.start", {"seconds": 1, "session": None})
    rig.frames(3)
    rx = LiveReceiver(rig.state.identity.key.public_key(), [rig.viewer.age], str(r["session"]))
    msg = rig.inbox.get(timeout=TIMEOUT)
    with pytest.raises(UplinkError, match="not sealed to this identity"):
        rx.feed(msg.payload)


def test_a_viewer_cannot_start_live_view(rig: Rig) -> None:
    rig.frames(16)
    r = rig.command(rig.viewer, "live.start", {"seconds": 5, "session": None})
    assert not r["ok"] and r["reason"] == "not-owner"
    rig.frames(5)
    assert rig.inbox.empty() and not rig.views.sessions


def test_stop_ends_it_at_once_and_renew_extends_it(rig: Rig) -> None:
    rig.frames(16)
    r = rig.command(rig.owner, "live.start", {"seconds": 2, "session": None})
    sid = str(r["session"])
    rig.frames(15)
    renewed = rig.command(rig.owner, "live.start", {"seconds": 5, "session": sid})
    assert renewed["ok"] and renewed["session"] == sid
    rig.frames(30)  # past the first 2 s: still running thanks to the renewal
    assert sid in rig.views.sessions
    stopped = rig.command(rig.owner, "live.stop", {"session": sid})
    assert stopped["ok"] and stopped["stopped"] is True and not rig.views.sessions
    assert rig.received(sid)[-1].reason is not None


@pytest.mark.parametrize("args", [{"seconds": 0, "session": None},
                                  {"seconds": 301, "session": None},
                                  {"seconds": "10", "session": None},
                                  {"seconds": 10}])
def test_bad_arguments_are_refused(rig: Rig, args: dict[str, object]) -> None:
    r = rig.command(rig.owner, "live.start", args)
    assert not r["ok"] and r["reason"] in ("bad-args", "missing-field") and not rig.views.sessions


def test_a_publish_failure_ends_the_session_not_the_recording(rig: Rig) -> None:
    rig.frames(16)
    rig.command(rig.owner, "live.start", {"seconds": 10, "session": None})

    def broken(*_a: object, **_k: object) -> None:
        raise UplinkError("broker gone")

    rig.views._publish = broken  # type: ignore[method-assign,assignment]
    rig.frames(2)  # must not raise
    assert not rig.views.sessions and rig.views.failed == 1
    reasons = [e.data["reason"] for e in rig.state.ledger.entries() if e.kind == "live-view"]
    assert len(reasons) == 1 and reasons[0].startswith("failed")


def test_an_owner_can_give_a_viewer_the_live_right_and_take_it_back(rig: Rig) -> None:
    viewer_id = key_id_for(rig.viewer.public)
    assert rig.command(rig.viewer, "live.allow", {"key_id": viewer_id, "allow": True})["reason"] \
        == "not-owner"  # a viewer cannot give themselves the right
    assert rig.command(rig.owner, "live.allow", {"key_id": viewer_id, "allow": True})["ok"]
    rig.frames(16)
    r = rig.command(rig.viewer, "live.start", {"seconds": 30, "session": None})
    assert r["ok"], r
    reply = verify_reply(rig.last_reply.encode(), rig.state.identity.key.public_key(),
                         identities=[rig.viewer.age])  # the result is sealed to the viewer too
    assert reply.result["session"] == r["session"]
    rig.frames(5)
    assert rig.received(str(r["session"]), rig.viewer)[0].kind == "init"
    assert rig.command(rig.owner, "live.allow", {"key_id": viewer_id, "allow": False})["ok"]
    assert not rig.views.sessions, "withdrawing the right must end the viewer's session"
    again = rig.command(rig.viewer, "live.start", {"seconds": 30, "session": None})
    assert not again["ok"] and again["reason"] == "not-owner"
    kinds = [(e.kind, e.data.get("live_viewers")) for e in rig.state.ledger.entries()
             if e.kind == "setting"]
    assert kinds == [("setting", [viewer_id]), ("setting", [])]
