"""``file:PATH``: any video file PyAV (FFmpeg) decodes, as a camera.

Frames keep the file's own size (rounded down to even numbers, as YUV 4:2:0 needs). ``t`` is the
frame's presentation time in seconds from the start of the file. With ``realtime=True`` frames are
paced at the file's frame rate (to rehearse a live camera); otherwise they come as fast as they
decode. ``luma_width=None`` gives the decoded Y plane itself (a view, valid until the next
frame), for consumers that downscale anyway.

Speed, for ``doorward analyze`` (figures in BENCHMARKS.md):
- ``want_main=False`` skips building the recording image (``main`` is then an empty array) and
  H.264's deblocking filter (``skip_loop_filter``): it only smooths block edges, which the
  detector's 4x shrink and blur remove anyway, and it is about a tenth of decoding.
- Slice threading for streams cut into slices (x264's zerolatency clips), else frame threading:
  :func:`decoder_threading`.
- Decoding runs on its own thread a frame or two ahead (:class:`~agent.camera.prefetch.Prefetcher`),
  so the consumer's analysis overlaps it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from agent.camera.base import Frame, OpensInWith
from agent.camera.h264 import slices_in_packet
from agent.camera.prefetch import Prefetcher
from agent.errors import CameraError

_EMPTY = np.zeros((0, 0), np.uint8)
# Decoder options when nothing is recorded (want_main=False): no deblocking, see the docstring.
ANALYSIS_DECODER_OPTIONS = {"skip_loop_filter": "all"}
# Pixel formats whose first plane is already the 8-bit luma: read it in place, no conversion.
_LUMA_FIRST = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "gray"}


def _plane_view(plane: Any, height: int, width: int) -> np.ndarray:
    """A (height, width) uint8 view of a decoded plane, honouring its line stride."""
    buf = np.frombuffer(plane, np.uint8)
    return buf.reshape(-1, plane.line_size)[:height, :width]


def decoder_threading(stream: Any, first_packet: Any, *, paced: bool = False) -> str:
    """PyAV ``thread_type`` for ``stream``: ``SLICE`` when its frames come in slices, else ``AUTO``.

    Decoding is the cost of analyze. Slices decode side by side with no waiting on reference rows
    (a quarter faster on 2 cores); frame threading is the choice for single-slice streams. See
    :mod:`agent.camera.h264`. ``paced`` (a file played at its frame rate, as `run --realtime`
    does): always ``SLICE``. Frame threading keeps a frame in flight per thread, about 10 MB of
    RSS at 720p on 2 cores, for a speed a source paced at 15 fps does not need.
    """
    ctx = stream.codec_context
    sliced = ctx.name == "h264" and first_packet.size > 0 \
        and slices_in_packet(bytes(first_packet), ctx.extradata) >= 2
    return "SLICE" if sliced or paced else "AUTO"


def decoded_frames(container: Any, stream: Any, *, paced: bool = False) -> Iterator[Any]:
    """``stream``'s decoded frames; the threading is chosen from the first packet, before the
    decoder opens (:func:`decoder_threading`)."""
    first = True
    for packet in container.demux(stream):
        if first:
            first = False
            stream.thread_type = decoder_threading(stream, packet, paced=paced)
        yield from stream.decode(packet)


class FileCamera(OpensInWith):
    """A video file as a :class:`~agent.camera.base.Camera`."""

    live = False

    def __init__(
        self,
        path: str | Path,
        *,
        luma_width: int | None = 320,
        realtime: bool = False,
        want_main: bool = True,
        paced_decoder: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = Path(path)
        self.name = f"file:{self.path}"
        self._luma_width = luma_width
        self._realtime = realtime
        self._want_main = want_main
        # the decoder's threading as for a paced file (default: ``realtime``); the decoder child
        # of ``doorward run`` (agent/camera/file_process.py) is paced by its parent, not itself
        self._paced_decoder = realtime if paced_decoder is None else paced_decoder
        self._clock = clock
        self._sleep = sleep
        self._container: Any = None
        self._decoded: Prefetcher[Any] | None = None
        self.fps = 0.0
        self.width = 0
        self.height = 0
        self.duration_s: float | None = None

    @property
    def dropped_frames(self) -> int:
        return 0  # a file never drops: it waits for the consumer

    def open(self) -> None:
        if not self.path.is_file():
            raise CameraError(f"video file {self.path} does not exist or is not a file: "
                              "check the path given to --source file:PATH")
        try:
            self._container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError) as exc:
            raise CameraError(f"video file {self.path} cannot be decoded ({exc}): "
                              "is it a video FFmpeg can read?") from exc
        if not self._container.streams.video:
            self._container.close()
            raise CameraError(f"video file {self.path} has no video stream")
        stream = self._container.streams.video[0]
        if not self._want_main:
            stream.codec_context.options = ANALYSIS_DECODER_OPTIONS
        rate = stream.average_rate or stream.guessed_rate or 15
        self.fps = float(rate)
        self.width = stream.codec_context.width // 2 * 2
        self.height = stream.codec_context.height // 2 * 2
        if stream.duration is not None and stream.time_base is not None:
            self.duration_s = float(stream.duration * stream.time_base)

    def close(self) -> None:
        if self._decoded is not None:
            self._decoded.close()  # the decode thread lets go of the container first
            self._decoded = None
        if self._container is not None:
            self._container.close()
            self._container = None

    def _luma(self, frame: Any) -> np.ndarray:
        if frame.format.name in _LUMA_FIRST:
            y = _plane_view(frame.planes[0], self.height, self.width)
        else:
            y = frame.to_ndarray(format="gray")[: self.height, : self.width]
        if self._luma_width is None:  # full resolution: the detector downscales once, itself
            return y
        return cv2.resize(y, self.luma_shape()[::-1], interpolation=cv2.INTER_AREA)

    def luma_shape(self) -> tuple[int, int]:
        """(rows, columns) of the frames' luma images, once open."""
        if self._luma_width is None:
            return self.height, self.width
        return max(2, round(self.height * self._luma_width / self.width) // 2 * 2), \
            self._luma_width

    def frames(self) -> Iterator[Frame]:
        if self._container is None:
            self.open()
        stream = self._container.streams.video[0]
        start: float | None = None
        wall0 = self._clock()
        # Decoding runs a frame or two ahead on its own thread, overlapping the consumer's work.
        decoded = Prefetcher(decoded_frames(self._container, stream, paced=self._paced_decoder),
                             depth=2, name="file-decode")
        self._decoded = decoded
        try:
            for index, vf in enumerate(decoded):
                pts_t = float(vf.time) if vf.time is not None else index / self.fps
                if start is None:
                    start = pts_t
                t = pts_t - start
                if self._realtime:
                    delay = wall0 + t - self._clock()
                    if delay > 0:
                        self._sleep(delay)
                main = _EMPTY
                if self._want_main:
                    main = vf.to_ndarray(format="yuv420p", width=self.width, height=self.height)
                yield Frame(index=index, t=t, main=main, luma=self._luma(vf))
        except av.error.FFmpegError as exc:
            raise CameraError(
                f"video file {self.path} is damaged: decoding stopped ({exc})") from exc
        finally:
            decoded.close()
