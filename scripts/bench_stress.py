"""Stress for the detection bench: darken the luma, add sensor noise, an H.264 round trip.

Usage (``scripts/bench detection --stress dim=0.45,noise=6,row=1,crf=30``)::

    stress = Stress.parse("dim=0.45,noise=6")
    luma = stress.apply(frame.luma, rng)      # per frame, in the order the frames come

- ``dim``: brightness factor above video black (16): ``16 + (y - 16) * dim``.
- ``noise``: temporal sensor noise, standard deviation in grey levels for a pixel of the frame's
  mean brightness; it follows the signal as shot noise does (``sqrt(0.3 + 0.7 * y / mean)``), so
  bright patches are noisier than dark ones.
- ``row``: row noise, a per-row offset per frame (standard deviation in grey levels).
- ``crf``: encode each frame with libx264 (zerolatency, ultrafast, that CRF) and use the decoded
  picture, as ``doorward analyze`` sees a low-bitrate recording.

The noise is added to the analysis image (320 wide), which is what the detector sees of a 1280-wide
file as well: it samples every fourth pixel before averaging, so per-pixel noise keeps its level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Stress:
    dim: float = 1.0
    noise: float = 0.0
    row: float = 0.0
    crf: int = 0
    _codec: Any = field(default=None, repr=False)
    _index: int = 0

    @classmethod
    def parse(cls, text: str | None) -> Stress:
        s = cls()
        for part in (text or "").split(","):
            if not part:
                continue
            key, _, value = part.partition("=")
            if key not in ("dim", "noise", "row", "crf"):
                raise ValueError(f"--stress {key!r}: allowed dim, noise, row, crf")
            setattr(s, key, int(value) if key == "crf" else float(value))
        return s

    @property
    def active(self) -> bool:
        return self.dim != 1.0 or self.noise > 0 or self.row > 0 or self.crf > 0

    def apply(self, luma: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        y = luma.astype(np.float32)
        if self.dim != 1.0:
            y = 16.0 + (y - 16.0) * self.dim
        if self.noise > 0:
            mean = max(float(y.mean()), 1.0)
            sd = self.noise * np.sqrt(0.3 + 0.7 * np.maximum(y, 0.0) / mean)
            y += rng.standard_normal(y.shape, dtype=np.float32) * sd
        if self.row > 0:
            y += rng.standard_normal((y.shape[0], 1), dtype=np.float32) * self.row
        out = np.clip(y + 0.5, 0, 255).astype(np.uint8)
        if self.crf > 0:
            out = self._roundtrip(out)
        return out

    def _roundtrip(self, luma: np.ndarray) -> np.ndarray:
        import av

        h, w = luma.shape
        if self._codec is None:
            enc = av.CodecContext.create("libx264", "w")
            enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
            enc.time_base = __import__("fractions").Fraction(1, 15)
            enc.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": str(self.crf),
                           "g": "15"}
            dec = av.CodecContext.create("h264", "r")
            self._codec = (enc, dec)
        enc, dec = self._codec
        yuv = np.empty((h * 3 // 2, w), np.uint8)
        yuv[:h] = luma
        yuv[h:] = 128
        vf = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        vf.pts = self._index
        self._index += 1
        for pkt in enc.encode(vf):
            for f in dec.decode(pkt):
                return np.ascontiguousarray(f.to_ndarray(format="gray"))
        return luma
