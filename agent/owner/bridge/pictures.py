"""The last event's picture for Home Assistant, decrypted on the bridge's host and kept in memory.

The owner app's :class:`SnapshotFinder` finds it (the clip's signed manifest and sealed snapshot
once uploaded, or the sealed segments of the clip still being recorded); this keeps the JPEG
bytes, opened with the bridge's own identity, for :class:`agent.owner.bridge.bridge.HaBridge`.

Wiring::

    pictures = BridgePictures(OwnerService(ring, bucket=bucket_options))
    feed = LiveFeed(ring, snapshot=pictures.find, warm=SnapshotFinder.warm, ...)
    jpeg = pictures.jpeg(device_id, clip_id)      # after the feed's "snapshot" item
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from agent.errors import DoorwardError
from agent.owner.app.service import OwnerService
from agent.owner.app.snapshots import SnapshotFinder, live_url

KEEP = 16  # pictures kept (one per recent clip)


class BridgePictures:
    """See the module docstring."""

    def __init__(self, service: OwnerService, *, wait_s: float = 60.0,
                 poll_s: float = 0.5) -> None:
        self.service = service
        self.finder = SnapshotFinder(service, wait_s=wait_s, poll_s=poll_s)
        self._jpegs: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def find(self, device_id: str, clip_id: str) -> str | None:
        """The feed's snapshot callback (its snapshot thread; blocks up to ``wait_s``): the
        picture's URL once its bytes are here, or None. Asked again for the same clip (the
        ``uploaded`` message), it prefers the device's own snapshot over a decoded frame."""
        try:
            self.service.store()
        except DoorwardError:
            return None  # no bucket: no pictures (main says so at start)
        url = self.finder.find(device_id, clip_id, cached=False)
        if url is None:
            return None
        if url == live_url(device_id, clip_id):
            jpeg = self.finder.jpeg(device_id, clip_id)
        else:
            opened = self.service.sealed(device_id, clip_id, "snapshot")
            jpeg = opened.read(0, opened.size)
        if not jpeg:
            raise DoorwardError(f"the snapshot of clip {clip_id} is empty")
        with self._lock:
            self._jpegs[(device_id, clip_id)] = jpeg
            self._jpegs.move_to_end((device_id, clip_id))
            while len(self._jpegs) > KEEP:
                self._jpegs.popitem(last=False)
        return url

    def jpeg(self, device_id: str, clip_id: str) -> bytes | None:
        with self._lock:
            return self._jpegs.get((device_id, clip_id))
