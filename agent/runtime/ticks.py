"""What the daemon loop does besides processing frames: the ring press, the per-frame tick
(controller, live segments, status), the once-a-minute housekeeping and the scripted
rings of a simulated scene.

Wiring (agent.app; everything runs on the loop's thread)::

    ring = RingPress(pipeline, delivery)                 # the controller's on_ring
    tick = LoopTick(status, policy, camera, encoder, pipeline, controller, uplink=uplink,
                    reports=reports, rings=ScriptedRings(camera, sim_press, clock.monotonic),
                    live_segment_s=..., mono=clock.monotonic)
    run_daemon(camera, pipeline, status, stop, tick=tick, housekeeping=Housekeeping(store, status))
"""

from __future__ import annotations

import bisect
import logging
import math
import time
from collections.abc import Callable

from agent.camera.base import Camera
from agent.delivery.links import LaneReports, links_json
from agent.delivery.queueing import Delivery
from agent.delivery.wiring import Uplink
from agent.device.control_plane import DeviceController, Presser
from agent.device.ir_light import IrLight
from agent.errors import DoorwardError
from agent.recording.encoder import VideoEncoder
from agent.recording.live_segments import LiveSegmenter
from agent.recording.sealing import SealingPolicy
from agent.runtime.frame_loop import Pipeline
from agent.runtime.status_file import StatusFile
from agent.store import ClipStore

log = logging.getLogger("doorward")


def cpu_json(encoder: VideoEncoder, camera: Camera) -> dict[str, float]:
    """CPU seconds so far of the whole process, of video encoding (software encoders measure
    theirs; the Pi's hardware encoder costs the CPU next to nothing) and of producing frames (the
    simulator renders them; a camera's ISP does that in hardware), for status.json."""
    doc = {"process_cpu_s": round(time.process_time(), 3)}
    cpu_s = getattr(encoder, "cpu_s", None)
    if cpu_s is not None:
        doc["encoder_cpu_s"] = round(float(cpu_s()), 3)
    source_cpu_s = getattr(camera, "source_cpu_s", None)
    if source_cpu_s is not None:
        doc["source_cpu_s"] = round(float(source_cpu_s), 3)
    child_cpu_s = getattr(camera, "source_child_cpu_s", None)  # a renderer or decoder's process
    if child_cpu_s is not None:
        doc["source_child_cpu_s"] = round(float(child_cpu_s), 3)
    return doc


class RingPress:
    """RING: start (or extend) an event, so a clip is recorded even without motion, and announce
    the press itself, also when it extends an event already under way."""

    def __init__(self, pipeline: Pipeline, delivery: Delivery | None) -> None:
        self.pipeline, self.delivery = pipeline, delivery

    def __call__(self) -> None:
        self.pipeline.ring(self.pipeline.stats.last_frame_t)
        if self.delivery is not None:
            event_id = self.pipeline.event_id
            self.delivery.event("ring", "" if event_id is None else event_id,
                                clip_id=self.pipeline.clip_id)


class Housekeeping:
    """Once a minute: store limits (eviction) and usage into the status."""

    def __init__(self, store: ClipStore, status: StatusFile) -> None:
        self.store, self.status = store, status

    def __call__(self) -> None:
        evicted = self.store.enforce_limits()
        usage = self.store.usage()
        self.status.update(store_bytes=usage.bytes_used, store_clips=usage.clips,
                           disk_free_bytes=usage.disk_free)
        if evicted:
            log.info("store limits: evicted %d clip(s): %s", len(evicted), ", ".join(evicted))


class ScriptedRings:
    """A simulated scene's visitor rings: press the mock RING button at the scene's ring times
    (source seconds, repeating when the scene loops), through the same path a real press takes.
    Call with the source time of each frame."""

    def __init__(self, camera: Camera, sim: Presser | None,
                 mono: Callable[[], float] = time.monotonic) -> None:
        scene = getattr(camera, "scene", None)
        self.rings = sorted(r.t for r in getattr(scene, "rings", ()))
        self.duration: float | None = getattr(scene, "duration_s", None)
        self.sim, self.mono = sim, mono
        self.last = -1.0
        # Before this source time no ring is due (the next one, less a margin for rounding):
        # frames until then skip the scan of every ring in every lap.
        self._quiet_until = -math.inf

    def __call__(self, t: float) -> None:
        if self.sim is None or not self.rings:
            return
        duration, last = self.duration, self.last
        if last <= t < self._quiet_until:
            self.last = t
            return
        laps = range(int(last // duration), int(t // duration) + 1) if duration else (0,)
        if any(last < r + k * (duration or 0) <= t for r in self.rings for k in laps):
            try:
                self.sim.press("ring", 0.3, self.mono())
            except DoorwardError as exc:
                log.debug("scripted ring skipped: %s", exc)
        self.last = t
        self._quiet_until = self._next_after(t) - 1e-6

    def _next_after(self, x: float) -> float:
        """The first ring time after source time ``x``, laps included (inf: none left)."""
        d = self.duration
        if not d:
            i = bisect.bisect_right(self.rings, x)
            return self.rings[i] if i < len(self.rings) else math.inf
        # the lap from the division may be one off in floating point: look at its neighbours too
        return min((r + k * d for r in self.rings
                    for k in range(math.floor((x - r) / d) - 1, math.floor((x - r) / d) + 3)
                    if r + k * d > x), default=math.inf)


class LoopTick:
    """After every frame: scripted rings, the controller's inbox, live segments, and
    the status (database reads and CPU figures once a second, not per frame)."""

    def __init__(self, status: StatusFile, policy: SealingPolicy, camera: Camera,
                 encoder: VideoEncoder, pipeline: Pipeline, controller: DeviceController, *,
                 uplink: Uplink | None, reports: LaneReports, rings: Callable[[float], None],
                 live_segment_s: float, mono: Callable[[], float] = time.monotonic,
                 ir: IrLight | None = None) -> None:
        self.status, self.policy, self.camera, self.encoder = status, policy, camera, encoder
        self.ir = ir  # switched by the camera's light level (picamera2's Lux), after each frame
        if ir is not None:
            status.update(ir_led=ir.state)
        self.pipeline, self.controller, self.uplink = pipeline, controller, uplink
        self.reports, self.rings, self.mono = reports, rings, mono
        self.next_pending = 0.0
        self.live = (LiveSegmenter(uplink.delivery.queue_segment, every_s=live_segment_s)
                     if uplink is not None and uplink.delivery.uploads_enabled
                     and live_segment_s > 0 else None)

    def __call__(self) -> None:
        pipeline, controller, uplink, status = self.pipeline, self.controller, self.uplink, \
            self.status
        self.rings(pipeline.stats.last_frame_t)
        if self.ir is not None and self.ir.update(getattr(self.camera, "light_lux", None)):
            status.update(ir_led=self.ir.state)
        controller.tick()
        if self.live is not None and pipeline.recorder is not None:
            self.live.tick(pipeline.recorder)
        status.update(pairing_open=controller.window.is_open(controller.mono()),
                      mqtt_connected=bool(controller.mqtt and controller.mqtt.is_connected))
        if self.mono() >= self.next_pending:
            status.update(sealing=self.policy.mode, sealing_reason=self.policy.reason,
                          **links_json(self.reports.links), **cpu_json(self.encoder, self.camera))
            if uplink is not None:
                if uplink.checkpoints is not None:
                    uplink.checkpoints.tick()
                status.update(outbox=uplink.pending())
            self.next_pending = self.mono() + 1.0
