"""The whole daemon built in-process by agent.app.build with every adapter a twin: a simulated
camera, the loopback broker, the in-memory object store, gpiozero's mock pins and a test clock.
A short scene runs to EOF; its event must reach the broker and its sealed clip the store."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gpiozero.pins.mock import MockFactory

from agent.app import RunOptions, build
from agent.camera.sources import make_source, parse_source
from agent.config import parse_config
from agent.device.control_plane import open_device_state
from uplink.agekeys import Identity
from uplink.keys import public_raw
from uplink.loopback_mqtt import LoopbackBroker
from uplink.memory_store import MemoryObjectStore

CONFIG = """
[camera]
width = 320
height = 180
fps = 10.0
"""


@dataclass
class CountingClock:
    """Real time, counting its readings: shows build wired the clock it was given."""

    readings: list[str] = field(default_factory=list)

    def wall(self) -> float:
        self.readings.append("wall")
        return time.time()

    def monotonic(self) -> float:
        self.readings.append("monotonic")
        return time.monotonic()


def test_a_scene_runs_to_eof_and_its_event_and_clip_leave(tmp_path: Path) -> None:
    data = tmp_path / "data"
    state = open_device_state(data)  # an owner paired earlier, who granted events and clips
    owner = Identity.generate()
    now = time.time()
    state.consent.add_owner(public_raw(Ed25519PrivateKey.generate()), str(owner.recipient),
                            "owner", now)
    state.consent.grant(["events", "clips"], now + 3600, "k-test", now)
    device_id = state.identity.device_id
    state.db.close()

    cfg = parse_config(CONFIG)
    spec = parse_source("sim:cat")
    camera = make_source(spec, width=320, height=180, fps=10.0, luma_width=cfg.camera.luma_width,
                         realtime=False, loop=False)
    broker, store, pins, clock = LoopbackBroker(), MemoryObjectStore(), MockFactory(), \
        CountingClock()
    opts = RunOptions(data_dir=str(data), source="sim:cat", exit_at_eof=True,
                      drain_timeout_s=20.0)
    daemon = build(cfg, opts, camera=camera, mqtt=broker.client, object_store=store,
                   pin_factory=pins, clock=clock)
    assert daemon.camera is camera and daemon.gpio.sim_press is not None
    assert daemon.uplink is not None and daemon.controller.mqtt is not None
    try:
        assert daemon.run() == 0
    finally:
        broker.close()

    events = broker.published(f"doorward/{device_id}/events")
    assert len(events) >= 2  # motion started and ended, signed
    assert all(m.payload.count(b".") == 2 for m in events)
    assert broker.published(f"doorward/{device_id}/status")  # online, on connecting
    clips = daemon.local.store.list_clips()
    assert clips and all(c.delivered for c in clips)
    sealed = [k for k in store.sorted_keys() if k.endswith(".mp4.age")]
    assert len(sealed) == len(clips)
    assert store.objects[sealed[0]].startswith(b"age-encryption.org/v1\n")
    assert any(k.endswith(".manifest.jws") for k in store.sorted_keys())
    assert "wall" in clock.readings and "monotonic" in clock.readings
    assert daemon.reports.links["bucket"].state == "ok"
    assert daemon.reports.links["broker"].state in ("connected", "disconnected")
