"""A picture for an event, as soon as the device's footage allows, decoded in memory.

A ring or motion event names the clip being recorded. Two sources, whichever comes first:

* the clip's signed manifest with its sealed snapshot (once the whole clip is uploaded): the page
  loads ``/api/devices/<id>/clips/<clip>/snapshot``, opened from the bucket on demand;
* the sealed segments of the clip still being recorded (``uplink.clip_progress``: the device
  sends them every ``[uplink] live_segment_s`` while it records): each checked against the signed
  progress record, joined, opened with the owner's identity as far as they go, and the newest
  frame decoded with PyAV and encoded as JPEG, kept in this process's memory only.

Usage (the LiveFeed's snapshot callback)::

    finder = SnapshotFinder(service)
    url = finder.find(device_id, clip_id)     # blocks up to ``wait_s``; None if nothing came
    jpeg = finder.jpeg(device_id, clip_id)    # for the URL it gave
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.errors import DoorwardError
from agent.owner.app.service import OwnerService
from agent.owner.uplink_cli import MAX_MANIFEST_BYTES
from uplink import (
    MAX_PROGRESS_BYTES,
    AgeError,
    AgeReader,
    ClipProgressError,
    UplinkError,
    b64u_decode,
    object_keys,
    progress_key,
    verify_manifest,
    verify_progress,
)

KEEP = 64  # decoded pictures kept in memory
MAX_SEGMENT_BYTES = 64 * 1024 * 1024


class SnapshotFinder:
    """See the module docstring."""

    def __init__(self, service: OwnerService, *, wait_s: float = 60.0,
                 poll_s: float = 0.1) -> None:
        self.service = service
        self.wait_s = wait_s
        self.poll_s = poll_s
        self._jpegs: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def warm() -> None:
        """Import PyAV and OpenCV now (about a second), not when the first ring needs them."""
        import av  # noqa: F401
        import cv2  # noqa: F401

    def jpeg(self, device_id: str, clip_id: str) -> bytes | None:
        with self._lock:
            return self._jpegs.get((device_id, clip_id))

    def find(self, device_id: str, clip_id: str, *, cached: bool = True) -> str | None:
        """A snapshot URL for the event's clip (see the module docstring), or None after
        ``wait_s`` without one. ``cached=False`` looks again even when a picture decoded from
        the segments is at hand (the uploaded snapshot, once there, wins over it)."""
        if cached and self.jpeg(device_id, clip_id) is not None:
            return live_url(device_id, clip_id)
        deadline = time.monotonic() + self.wait_s
        while time.monotonic() < deadline:
            url = self._try(device_id, clip_id)
            if url is not None:
                return url
            time.sleep(self.poll_s)
        return None

    def _try(self, device_id: str, clip_id: str) -> str | None:
        service = self.service
        device = service.device(device_id)
        store = service.store()
        prefix = service.bucket.prefix if service.bucket else "doorward"
        now = datetime.now(UTC)
        days = [now.date()] + ([now.date() - timedelta(days=1)] if now.hour == 0 else [])
        for day in days:  # keys carry the upload day; yesterday's only just after midnight
            base = object_keys(prefix, device_id, clip_id, day).manifest.removesuffix(
                ".manifest.jws")
            try:
                url = self._from_manifest(store, base, device_id, clip_id, device.public_key)
                if url is not None:
                    return url
                if store.exists(progress_key(base)) is None:
                    continue
                token = store.get_bytes(progress_key(base), MAX_PROGRESS_BYTES)
                record = verify_progress(token, b64u_decode(device.public_key))
            except (UplinkError, DoorwardError):
                continue
            if record.clip_id != clip_id or not record.segments:
                continue
            jpeg = self._decode(store, record, service)
            if jpeg is not None:
                with self._lock:
                    self._jpegs[(device_id, clip_id)] = jpeg
                    while len(self._jpegs) > KEEP:
                        self._jpegs.popitem(last=False)
                return live_url(device_id, clip_id)
        return None

    def _from_manifest(self, store: Any, base: str, device_id: str, clip_id: str,
                       public_key: str) -> str | None:
        """The clip's uploaded snapshot, once its manifest is in the bucket and verifies."""
        if store.exists(f"{base}.manifest.jws") is None:
            return None
        m = verify_manifest(store.get_bytes(f"{base}.manifest.jws", MAX_MANIFEST_BYTES),
                            b64u_decode(public_key))
        if m.clip_id != clip_id or m.snapshot is None:
            return None
        self.service.note_manifest(device_id, m)
        return f"/api/devices/{device_id}/clips/{clip_id}/snapshot"

    @staticmethod
    def _decode(store: Any, record: Any, service: OwnerService) -> bytes | None:
        """The newest frame of the segments so far as JPEG, or None (too little footage yet)."""
        sealed = bytearray()
        for seg in record.segments:
            data = store.get_bytes(seg.key, min(seg.size, MAX_SEGMENT_BYTES))
            if hashlib.sha256(data).hexdigest() != seg.sha256 or len(data) != seg.size:
                raise ClipProgressError(f"{seg.key} does not match the signed progress record")
            sealed += data
        try:
            reader = AgeReader(io.BytesIO(bytes(sealed)), [service.ring.identity],
                               allow_truncated=True)
            plain = reader.read()
        except AgeError:
            return None
        return newest_frame_jpeg(plain)


def live_url(device_id: str, clip_id: str) -> str:
    return f"/api/live/{device_id}/{clip_id}.jpg"


def newest_frame_jpeg(mp4_prefix: bytes) -> bytes | None:
    """The newest keyframe PyAV can decode from the start of a (fragmented) MP4, as JPEG (the
    device starts a fragment at each keyframe, GOP <= 1 s: at most a second older than the
    newest frame, and decoding only keyframes keeps this quick)."""
    import av  # PyAV and OpenCV: only when a picture is wanted
    import cv2

    frame = None
    try:
        with av.open(io.BytesIO(mp4_prefix), mode="r") as container:
            stream = container.streams.video[0]
            stream.codec_context.skip_frame = "NONKEY"  # the newest keyframe is picture enough
            try:
                for packet in container.demux(stream):
                    for f in packet.decode():
                        frame = f
            except (av.error.FFmpegError, EOFError):
                pass  # the prefix ends mid-fragment: keep what decoded, then flush
            try:
                for f in stream.codec_context.decode(None):  # frames the decoder still holds
                    frame = f
            except (av.error.FFmpegError, EOFError):
                pass
    except (av.error.FFmpegError, IndexError, EOFError):
        pass
    if frame is None:
        return None
    bgr = frame.to_ndarray(format="bgr24")
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return buf.tobytes() if ok else None
