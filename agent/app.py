"""The composition root: the one place that turns config and CLI options into wired objects.

Everything else receives its collaborators; nothing else reads the config. ``doorward run`` calls
:func:`run`; ``doorward analyze`` (agent/tools/analyze.py) builds its detector and event tracker
with
:func:`build_detector` and :func:`build_tracker`.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import queue
import signal
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2

from agent import __version__
from agent.camera.base import Camera
from agent.camera.picam import PiCamera
from agent.camera.sources import SourceSpec, make_source, parse_source
from agent.config import Config
from agent.delivery.checkpoints import CheckpointPublisher
from agent.delivery.clip_commands import register as register_uplink_commands
from agent.delivery.homeassistant import HomeAssistantDiscovery
from agent.delivery.outbox import Item, Outbox, drop_records
from agent.delivery.outbox_worker import OutboxWorker
from agent.delivery.queueing import OUTBOX_FILE, Delivery, LaneContext, lane_ports
from agent.delivery.redelivery import requeue_undelivered
from agent.device.buttons import DoorbellButtons, StatusLed, make_pin_factory
from agent.device.consent import ConsentStore
from agent.device.control_plane import (
    ControlPress,
    DeviceController,
    DeviceState,
    UplinkHooks,
    topics,
)
from agent.device.database import DEVICE_DB_FILE, DeviceDB
from agent.device.identity import DeviceIdentity
from agent.device.ledger import Ledger
from agent.device.owner_commands import CommandProcessor
from agent.errors import ConfigError, DoorwardError
from agent.recording.encoder import VideoEncoder, X264Encoder
from agent.recording.live_segments import LiveSegmenter
from agent.recording.picam_encoder import PicameraH264Encoder
from agent.recording.recorder import Recorder
from agent.recording.sealing import SealingPolicy, dev_owner_path, retire_dev_owner
from agent.runtime.control_socket import ControlServer, SimulatedPress, control_socket_path
from agent.runtime.daemon import Pipeline, StopFlag, run_daemon, service_state
from agent.runtime.handover import Handover
from agent.runtime.hardening import harden_process
from agent.runtime.malloc import fix_mmap_threshold
from agent.runtime.sdnotify import ServiceNotifier
from agent.runtime.status_file import StatusFile, links_json
from agent.store import ClipStore
from motion import (
    DetectorParams,
    EventParams,
    EventTracker,
    MotionDetector,
    PrivacyMasker,
)
from uplink import MqttSettings, S3Settings, UplinkError

if TYPE_CHECKING:  # paho is loaded only where a broker is configured (agent.app.build_mqtt)
    from uplink import MqttClient

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
    return EventTracker(EventParams(min_motion_s=cfg.events.min_motion_s,
                                    gap_s=cfg.events.gap_s,
                                    fast_motion_s=cfg.events.fast_motion_s,
                                    post_roll_s=cfg.events.post_roll_s,
                                    max_clip_s=cfg.events.max_clip_s))


def build_camera(cfg: Config, spec: SourceSpec, *, realtime: bool, loop: bool) -> Camera:
    return make_source(spec, width=cfg.camera.width, height=cfg.camera.height, fps=cfg.camera.fps,
                       luma_width=cfg.camera.luma_width, realtime=realtime, loop=loop)


def build_encoder(cfg: Config, camera: Camera) -> VideoEncoder:
    """The H.264 encoder for ``camera`` (open): the Pi's own encoder inside picamera2 when the
    source is the Pi camera and ``[recording] encoder`` is "auto" or "hardware" (it also blacks
    out privacy masks in the camera buffer before encoding), else libx264 on the loop thread."""
    choice = cfg.recording.encoder
    if isinstance(camera, PiCamera) and choice in ("auto", "hardware"):
        return PicameraH264Encoder(camera, gop_s=cfg.recording.gop_s,
                                   privacy_masks=cfg.motion.privacy_masks)
    if choice == "hardware":
        raise ConfigError(
            f"config key recording.encoder = 'hardware': source {camera.name!r} has no hardware "
            "encoder (only picamera2 has); use 'auto' or 'software'")
    return X264Encoder(camera.width, camera.height, camera.fps, gop_s=cfg.recording.gop_s,
                       preset=cfg.recording.preset, crf=cfg.recording.crf)


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
    return doc


def _log_event(doc: dict[str, Any]) -> None:
    if doc["event"] == "started":
        log.info("event %s started (%s) at %.2f s", doc["event_id"], doc["reason"], doc["onset_s"],
                 extra={"fields": doc})
    elif "clip_id" in doc:
        log.info("event %s ended at %.2f s; clip %s sealed: %.1f s, %d bytes",
                 doc["event_id"], doc["last_motion_s"], doc["clip_id"], doc["clip_duration_s"],
                 doc["clip_bytes"], extra={"fields": doc})
    else:
        log.info("event %s ended at %.2f s (no clip recorded)", doc["event_id"],
                 doc["last_motion_s"], extra={"fields": doc})


def open_device_state(data_dir: Path) -> DeviceState:
    """The device identity and its durable state (device.sqlite), opened on this thread."""
    identity = DeviceIdentity.load_or_create(data_dir)
    db = DeviceDB(data_dir / DEVICE_DB_FILE)
    consent = ConsentStore(db)
    ledger = Ledger(db, identity.key)
    processor = CommandProcessor(db, consent, ledger, identity.device_id, identity.key)
    return DeviceState(identity, consent, ledger, processor, db)


@dataclass
class Gpio:
    buttons: DoorbellButtons
    led: StatusLed
    sim_press: SimulatedPress | None


def build_gpio(cfg: Config, spec: SourceSpec, inbox: queue.Queue[Any],
               work_dir: Path | None = None) -> Gpio:
    """Buttons and LED. Simulated sources get gpiozero's mock pins, pressed by `doorward press`.
    ``work_dir``: where lgpio may create its files when neither LG_WD nor RUNTIME_DIRECTORY say."""
    name = cfg.gpio.pin_factory or ("mock" if spec.simulated else None)
    factory = make_pin_factory(name, work_dir=work_dir)
    buttons = DoorbellButtons(cfg.gpio.ring_pin, cfg.gpio.setup_pin, pin_factory=factory,
                              on_event=inbox.put)
    led = StatusLed(cfg.gpio.led_pin, pin_factory=factory)
    sim = None
    if name == "mock":
        sim = SimulatedPress(factory, ring_pin=cfg.gpio.ring_pin, setup_pin=cfg.gpio.setup_pin)
    return Gpio(buttons, led, sim)


def build_mqtt(cfg: Config, broker: str | None, device_id: str,
               inbox: queue.Queue[Any]) -> MqttClient | None:
    url = broker or cfg.mqtt.url
    if not url:
        log.info("no broker configured ([mqtt] url or --broker): local only, pairing unavailable")
        return None

    def path(value: str) -> Path | None:
        return Path(value).expanduser() if value else None

    settings = MqttSettings(url=url, client_id=device_id, username=device_id,
                            ca_file=path(cfg.mqtt.ca_file), cert_file=path(cfg.mqtt.cert_file),
                            key_file=path(cfg.mqtt.key_file), allow_plain=cfg.mqtt.allow_plain,
                            will_topic=topics(device_id)["status"])
    from uplink import MqttClient  # paho (~12 MB) only when a broker is configured

    try:
        return MqttClient(settings, on_message=inbox.put)
    except UplinkError as exc:
        raise DoorwardError(f"broker {url}: {exc}") from exc


@dataclass
class Uplink:
    delivery: Delivery
    worker: OutboxWorker
    discovery: HomeAssistantDiscovery | None = None  # with a broker only
    checkpoints: CheckpointPublisher | None = None  # with a bucket only

    def pending(self) -> dict[str, int]:
        return self.delivery.outbox.pending()


def build_uplink(cfg: Config, data_dir: Path, device: DeviceState, mqtt: MqttClient | None,
                 inbox: queue.Queue[Any], policy: SealingPolicy) -> Uplink | None:
    """The outbox, its worker lanes and the loop-side Delivery; None when nothing is configured
    to deliver to (no broker and no bucket)."""
    if mqtt is None and not cfg.s3.bucket:
        return None
    store_factory = None
    if cfg.s3.bucket:
        settings = S3Settings(
            bucket=cfg.s3.bucket, endpoint_url=cfg.s3.endpoint_url or None, prefix=cfg.s3.prefix,
            region=cfg.s3.region, addressing_style=cfg.s3.addressing_style,  # type: ignore[arg-type]
            credentials_file=Path(cfg.s3.credentials_file) if cfg.s3.credentials_file else None,
            multipart_threshold_bytes=cfg.s3.multipart_threshold_bytes,
            part_size_bytes=cfg.s3.part_size_bytes,
            # One attempt per outbox attempt: the outbox backs off between attempts and checks
            # consent before each, so a revocation stops even an upload that kept failing.
            max_attempts=1)

        from uplink import S3ObjectStore  # boto3 (~25 MB) only when a bucket is configured

        def store_factory() -> S3ObjectStore:
            return S3ObjectStore(settings)

    ctx = LaneContext(data_dir, device.identity, mqtt, store_factory, cfg.s3.prefix,
                      cfg.s3.bucket, inbox)
    def record_drops(items: Sequence[Item]) -> None:  # never drop silently: log and ledger
        now = time.time()
        for record in drop_records(items):
            device.ledger.append("outbox-drop", record, now)

    outbox, lost = Outbox.open_or_set_aside(data_dir / OUTBOX_FILE, on_drop=record_drops)
    if lost is not None:  # a damaged file: the daemon starts all the same, and says what went
        device.ledger.append("outbox-drop", {"reason": lost, "items": []}, time.time())
    outbox.recover(time.time())
    lanes = tuple(lane for lane, on in (("messages", mqtt is not None),
                                        ("uploads", store_factory is not None)) if on)
    worker = OutboxWorker(data_dir / OUTBOX_FILE, lambda lane: lane_ports(ctx, lane), lanes=lanes)
    ctx.wake = worker.wake
    delivery = Delivery(outbox, device.identity, device.db, device.consent,
                        recipients=policy.recipients, uploads_enabled=store_factory is not None,
                        messages_enabled=mqtt is not None, wake=worker.wake)
    discovery = None
    if mqtt is not None:
        ha = cfg.homeassistant
        discovery = HomeAssistantDiscovery(delivery, device.identity.device_id,
                                           enabled=ha.discovery, prefix=ha.discovery_prefix,
                                           sw_version=__version__)
    checkpoints = None
    if store_factory is not None:  # the ledger's signed heads go to the bucket (clips consent)
        checkpoints = CheckpointPublisher(outbox, device.db, device.ledger, device.consent,
                                          wake=worker.wake)
    return Uplink(delivery, worker, discovery, checkpoints)


def _uplink_event(delivery: Delivery) -> Callable[[dict[str, Any]], None]:
    def on_event(doc: dict[str, Any]) -> None:
        _log_event(doc)
        if doc["event"] == "started":
            if doc["reason"] != "ring":  # a ring is announced by the press itself (on_ring)
                delivery.event("motion-started", doc["event_id"], clip_id=doc.get("clip_id"))
        else:
            delivery.event("motion-ended", doc["event_id"], clip_id=doc.get("clip_id"),
                           peak_area=doc.get("peak_area"))

    return on_event


def _on_ring(pipeline: Pipeline, delivery: Delivery | None) -> Callable[[], None]:
    """RING: start (or extend) an event, so a clip is recorded even without motion, and announce
    the press itself, also when it extends an event already under way."""

    def ring() -> None:
        pipeline.ring(pipeline.stats.last_frame_t)
        if delivery is not None:
            event_id = pipeline.event_id
            delivery.event("ring", "" if event_id is None else event_id,
                           clip_id=pipeline.clip_id)

    return ring


def _mark_delivered(store: ClipStore) -> Callable[[str], None]:
    """The store marks a delivered clip, unless the clip went while its upload finished (a
    factory reset wiped it, or eviction): then there is nothing left to mark."""

    def mark(clip_id: str) -> None:
        if store.get_clip(clip_id) is None:
            log.info("clip %s was delivered after it was deleted locally", clip_id)
            return
        store.mark_delivered(clip_id)

    return mark


# How long a revocation's reply waits for the upload in flight to stop (it stops within one
# 64 KiB read; the rest is withdrawing what it stored); below the owner tool's 15 s wait.
REVOKE_WAIT_S = 10.0


def _hooks(uplink: Uplink | None, store: ClipStore, started: float) -> UplinkHooks:
    if uplink is None:
        return UplinkHooks(on_delivered=_mark_delivered(store))
    delivery, discovery = uplink.delivery, uplink.discovery

    def changed() -> None:  # consent or event content may have changed: discovery follows
        if discovery is not None:
            discovery.reconcile()

    def connected() -> None:
        delivery.status_online(__version__, time.monotonic() - started)
        changed()  # queues nothing unless something changed

    def revoked(scopes: list[str]) -> None:
        """Drop what is queued, then wait (bounded) for the upload in flight to stop and
        withdraw what it stored, so the owner's reply follows only once it has stopped."""
        dropped = delivery.purge(scopes, "consent revoked")
        log.info("consent revoked for %s: %d queued item(s) dropped", ", ".join(scopes), dropped)
        uplink.worker.wait_stopped(scopes, REVOKE_WAIT_S)

    return UplinkHooks(
        command_guard=uplink.worker.paused, on_revoked=revoked,
        on_connected=connected, on_changed=changed,
        on_delivered=_mark_delivered(store))


def _redeliver(delivery: Delivery, store: ClipStore, device: DeviceState) -> None:
    """Before the first frame: queue what a crash kept from the queue
    (agent/delivery/redelivery.py)."""
    report = requeue_undelivered(store.list_clips(), delivery, delivery.outbox.items(),
                                 device.ledger.entries(), device.consent, now=time.time())
    for clip_id in report.delivered:
        store.mark_delivered(clip_id)


def _drain(uplink: Uplink, timeout_s: float) -> None:
    pending = uplink.delivery.outbox.pending()
    if pending:
        log.info("draining the outbox (up to %.0f s): %s", timeout_s, pending)
    left = uplink.worker.drain(timeout_s)
    if left:
        log.warning("outbox not drained after %.0f s; still queued (sent on the next start): %s",
                    timeout_s, left)


def scripted_rings(camera: Camera, sim: SimulatedPress | None) -> Callable[[float], None]:
    """A simulated scene's visitor rings: press the mock RING button at the scene's ring times
    (source seconds, repeating when the scene loops), through the same path a real press takes."""
    scene = getattr(camera, "scene", None)
    rings = sorted(r.t for r in getattr(scene, "rings", ()))
    duration = getattr(scene, "duration_s", None)
    last = [-1.0]

    def tick(t: float) -> None:
        if sim is None or not rings:
            return
        laps = range(int(last[0] // duration), int(t // duration) + 1) if duration else (0,)
        if any(last[0] < r + k * (duration or 0) <= t for r in rings for k in laps):
            try:
                sim.press("ring", 0.3, time.monotonic())
            except DoorwardError as exc:
                log.debug("scripted ring skipped: %s", exc)
        last[0] = t

    return tick


def _control_handler(inbox: queue.Queue[Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def on_command(msg: dict[str, Any]) -> dict[str, Any]:
        inbox.put(ControlPress(msg["button"], float(msg["hold_s"])))  # the loop acts on it
        return {"ok": True, "queued": f"press {msg['button']} for {msg['hold_s']} s"}

    return on_command


@dataclass
class Local:
    """What ``run`` opens before any device: the store (recovered), the device's durable state,
    who clips are sealed to, and the status file."""

    spec: SourceSpec
    data_dir: Path
    store: ClipStore
    device: DeviceState
    policy: SealingPolicy
    status: StatusFile


def open_local(cfg: Config, opts: RunOptions) -> Local:
    spec = parse_source(opts.source or cfg.camera.source)
    data_dir = cfg.data_dir(opts.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = ClipStore(data_dir, max_bytes=cfg.store.max_bytes,
                      retention_days=cfg.store.retention_days,
                      min_free_bytes=cfg.store.min_free_bytes, repair_index=True)
    recovered = store.recover()  # logs what it recovered
    log.info("store %s ready (%d clips)", data_dir, len(store.list_clips()))
    device = open_device_state(data_dir)
    policy = SealingPolicy(data_dir, dev_owner=spec.dev_owner,
                           owner_recipients=device.consent.recipients)
    if device.consent.owners() and dev_owner_path(data_dir).exists():  # pairing was cut short
        retire_dev_owner(data_dir, store, device.consent.recipients())
    policy.recipients()  # creates the development owner now, so the log says so at start
    (log.info if policy.mode != "not-recording" else log.warning)(policy.reason)
    # Under systemd, status.json lives in the tmpfs runtime directory (no SD-card wear).
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    status = StatusFile(data_dir, runtime_dir=Path(runtime) if runtime else None)
    status.update(state="starting", source=str(spec), data_dir=str(data_dir),
                  device_id=device.identity.device_id, store_recovery=list(recovered.notes),
                  sealing=policy.mode, sealing_reason=policy.reason)
    status.flush(force=True)
    return Local(spec, data_dir, store, device, policy, status)


def _housekeeping(store: ClipStore, status: StatusFile) -> Callable[[], None]:
    """Once a minute: store limits (eviction) and usage into the status."""

    def housekeeping() -> None:
        evicted = store.enforce_limits()
        usage = store.usage()
        status.update(store_bytes=usage.bytes_used, store_clips=usage.clips,
                      disk_free_bytes=usage.disk_free)
        if evicted:
            log.info("store limits: evicted %d clip(s): %s", len(evicted), ", ".join(evicted))

    return housekeeping


def _tick(local: Local, camera: Camera, encoder: VideoEncoder, pipeline: Pipeline,
          controller: DeviceController, sim_press: SimulatedPress | None,
          uplink: Uplink | None, live_segment_s: float) -> Callable[[], None]:
    """After every frame: scripted rings, the controller's inbox, discovery, and the status
    (database reads and CPU figures once a second, not per frame)."""
    status, policy = local.status, local.policy
    next_pending = [0.0]
    rings = scripted_rings(camera, sim_press)

    live = (LiveSegmenter(uplink.delivery.queue_segment, every_s=live_segment_s)
            if uplink is not None and uplink.delivery.uploads_enabled and live_segment_s > 0
            else None)

    def tick() -> None:
        rings(pipeline.stats.last_frame_t)
        controller.tick()
        if live is not None and pipeline.recorder is not None:
            live.tick(pipeline.recorder)
        if uplink is not None and uplink.discovery is not None:
            uplink.discovery.tick()  # consent expiry; reads the database every 30 s
        status.update(pairing_open=controller.window.is_open(controller.mono()),
                      mqtt_connected=bool(controller.mqtt and controller.mqtt.is_connected))
        if time.monotonic() >= next_pending[0]:
            status.update(sealing=policy.mode, sealing_reason=policy.reason,
                          **links_json(controller.links), **cpu_json(encoder, camera))
            if uplink is not None:
                if uplink.checkpoints is not None:
                    uplink.checkpoints.tick()
                status.update(outbox=uplink.pending())
            next_pending[0] = time.monotonic() + 1.0

    return tick


def run(cfg: Config, opts: RunOptions) -> int:
    """``doorward run``: open the store, recover it, then record until EOF or a signal."""
    # umask 0077 and no core dumps, before any file exists (agent/runtime/hardening.py)
    harden_process()
    # large short-lived buffers go back to the system (agent/runtime/malloc.py)
    fix_mmap_threshold()
    local = open_local(cfg, opts)
    spec, data_dir, store, device = local.spec, local.data_dir, local.store, local.device
    policy, status = local.policy, local.status
    inbox: queue.Queue[Any] = queue.Queue()
    camera = build_camera(cfg, spec, realtime=opts.realtime,
                          loop=spec.kind == "sim" and not opts.exit_at_eof)
    # OpenCV's own thread pool costs more than it saves on the loop's small images (320x180
    # analysis, one 720p resize) and keeps per-thread buffers; x264 has its own threads.
    cv2.setNumThreads(1)
    stop = StopFlag()
    stop.install()
    # `kill -USR1 PID` prints every thread's stack to the log: what is it doing right now?
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    with camera, ExitStack() as stack:
        encoder = build_encoder(cfg, camera)
        masker = None
        if cfg.motion.privacy_masks:
            masker = PrivacyMasker(cfg.motion.privacy_masks, camera.width, camera.height)
        mqtt = build_mqtt(cfg, opts.broker, device.identity.device_id, inbox)
        uplink = build_uplink(cfg, data_dir, device, mqtt, inbox, policy)
        delivery = uplink.delivery if uplink is not None else None
        recorder = Recorder(encoder, store, policy.recipients, pre_roll_s=cfg.recording.pre_roll_s,
                            snapshot_quality=cfg.recording.snapshot_quality,
                            upload_scopes=lambda: device.consent.upload_scopes(time.time()))
        register_uplink_commands(device.processor, device.db, device.ledger, store, delivery)
        if delivery is not None:
            _redeliver(delivery, store, device)
        pipeline = Pipeline(build_detector(cfg), build_tracker(cfg), recorder=recorder,
                            store=store, masker=masker,
                            on_event=_uplink_event(delivery) if delivery else _log_event,
                            on_clip=delivery.clip_sealed if delivery else None)
        gpio = build_gpio(cfg, spec, inbox, data_dir)
        handover = Handover(data_dir, store, device.db, device.consent, pipeline,
                            outbox=delivery.outbox if delivery else None,
                            discovery=uplink.discovery if uplink else None)
        controller = DeviceController(
            device, inbox=inbox, buttons=gpio.buttons, led=gpio.led, sim_press=gpio.sim_press,
            mqtt=mqtt, on_ring=_on_ring(pipeline, delivery),
            on_factory_reset=handover.wipe, on_paired=handover.paired,
            hooks=_hooks(uplink, store, time.monotonic()))
        stack.callback(controller.close)
        if uplink is not None:
            uplink.worker.start()
            stack.callback(uplink.worker.stop)
        control = ControlServer(control_socket_path(data_dir), _control_handler(inbox)).start()
        stack.callback(control.close)
        controller.start()
        housekeeping = _housekeeping(store, status)
        tick = _tick(local, camera, encoder, pipeline, controller, gpio.sim_press, uplink,
                     cfg.uplink.live_segment_s)
        log.info("doorward running: device %s, source %s, %dx%d at %g fps, data in %s",
                 device.identity.device_id, spec, camera.width, camera.height, camera.fps,
                 data_dir)
        # systemd (Type=notify): READY=1 once frames flow, STATUS=, watchdog pings per frame.
        notifier = ServiceNotifier.from_env(
            describe=lambda: service_state(pipeline, uplink.pending() if uplink else None))
        stack.callback(notifier.close)
        why = run_daemon(camera, pipeline, status, stop, tick=tick, housekeeping=housekeeping,
                         notifier=notifier)
        housekeeping()
        if uplink is not None and opts.exit_at_eof and why == "eof":
            _drain(uplink, opts.drain_timeout_s if opts.drain_timeout_s is not None
                   else cfg.uplink.drain_timeout_s)
            controller.tick()  # what the lanes reported while draining (clips delivered)
            status.update(outbox=uplink.pending(), **links_json(controller.links))
    status.update(mqtt_connected=False, pairing_open=False, recording=False)  # not live now
    status.flush(force=True)
    log.info("doorward stopped (%s): %d frames, %d events, %d clips, %d dropped frames", why,
             pipeline.stats.frames, pipeline.stats.events, pipeline.stats.clips,
             camera.dropped_frames)
    return 0
