"""The wired daemon that ``agent.app.build`` returns: every part reachable (tests drive and
inspect them), and :meth:`Daemon.run`, which starts the threads, runs the loop to EOF or a
signal, and stops everything in order.

Usage::

    daemon = build(cfg, opts, mqtt=broker.client, object_store=MemoryObjectStore())
    code = daemon.run()          # or, without running: daemon.close()
    daemon.local.store.list_clips(); daemon.reports.links; daemon.uplink.pending()
"""

from __future__ import annotations

import logging
import queue
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from agent.camera.base import Camera
from agent.delivery.links import LaneReports, links_json
from agent.delivery.wiring import Uplink
from agent.device.buttons import DoorbellButtons, StatusLed
from agent.device.control_plane import DeviceController, Presser
from agent.device.ir_light import IrLight
from agent.paths import DataDir
from agent.recording.encoder import VideoEncoder
from agent.runtime.clock import Clock
from agent.runtime.control_socket import ControlServer, press_handler
from agent.runtime.frame_loop import Pipeline, StopFlag, run_daemon, service_state
from agent.runtime.local_state import Local
from agent.runtime.sdnotify import ServiceNotifier
from agent.runtime.ticks import Housekeeping, LoopTick

log = logging.getLogger("doorward")


@dataclass
class Gpio:
    buttons: DoorbellButtons
    led: StatusLed
    sim_press: Presser | None  # simulated or mock pins only: `doorward press`, scripted rings
    ir: IrLight | None = None  # [gpio] ir_led_pin, switched by LoopTick


@dataclass
class Daemon:
    """What ``build`` wired (see the module docstring). ``stack`` holds what ``run`` (or
    ``close``) releases, the camera last."""

    local: Local
    camera: Camera
    encoder: VideoEncoder
    pipeline: Pipeline
    controller: DeviceController
    uplink: Uplink | None
    reports: LaneReports
    gpio: Gpio
    inbox: queue.Queue[Any]
    tick: LoopTick
    housekeeping: Housekeeping
    stop: StopFlag
    clock: Clock
    stack: ExitStack
    drain_timeout_s: float | None = None  # drain the outbox at EOF (--exit-at-eof)

    def run(self) -> int:
        """Start the lanes, the control socket and the broker connection, run the loop, and
        stop them all; returns the exit code."""
        local, uplink, controller, status = self.local, self.uplink, self.controller, \
            self.local.status
        with self.stack:
            self.stack.callback(controller.close)
            if uplink is not None:
                uplink.worker.start()
                self.stack.callback(uplink.worker.stop)
            control = ControlServer(DataDir(local.data_dir).control_socket,
                                    press_handler(self.inbox)).start()
            self.stack.callback(control.close)
            controller.start()
            camera = self.camera
            log.info("doorward running: device %s, source %s, %dx%d at %g fps, data in %s",
                     local.device.identity.device_id, local.spec, camera.width, camera.height,
                     camera.fps, local.data_dir)
            # systemd (Type=notify): READY=1 once frames flow, STATUS=, watchdog pings per frame.
            notifier = ServiceNotifier.from_env(describe=self.describe)
            self.stack.callback(notifier.close)
            why = run_daemon(camera, self.pipeline, status, self.stop, tick=self.tick,
                             housekeeping=self.housekeeping, notifier=notifier)
            self.housekeeping()
            if uplink is not None and self.drain_timeout_s is not None and why == "eof":
                uplink.drain(self.drain_timeout_s)
                controller.tick()  # what the lanes reported while draining (clips delivered)
                status.update(outbox=uplink.pending(), **links_json(self.reports.links))
        status.update(mqtt_connected=False, pairing_open=False, recording=False)  # not live now
        status.flush(force=True)
        stats = self.pipeline.stats
        log.info("doorward stopped (%s): %d frames, %d events, %d clips, %d dropped frames", why,
                 stats.frames, stats.events, stats.clips, camera.dropped_frames)
        return 0

    def describe(self) -> str:
        """systemd's STATUS= line."""
        return service_state(self.pipeline, self.uplink.pending() if self.uplink else None)

    def close(self) -> None:
        """Release what ``build`` opened, without running (the camera, the buttons)."""
        self.stack.callback(self.controller.close)
        self.stack.close()
