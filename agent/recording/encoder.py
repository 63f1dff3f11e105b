"""Video encoders: I420 frames in, H.264 packets out (the producer half of an encoder/output split).

An encoder runs continuously on the main stream; what happens to its packets is the business of the
outputs (:class:`agent.recording.recorder.PrerollRing` keeps the last seconds in RAM,
:class:`agent.recording.recorder.ClipOutput` muxes a clip), as in picamera2. Wiring::

    encoder = X264Encoder(1280, 720, fps=15)   # GOP <= 1 s: a clip can start within 1 s of any t
    for frame in camera.frames():
        for packet in encoder.encode(frame.main, frame.t):
            ring.push(packet)
    encoder.close()

Timestamps: ``pts = round(t / time_base)`` with a 1/90000 time base, so a live source's real frame
timing (dropped frames included) survives into the clip. ``EncodedPacket.t`` is its source time.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import numpy as np

from agent.errors import ConfigError

#: MPEG's 90 kHz clock: fine enough for any frame rate, and what MP4/TS tools expect.
DEFAULT_TIME_BASE = Fraction(1, 90_000)


@dataclass(frozen=True, slots=True)
class EncodedPacket:
    """One encoded frame: ``pts``/``dts`` in the encoder's ``time_base``, ``t`` source seconds."""

    data: bytes
    pts: int
    dts: int
    keyframe: bool
    t: float

    @property
    def size(self) -> int:
        return len(self.data)


class VideoEncoder(Protocol):
    """What outputs need from an encoder: :class:`X264Encoder`, or :class:`FakeEncoder` in tests."""

    width: int
    height: int
    fps: float
    time_base: Fraction
    extradata: bytes | None
    codec_name: str

    def encode(self, main_i420: np.ndarray, t: float) -> list[EncodedPacket]:
        """Encode one I420 frame taken at source time ``t``; returns the packets ready (or none)."""
        ...

    def flush(self) -> list[EncodedPacket]:
        """Drain frames the encoder still holds (end of stream)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What a muxer needs to describe the encoder's stream; build it with :meth:`of`."""

    codec_name: str
    width: int
    height: int
    fps: float
    time_base: Fraction
    extradata: bytes | None

    @classmethod
    def of(cls, encoder: VideoEncoder) -> StreamInfo:
        return cls(
            encoder.codec_name,
            encoder.width,
            encoder.height,
            encoder.fps,
            encoder.time_base,
            encoder.extradata,
        )


def gop_frames(gop_s: float, fps: float) -> int:
    """Frames per GOP for a GOP of ``gop_s`` seconds; raises ConfigError unless 0 < gop_s <= 1."""
    if not 0 < gop_s <= 1:
        raise ConfigError(
            f"recording.gop_s = {gop_s!r}: must be > 0 and <= 1 so a clip can start within 1 s "
            "of its pre-roll"
        )
    if fps <= 0:
        raise ConfigError(f"camera fps = {fps!r}: must be a positive number of frames per second")
    return max(1, round(gop_s * fps))


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ConfigError(
            f"recording size {width}x{height}: width and height must be positive and even (I420)"
        )


class _Timestamps:
    """Source seconds -> strictly increasing pts, and back for the packets the encoder returns."""

    def __init__(self, time_base: Fraction) -> None:
        self.time_base = time_base
        # ``t / time_base`` with a Fraction is ``float(t) / float(time_base)`` (Fraction's own
        # fallback for a float operand), at a tenth of the cost: the same pts, bit for bit.
        self._tick_s = float(time_base)
        self._last: int | None = None
        self._t_by_pts: dict[int, float] = {}

    def pts_for(self, t: float) -> int:
        pts = round(float(t) / self._tick_s)
        if self._last is not None and pts <= self._last:
            pts = self._last + 1  # two frames in one tick, or a clock step back: keep pts monotonic
        self._last = pts
        self._t_by_pts[pts] = t
        return pts

    def t_for(self, pts: int) -> float:
        t = self._t_by_pts.pop(pts, None)
        return float(pts * self.time_base) if t is None else t


class X264Encoder:
    """libx264 through a PyAV CodecContext: regular GOPs, no B-frames, no lookahead latency.

    ``gop_s`` (<= 1 s) fixes the keyframe interval (keyint = keyint_min = round(gop_s * fps),
    scene-cut keyframes off) so the pre-roll ring can drop whole, evenly sized GOPs. Every keyframe
    carries SPS/PPS in-band, so any GOP decodes alone and the MP4 muxer takes them from a clip's
    first packet; ``extradata`` (the same SPS/PPS as a global header) only describes the stream.
    ultrafast keeps CABAC, deblocking and 8x8 transforms on (fewer bytes for the same quality,
    see the options below). ``threads=0`` lets libx264 choose; ``crf`` trades size for quality
    (23 is x264's default);
    ``bitrate_kbps`` caps the bit rate (x264's VBV, maxrate with a 1 s buffer) over CRF.
    """

    codec_name = "h264"

    def __init__(
        self,
        width: int,
        height: int,
        fps: float,
        *,
        gop_s: float = 1.0,
        preset: str = "ultrafast",
        tune: str = "zerolatency",
        crf: int = 23,
        bitrate_kbps: int | None = None,
        threads: int = 0,
        time_base: Fraction = DEFAULT_TIME_BASE,
    ) -> None:
        _check_size(width, height)
        self.gop = gop_frames(gop_s, fps)
        self.width, self.height, self.fps, self.time_base = width, height, float(fps), time_base
        self._ts = _Timestamps(time_base)
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
        ctx.time_base = time_base
        ctx.framerate = Fraction(fps).limit_denominator(1001)
        ctx.gop_size = self.gop
        ctx.thread_count = threads
        ctx.flags |= av.codec.context.Flags.global_header  # SPS/PPS also as extradata
        options = {
            "preset": preset,
            "tune": tune,
            "crf": str(crf),
            "keyint_min": str(self.gop),
            "sc_threshold": "0",  # no scene-cut keyframes: GOPs stay regular
            "bf": "0",
            # SPS/PPS before every keyframe as well; and CABAC, the deblocking filter and 8x8
            # transforms, which ultrafast turns off (a no-op for the other presets): at 2 Mbit/s
            # they lift real footage from SSIM 0.977 to 0.989 for about a third more x264 CPU
            # and no more memory (superfast's sub-pel planes cost 6 MB; BENCHMARKS.md, issue 19)
            "x264-params": "repeat-headers=1:cabac=1:deblock=1:8x8dct=1",
        }
        if bitrate_kbps is not None:
            # CRF with a VBV cap: quiet scenes stay below the cap at CRF quality, busy ones are
            # held to it. A 1 s buffer (a GOP) absorbs a keyframe, and bounds the overshoot: any
            # T seconds of stream hold at most maxrate * T + 0.9 s of it (x264's vbv-init).
            options |= {"maxrate": f"{bitrate_kbps}k", "bufsize": f"{bitrate_kbps}k"}
        ctx.options = options
        before = _task_ids()
        try:
            ctx.open()  # libx264 starts its worker threads here
        except av.error.FFmpegError as e:
            raise ConfigError(
                f"libx264 refused preset={preset!r} tune={tune!r} crf={crf!r} "
                f"bitrate_kbps={bitrate_kbps!r}: {e}; use an x264 "
                "preset name such as 'ultrafast' or 'veryfast' and a tune such as 'zerolatency'"
            ) from e
        self._ctx: av.VideoCodecContext | None = ctx
        self.extradata: bytes | None = bytes(ctx.extradata) if ctx.extradata else None
        self.frames_in = 0
        self.bytes_out = 0
        # For cpu_s(): the threads that appeared while libx264 opened (the composition root opens
        # the encoder before it starts any thread of its own), and the caller's time in encode().
        self._worker_ids = tuple(sorted(_task_ids() - before))
        self._caller_cpu_s = 0.0

    def cpu_s(self) -> float:
        """CPU seconds spent encoding so far: the caller's time inside encode() and flush() plus
        libx264's worker threads (Linux; elsewhere the caller's part only). A diagnostic: how much
        of the daemon's CPU is video encoding (``doorward status``, ``scripts/bench run``)."""
        return self._caller_cpu_s + sum(_thread_cpu_s(tid) for tid in self._worker_ids)

    def encode(self, main_i420: np.ndarray, t: float) -> list[EncodedPacket]:
        """Encode one frame (an I420 array of shape (height * 3 // 2, width), uint8)."""
        # All of encode() counts as the encoder's (cpu_s), wrapping the frame for libav too:
        # the same work `scripts/bench run` times as x264 alone.
        started = time.thread_time()
        expected = (self.height * 3 // 2, self.width)
        if main_i420.shape != expected or main_i420.dtype != np.uint8:
            raise ValueError(
                f"encoder expects an I420 uint8 array of shape {expected}, got {main_i420.dtype} "
                f"{main_i420.shape}: configure the encoder with the camera's main size"
            )
        # Zero-copy: the frame wraps the array, and libx264 copies the picture into its own
        # frame pool inside this encode() call, before we touch the array again (from_ndarray's
        # extra copy cost 0.7 ms per 720p frame, a fifth of the loop thread's time).
        frame = av.VideoFrame.from_numpy_buffer(np.ascontiguousarray(main_i420), format="yuv420p")
        frame.pts = self._ts.pts_for(t)
        frame.time_base = self.time_base
        self.frames_in += 1
        packets = self._packets(self._open_ctx().encode(frame))
        self._caller_cpu_s += time.thread_time() - started
        return packets

    def flush(self) -> list[EncodedPacket]:
        """Drain the encoder; it cannot be used for more frames afterwards."""
        started = time.thread_time()
        packets = self._packets(self._open_ctx().encode(None))
        self._caller_cpu_s += time.thread_time() - started
        return packets

    def close(self) -> None:
        """Release libx264 (PyAV frees the context when it is no longer referenced)."""
        self._ctx = None

    def _open_ctx(self) -> av.VideoCodecContext:
        if self._ctx is None:
            raise ValueError("X264Encoder used after close(): create a new encoder")
        return self._ctx

    def _packets(self, packets: list[av.Packet]) -> list[EncodedPacket]:  # type: ignore[type-arg]
        out = []
        for p in packets:
            pts = int(p.pts) if p.pts is not None else 0
            dts = int(p.dts) if p.dts is not None else pts
            data = bytes(p)
            self.bytes_out += len(data)
            out.append(EncodedPacket(data, pts, dts, bool(p.is_keyframe), self._ts.t_for(pts)))
        return out


def _task_ids() -> set[str]:
    try:
        return set(os.listdir("/proc/self/task"))
    except OSError:  # not Linux
        return set()


def _thread_cpu_s(tid: str) -> float:
    """User + system CPU seconds of one of this process's threads (0 once it has gone)."""
    try:
        fields = Path(f"/proc/self/task/{tid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class FakeEncoder:
    """A deterministic stand-in for unit tests: no pixels are read, packet sizes are fixed.

    Frame ``i`` (counting from 0) is a keyframe when ``i % gop == 0``; its payload starts with
    ``b"K"`` or ``b"P"`` and the frame number, padded to ``key_bytes`` / ``delta_bytes``.
    """

    codec_name = "h264"

    def __init__(
        self,
        width: int = 1280,
        height: int = 720,
        fps: float = 15.0,
        *,
        gop_s: float = 1.0,
        key_bytes: int = 20_000,
        delta_bytes: int = 2_000,
        time_base: Fraction = DEFAULT_TIME_BASE,
    ) -> None:
        _check_size(width, height)
        self.gop = gop_frames(gop_s, fps)
        self.width, self.height, self.fps, self.time_base = width, height, float(fps), time_base
        self.extradata: bytes | None = b"fake-extradata"
        self.key_bytes, self.delta_bytes = key_bytes, delta_bytes
        self._ts = _Timestamps(time_base)
        self.frames_in = 0
        self.closed = False

    def encode(self, main_i420: np.ndarray, t: float) -> list[EncodedPacket]:
        if self.closed:
            raise ValueError("FakeEncoder.encode after close: create a new encoder")
        i = self.frames_in
        self.frames_in += 1
        key = i % self.gop == 0
        head = (b"K" if key else b"P") + str(i).encode()
        data = head.ljust(self.key_bytes if key else self.delta_bytes, b"\0")
        pts = self._ts.pts_for(t)
        return [EncodedPacket(data, pts, pts, key, self._ts.t_for(pts))]

    def flush(self) -> list[EncodedPacket]:
        return []

    def close(self) -> None:
        self.closed = True
