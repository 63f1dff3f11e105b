"""Zones and privacy masks: polygons in relative coordinates, rasterised to boolean masks.

A polygon is a tuple of ``(x, y)`` points with ``0 <= x, y <= 1`` relative to the image width and
height, so one configuration serves every resolution (the 1280x720 recording, the 320-wide analysis
image and the detector's ~160-wide working image).

Wiring::

    zones = [validate_polygon(p) for p in config_zones]          # ValueError names the bad point
    masker = PrivacyMasker(privacy_polygons, width=1280, height=720)
    for frame in camera.frames():
        masker(frame.main)              # before encoding: masked pixels never exist in a clip
        encoder.encode(frame.main)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np

Polygon = tuple[tuple[float, float], ...]
"""Points ``(x, y)`` relative to the image size, each coordinate within 0..1."""

# fillPoly works in fixed point with this many fractional bits, so polygon edges land to 1/16 pixel.
_SHIFT = 4

# Black in the limited ("TV") range that H.264 encoders assume for I420 input; chroma 128 = no
# colour.
_BLACK_Y = 16
_NEUTRAL_UV = 128


def validate_polygon(points: Iterable[Sequence[float]]) -> Polygon:
    """Check and normalise a polygon: at least 3 points, each ``(x, y)`` with both within 0..1.

    Raises ValueError naming the offending point and what is allowed.
    """
    out: list[tuple[float, float]] = []
    for i, point in enumerate(points):
        try:
            x, y = (float(v) for v in point)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"polygon point {i} is {point!r}: expected a pair (x, y) of numbers within 0..1"
            ) from exc
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(
                f"polygon point {i} is ({x}, {y}): coordinates are relative to the image, "
                "each must be within 0..1"
            )
        out.append((x, y))
    if len(out) < 3:
        raise ValueError(f"a polygon needs at least 3 points, got {len(out)}: {out!r}")
    return tuple(out)


def polygon_mask(polygons: Sequence[Polygon], width: int, height: int) -> np.ndarray:
    """Boolean ``(height, width)`` mask, True inside any of ``polygons`` (False everywhere if none).

    Pixels the boundary passes through count as inside (for privacy, masking one pixel too many is
    the safe side), so a mask may be one pixel wider than the exact polygon.
    """
    if width <= 0 or height <= 0:
        raise ValueError(
            f"mask size {width}x{height} is invalid: width and height must be positive"
        )
    canvas = np.zeros((height, width), dtype=np.uint8)
    if polygons:
        # fillPoly puts pixel i's centre at coordinate i; relative to the width it is (i + 0.5) / w.
        size = np.array([width, height], dtype=np.float64)
        pts = [
            np.round(
                (np.asarray(validate_polygon(p), dtype=np.float64) * size - 0.5) * (1 << _SHIFT)
            ).astype(np.int32)
            for p in polygons
        ]
        cv2.fillPoly(canvas, pts, 1, lineType=cv2.LINE_8, shift=_SHIFT)
    return canvas.astype(bool)


def _i420_planes(main: np.ndarray) -> tuple[int, int]:
    """Validate an I420 buffer and return its ``(width, height)``."""
    if main.dtype != np.uint8 or main.ndim != 2 or not main.flags.c_contiguous:
        raise ValueError(
            "expected a C-contiguous uint8 I420 array of shape (h*3//2, w), "
            f"got dtype {main.dtype}, shape {main.shape}"
        )
    width = int(main.shape[1])
    height = int(main.shape[0]) * 2 // 3
    if height * 3 // 2 != main.shape[0] or height % 2 or width % 2:
        raise ValueError(f"I420 array shape {main.shape} is not (h*3//2, w) with even w and h")
    return width, height


def _chroma_mask(mask_full: np.ndarray) -> np.ndarray:
    """Half-size mask for U/V: a chroma sample is masked if any of its 2x2 luma pixels is."""
    h, w = mask_full.shape
    blocks = mask_full.reshape(h // 2, 2, w // 2, 2)
    return np.asarray(blocks.any(axis=(1, 3)), dtype=bool)


def apply_privacy_mask_i420(main: np.ndarray, mask_full: np.ndarray) -> None:
    """Black out masked pixels of an I420 frame in place (Y=16, U=V=128).

    ``mask_full`` is a boolean ``(height, width)`` mask at the frame size (see
    :func:`polygon_mask`). For a mask used on every frame, :class:`PrivacyMasker` precomputes the
    indices and is faster.
    """
    width, height = _i420_planes(main)
    if mask_full.shape != (height, width):
        raise ValueError(
            f"mask shape {mask_full.shape} does not match the frame size {height}x{width}"
        )
    flat = main.reshape(-1)
    y_idx, uv_idx = _flat_indices(mask_full, width, height)
    flat[y_idx] = _BLACK_Y
    flat[uv_idx] = _NEUTRAL_UV


def _flat_indices(mask_full: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices into the flat I420 buffer: masked Y samples, and masked U and V samples together."""
    y_idx = np.flatnonzero(mask_full)
    c_idx = np.flatnonzero(_chroma_mask(mask_full))
    u_base = width * height
    v_base = u_base + (width // 2) * (height // 2)
    uv_idx = np.concatenate([u_base + c_idx, v_base + c_idx])
    return y_idx, uv_idx


class PrivacyMasker:
    """Blacks out privacy polygons in I420 frames of one size; masks and indices are computed once.

    ``PrivacyMasker(polygons, 1280, 720)(frame.main)`` modifies ``frame.main`` in place. With no
    polygons it does nothing. The cost is proportional to the masked area, not the frame.
    """

    def __init__(self, polygons: Sequence[Polygon], width: int, height: int) -> None:
        self.width = width
        self.height = height
        self.mask = polygon_mask(polygons, width, height)
        self._y_idx, self._uv_idx = _flat_indices(self.mask, width, height)

    @property
    def empty(self) -> bool:
        return self._y_idx.size == 0

    def __call__(self, main: np.ndarray) -> None:
        width, height = _i420_planes(main)
        if (width, height) != (self.width, self.height):
            raise ValueError(
                f"frame is {width}x{height} but this PrivacyMasker was built for "
                f"{self.width}x{self.height}: build one per stream size"
            )
        if self.empty:
            return
        flat = main.reshape(-1)
        flat[self._y_idx] = _BLACK_Y
        flat[self._uv_idx] = _NEUTRAL_UV
