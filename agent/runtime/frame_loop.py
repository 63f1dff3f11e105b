"""The daemon loop: frames in; events, sealed clips and status out.

:class:`Pipeline` handles one frame at a time and owns the motion detector, the event tracker and
the recorder; it is single-threaded by design (each resource has one owner). :func:`run_daemon`
drives it from a camera until the source ends or a signal asks it to stop, and keeps
``status.json`` current.

Per frame, in this order (the order matters):
1. black out privacy masks in the recording image, so masked pixels are never encoded;
2. encode the frame into the pre-roll ring (and into the clip being recorded, if any);
3. detect motion on the luma, feed the event tracker;
4. act on events: a start opens a clip from the ring (``pre_roll_s`` before the motion onset),
   an end closes, seals and commits it.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from agent.camera.base import Camera, Frame
from agent.errors import StoreError
from agent.recording.recorder import Recorder
from agent.runtime.sdnotify import ServiceNotifier
from agent.runtime.status_file import StatusFile
from agent.store import ClipRecord, ClipStore, new_event_id
from motion import EventEnded, EventStarted, EventTracker, MotionDetector, PrivacyMasker

log = logging.getLogger("doorward")


@dataclass
class OpenEvent:
    """Book-keeping for the event in progress."""

    event_id: str
    onset_t: float
    reason: str
    clip_id: str | None
    peak_area: float = 0.0


@dataclass
class PipelineStats:
    frames: int = 0
    events: int = 0
    clips: int = 0
    last_frame_t: float = 0.0
    last_frame_at: float | None = None  # wall time the last frame arrived (status: frame age)
    last_event: dict[str, Any] = field(default_factory=dict)


class Pipeline:
    """Privacy mask -> recorder -> detector -> tracker -> clips, for one frame at a time.

    ``recorder`` is None when nothing may be recorded (a real camera and no owner): events are still
    detected and logged. ``on_event`` receives a JSON-able dict for every event transition,
    ``on_clip`` every committed (sealed, durable) clip. Each event gets an id from
    ``new_event_id`` (opaque, unique across restarts; the tracker's own numbers restart at 1).
    """

    def __init__(self, detector: MotionDetector, tracker: EventTracker, *,
                 recorder: Recorder | None, store: ClipStore | None,
                 masker: PrivacyMasker | None = None,
                 on_event: Callable[[dict[str, Any]], None] | None = None,
                 on_clip: Callable[[ClipRecord], None] | None = None,
                 new_event_id: Callable[[], str] = new_event_id) -> None:
        self.detector = detector
        self.tracker = tracker
        self.recorder = recorder
        self.store = store
        self.masker = masker
        self.on_event = on_event or (lambda doc: None)
        self.on_clip = on_clip or (lambda rec: None)
        self.stats = PipelineStats()
        self._open: OpenEvent | None = None
        self._new_event_id = new_event_id

    def process(self, frame: Frame) -> None:
        if self.masker is not None and frame.main.size:
            self.masker(frame.main)
        if self.recorder is not None:
            self.recorder.push(frame)
        result = self.detector.update(frame.luma, frame.t)
        self.stats.frames += 1
        self.stats.last_frame_t = frame.t
        self.stats.last_frame_at = time.time()
        self._handle(self.tracker.observe(result))
        if self._open is not None and result.motion:
            self._open.peak_area = max(self._open.peak_area, result.area)
            if self.recorder is not None and self.recorder.recording:
                self.recorder.offer_snapshot(frame, result.area)

    @property
    def event_id(self) -> str | None:
        """The id of the open event, if any (the one in the index and in event messages)."""
        return self._open.event_id if self._open is not None else None

    @property
    def clip_id(self) -> str | None:
        """The clip being recorded for the open event, if any."""
        return self._open.clip_id if self._open is not None else None

    def ring(self, t: float) -> None:
        """An external trigger (the RING button): start or extend an event at ``t``; a ring
        records a clip even without motion."""
        self._handle(self.tracker.trigger(t, reason="ring"))

    def discard_clip(self, *, forget_event: bool) -> str | None:
        """Throw away the clip being recorded (its recipients are wrong now); returns its id.

        Pairing (``forget_event=False``): the event goes on, in a new clip started from the
        pre-roll and sealed to whoever the recorder's recipients name now (the new owner).
        Factory reset (``forget_event=True``): the open event and the last event shown in the
        status are forgotten too, so nothing of the previous owner's is recorded afterwards."""
        discarded = self.recorder.discard() if self.recorder is not None else None
        if forget_event:  # the status then counts nothing of the previous owner's either
            if self.recorder is not None:
                self.recorder.ring.clear()
            self._open = None
            self.stats.last_event = {}
            self.stats.events = self.stats.clips = 0
            return discarded
        current = self._open
        if current is not None and discarded is not None and self.recorder is not None:
            current.clip_id = self.recorder.start_clip(
                self.stats.last_frame_t, event_id=current.event_id, reason=current.reason)
        return discarded

    def finish(self) -> None:
        """The source ended or the daemon stops: close the open event and seal its clip."""
        self._handle(self.tracker.finish(self.stats.last_frame_t))
        if self.recorder is not None:
            self.recorder.close()

    def _wall(self, t: float) -> float | None:
        return self.recorder.wall_time(t) if self.recorder is not None else None

    def _handle(self, transitions: list[EventStarted | EventEnded]) -> None:
        for tr in transitions:
            if isinstance(tr, EventStarted):
                self._started(tr)
            else:
                self._ended(tr)

    def _started(self, ev: EventStarted) -> None:
        clip_id = None
        event_id = self._new_event_id()
        if self.recorder is not None:
            clip_id = self.recorder.start_clip(ev.onset_t, event_id=event_id, reason=ev.reason)
        self._open = OpenEvent(event_id, ev.onset_t, ev.reason, clip_id)
        # Indexed at once (still open), so a crash mid-event leaves the event its clip points at.
        self._record_event(event_id, ev.reason, ev.onset_t, None, 0.0, clip_id,
                           self._wall(ev.onset_t), None)
        self.stats.events += 1
        doc = {"event": "started", "event_id": event_id, "reason": ev.reason,
               "onset_s": round(ev.onset_t, 3), "t_s": round(ev.t, 3), "clip_id": clip_id}
        self.stats.last_event = doc
        self.on_event(doc)

    def _ended(self, ev: EventEnded) -> None:
        current = self._open
        self._open = None
        record = self.recorder.end_clip(ev.t) if self.recorder is not None else None
        peak = current.peak_area if current else 0.0
        event_id = current.event_id if current is not None else self._new_event_id()
        if current is not None:
            self._record_event(event_id, current.reason, current.onset_t, ev.last_motion_t, peak,
                               record.id if record else None,
                               self._wall(current.onset_t), self._wall(ev.last_motion_t))
        doc: dict[str, Any] = {
            "event": "ended", "event_id": event_id, "reason": ev.reason,
            "last_motion_s": round(ev.last_motion_t, 3), "t_s": round(ev.t, 3),
            "peak_area": round(peak, 4),
        }
        if record is not None:
            self.stats.clips += 1
            doc.update(clip_id=record.id, clip_bytes=record.bytes,
                       clip_duration_s=round(record.duration_s, 2), clip_path=str(record.path),
                       truncated=record.truncated)
        self.stats.last_event = doc
        self.on_event(doc)
        if record is not None:
            self.on_clip(record)

    def _record_event(self, event_id: str, reason: str, onset_s: float,
                      last_motion_s: float | None, peak: float, clip_id: str | None,
                      started_at_s: float | None, ended_at_s: float | None) -> None:
        """Index the event; a storage error (a full disk) is logged, never stops the loop."""
        if self.store is None:
            return
        try:
            self.store.record_event(
                event_id=event_id, reason=reason, onset_s=onset_s, last_motion_s=last_motion_s,
                peak_area=peak, clip_id=clip_id, started_at_s=started_at_s,
                ended_at_s=ended_at_s)
        except StoreError as e:
            log.error("event %s not recorded in the index: %s", event_id, e)


class StopFlag:
    """Set by SIGTERM/SIGINT; the loop checks it between frames, then seals and exits 0."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name = ""

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handler)

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.signal_name = signal.Signals(signum).name
        self._event.set()

    def set(self) -> None:
        self._event.set()

    @property
    def is_set(self) -> bool:
        return self._event.is_set()


def run_daemon(camera: Camera, pipeline: Pipeline, status: StatusFile, stop: StopFlag, *,
               tick: Callable[[], None] | None = None,
               housekeeping: Callable[[], None] | None = None,
               housekeeping_every_s: float = 60.0,
               notifier: ServiceNotifier | None = None) -> str:
    """Drive ``pipeline`` from ``camera`` until the source ends or ``stop`` is set.

    ``tick`` runs after every frame (the device controller drains its inbox there). ``notifier``
    hears of every frame (systemd's READY=1, STATUS= and watchdog pings: no frames, no pings)
    and of the end of the loop (STOPPING=1, before the open clip is sealed).
    Returns why it stopped ("eof" or the signal name). Always seals the clip in progress.
    """
    reason = "eof"
    next_housekeeping = 0.0
    try:
        status.update(state="running")
        for frame in camera.frames():
            pipeline.process(frame)
            if tick is not None:
                tick()
            if notifier is not None:
                notifier.frame(time.monotonic())
            if housekeeping is not None and frame.t >= next_housekeeping:
                housekeeping()
                next_housekeeping = frame.t + housekeeping_every_s
            if status.due:  # written once a second: the fields are gathered only then
                _status_tick(status, camera, pipeline)
            if stop.is_set:
                reason = stop.signal_name or "stopped"
                break
    finally:
        if notifier is not None:  # sys.exc_info(): is an exception on its way out?
            notifier.stopping("error" if sys.exc_info()[0] is not None else reason)
        pipeline.finish()
        status.update(state="stopped", stop_reason=reason)
        _status_tick(status, camera, pipeline)
        status.flush(force=True)
    return reason


def service_state(pipeline: Pipeline, pending: Mapping[str, int] | None = None) -> str:
    """One short line for systemd's ``STATUS=`` (what ``systemctl status doorward`` shows), e.g.
    "recording event 4" or "idle, 2 uploads queued"; ``pending`` is the outbox's open items by
    ``"kind:scope"`` (None: no uplink)."""
    event_id = pipeline.tracker.event_id
    if event_id is None:
        state = "idle"
    elif pipeline.recorder is not None and pipeline.recorder.recording:
        state = f"recording event {event_id}"
    else:
        state = f"event {event_id} (not recording)"
    for kind, label in (("upload", "upload"), ("message", "message")):
        n = sum(v for k, v in (pending or {}).items() if k.startswith(kind + ":"))
        if n:
            state += f", {n} {label}{'s' if n > 1 else ''} queued"
    return state


def _status_tick(status: StatusFile, camera: Camera, pipeline: Pipeline) -> None:
    rec = pipeline.recorder
    status.update(
        frames=pipeline.stats.frames, source_t_s=round(pipeline.stats.last_frame_t, 2),
        dropped_frames=camera.dropped_frames, events=pipeline.stats.events,
        clips=pipeline.stats.clips, recording=bool(rec and rec.recording),
        last_frame_at=pipeline.stats.last_frame_at,
        # live cameras that recover from stalls (picamera2) count them; others have none
        camera_stalls=getattr(camera, "stalls", 0),
        camera_recoveries=getattr(camera, "recoveries", 0),
        last_event=pipeline.stats.last_event,
        store_error=(rec.last_error if rec is not None else None),
    )
    status.flush()
