"""The composition root: the one place that turns config and CLI options into wired objects.

Everything else receives its collaborators; nothing else reads the config. ``doorward run`` calls
:func:`run`, which is ``build(cfg, opts).run()``; ``doorward analyze`` (agent/tools/analyze.py)
builds its detector and event tracker with :func:`build_detector` and :func:`build_tracker`.

:func:`build` takes its adapters as parameters (each built from the config when not given), so a
test wires the whole daemon in-process::

    daemon = build(cfg, RunOptions(data_dir=..., source="sim:porch", exit_at_eof=True),
                   mqtt=LoopbackBroker().client, object_store=MemoryObjectStore(),
                   pin_factory=MockFactory(), clock=test_clock)
    daemon.run()
"""

from __future__ import annotations

import faulthandler
import gc
import logging
import os
import queue
import signal
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from agent.camera.base import Camera
from agent.camera.sources import SourceSpec, make_source, parse_source, preflight
from agent.config import Config
from agent.delivery.announce import EventAnnouncer, log_event
from agent.delivery.clip_commands import register as register_uplink_commands
from agent.delivery.links import ClipDelivered, LaneReports, LinkState
from agent.delivery.live_view import LiveViews, register_live_commands
from agent.delivery.wiring import Uplink, open_uplink, uplink_hooks
from agent.device.buttons import (
    DoorbellButtons,
    SimulatedPress,
    StatusLed,
    make_pin_factory,
    simulated_pins,
)
from agent.device.control_plane import DeviceController, topics
from agent.device.ir_light import IrLight
from agent.device.requests import wire_requests
from agent.errors import ConfigError, DoorwardError
from agent.recording.encoder import VideoEncoder, X264Encoder
from agent.recording.recorder import Recorder
from agent.runtime.clock import Clock, SystemClock
from agent.runtime.daemon import Daemon, Gpio
from agent.runtime.frame_loop import Pipeline, StopFlag
from agent.runtime.handover import Handover
from agent.runtime.hardening import harden_process
from agent.runtime.local_state import Local, StoreLimits
from agent.runtime.local_state import open_local as open_local_at
from agent.runtime.malloc import disable_transparent_hugepages, fix_mmap_threshold
from agent.runtime.ticks import Housekeeping, LoopTick, RingPress, ScriptedRings
from motion import DetectorParams, EventParams, EventTracker, MotionDetector, PrivacyMasker
from uplink import (
    MqttConnector,
    MqttPort,
    MqttSettings,
    ObjectStore,
    S3Settings,
    UplinkError,
    read_password_file,
)

log = logging.getLogger("doorward")


@dataclass(frozen=True)
class RunOptions:
    """``doorward run`` options that override the config."""

    data_dir: str | None = None
    source: str | None = None
    realtime: bool = False
    exit_at_eof: bool = False
    broker: str | None = None
    drain_timeout_s: float | None = None
    # sim: and file: frames made by a child process (``doorward run``), not in the daemon (tests)
    child_source: bool = False


def build_detector(cfg: Config) -> MotionDetector:
    try:
        params = DetectorParams(**dict(cfg.motion.tuning))
    except TypeError as exc:
        raise DoorwardError(f"config section [motion] has an unknown tuning key ({exc}); "
                            "allowed: zones, privacy_masks and the fields of "
                            "motion.DetectorParams") from exc
    except ValueError as exc:
        raise DoorwardError(f"config section [motion]: {exc}") from exc
    return MotionDetector(params, zones=cfg.motion.zones, masks=cfg.motion.privacy_masks)


def build_tracker(cfg: Config) -> EventTracker:
    ev = cfg.events
    return EventTracker(EventParams(min_motion_s=ev.min_motion_s, gap_s=ev.gap_s,
                                    fast_motion_s=ev.fast_motion_s, post_roll_s=ev.post_roll_s,
                                    max_clip_s=ev.max_clip_s))


def build_camera(cfg: Config, spec: SourceSpec, *, realtime: bool, loop: bool,
                 child_source: bool = False) -> Camera:
    c = cfg.camera
    return make_source(spec, width=c.width, height=c.height, fps=c.fps,
                       luma_width=c.luma_width, realtime=realtime, loop=loop,
                       child_source=child_source,
                       pi_settings=pi_settings(cfg) if spec.kind == "picamera2" else None)


def pi_settings(cfg: Config) -> Any:
    """The Pi camera's settings from ``[camera]`` (agent.camera.picam.PiSettings; imported only
    for the Pi camera, as the other sources need none of that module)."""
    from agent.camera.picam import PiSettings

    c = cfg.camera
    return PiSettings(rotation=c.rotation, hflip=c.hflip, vflip=c.vflip,
                      tuning_file=c.tuning_file, exposure_mode=c.exposure_mode)


def build_encoder(cfg: Config, camera: Camera) -> VideoEncoder:
    """The H.264 encoder for ``camera`` (open): the Pi's own encoder inside picamera2 when the
    source is the Pi camera and ``[recording] encoder`` is "auto" or "hardware" (it also blacks
    out privacy masks in the camera buffer before encoding), else libx264 on the loop thread."""
    choice = cfg.recording.encoder
    picam = sys.modules.get("agent.camera.picam")  # never imported: not the Pi camera
    if picam is not None and isinstance(camera, picam.PiCamera) \
            and choice in ("auto", "hardware"):
        from agent.recording.picam_encoder import PicameraH264Encoder

        return PicameraH264Encoder(camera, gop_s=cfg.recording.gop_s,
                                   bitrate=cfg.recording.bitrate_kbps * 1000,
                                   privacy_masks=cfg.motion.privacy_masks)
    if choice == "hardware":
        raise ConfigError(
            f"config key recording.encoder = 'hardware': source {camera.name!r} has no hardware "
            "encoder (only picamera2 has); use 'auto' or 'software'")
    return X264Encoder(camera.width, camera.height, camera.fps, gop_s=cfg.recording.gop_s,
                       preset=cfg.recording.preset, crf=cfg.recording.crf,
                       bitrate_kbps=cfg.recording.bitrate_kbps)


def source_spec(cfg: Config, opts: RunOptions) -> SourceSpec:
    """The source to use, ``--source`` over ``[camera] source``; errors name the one used."""
    if not opts.source:
        return parse_source(cfg.camera.source)  # checked when the config loaded
    try:
        return parse_source(opts.source)
    except DoorwardError as exc:
        raise ConfigError(f"--source {opts.source!r}: {str(exc).split(': ', 1)[-1]}") from exc


def check_options(cfg: Config, opts: RunOptions, *, camera_given: bool = False) -> None:
    """What can be known wrong before anything is created (data directory, keys): the source
    (flag or config) parses and can work, the encoder choice fits it, ``--broker`` is a URL."""
    spec = source_spec(cfg, opts)
    if not camera_given:
        preflight(spec)
    if cfg.recording.encoder == "hardware" and spec.kind != "picamera2":
        where = "--source" if opts.source else "config key camera.source"
        raise ConfigError(
            f"config key recording.encoder = 'hardware': {where} {str(spec)!r} has no hardware "
            "encoder (only picamera2 has); use 'auto' or 'software'")
    if opts.broker and not opts.broker.startswith(("mqtt://", "mqtts://")):
        raise ConfigError(f"--broker {opts.broker!r}: must be mqtt://host:port or "
                          "mqtts://host:port")


def open_local(cfg: Config, opts: RunOptions) -> Local:
    """The store, device state, sealing policy and status file (agent/runtime/local_state.py)."""
    st = cfg.store
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]  # systemd's tmpfs
    spec = parse_source(opts.source or cfg.camera.source)
    return open_local_at(cfg.data_dir(opts.data_dir), spec,
                         limits=StoreLimits(st.max_bytes, st.retention_days, st.min_free_bytes),
                         runtime_dir=Path(runtime) if runtime else None)


def build_gpio(cfg: Config, spec: SourceSpec, inbox: queue.Queue[Any],
               work_dir: Path | None = None, pin_factory: Any = None) -> Gpio:
    """Buttons and LED. Simulated sources get simulated pins (agent/device/sim_pins.py: no
    gpiozero), pressed by `doorward press`; ``[gpio] pin_factory = "mock"``, gpiozero's own.
    ``work_dir``: where lgpio may create its files when neither LG_WD nor RUNTIME_DIRECTORY say."""
    factory = pin_factory if pin_factory is not None else make_pin_factory(
        cfg.gpio.pin_factory or ("sim" if spec.simulated else None), work_dir=work_dir)
    buttons = DoorbellButtons(cfg.gpio.ring_pin, cfg.gpio.setup_pin, pin_factory=factory,
                              on_event=inbox.put)
    led = StatusLed(cfg.gpio.led_pin, pin_factory=factory)
    sim = None
    if simulated_pins(factory):
        sim = SimulatedPress(factory, ring_pin=cfg.gpio.ring_pin, setup_pin=cfg.gpio.setup_pin)
    ir = None
    if cfg.gpio.ir_led_pin >= 0:
        ir = IrLight(cfg.gpio.ir_led_pin, pin_factory=factory,
                     on_below_lux=cfg.camera.ir_on_below_lux,
                     off_above_lux=cfg.camera.ir_off_above_lux)
    return Gpio(buttons, led, sim, ir)


def build_mqtt(cfg: Config, broker: str | None, device_id: str, inbox: queue.Queue[Any],
               connector: MqttConnector | None = None) -> MqttPort | None:
    """The MQTT client (paho's unless ``connector`` is given); None without a broker."""
    url = broker or cfg.mqtt.url or ("mqtt://localhost" if connector is not None else "")
    if not url:
        log.info("no broker configured ([mqtt] url or --broker): local only, pairing unavailable")
        return None
    m = cfg.mqtt
    try:
        settings = MqttSettings(url=url, client_id=device_id, username=m.username or device_id,
                                password=mqtt_password(cfg), ca_file=_path(m.ca_file),
                                cert_file=_path(m.cert_file), key_file=_path(m.key_file),
                                allow_plain=m.allow_plain,
                                will_topic=topics(device_id)["status"],
                                # the session outlives the daemon: what an owner sends while it
                                # restarts (or the broker does) waits for it, not lost
                                resume_session=True,
                                # and what it took but had not handled when it died comes
                                # again: the control plane acknowledges once it has handled it
                                manual_ack=True)
        if connector is None:
            from uplink import MqttClient  # paho (~12 MB) only when a broker is configured
            connector = MqttClient
        return connector(settings, on_message=inbox.put)
    except UplinkError as exc:
        raise DoorwardError(f"broker {url}: {exc}") from exc


def mqtt_password(cfg: Config) -> str | None:
    """The broker password from ``[mqtt] password_file``, read now (at start: a changed file
    takes effect at the next start); None without one. Never logged, never in status."""
    return read_password_file(cfg.mqtt.password_file) if cfg.mqtt.password_file else None


def _path(value: str) -> Path | None:
    return Path(value).expanduser() if value else None


def build_store_factory(cfg: Config, store: ObjectStore | None = None,
                        ) -> Callable[[], ObjectStore] | None:
    """Makes the object store on the uploads lane's thread; None without a bucket."""
    if store is not None:
        return lambda: store
    if not cfg.s3.bucket:
        return None
    s3 = cfg.s3
    settings = S3Settings(
        bucket=s3.bucket, endpoint_url=s3.endpoint_url or None, prefix=s3.prefix,
        region=s3.region, addressing_style=s3.addressing_style,  # type: ignore[arg-type]
        credentials_file=Path(s3.credentials_file) if s3.credentials_file else None,
        multipart_threshold_bytes=s3.multipart_threshold_bytes, part_size_bytes=s3.part_size_bytes,
        # One attempt per outbox attempt: the outbox backs off between attempts and checks
        # consent before each, so a revocation stops even an upload that kept failing.
        max_attempts=1)
    from uplink import S3ObjectStore  # boto3 (~25 MB) only when a bucket is configured
    return lambda: S3ObjectStore(settings)


def build_uplink(cfg: Config, local: Local, mqtt: MqttPort | None, inbox: queue.Queue[Any],
                 store: ObjectStore | None, clock: Clock) -> Uplink | None:
    return open_uplink(local.data_dir, local.device, mqtt, build_store_factory(cfg, store),
                       local.policy.recipients, inbox=inbox, prefix=cfg.s3.prefix,
                       bucket=cfg.s3.bucket or ("memory" if store is not None else ""),
                       wall=clock.wall)


def build(cfg: Config, opts: RunOptions, *, camera: Camera | None = None,
          mqtt: MqttConnector | None = None, object_store: ObjectStore | None = None,
          pin_factory: Any = None, clock: Clock | None = None,
          stop: StopFlag | None = None) -> Daemon:
    """The wired daemon (agent/runtime/daemon.py), not yet running; adapters not given are
    built from the config: ``camera`` (not yet open), ``mqtt`` (a client factory:
    ``MqttClient`` or ``LoopbackBroker.client``), ``object_store``, ``pin_factory`` (gpiozero)
    and ``clock``; ``stop``, the flag the loop watches (``run`` installs its signal handlers
    before building, so a SIGTERM during start-up also ends it cleanly)."""
    clock = clock or SystemClock()
    check_options(cfg, opts, camera_given=camera is not None)
    local = open_local(cfg, opts)
    spec, device = local.spec, local.device
    inbox: queue.Queue[Any] = queue.Queue()
    stack = ExitStack()
    try:
        camera = stack.enter_context(camera or build_camera(
            cfg, spec, realtime=opts.realtime, loop=spec.kind == "sim" and not opts.exit_at_eof,
            child_source=opts.child_source))
        return _wire(cfg, opts, local, camera, inbox, stack, mqtt=build_mqtt(
            cfg, opts.broker, device.identity.device_id, inbox, mqtt),
            object_store=object_store, pin_factory=pin_factory, clock=clock,
            stop=stop or StopFlag())
    except BaseException:
        stack.close()
        raise


def _wire(cfg: Config, opts: RunOptions, local: Local, camera: Camera, inbox: queue.Queue[Any],
          stack: ExitStack, *, mqtt: MqttPort | None, object_store: ObjectStore | None,
          pin_factory: Any, clock: Clock, stop: StopFlag) -> Daemon:
    store, device = local.store, local.device
    encoder = build_encoder(cfg, camera)
    masker = (PrivacyMasker(cfg.motion.privacy_masks, camera.width, camera.height)
              if cfg.motion.privacy_masks else None)
    uplink = build_uplink(cfg, local, mqtt, inbox, object_store, clock)
    delivery = uplink.delivery if uplink is not None else None
    recorder = Recorder(encoder, store, local.policy.recipients,
                        pre_roll_s=cfg.recording.pre_roll_s,
                        snapshot_quality=cfg.recording.snapshot_quality,
                        upload_scopes=lambda: device.consent.upload_scopes(clock.wall()))
    register_uplink_commands(device.processor, device.db, device.ledger, store, delivery)
    # live view (issue 17): sessions fed by the recorder's packets, started by signed commands
    if mqtt is not None:
        views = LiveViews(mqtt, device.identity.device_id, device.identity.key, device.ledger,
                          device.consent.owner, recorder, wall=clock.wall)
        recorder.packet_taps.append(views.on_packets)
        register_live_commands(device.processor, views, device.db, device.ledger, device.consent)
        stack.callback(views.close)
    if uplink is not None:
        uplink.redeliver(store, device.ledger, device.consent, clock.wall())
    pipeline = Pipeline(build_detector(cfg), build_tracker(cfg), recorder=recorder, store=store,
                        masker=masker, on_event=EventAnnouncer(delivery) if delivery else log_event,
                        on_clip=delivery.clip_sealed if delivery else None)
    gpio = build_gpio(cfg, local.spec, inbox, local.data_dir, pin_factory)
    if gpio.ir is not None:
        stack.callback(gpio.ir.close)  # the LEDs go dark when the daemon stops
    handover = Handover(local.data_dir, store, device.db, device.consent, pipeline,
                        outbox=delivery.outbox if delivery else None,
                        discovery=uplink.discovery if uplink else None)
    reports = LaneReports(store, wall=clock.wall)
    controller = DeviceController(
        device, inbox=inbox, buttons=gpio.buttons, led=gpio.led, sim_press=gpio.sim_press,
        mqtt=mqtt, on_ring=RingPress(pipeline, delivery), on_factory_reset=handover.wipe,
        on_paired=handover.paired, wall=clock.wall, mono=clock.monotonic,
        hooks=uplink_hooks(uplink, clock.monotonic(), reports=reports, mono=clock.monotonic))
    controller.handle(ClipDelivered, reports.on_delivered)
    controller.handle(LinkState, reports.on_link)
    wire_requests(device, controller, clock.wall)  # footage requests (issue 16)
    tick = LoopTick(local.status, local.policy, camera, encoder, pipeline, controller,
                    uplink=uplink, reports=reports,
                    rings=ScriptedRings(camera, gpio.sim_press, clock.monotonic),
                    live_segment_s=cfg.uplink.live_segment_s, mono=clock.monotonic, ir=gpio.ir)
    drain_s = None
    if opts.exit_at_eof:
        drain_s = opts.drain_timeout_s if opts.drain_timeout_s is not None \
            else cfg.uplink.drain_timeout_s
    return Daemon(local, camera, encoder, pipeline, controller, uplink, reports, gpio, inbox, tick,
                  Housekeeping(store, local.status), stop, clock, stack, drain_s)


def run(cfg: Config, opts: RunOptions) -> int:
    """``doorward run``: open the store, recover it, then record until EOF or a signal."""
    # a wrong source or option stops here, before the process or the data directory changes
    check_options(cfg, opts)
    # umask 0077 and no core dumps, before any file exists (agent/runtime/hardening.py)
    harden_process()
    # large short-lived buffers go back to the system (agent/runtime/malloc.py)
    fix_mmap_threshold()
    # and x264's frame buffers are not rounded up to 2 MiB huge pages (agent/runtime/malloc.py)
    disable_transparent_hugepages()
    # OpenCV's own thread pool costs more than it saves on the loop's small images (320x180
    # analysis, one 720p resize) and keeps per-thread buffers; x264 has its own threads.
    cv2.setNumThreads(1)
    stop = StopFlag()
    stop.install()  # before anything opens: a SIGTERM during start-up ends it cleanly
    # `kill -USR1 PID` prints every thread's stack to the log: what is it doing right now?
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    daemon = build(cfg, opts, stop=stop)
    # Start-up's objects (modules, classes, the wiring) live as long as the process: out of the
    # cyclic collector's sight, its full passes stop rescanning them (~30 ms each, issue 19).
    gc.collect()
    gc.freeze()
    try:
        return daemon.run()
    finally:
        # Back in the collector's sight for the interpreter's last collection, which finalises
        # what only a cycle holds: a SQLite connection left to it kept its -wal file (and a
        # damaged outbox was then read through the WAL's page 1, unnoticed: test_redelivery_cli).
        gc.unfreeze()


__all__ = ["Daemon", "RunOptions", "build", "build_camera", "build_detector",
           "build_encoder", "build_gpio", "build_mqtt", "build_tracker", "open_local", "run"]
