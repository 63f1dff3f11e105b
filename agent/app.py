"""The composition root: the one place that turns config and CLI options into wired objects.

Everything else receives its collaborators; nothing else reads the config. ``doorward run`` calls
:func:`run`, ``doorward analyze`` calls :func:`analyze`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.camera.base import Camera
from agent.camera.file import FileCamera
from agent.camera.sources import SourceSpec, make_source, parse_source
from agent.config import Config
from agent.daemon import Pipeline, StopFlag, run_daemon
from agent.encoder import X264Encoder
from agent.errors import DoorwardError
from agent.owners import sealing_plan
from agent.recorder import Recorder
from agent.status import StatusFile
from agent.store import ClipStore
from motion import (
    DetectorParams,
    EventParams,
    EventStarted,
    EventTracker,
    MotionDetector,
    PrivacyMasker,
)

log = logging.getLogger("doorward")


@dataclass(frozen=True)
class RunOptions:
    """``doorward run`` options that override the config."""

    data_dir: str | None = None
    source: str | None = None
    realtime: bool = False
    exit_at_eof: bool = False


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
                                    post_roll_s=cfg.events.post_roll_s,
                                    max_clip_s=cfg.events.max_clip_s))


def build_camera(cfg: Config, spec: SourceSpec, *, realtime: bool, loop: bool) -> Camera:
    return make_source(spec, width=cfg.camera.width, height=cfg.camera.height, fps=cfg.camera.fps,
                       luma_width=cfg.camera.luma_width, realtime=realtime, loop=loop)


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


def run(cfg: Config, opts: RunOptions) -> int:
    """``doorward run``: open the store, recover it, then record until EOF or a signal."""
    spec = parse_source(opts.source or cfg.camera.source)
    data_dir = cfg.data_dir(opts.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = ClipStore(data_dir, max_bytes=cfg.store.max_bytes,
                      retention_days=cfg.store.retention_days)
    store.recover()  # logs what it recovered
    log.info("store %s ready (%d clips)", data_dir, len(store.list_clips()))
    plan = sealing_plan(data_dir, simulated=spec.simulated)
    (log.info if plan.recipients else log.warning)(plan.reason)
    status = StatusFile(data_dir)
    status.update(state="starting", source=str(spec), data_dir=str(data_dir),
                  sealing=plan.mode, sealing_reason=plan.reason,
                  recipients=[str(r) for r in plan.recipients])
    status.flush(force=True)
    camera = build_camera(cfg, spec, realtime=opts.realtime,
                          loop=spec.kind == "sim" and not opts.exit_at_eof)
    stop = StopFlag()
    stop.install()
    with camera:
        recorder = None
        if plan.recipients:
            encoder = X264Encoder(camera.width, camera.height, camera.fps,
                                  gop_s=cfg.recording.gop_s, preset=cfg.recording.preset,
                                  crf=cfg.recording.crf)
            recorder = Recorder(encoder, store, plan.recipients,
                                pre_roll_s=cfg.recording.pre_roll_s,
                                snapshot_quality=cfg.recording.snapshot_quality)
        masker = None
        if cfg.motion.privacy_masks:
            masker = PrivacyMasker(cfg.motion.privacy_masks, camera.width, camera.height)
        pipeline = Pipeline(build_detector(cfg), build_tracker(cfg), recorder=recorder,
                            store=store, masker=masker, on_event=_log_event)

        def housekeeping() -> None:
            evicted = store.enforce_limits()
            usage = store.usage()
            status.update(store_bytes=usage.bytes_used, store_clips=usage.clips,
                          disk_free_bytes=usage.disk_free)
            if evicted:
                log.info("store limits: evicted %d clip(s): %s", len(evicted), ", ".join(evicted))

        log.info("doorward running: source %s, %dx%d at %g fps, data in %s", spec,
                 camera.width, camera.height, camera.fps, data_dir)
        why = run_daemon(camera, pipeline, status, stop, housekeeping=housekeeping)
    housekeeping()
    status.flush(force=True)
    log.info("doorward stopped (%s): %d frames, %d events, %d clips, %d dropped frames", why,
             pipeline.stats.frames, pipeline.stats.events, pipeline.stats.clips,
             camera.dropped_frames)
    return 0


def analyze(cfg: Config, path: str) -> dict[str, Any]:
    """``doorward analyze``: the motion pipeline over a file, as fast as it decodes; no recording."""
    detector = build_detector(cfg)
    tracker = build_tracker(cfg)
    events: list[dict[str, Any]] = []
    peaks: dict[int, float] = {}
    open_id: int | None = None
    started = time.perf_counter()
    frames = 0
    last_t = 0.0
    with FileCamera(path, luma_width=cfg.camera.luma_width, want_main=False) as cam:
        for frame in cam.frames():
            result = detector.update(frame.luma, frame.t)
            frames += 1
            last_t = frame.t
            transitions = tracker.update(frame.t, result.motion, result.area)
            if open_id is not None and result.motion:
                peaks[open_id] = max(peaks.get(open_id, 0.0), result.area)
            for tr in transitions:
                open_id = _collect(tr, events, peaks, open_id, result.area)
        for tr in tracker.finish(last_t):
            open_id = _collect(tr, events, peaks, open_id, 0.0)
        fps = cam.fps
    elapsed = time.perf_counter() - started
    return {"source": str(Path(path)), "fps": fps, "frames": frames,
            "seconds": round(frames / fps if fps else last_t, 3),
            "elapsed_s": round(elapsed, 3), "events": events}


def _collect(tr: Any, events: list[dict[str, Any]], peaks: dict[int, float], open_id: int | None,
             area: float) -> int | None:
    if isinstance(tr, EventStarted):
        peaks[tr.event_id] = max(area, 0.0)
        events.append({"start": round(tr.onset_t, 3), "end": None, "peak_area": 0.0,
                       "_id": tr.event_id})
        return int(tr.event_id)
    for ev in events:
        if ev.get("_id") == tr.event_id:
            ev["end"] = round(tr.last_motion_t, 3)
            ev["peak_area"] = round(peaks.get(tr.event_id, 0.0), 4)
            del ev["_id"]
    return None

