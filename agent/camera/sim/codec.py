"""H.264 round trip: what the device's recorder and a decoder do to the picture at a low bitrate.

Real footage reaches a detector (``doorward analyze``, or anyone scoring recordings) through the
device's H.264 encoder. At about 2 Mbit/s for 720p15 the encoder cannot keep sensor noise: it
smears it into blocks, freezes it in skipped macroblocks and refreshes it at every keyframe (a
once-a-second "pulse" of changed noise over the whole frame), and moving edges ring. A simulator
that hands the detector pristine frames hides all of that.

Usage (``SimCamera(codec_kbps=...)`` does this; frames must come in order, one stream)::

    rt = CodecRoundTrip(width, height, fps, kbps=scaled_kbps(2000.0, width, height))
    rt.apply(main)          # I420 (h*3//2, w) uint8, replaced in place by the decoded picture

The encoder is configured like the device's libx264 (``ultrafast``, ``zerolatency``, no B-frames,
one keyframe per second, no scene-cut keyframes) but rate-controlled to the bitrate (VBV buffer of
one second) instead of a constant quality, as the Pi's hardware encoder is. One thread each, so
benchmark processes do not fight over cores, and the output is deterministic.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from agent.errors import CameraError

#: Pixels of the reference size the device bitrate is quoted for.
_REF_PIXELS = 1280 * 720


def scaled_kbps(kbps_720p: float, width: int, height: int) -> float:
    """The bitrate for ``width`` x ``height`` with the same bits per pixel as ``kbps_720p`` at
    1280x720 (a 640x360 render gets a quarter)."""
    return kbps_720p * width * height / _REF_PIXELS


def device_x264_options(kbps: float, fps: float) -> dict[str, str]:
    """libx264 options that record like the device at ``kbps``: ultrafast, zerolatency, no
    B-frames, a keyframe every second and no other, a one-second VBV buffer at the bitrate (set
    the codec's ``bit_rate`` to ``kbps * 1000`` as well)."""
    gop, bits = str(max(1, round(fps))), str(round(kbps * 1000))
    return {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "g": gop,
        "keyint_min": gop,
        "sc_threshold": "0",
        "bf": "0",
        "b": bits,
        "maxrate": bits,
        "bufsize": bits,
    }


class CodecRoundTrip:
    """Encodes each frame with libx264 at ``kbps`` and decodes it back in place; not thread-safe."""

    def __init__(self, width: int, height: int, fps: float, kbps: float) -> None:
        if not kbps > 0:
            raise CameraError(f"sim codec_kbps {kbps} is not allowed: use a positive bitrate "
                              "(kbit/s) or 0 for no H.264 round trip")
        self.width, self.height, self.kbps = width, height, kbps
        gop = max(1, round(fps))
        enc = av.CodecContext.create("libx264", "w")
        enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
        enc.time_base = Fraction(1, 90000)
        enc.framerate = Fraction(fps).limit_denominator(1001)
        enc.gop_size = gop
        enc.thread_count = 1
        enc.bit_rate = round(kbps * 1000)
        enc.options = device_x264_options(kbps, fps)
        enc.open()
        dec = av.CodecContext.create("h264", "r")
        dec.thread_count = 1
        dec.open()
        self._enc, self._dec = enc, dec
        self._pts = 0
        self._step = round(90000 / fps)

    def apply(self, main: np.ndarray) -> None:
        """Replace the I420 frame ``main`` by what a decoder shows after encoding it."""
        vf = av.VideoFrame.from_ndarray(main, format="yuv420p")
        vf.pts = self._pts
        self._pts += self._step
        decoded = None
        for pkt in self._enc.encode(vf):
            for out in self._dec.decode(pkt):
                decoded = out
        if decoded is None:  # zerolatency with no B-frames gives one frame out per frame in
            raise CameraError("the H.264 round trip returned no frame: libx264 must be built "
                              "with zerolatency support")
        np.copyto(main, decoded.to_ndarray(format="yuv420p"))
