"""Footage leaves while it is recorded: the clip in progress goes up in sealed segments.

The loop thread's side. Every ``every_s`` seconds of a clip being recorded, :class:`LiveSegmenter`
looks at how far the sealed file has grown, cuts it at the last whole sealed age chunk (keyless:
:func:`uplink.age.sealed_prefix_length`) and asks for the new bytes to be queued as the next
segment. The uploads lane then sends them (consent asked again before each request) with a
device-signed progress record (:mod:`uplink.clip_progress`). When the clip ends, its whole upload
replaces the segments. Bytes are never re-encrypted or re-read into memory here: only sizes.

Wiring (agent.app)::

    live = LiveSegmenter(delivery.queue_segment, every_s=cfg.uplink.live_segment_s)
    ... after every frame: live.tick(recorder)

Latency budget at 1280x720, 15 fps: a fragment is written at each keyframe (GOP <= 1 s), the age
writer seals a 64 KiB chunk as soon as the next byte arrives (a fraction of a second at the
recorded bitrate), then at most ``every_s`` until the next cut, then one PUT.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agent.recording.recorder import ClipInProgress
from uplink import AgeError, sealed_prefix_length

log = logging.getLogger("doorward")

HEAD_BYTES = 64 * 1024  # more than any header we write (32 recipients take ~4 KiB)


@dataclass(frozen=True)
class LiveCut:
    """Segment ``n`` (from 1) of clip ``clip_id``: bytes ``[offset, offset + length)`` of
    ``path``, the sealed file being written."""

    clip_id: str
    n: int
    offset: int
    length: int
    path: Path
    recipients: tuple[str, ...]


class Recording(Protocol):
    """What the segmenter needs of :class:`agent.recording.recorder.Recorder`."""

    @property
    def clip_id(self) -> str | None: ...
    def in_progress(self) -> ClipInProgress | None: ...


class LiveSegmenter:
    """Cuts the clip in progress into segments; ``queue`` returns True if it queued the cut
    (False: no consent now, nothing to do; the next cut then starts from the same offset, so
    segments always cover the file from its first byte)."""

    def __init__(self, queue: Callable[[LiveCut], bool], *, every_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.queue, self.every_s, self.clock = queue, every_s, clock
        self._clip: str | None = None
        self._offset = 0
        self._n = 0
        self._next_at = 0.0

    def tick(self, recorder: Recording) -> LiveCut | None:
        """Call after every frame; returns the cut it queued, if any. Cheap when nothing is due:
        the recorder is asked for its file (a flush) only once every ``every_s``."""
        clip_id = recorder.clip_id
        if clip_id is None or self.every_s <= 0:
            self._clip = None
            return None
        now = self.clock()
        if clip_id != self._clip:
            self._clip, self._offset, self._n = clip_id, 0, 0
            self._next_at = now + self.every_s
            return None
        if now < self._next_at:
            return None
        self._next_at = now + self.every_s
        clip = recorder.in_progress()
        if clip is None or clip.id != clip_id:
            return None
        cut = _whole_chunks(clip.partial)
        if cut is None or cut <= self._offset:
            return None
        live = LiveCut(clip.id, self._n + 1, self._offset, cut - self._offset, clip.partial,
                       clip.recipients)
        if not self.queue(live):
            return None
        self._offset, self._n = cut, self._n + 1
        return live


def _whole_chunks(path: Path) -> int | None:
    """Length of the header, nonce and whole sealed chunks written to ``path`` so far."""
    try:
        with path.open("rb") as f:
            head = f.read(HEAD_BYTES)
            size = f.seek(0, 2)
        return sealed_prefix_length(head, size)
    except (OSError, AgeError) as e:  # renamed at the clip's end, or a header not yet written
        log.debug("live upload: %s not readable yet: %s", path.name, e)
        return None
