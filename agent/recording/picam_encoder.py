"""The Pi's H.264 encoder (picamera2 ``H264Encoder``) as an
:class:`agent.recording.encoder.VideoEncoder`.

picamera2 encodes the camera's main stream itself (V4L2 hardware on a Pi 4, libav on a Pi 5):
frames never pass through our loop. This class starts that encoder with an ``Output`` of ours
whose ``outputframe`` (called on picamera2's encoder thread) only enqueues; :meth:`encode` ignores
the pixels it is given and returns the packets that arrived since the last call, stamped in the
camera's source seconds (``Frame.t``). Wiring, in the composition root::

    camera = PiCamera(width=1280, height=720, fps=15); camera.open()
    encoder = PicameraH264Encoder(camera, gop_s=1.0, privacy_masks=cfg.motion.privacy_masks)
    recorder = Recorder(encoder, store, recipients)      # recorder.push(frame) as usual

``extradata`` (SPS/PPS, Annex B) is taken from the first keyframe, until then None; it only
describes the stream. The MP4 muxer reads SPS/PPS from each clip's first packet, always a keyframe
that repeats them (``repeat=True``), so a clip never depends on it.
"""

from __future__ import annotations

import importlib
import logging
import queue
import time
from fractions import Fraction
from typing import Any

import numpy as np

from agent.camera.picam import PiCamera
from agent.recording.encoder import DEFAULT_TIME_BASE, EncodedPacket, gop_frames
from motion import Polygon

log = logging.getLogger(__name__)

#: about 0.15 bit per pixel per frame: ~2 Mbit/s at 720p15, plenty for a doorstep scene
DEFAULT_BITS_PER_PIXEL = 0.15


def parameter_sets(annexb: bytes) -> bytes | None:
    """The first SPS (NAL type 7) and PPS (type 8) in an Annex B access unit, as Annex B bytes
    (the form libx264 gives as extradata and the MP4 muxer turns into avcC); None if absent."""
    found: dict[int, bytes] = {}
    for nal in _nal_units(annexb):
        kind = nal[0] & 0x1F
        if kind in (7, 8) and kind not in found:
            found[kind] = nal
    if 7 not in found or 8 not in found:
        return None
    return b"\x00\x00\x00\x01" + found[7] + b"\x00\x00\x00\x01" + found[8]


def _nal_units(data: bytes) -> list[bytes]:
    starts = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i + 3)
        i = data.find(b"\x00\x00\x01", i + 3)
    units = []
    for n, start in enumerate(starts):
        end = starts[n + 1] - 3 if n + 1 < len(starts) else len(data)
        unit = data[start:end].rstrip(b"\x00")  # a 4-byte start code leaves a trailing zero
        if unit:
            units.append(unit)
    return units


def _output_class(module: Any) -> type:
    """A subclass of the imported picamera2's ``outputs.Output`` (picamera2 checks the type)."""
    base = importlib.import_module(f"{module.__name__}.outputs").Output

    class QueueOutput(base):  # type: ignore[misc, valid-type]
        """Runs on picamera2's encoder thread: it only enqueues."""

        def __init__(self, sink: _PacketQueue, encoder: Any) -> None:
            super().__init__()
            self._sink, self._encoder = sink, encoder

        def outputframe(self, frame: Any, keyframe: bool = True, timestamp: int | None = None,
                        packet: Any = None, audio: bool = False) -> None:
            if audio or frame is None:
                return
            first = self._encoder.firsttimestamp  # µs: picamera2 passes µs since this frame
            if timestamp is None or first is None:
                at_us = time.monotonic_ns() // 1000  # the clock SensorTimestamp uses
            else:
                at_us = int(first) + int(timestamp)
            self._sink.put(bytes(frame), bool(keyframe), at_us)

    return QueueOutput


class _PacketQueue:
    """Bounded hand-over from the encoder thread. On overflow (the loop stopped taking packets)
    it drops until the next keyframe, so what it keeps always decodes."""

    def __init__(self, max_packets: int) -> None:
        self._q: queue.Queue[tuple[bytes, bool, int]] = queue.Queue(max_packets)
        self._need_key = False
        self.dropped = 0

    def put(self, data: bytes, keyframe: bool, at_us: int) -> None:
        if self._need_key and not keyframe:
            self.dropped += 1
            return
        try:
            self._q.put_nowait((data, keyframe, at_us))
            self._need_key = False
        except queue.Full:
            self._need_key = True
            self.dropped += 1

    def drain(self) -> list[tuple[bytes, bool, int]]:
        out = []
        while True:
            try:
                out.append(self._q.get_nowait())
            except queue.Empty:
                return out


class PicameraH264Encoder:
    """picamera2's ``H264Encoder`` on the camera's main stream (SPS/PPS on every I-frame, one
    I-frame every ``round(gop_s * fps)`` frames). ``bitrate`` in bit/s (default from the size)."""

    codec_name = "h264"

    def __init__(self, camera: PiCamera, *, gop_s: float = 1.0, bitrate: int | None = None,
                 privacy_masks: tuple[Polygon, ...] = (), max_queued_s: float = 10.0,
                 time_base: Fraction = DEFAULT_TIME_BASE) -> None:
        self.width, self.height, self.fps = camera.width, camera.height, float(camera.fps)
        self.gop = gop_frames(gop_s, self.fps)
        self.bitrate = bitrate or round(DEFAULT_BITS_PER_PIXEL * self.width * self.height
                                        * self.fps)
        self.time_base = time_base
        self.extradata: bytes | None = None
        self.packets_out = 0
        self.bytes_out = 0
        self._camera = camera
        self._queue = _PacketQueue(max(30, round(max_queued_s * self.fps)))
        self._hw: Any = None
        self._last_pts: int | None = None
        self._halted: str | None = None
        self._closed = False
        camera.attach_encoder(self, privacy_masks)

    @property
    def dropped_packets(self) -> int:
        """Packets lost because :meth:`encode` was not called for ``max_queued_s``."""
        return self._queue.dropped

    # called by the camera, on the camera owner's thread

    def start_on(self, picam2: Any, module: Any) -> None:
        encoders = importlib.import_module(f"{module.__name__}.encoders")
        hw = encoders.H264Encoder(bitrate=self.bitrate, repeat=True, iperiod=self.gop)
        picam2.start_encoder(hw, _output_class(module)(self._queue, hw))
        self._hw = hw
        log.info("hardware H.264 encoder started: %dx%d, %d bit/s, I-frame every %d frames",
                 self.width, self.height, self.bitrate, self.gop)

    def stop_on(self, picam2: Any) -> None:
        hw, self._hw = self._hw, None
        if hw is not None:
            picam2.stop_encoder(hw)

    def halt(self, reason: str) -> None:
        """Drop every packet from now on (the privacy mask failed: nothing unmasked is kept)."""
        self._halted = reason

    # the VideoEncoder port

    def encode(self, main_i420: np.ndarray, t: float) -> list[EncodedPacket]:
        """Packets encoded since the last call; the pixels were already taken by the hardware."""
        if self._closed:
            raise ValueError("PicameraH264Encoder used after close(): create a new encoder")
        return self._packets()

    def flush(self) -> list[EncodedPacket]:
        """Stop the encoder and return what it still delivered (end of stream)."""
        self._camera.detach_encoder(self)
        return self._packets()

    def close(self) -> None:
        self._camera.detach_encoder(self)
        self._closed = True

    def _packets(self) -> list[EncodedPacket]:
        items = self._queue.drain()
        t0 = self._camera.t0_ns
        if self._halted is not None or t0 is None:
            return []  # halted, or no frame yet to define source time 0
        out = []
        for data, keyframe, at_us in items:
            t = (at_us * 1000 - t0) / 1e9
            if keyframe and self.extradata is None:
                self.extradata = parameter_sets(data)
            pts = round(t / self.time_base)
            if self._last_pts is not None and pts <= self._last_pts:
                pts = self._last_pts + 1  # keep pts strictly increasing
            self._last_pts = pts
            self.packets_out += 1
            self.bytes_out += len(data)
            out.append(EncodedPacket(data, pts, pts, keyframe, t))
        return out
