"""Event snapshots: an I420 frame to JPEG bytes in memory (sealed by the caller before any disk).

Usage::

    jpeg = i420_to_jpeg(frame.main, quality=85)
    store.put_snapshot(clip_id, uplink.age.encrypt(jpeg, recipients))
"""

from __future__ import annotations

import cv2
import numpy as np

from agent.errors import ConfigError


def i420_to_jpeg(main_i420: np.ndarray, *, quality: int = 85) -> bytes:
    """Encode an I420 array of shape (height * 3 // 2, width), uint8, as a baseline JPEG."""
    if not 1 <= quality <= 100:
        raise ConfigError(f"recording.snapshot_quality = {quality!r}: must be an integer 1..100")
    rows, width = main_i420.shape[:2]
    if main_i420.ndim != 2 or main_i420.dtype != np.uint8 or rows % 3 or width % 2:
        raise ValueError(
            f"expected an I420 uint8 array of shape (height * 3 // 2, width) with even sizes, "
            f"got {main_i420.dtype} {main_i420.shape}"
        )
    bgr = cv2.cvtColor(main_i420, cv2.COLOR_YUV2BGR_I420)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"OpenCV could not JPEG-encode a {bgr.shape[1]}x{bgr.shape[0]} image")
    return buf.tobytes()
