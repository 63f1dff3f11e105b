"""The output side of the pipeline: pre-roll ring, fragmented-MP4 clip muxer, and the Recorder.

As in picamera2, encoders produce packets and outputs consume them. :class:`PrerollRing` keeps the
last seconds of encoded packets in RAM; :class:`ClipOutput` muxes packets into fragmented MP4
written to any write-only object; :class:`Recorder` wires them to a sealed clip file::

    PyAV mp4 muxer -> FragmentTap -> uplink.age.AgeWriter -> ClipSink (<id>.mp4.age.partial)

so plaintext video never touches the disk. The tap notes where each MP4 fragment ends and the
store records it with the fragment's media end time, so a clip cut short by a crash or damaged
later gets its playable duration from its media timestamps, not from the wall clock.

The daemon loop owns the Recorder (one thread)::

    recorder = Recorder(X264Encoder(1280, 720, 15), store, owner_recipients, pre_roll_s=3)
    for frame in camera.frames():
        recorder.push(frame)
        ... event logic ...
        recorder.start_clip(onset_t, event_id=n, reason="motion")   # on event start
        recorder.offer_snapshot(frame, area)                        # each frame with motion
        record = recorder.end_clip(end_t)                           # on event end
    recorder.close()                                                # SIGTERM: seals the clip

Storage errors (ENOSPC, EIO) never escape the Recorder: the clip is aborted, ``last_error`` says
why, and the next clip tries again after eviction.
"""

from __future__ import annotations

import errno
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import numpy as np

from agent.camera.base import Frame
from agent.errors import ConfigError, StoreError
from agent.recording.encoder import EncodedPacket, StreamInfo, VideoEncoder
from agent.recording.snapshot import i420_to_jpeg
from agent.store import ClipEnd, ClipRecord, ClipSink, ClipStart, ClipStore
from uplink import AgeWriter, Recipient, encrypt

log = logging.getLogger(__name__)

#: fragmented MP4: a moov without samples up front, a fragment per keyframe: a cut file still plays.
MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"

RecipientsSource = Sequence[Recipient] | Callable[[], Sequence[Recipient]]


#: the oldest PyAV that writes clips reliably: 10-12 (Debian bookworm has 10.0) cannot set a
#: packet's keyframe flag or add a stream without an encoder; 13-15 crash when a container whose
#: sink failed (disk full) is collected. 18.1 is what the tests and the Pi run.
MIN_PYAV_FOR_CLIPS = (18, 0)


def check_pyav_can_mux(version: str = av.__version__) -> None:
    """Raise ConfigError, naming the fix, if this PyAV cannot write clips (checked at start, so
    the daemon does not fail at the first event instead)."""
    try:
        have = tuple(int(x) for x in version.split(".")[:2])
    except ValueError:
        return  # a development build: let it try
    if have < MIN_PYAV_FOR_CLIPS:
        want = ".".join(map(str, MIN_PYAV_FOR_CLIPS))
        raise ConfigError(
            f"PyAV {version} cannot write clips reliably (older releases cannot describe the "
            f"stream or flag keyframes, or crash when the disk fills): install PyAV >= {want} in "
            f"the venv (pip install 'av>={want}'; on a Pi, scripts/install-pi does)")


class PrerollRing:
    """Encoded packets for the last ``pre_roll_s`` seconds plus at most one GOP, whole GOPs only.

    It always starts at a keyframe (packets before the first keyframe are dropped) and drops whole
    GOPs from the front once the next GOP alone still covers ``pre_roll_s``. ``max_bytes`` is a
    safety cap for an encoder that stops sending keyframes: past it the ring drops GOPs (even the
    only one).
    """

    def __init__(self, pre_roll_s: float, *, max_bytes: int = 64 * 1024 * 1024) -> None:
        if pre_roll_s < 0:
            raise ValueError(f"pre_roll_s = {pre_roll_s!r}: must be >= 0 seconds")
        self.pre_roll_s = pre_roll_s
        self.max_bytes = max_bytes
        self._gops: deque[list[EncodedPacket]] = deque()
        self._gop_bytes: deque[int] = deque()
        self.memory_bytes = 0
        self.dropped_packets = 0  # non-keyframes with no keyframe to start from

    def push(self, pkt: EncodedPacket) -> None:
        if pkt.keyframe:
            self._gops.append([pkt])
            self._gop_bytes.append(pkt.size)
        elif self._gops:
            self._gops[-1].append(pkt)
            self._gop_bytes[-1] += pkt.size
        else:
            self.dropped_packets += 1
            return
        self.memory_bytes += pkt.size
        horizon = pkt.t - self.pre_roll_s
        while len(self._gops) >= 2 and self._gops[1][0].t <= horizon:
            self._drop_first()
        while self._gops and self.memory_bytes > self.max_bytes:
            log.warning("pre-roll ring over %d bytes: dropping a GOP", self.max_bytes)
            self._drop_first()

    def _drop_first(self) -> None:
        self._gops.popleft()
        self.memory_bytes -= self._gop_bytes.popleft()

    def clear(self) -> None:
        """Forget every packet held (a factory reset: nothing filmed before it may start a clip
        afterwards); the next clip starts at the encoder's next keyframe."""
        self._gops.clear()
        self._gop_bytes.clear()
        self.memory_bytes = 0

    def packets_from(self, t: float) -> list[EncodedPacket]:
        """Packets from the last keyframe at or before ``t`` (or the oldest one held) to now."""
        start = 0
        for i, gop in enumerate(self._gops):
            if gop[0].t <= t:
                start = i
        return [p for i, gop in enumerate(self._gops) if i >= start for p in gop]

    @property
    def first_t(self) -> float | None:
        return self._gops[0][0].t if self._gops else None

    @property
    def last_t(self) -> float | None:
        return self._gops[-1][-1].t if self._gops else None

    def __len__(self) -> int:
        return sum(len(g) for g in self._gops)


class WritableSink(Protocol):
    def write(self, data: bytes, /) -> int | None: ...


class ClipOutput:
    """Fragmented MP4 muxer for one clip, writing to a write-only ``sink`` (no seek needed).

    The first packet must be a keyframe; timestamps are rebased so the clip starts at 0. ``close``
    writes the last fragment; it does not close ``sink``. OSError from ``sink`` propagates.
    """

    def __init__(self, sink: WritableSink, info: StreamInfo, *, movflags: str = MOVFLAGS) -> None:
        self.info = info
        self._container = av.open(sink, "w", format="mp4", options={"movflags": movflags})
        rate = Fraction(info.fps).limit_denominator(1001)
        w, h, tb = info.width, info.height, info.time_base
        # A stream for packets encoded elsewhere: no codec context is opened (an add_stream()
        # stream opens a libx264 encoder just to describe itself: 11 MB and a thread pool per
        # clip). The MP4 muxer takes SPS/PPS from the first packet, a keyframe that carries them
        # (both encoders repeat them on every keyframe), and writes the moov once it has them.
        self._stream = self._container.add_mux_stream(
            info.codec_name, rate, width=w, height=h, time_base=tb)
        self._frame_ticks = max(1, round(1 / (info.fps * info.time_base)))
        self._base: int | None = None
        self.first_t: float | None = None
        self.last_t: float | None = None
        self.packets = 0
        #: source time each fragment plays to, appended as it is closed (before its bytes are
        #: written: frag_keyframe closes a fragment when the next keyframe is muxed, and close())
        self.fragment_ends: list[float] = []

    def write(self, pkt: EncodedPacket) -> None:
        if self._base is None:
            if not pkt.keyframe:
                raise ValueError("a clip must start with a keyframe: take packets from PrerollRing")
            self._base = pkt.dts
            self.first_t = pkt.t
        elif pkt.keyframe and self.last_t is not None:
            self.fragment_ends.append(self.last_t + 1.0 / self.info.fps)
        out = av.Packet(pkt.data)
        out.pts, out.dts = pkt.pts - self._base, pkt.dts - self._base
        out.duration = self._frame_ticks
        out.time_base = self.info.time_base
        out.is_keyframe = pkt.keyframe
        out.stream = self._stream
        self._container.mux(out)
        self.last_t = pkt.t
        self.packets += 1

    def close(self) -> None:
        """Write the trailer (the last fragment). Raises OSError from the sink."""
        if self.last_t is not None:
            self.fragment_ends.append(self.last_t + 1.0 / self.info.fps)
        self._container.close()


class FragmentTap:
    """Passes the muxer's bytes on to ``sink`` and calls ``on_fragment(end)`` whenever one more
    whole MP4 fragment has passed (``end``: plaintext bytes so far).

    Fragmented MP4 is a row of top-level boxes (ftyp, moov, then moof + mdat per fragment), so
    following the box sizes is enough: a fragment is whole when its mdat box ends. Nothing is
    buffered or copied. A box it cannot size (size 0: "to the end") stops the notes, not the
    bytes. Wiring: ``ClipOutput(FragmentTap(age_writer, on_fragment), info)``.
    """

    def __init__(self, sink: WritableSink, on_fragment: Callable[[int], None]) -> None:
        self._sink = sink
        self._on_fragment = on_fragment
        self.bytes = 0
        self._header = bytearray()
        self._box_end = 0
        self._box_type = b""
        self._lost = False

    def write(self, data: bytes, /) -> int:
        self._sink.write(data)
        view = memoryview(data).cast("B")
        if not self._lost:
            self._scan(view)
        self.bytes += len(view)
        return len(view)

    def _scan(self, view: memoryview) -> None:
        pos, base = 0, self.bytes
        while pos < len(view):
            if base + pos < self._box_end:  # inside a box: skip to its end
                pos += min(len(view) - pos, self._box_end - (base + pos))
                if base + pos == self._box_end:
                    self._box_done()
                continue
            want = 8
            if len(self._header) >= 8 and int.from_bytes(self._header[:4], "big") == 1:
                want = 16  # a 64-bit "largesize" follows the type
            take = view[pos: pos + want - len(self._header)]
            self._header += take
            pos += len(take)
            if len(self._header) < want:
                continue
            size = int.from_bytes(self._header[:4], "big")
            if size == 1 and want == 8:
                continue  # read the largesize first
            if size == 1:
                size = int.from_bytes(self._header[8:16], "big")
            if size < len(self._header):  # 0 ("to the end") or nonsense: stop taking notes
                self._lost = True
                return
            self._box_end = base + pos - len(self._header) + size
            self._box_type = bytes(self._header[4:8])
            self._header.clear()
            if self._box_end == base + pos:
                self._box_done()

    def _box_done(self) -> None:
        if self._box_type == b"mdat":
            self._on_fragment(self._box_end)


class _ProgressNotes:
    """The tap's ``on_fragment`` for one clip: fragment ``i``'s end bytes and its media end time
    (``output.fragment_ends[i]``) into the store. A storage error stops the notes (logged once);
    it costs only the precision of a cut clip's duration, never the clip."""

    def __init__(self, store: ClipStore, clip_id: str) -> None:
        self.store, self.clip_id = store, clip_id
        self.output: ClipOutput | None = None
        self._count = 0
        self._failed = False

    def __call__(self, end_bytes: int) -> None:
        i, self._count = self._count, self._count + 1
        if self.output is None or self._failed or i >= len(self.output.fragment_ends):
            return
        try:
            self.store.record_progress(self.clip_id, end_bytes, self.output.fragment_ends[i])
        except StoreError as e:
            self._failed = True
            log.warning("clip %s: progress not recorded (%s); if it is cut short, its duration "
                        "will be an estimate", self.clip_id, e)


@dataclass(frozen=True)
class ClipInProgress:
    """What :meth:`Recorder.in_progress` reports: the sealed file growing at ``partial``."""

    id: str
    partial: Path
    recipients: tuple[str, ...]


@dataclass
class _Clip:
    """The clip being recorded."""

    id: str
    sink: ClipSink
    writer: AgeWriter
    output: ClipOutput
    recipients: tuple[Recipient, ...]
    started_at_s: float
    source_start_s: float
    snapshot: np.ndarray | None = None
    snapshot_area: float = -1.0


class Recorder:
    """Encodes every frame into the pre-roll ring and records sealed clips on demand (one thread).

    ``recipients`` is the owners' age recipients, or a callable returning them (read at each clip
    start, so pairing takes effect on the next clip); with none, nothing is recorded and
    ``last_error`` says why. ``max_trigger_delay_s`` is how far before the current frame a
    ``trigger_t`` may lie (the event logic reports an onset after ``min_motion_s``): the ring keeps
    that much more. The Recorder owns ``encoder`` and closes it in :meth:`close`.
    """

    def __init__(
        self,
        encoder: VideoEncoder,
        store: ClipStore,
        recipients: RecipientsSource,
        *,
        pre_roll_s: float = 3.0,
        max_trigger_delay_s: float = 2.0,
        snapshot_quality: int = 85,
        ring_max_bytes: int = 64 * 1024 * 1024,
        clock_wall: Callable[[], float] = time.time,
        upload_scopes: Callable[[], tuple[str, ...]] | None = None,
    ) -> None:
        check_pyav_can_mux()
        self.encoder, self.store = encoder, store
        self.pre_roll_s, self.snapshot_quality = pre_roll_s, snapshot_quality
        self.ring = PrerollRing(pre_roll_s + max_trigger_delay_s, max_bytes=ring_max_bytes)
        self._recipients = recipients
        self._info = StreamInfo.of(encoder)
        self._clock = clock_wall
        self._upload_scopes = upload_scopes  # kept with each clip at its start (ClipStart)
        self._clip: _Clip | None = None
        self._t_now: float | None = None
        self._wall_now = 0.0
        #: Why the last clip failed or nothing is recorded (for status); None after a good clip.
        self.last_error: str | None = None
        self.clips_failed = 0
        #: live view (agent/delivery/live_view.py): called on the loop thread with each frame's
        #: packets and the wall time the frame entered the encoder, after the ring has them.
        #: A tap must not block and must not raise: recording goes on whatever it does.
        self.packet_taps: list[Callable[[list[EncodedPacket], float], None]] = []

    @property
    def stream_info(self) -> StreamInfo:
        return self._info

    @property
    def recording(self) -> bool:
        return self._clip is not None

    @property
    def clip_id(self) -> str | None:
        return self._clip.id if self._clip is not None else None

    def in_progress(self) -> ClipInProgress | None:
        """The clip being recorded, with what is written so far handed to the OS (no fsync), so
        another reader of the partial file sees every byte the age writer has sealed."""
        clip = self._clip
        if clip is None:
            return None
        try:
            clip.sink.flush()
        except OSError:  # a full disk: the next write aborts the clip and says why
            return None
        return ClipInProgress(clip.id, clip.sink.partial, tuple(str(r) for r in clip.recipients))

    @property
    def memory_bytes(self) -> int:
        """Bytes of video held in RAM: the pre-roll ring plus the snapshot candidate."""
        snap = self._clip.snapshot if self._clip is not None else None
        return self.ring.memory_bytes + (snap.nbytes if snap is not None else 0)

    def push(self, frame: Frame) -> None:
        """Encode ``frame``; its packets go to the ring and, while recording, to the clip."""
        entered = self._clock()
        packets = self.encoder.encode(frame.main, frame.t)
        self._t_now, self._wall_now = frame.t, self._clock()
        self._take(packets)
        for tap in self.packet_taps:
            tap(packets, entered)
        clip = self._clip
        if clip is not None and clip.snapshot is None:  # fallback if no motion frame is offered
            clip.snapshot = frame.main.copy()

    def offer_snapshot(self, frame: Frame, area: float) -> None:
        """Keep ``frame`` as the clip's snapshot if its motion ``area`` is the largest so far."""
        clip = self._clip
        if clip is None or area <= clip.snapshot_area:
            return
        if clip.snapshot is not None and clip.snapshot.shape == frame.main.shape:
            np.copyto(clip.snapshot, frame.main)
        else:
            clip.snapshot = frame.main.copy()
        clip.snapshot_area = area

    def start_clip(
        self, trigger_t: float, *, event_id: int | str, reason: str, pre_roll_s: float | None = None
    ) -> str | None:
        """Start a clip ``pre_roll_s`` before ``trigger_t`` (at the last keyframe at or before).

        Returns the clip id, or None if nothing can be recorded (no owner, storage error: see
        ``last_error``). Raises RuntimeError if a clip is already being recorded.
        """
        if self._clip is not None:
            raise RuntimeError(
                f"start_clip while clip {self._clip.id} is recording: end_clip first"
            )
        recipients = tuple(self._recipients() if callable(self._recipients) else self._recipients)
        if not recipients:
            self.last_error = "no owner paired: nothing is recorded until an owner is paired"
            log.warning("%s (event %s)", self.last_error, event_id)
            return None
        self._housekeep()
        packets = self.ring.packets_from(
            trigger_t - (self.pre_roll_s if pre_roll_s is None else pre_roll_s)
        )
        first_t = packets[0].t if packets else trigger_t
        started = self._wall_of(first_t)
        clip_id = self.store.new_clip_id()
        start = ClipStart(
            started, first_t, tuple(str(r) for r in recipients), str(event_id), reason,
            self._upload_scopes() if self._upload_scopes is not None else None,
        )
        sink: ClipSink | None = None
        try:
            sink = self.store.open_clip(clip_id, start)
            writer = AgeWriter(sink, recipients)
            notes = _ProgressNotes(self.store, clip_id)
            output = notes.output = ClipOutput(FragmentTap(writer, notes), self._info)
        except (OSError, StoreError) as e:
            if sink is not None:
                sink.abort()
            self._failed(clip_id, e)
            return None
        self._clip = _Clip(clip_id, sink, writer, output, recipients, started, first_t)
        log.info(
            "clip %s started (event %s, %s) at source %.2f s", clip_id, event_id, reason, first_t
        )
        self._feed(packets)
        return clip_id if self._clip is not None else None

    def end_clip(self, t: float) -> ClipRecord | None:
        """Finish the clip: seal it, write its sealed snapshot, commit both durably.

        Packets are written as frames are pushed, so the clip holds every frame pushed before this
        call; call it on the frame where the event logic decides the end (``t``, usually that
        frame's time). Returns None if no clip is recording or it could not be stored (see
        ``last_error``).
        """
        clip, self._clip = self._clip, None
        if clip is None:
            return None
        out = clip.output
        if out.first_t is None or out.last_t is None:  # ended before the first keyframe arrived
            log.warning("clip %s has no frames (no keyframe yet): discarded", clip.id)
            clip.writer.abort()
            clip.sink.abort()
            return None
        if out.last_t < t - 1.0 / self._info.fps:
            log.debug("clip %s ends at %.2f s, before the requested %.2f s", clip.id, out.last_t, t)
        frame_s = 1.0 / self._info.fps  # the last frame is shown for one frame interval
        started = (
            clip.started_at_s if out.first_t == clip.source_start_s else self._wall_of(out.first_t)
        )
        end = ClipEnd(
            ended_at_s=self._wall_of(out.last_t) + frame_s,
            source_end_s=out.last_t + frame_s,
            started_at_s=started,
            source_start_s=out.first_t,
        )
        try:
            out.close()
            clip.writer.close()
            snapshot_note = self._put_snapshot(clip)
            record = clip.sink.commit(end)
        except (OSError, StoreError) as e:
            clip.writer.abort()
            clip.sink.abort()
            self._discard(clip.id)
            self._failed(clip.id, e)
            return None
        self.last_error = snapshot_note
        log.info("clip %s sealed: %.1f s, %d bytes", record.id, record.duration_s, record.bytes)
        self._housekeep()
        return record

    def discard(self) -> str | None:
        """Abort the clip in progress, if any: its file and index row go, nothing is committed.
        For a clip whose recipients are no longer right (pairing retires the development owner;
        a factory reset forgets the previous owner). Returns the discarded clip's id."""
        clip, self._clip = self._clip, None
        if clip is None:
            return None
        clip.writer.abort()
        clip.sink.abort()
        self.last_error = None  # it may name a clip of the previous owner
        log.info("clip %s discarded while recording", clip.id)
        return clip.id

    def close(self) -> ClipRecord | None:
        """Seal the clip in progress (SIGTERM path) and close the encoder."""
        record = None
        if self._clip is not None:
            self._take(self.encoder.flush())
            record = self.end_clip(self._t_now if self._t_now is not None else 0.0)
        self.encoder.close()
        return record

    # internals

    def _take(self, packets: list[EncodedPacket]) -> None:
        for p in packets:
            self.ring.push(p)
        if self._clip is not None:
            self._feed(packets)

    def _feed(self, packets: list[EncodedPacket]) -> None:
        clip = self._clip
        if clip is None:
            return
        try:
            for p in packets:
                if clip.output.packets == 0 and not p.keyframe:
                    continue  # the ring held no keyframe yet: the clip starts at the next one
                clip.output.write(p)
        except OSError as e:
            self._clip = None
            clip.writer.abort()
            clip.sink.abort()
            self._failed(clip.id, e)

    def _put_snapshot(self, clip: _Clip) -> str | None:
        """Seal and store the snapshot; a failure costs only the snapshot (returned as a note)."""
        if clip.snapshot is None:
            return None
        sealed = encrypt(
            i420_to_jpeg(clip.snapshot, quality=self.snapshot_quality), clip.recipients
        )
        try:
            self.store.put_snapshot(clip.id, sealed)
        except OSError as e:
            note = f"{_kind(e)}: snapshot of clip {clip.id} not stored ({e})"
            log.error("%s", note)
            return note
        return None

    def _failed(self, clip_id: str, e: OSError | StoreError) -> None:
        kind = _kind(e)
        fix = (f"free space on the file system of {self.store.data_dir} or lower [store] "
               "max_bytes; old clips are evicted and the next clip tries again"
               if kind == "disk full" else
               f"check the card and the file system of {self.store.data_dir} (dmesg); the next "
               "clip tries again")
        self.last_error = f"{kind}: clip {clip_id} aborted ({e}): {fix}"
        self.clips_failed += 1
        log.error("%s", self.last_error)

    def _discard(self, clip_id: str) -> None:
        """Remove what a failed commit left (a snapshot, a renamed file); recovery retries later."""
        try:
            self.store.delete_clip(clip_id)
        except (OSError, StoreError) as e:
            log.error("could not remove the remains of failed clip %s: %s", clip_id, e)

    def _housekeep(self) -> None:
        try:
            self.store.enforce_limits()
        except (OSError, StoreError) as e:
            log.error("store eviction failed: %s", e)

    def wall_time(self, t: float) -> float:
        """Wall-clock time (epoch s) of source time ``t``, from the latest frame's arrival; use it
        to stamp events (``ClipStore.record_event(started_at_s=...)``)."""
        return self._wall_of(t)

    def _wall_of(self, t: float) -> float:
        """Wall-clock time of source time ``t``, from the latest frame's arrival."""
        if self._t_now is None:
            return self._clock()
        return self._wall_now - (self._t_now - t)


def _kind(e: BaseException) -> str:
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        return "disk full"
    if isinstance(e, StoreError) and "full" in str(e):
        return "disk full"
    return "storage error"
