"""A stranger on the broker floods the device's command topic: each loop tick (one per frame)
handles at most MAX_INBOX_PER_TICK items, so the frame loop keeps its pace, and nothing queued
behind the flood is lost or reordered: a ring pressed during it is handled once the forged
commands ahead of it are refused, and the flood grants nothing.

Guards the tick's drain (agent/device/control_plane.py), which counts the inbox with qsize()
instead of catching queue.Empty on every frame: a bound lost there would let a flood stall
recording, and an item skipped would drop a ring.
"""

from __future__ import annotations

import math

from agent.device.buttons import ButtonEvent
from agent.device.control_plane import MAX_INBOX_PER_TICK
from tests.unit.test_control_plane import Rig, rig  # noqa: F401 (the fixture)
from tests.unit.twinrig import Owner, peer

FLOOD = 1_000


def test_a_command_flood_is_drained_a_bounded_batch_per_tick_and_a_ring_behind_it_is_kept(
    rig: Rig,  # noqa: F811 (the fixture imported above)
) -> None:
    stranger = Owner(rig.state.identity.device_id)
    tool, _ = peer(rig.broker, "stranger")
    args = {"scopes": ["clips"], "days": 7, "until_revoked": False}
    for _ in range(FLOOD):
        tool.publish(rig.topics["cmd"], stranger.command("consent.grant", args, rig.clock.wall()))
    rig.broker.sync()
    inbox = rig.controller.inbox
    rig.controller.inbox.put(ButtonEvent("ring", rig.clock.monotonic()))
    assert inbox.qsize() == FLOOD + 1

    ticks = 0
    while inbox.qsize():
        before = inbox.qsize()
        rig.controller.tick()
        ticks += 1
        assert before - inbox.qsize() == min(before, MAX_INBOX_PER_TICK)
        if inbox.qsize():
            assert rig.calls.rings == 0  # still behind the forged commands
    assert ticks == math.ceil((FLOOD + 1) / MAX_INBOX_PER_TICK)
    assert rig.calls.rings == 1
    assert not rig.state.consent.allows("clips", rig.clock.wall())
    assert rig.calls.changed == 0
