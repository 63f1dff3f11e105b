"""DeviceController over the loopback broker (uplink.loopback_mqtt), with a test clock: the
pairing window, rings, an owner command's round trip, factory reset, and the lanes' reports
handed to the handlers registered for them."""

from __future__ import annotations

import logging
import queue
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.delivery.links import ClipDelivered, LaneReports, LinkState
from agent.device.buttons import ButtonEvent
from agent.device.control_plane import (
    DeviceController,
    DeviceState,
    UplinkHooks,
    open_device_state,
    topics,
)
from tests.unit.twinrig import TIMEOUT, Owner, TestClock, peer
from uplink import pairing
from uplink.loopback_mqtt import LoopbackBroker, LoopbackMqttClient
from uplink.mqtt_types import ConnectionEvent, InboundMessage, MqttSettings


@dataclass
class Calls:
    rings: int = 0
    paired: int = 0
    wiped: int = 0
    revoked: list[list[str]] = field(default_factory=list)
    guarded: list[str] = field(default_factory=list)
    changed: int = 0
    connected: int = 0
    events: list[ConnectionEvent] = field(default_factory=list)


@dataclass
class Rig:
    state: DeviceState
    broker: LoopbackBroker
    client: LoopbackMqttClient
    controller: DeviceController
    clock: TestClock
    calls: Calls
    topics: dict[str, str]

    def pump(self) -> None:
        """Let the broker route everything, then run one loop tick."""
        self.broker.sync()
        self.controller.tick()

    def reply(self, inbox: queue.Queue[InboundMessage]) -> InboundMessage:
        self.pump()
        return inbox.get(timeout=TIMEOUT)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    state = open_device_state(tmp_path / "device")
    device_id = state.identity.device_id
    broker, clock, calls = LoopbackBroker(), TestClock(), Calls()
    inbox: queue.Queue[Any] = queue.Queue()
    client = broker.client(MqttSettings(url="mqtt://localhost", client_id=device_id,
                                        will_topic=topics(device_id)["status"],
                                        manual_ack=True),  # as agent.app.build_mqtt's
                           on_message=inbox.put)

    class Guard:
        def __enter__(self) -> None:
            calls.guarded.append("enter")

        def __exit__(self, *exc: object) -> None:
            calls.guarded.append("exit")

    def ring() -> None:
        calls.rings += 1

    def paired() -> None:
        calls.paired += 1

    def wipe() -> dict[str, Any]:
        calls.wiped += 1
        return {"clips": 0}

    def changed() -> None:
        calls.changed += 1

    def connected() -> None:
        calls.connected += 1

    hooks = UplinkHooks(command_guard=Guard, on_revoked=calls.revoked.append,
                        on_connected=connected, on_connection=calls.events.append,
                        on_changed=changed)
    controller = DeviceController(state, inbox=inbox, buttons=None, led=None, sim_press=None,
                                  mqtt=client, on_ring=ring, on_factory_reset=wipe,
                                  on_paired=paired, hooks=hooks, wall=clock.wall,
                                  mono=clock.monotonic)
    controller.start()
    assert client.wait_connected(TIMEOUT)
    yield Rig(state, broker, client, controller, clock, calls, topics(device_id))
    controller.close()
    broker.close()
    state.db.close()


def test_connection_events_reach_the_hooks(rig: Rig) -> None:
    rig.pump()
    assert rig.calls.connected == 1 and rig.calls.events[-1].connected
    rig.broker.cut(rig.state.identity.device_id)
    assert rig.client.wait_connected(TIMEOUT)
    rig.pump()
    assert [e.connected for e in rig.calls.events] == [True, False, True]
    assert rig.calls.connected == 2


def test_ring_button_calls_on_ring(rig: Rig) -> None:
    rig.controller.inbox.put(ButtonEvent("ring", rig.clock.monotonic()))
    rig.pump()
    assert rig.calls.rings == 1


def test_pairing_over_the_broker_in_an_open_window(rig: Rig) -> None:
    owner = Owner(rig.state.identity.device_id)
    tool, inbox = peer(rig.broker, "owner-tool", rig.topics["pair_out"])
    attempt = pairing.OwnerPairing(owner.device_id, None, rig.state.identity.setup_secret,
                                   owner.key, owner.recipient)
    hello = pairing.encode(attempt.hello())

    tool.publish(rig.topics["pair_in"], hello)  # no window open: ignored
    rig.pump()
    assert rig.broker.published(rig.topics["pair_out"]) == []

    rig.controller.inbox.put(ButtonEvent("pair", rig.clock.monotonic(), held_s=3.5))
    rig.pump()
    assert rig.controller.window.is_open(rig.clock.monotonic())
    tool.publish(rig.topics["pair_in"], hello)
    challenge = pairing.decode(rig.reply(inbox).payload)
    assert isinstance(challenge, pairing.Challenge)
    tool.publish(rig.topics["pair_in"], pairing.encode(attempt.on_challenge(challenge)))
    result = pairing.decode(rig.reply(inbox).payload)
    assert isinstance(result, pairing.Result)
    outcome = attempt.on_result(result)

    assert outcome.device_id == rig.state.identity.device_id
    assert [o.recipient for o in rig.state.consent.owners()] == [owner.recipient]
    assert rig.calls.paired == 1
    assert not rig.controller.window.is_open(rig.clock.monotonic())
    assert rig.controller.window.close_reason == "paired"


def test_pairing_window_closes_after_its_duration(rig: Rig) -> None:
    rig.controller.open_pairing(rig.clock.monotonic())
    assert rig.controller.window.is_open(rig.clock.monotonic())
    rig.clock.advance(rig.controller.window.duration_s + 1)
    rig.pump()
    assert not rig.controller.window.is_open(rig.clock.monotonic())


def test_owner_command_round_trip_over_the_broker(rig: Rig) -> None:
    owner = Owner(rig.state.identity.device_id)
    rig.state.consent.add_owner(owner.public, owner.recipient, "owner", rig.clock.wall())
    tool, inbox = peer(rig.broker, "owner-tool", rig.topics["resp"])
    args = {"scopes": ["events"], "days": 7, "until_revoked": False}
    tool.publish(rig.topics["cmd"], owner.command("consent.grant", args, rig.clock.wall()))
    reply = rig.reply(inbox)
    assert reply.payload.count(b".") == 2  # a signed reply (JWS) came back
    assert rig.state.consent.allows("events", rig.clock.wall())
    assert rig.calls.guarded == ["enter", "exit"] and rig.calls.changed == 1

    tool.publish(rig.topics["cmd"], owner.command("consent.revoke", {"scopes": ["events"]},
                                                  rig.clock.wall()))
    rig.reply(inbox)
    assert not rig.state.consent.allows("events", rig.clock.wall())
    assert rig.calls.revoked == [["events"]]


def test_a_message_is_acknowledged_once_handled_and_not_before(rig: Rig) -> None:
    owner = Owner(rig.state.identity.device_id)
    rig.state.consent.add_owner(owner.public, owner.recipient, "owner", rig.clock.wall())
    tool, _ = peer(rig.broker, "owner-tool")
    args = {"scopes": ["events"], "days": 7, "until_revoked": False}
    tool.publish(rig.topics["cmd"], owner.command("consent.grant", args, rig.clock.wall()))
    tool.publish(rig.topics["cmd"], b"not a command")  # refused: acknowledged all the same
    device_id = rig.state.identity.device_id
    # on the inbox, not yet handled: a daemon dying now gets both again from its session
    assert [m.topic for m in rig.broker.unacked(device_id)] == [rig.topics["cmd"]] * 2
    rig.pump()
    assert rig.state.consent.allows("events", rig.clock.wall())
    assert rig.broker.unacked(device_id) == []


def test_a_message_whose_handling_raised_is_acknowledged_so_it_cannot_crash_every_start(
        rig: Rig) -> None:
    owner = Owner(rig.state.identity.device_id)
    rig.state.consent.add_owner(owner.public, owner.recipient, "owner", rig.clock.wall())

    class Broken:
        def __enter__(self) -> None:
            raise RuntimeError("disk on fire")

        def __exit__(self, *exc: object) -> None:
            pass

    rig.controller.hooks = UplinkHooks(command_guard=Broken)
    tool, _ = peer(rig.broker, "owner-tool")
    args = {"scopes": ["events"], "days": 7, "until_revoked": False}
    tool.publish(rig.topics["cmd"], owner.command("consent.grant", args, rig.clock.wall()))
    rig.broker.sync()
    with pytest.raises(RuntimeError, match="disk on fire"):  # not swallowed: the daemon sees it
        rig.controller.tick()
    assert rig.broker.unacked(rig.state.identity.device_id) == []


def test_a_stranger_gets_no_grant(rig: Rig) -> None:
    stranger = Owner(rig.state.identity.device_id)
    tool, _ = peer(rig.broker, "stranger")
    args = {"scopes": ["clips"], "days": 7, "until_revoked": False}
    tool.publish(rig.topics["cmd"], stranger.command("consent.grant", args, rig.clock.wall()))
    rig.pump()
    assert not rig.state.consent.allows("clips", rig.clock.wall())
    assert rig.calls.changed == 0


def test_factory_reset_revokes_everything_then_wipes(rig: Rig) -> None:
    owner = Owner(rig.state.identity.device_id)
    rig.state.consent.add_owner(owner.public, owner.recipient, "owner", rig.clock.wall())
    rig.controller.inbox.put(ButtonEvent("reset", rig.clock.monotonic(), held_s=10.0))
    rig.pump()
    assert rig.state.consent.owners() == []
    assert [sorted(s) for s in rig.calls.revoked] == [["clips", "events", "snapshots"]]
    assert rig.calls.wiped == 1 and rig.calls.changed == 1
    assert [e.kind for e in rig.state.ledger.entries()] == ["factory-reset"]


def test_lane_reports_go_to_the_registered_handlers(rig: Rig, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    got: list[object] = []
    rig.controller.handle(ClipDelivered, got.append)
    rig.controller.handle(LinkState, got.append)
    rig.controller.inbox.put(ClipDelivered("clip-1"))
    rig.controller.inbox.put(LinkState("bucket", "ok", rig.clock.wall()))
    with caplog.at_level(logging.WARNING):
        rig.controller.inbox.put(object())
        rig.pump()
    assert got == [ClipDelivered("clip-1"), LinkState("bucket", "ok", rig.clock.wall())]
    assert "no handler" in caplog.text


class _Store:
    def __init__(self, clips: set[str]) -> None:
        self.clips, self.marked = clips, list[str]()

    def get_clip(self, clip_id: str) -> object | None:
        return clip_id if clip_id in self.clips else None

    def mark_delivered(self, clip_id: str) -> None:
        self.marked.append(clip_id)


def test_lane_reports_mark_clips_and_record_links() -> None:
    store = _Store({"kept"})
    clock = TestClock()
    reports = LaneReports(store, wall=clock.wall)  # type: ignore[arg-type]
    reports.on_delivered(ClipDelivered("kept"))
    reports.on_delivered(ClipDelivered("deleted-meanwhile"))
    assert store.marked == ["kept"]
    reports.on_link(LinkState("bucket", "failed", 1.0, "unreachable"))
    reports.on_connection(ConnectionEvent(True, "connected"))
    assert reports.links["broker"] == LinkState("broker", "connected", clock.now)
    reports.on_connection(ConnectionEvent(False, "stopped"))
    assert reports.links["broker"].state == "disconnected"
    assert reports.links["bucket"].error == "unreachable"


@pytest.mark.parametrize("wing", ["agent.delivery", "agent.runtime"])
def test_the_control_plane_imports_nothing_of_delivery_or_runtime(wing: str) -> None:
    import grimp

    graph = grimp.build_graph("agent", "uplink", "motion")
    chain = graph.find_shortest_chain(importer="agent.device.control_plane", imported=wing)
    assert not graph.chain_exists(importer="agent.device.control_plane", imported=wing,
                                  as_packages=True), chain
