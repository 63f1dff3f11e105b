"""The motion detector's working image for one input size: how a frame is scaled down to it,
which of its pixels are watched, and the buffers each frame is written into.

Wiring: :class:`motion.detector.MotionDetector` makes one ``Geometry(shape, params, zones,
masks)`` on the first frame of a size (and again when the size changes), calls
``geo.downscale(luma)`` on every frame and writes its per-frame images into ``geo.buf``
(:class:`Scratch`). Nothing here learns: both depend only on the input size and the settings.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

import cv2
import numpy as np

from motion.detector_params import DetectorParams
from motion.zones import Polygon, polygon_mask

# the word whose low byte is every step-th pixel of a row (see Geometry._sampled)
_WORDS: dict[int, type[np.unsignedinteger]] = {2: np.uint16, 4: np.uint32, 8: np.uint64}


class Geometry:
    """Everything that depends only on the input size: downscale plan, masks, fit sample."""

    def __init__(
        self,
        shape: tuple[int, int],
        p: DetectorParams,
        zones: Sequence[Polygon],
        masks: Sequence[Polygon],
    ) -> None:
        h, w = shape
        self.shape = shape
        if w <= p.work_width:
            self.step, self.size = 1, (w, h)
        else:
            self.step = max(1, w // (2 * p.work_width))
            self.size = (p.work_width, max(1, round(p.work_width * h / w)))
        ww, wh = self.size
        private = polygon_mask(masks, ww, wh) if masks else np.zeros((wh, ww), bool)
        zone = polygon_mask(zones, ww, wh) if zones else np.ones((wh, ww), bool)
        watched = zone & ~private
        self.watched = watched.astype(np.uint8) * 255
        self.empty = np.zeros((wh, ww), np.uint8)  # shared, never written: "nothing changed"
        self.watched_px = max(1, int(np.count_nonzero(watched)))
        self.everything = bool(watched.all())  # no zones or masks: nothing to cut out
        # Lighting is global: fit it on every non-private pixel (a zone must not bias it), sampled
        # on a 3x3 grid for speed.
        sample = np.zeros((wh, ww), bool)
        sample[::3, ::3] = True
        self.sample_idx = np.flatnonzero(sample & ~private)
        self.min_region_px = max(2, math.ceil(p.min_region * self.watched_px))
        self.min_area_px = max(1, math.ceil(p.min_area * self.watched_px))
        self.buf = Scratch((wh, ww))
        self.edge: np.ndarray | None = None  # the ``edge_cluster`` strip (0/255), if on
        e = min(p.edge_cluster, ww // 2, wh)
        if e > 0:
            self.edge = np.zeros((wh, ww), np.uint8)
            self.edge[:, :e] = self.edge[:, ww - e:] = self.edge[wh - e:, :] = 255
        self._strided: np.ndarray | None = None  # the strided sample, when it must be resized

    def downscale(self, luma: np.ndarray) -> np.ndarray:
        """The frame at the working size in float32, in ``buf.small`` (overwritten each call)."""
        src = luma[:: self.step, :: self.step] if self.step > 1 else luma
        if (src.shape[1], src.shape[0]) != self.size:
            if not src.flags.c_contiguous:  # OpenCV would copy it into a new array anyway
                src = self._sampled(luma, src)
            src = cv2.resize(src, self.size, dst=self.buf.small8, interpolation=cv2.INTER_AREA)
        np.copyto(self.buf.small, src)  # uint8 to float32: exact, as astype
        return self.buf.small

    def _sampled(self, luma: np.ndarray, src: np.ndarray) -> np.ndarray:
        """``src`` (``luma[::step, ::step]``) copied into a buffer kept for the next frame.

        Every ``step``-th byte of a row is the low byte of a ``step``-byte word (little-endian),
        so the words' truncation to uint8 is the same sample, in one vectorised pass (4x:
        11 us a 720p frame against 42-67 us for the strided copy, more in the daemon's loop).
        """
        if self._strided is None or self._strided.shape != src.shape:
            self._strided = np.empty(src.shape, np.uint8)
        word = _WORDS.get(self.step)
        if (word is not None and sys.byteorder == "little" and luma.strides[1] == 1
                and luma.shape[1] % self.step == 0):
            np.copyto(self._strided, luma[:: self.step].view(word), casting="unsafe")
        else:
            np.copyto(self._strided, src)
        return self._strided


class Scratch:
    """The per-frame images of one working size, made once and written again every frame.

    Why: at 160x90 each OpenCV or NumPy call costs mostly its overhead, a new output array among
    it; and the loop touches the same memory every frame instead of whatever the allocator
    hands out, in a process where x264 runs between frames. Each buffer holds one value a frame
    (see where it is written); the masks the detector keeps from one frame to the next
    (``_prev_struct``, ``_prev_changed``) alternate between two.
    """

    def __init__(self, shape: tuple[int, int]) -> None:
        def f32() -> np.ndarray:
            return np.empty(shape, np.float32)

        def u8() -> np.ndarray:
            return np.empty(shape, np.uint8)

        self.small8, self.small, self.cur, self.pred = u8(), f32(), f32(), f32()
        self.absr, self.floor, self.thr_map, self.ratio = f32(), f32(), f32(), f32()
        self.below, self.clipped = f32(), f32()
        self.quiet, self.quiet2 = np.empty(shape, bool), np.empty(shape, bool)
        self.intensity, self.moving, self.bright, self.toggled = u8(), u8(), u8(), u8()
        self.busy, self.dense, self.local, self.low, self.darker = u8(), u8(), u8(), u8(), u8()
        self.grown, self.opened, self.near, self.far, self.flick = u8(), u8(), u8(), u8(), u8()
        self.structs = (u8(), u8())
        self.edge, self.edge_near, self.edge_struct = u8(), u8(), u8()
        self.raws = (u8(), u8())
        self.dimmed = u8()

    def other(self, pair: tuple[np.ndarray, np.ndarray], held: np.ndarray | None) -> np.ndarray:
        """The one of ``pair`` that is not ``held`` (kept from the previous frame)."""
        return pair[1] if pair[0] is held else pair[0]
