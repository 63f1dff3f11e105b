"""The uploads lane's side of a clip in progress: segments and the signed progress record.

:class:`agent.recording.live_segments.LiveSegmenter` queues ``{"live": true, ...}`` upload items
while a clip
is recorded; the uploads lane hands them to :meth:`SegmentUploader.upload`, which PUTs the bytes as
``<base>.live-NNNN.age`` and then the device-signed progress record listing every segment so far
(:mod:`uplink.clip_progress`). What has been sent of each clip is kept in ``device.sqlite``
(setting ``live:<clip_id>``: the upload day, the last progress record and the segment being sent),
so a retry after a crash re-sends the same bytes to the same keys, and a segment stored just before
a crash or a revocation is still deleted with the rest. When the whole clip is uploaded with its
manifest, :meth:`SegmentUploader.retire` deletes the segments and the record: the bucket then
holds the clip as any other. A revocation of ``clips`` queues a job that deletes them all
(:meth:`SegmentUploader.withdraw_all`), each clip recorded as ``withdrawn`` in the ledger.

Wiring (agent.delivery.uploader.ClipUploader, on the uploads lane's thread)::

    segments = SegmentUploader(store, db, prefix=..., device_id=..., device_key=...)
    result = segments.upload(job, progress)         # a SegmentJob: SegmentUploaded, or Superseded
    replaced = segments.retire(clip_id)             # after the clip's manifest is stored
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.delivery.jobs import SegmentJob
from agent.device.database import DeviceDB
from uplink import (
    ClipProgress,
    ObjectStore,
    extended_progress,
    iso_utc,
    object_keys,
    progress_key,
    public_raw,
    segment_key,
    sign_progress,
    verify_progress,
)

LIVE_SETTING = "live:"  # + clip id


@dataclass(frozen=True)
class SegmentUploaded:
    """Segment ``n`` of ``clip_id`` and the progress record naming it are in the bucket."""

    clip_id: str
    n: int
    keys: tuple[str, ...]


@dataclass(frozen=True)
class Superseded:
    """The clip was sealed (or erased) before its segment went: its whole upload replaces it."""

    clip_id: str


def live_segments_sent(db: DeviceDB) -> bool:
    """Whether any clip not yet uploaded whole has segments in the bucket (what a revocation of
    ``clips`` must withdraw)."""
    return bool(db.query("SELECT 1 FROM settings WHERE key LIKE ? LIMIT 1", (LIVE_SETTING + "%",)))


class SegmentUploader:
    """See the module docstring. One per uploads lane; ``db`` is that lane's connection."""

    def __init__(self, store: ObjectStore, db: DeviceDB, *, prefix: str, device_id: str,
                 device_key: Ed25519PrivateKey) -> None:
        self.store, self.db = store, db
        self.prefix, self.device_id, self.key = prefix, device_id, device_key

    def upload(self, job: SegmentJob | Mapping[str, Any],
               progress: Callable[[dict[str, Any] | None], None]) -> SegmentUploaded | Superseded:
        """PUT the segment, then the progress record; ``progress(None)`` (the consent and purge
        check) runs before each request, so a revoke stops this between the two. ``job``: the
        typed job, or its JSON (``SegmentJob.from_json``)."""
        if not isinstance(job, SegmentJob):
            job = SegmentJob.from_json(job)
        clip_id, n = job.clip_id, job.segment
        data = _read_range(job.path, job.offset, job.length)
        if data is None:
            return Superseded(clip_id)
        state = self._state(clip_id)
        previous = _progress_of(state, self.key)
        if previous is not None and len(previous.segments) >= n:  # a retry after the record
            return SegmentUploaded(clip_id, n, (previous.segments[n - 1].key,
                                                progress_key(self._base(clip_id, state))))
        expected = (previous.size, len(previous.segments) + 1) if previous else (0, 1)
        if (job.offset, n) != expected:
            # the run of segments was broken (withdrawn on a revoke, or state lost): segments
            # must cover the file from its first byte, so this clip now goes up only whole
            return Superseded(clip_id)
        base = self._base(clip_id, state)
        seg = segment_key(base, n)
        sha = hashlib.sha256(data).hexdigest()
        progress(None)
        # named before it is sent: a crash or a revocation between this PUT and the record below
        # must not leave a segment in the bucket that no retire or withdrawal knows of
        self.db.set_setting(LIVE_SETTING + clip_id, json.dumps({**state, "pending": seg}))
        self.store.put_bytes(seg, data)
        record = extended_progress(previous, device_id=self.device_id, clip_id=clip_id, key=seg,
                                   size=len(data), sha256=sha, recipients=list(job.recipients),
                                   updated_at=iso_utc(time.time()))
        token = sign_progress(record, self.key)
        progress(None)
        self.store.put_bytes(progress_key(base), token.encode("ascii"))
        self.db.set_setting(LIVE_SETTING + clip_id, json.dumps({"day": state["day"],
                                                                "progress": token}))
        return SegmentUploaded(clip_id, n, (seg, progress_key(base)))

    def live_keys(self, clip_id: str) -> list[str]:
        """The keys of everything sent of ``clip_id`` while it was recorded (empty if none)."""
        raw = self.db.get_setting(LIVE_SETTING + clip_id, "")
        if not raw:
            return []
        state = json.loads(raw)
        record = _progress_of(state, self.key)
        segs = [s.key for s in record.segments] if record is not None else []
        pending = [state["pending"]] if state.get("pending") not in (None, *segs) else []
        return [*segs, *pending, progress_key(self._base(clip_id, state))]

    def retire(self, clip_id: str) -> list[str]:
        """Delete what was sent of ``clip_id`` while it was recorded (after its whole upload);
        returns the keys deleted. Raises the store's error if the bucket does not answer."""
        keys = self.live_keys(clip_id)
        if keys:
            self.store.delete(keys)
            self.db.delete_setting(LIVE_SETTING + clip_id)
        return keys

    def withdraw_all(self) -> list[tuple[str, list[str]]]:
        """A revocation: delete what was sent of every clip not yet uploaded whole; returns
        (clip id, keys deleted) for each. Raises the store's error if the bucket does not
        answer (the job is retried)."""
        rows = self.db.query("SELECT key FROM settings WHERE key LIKE ?", (LIVE_SETTING + "%",))
        done = []
        for (name,) in rows:
            clip_id = str(name)[len(LIVE_SETTING):]
            keys = self.retire(clip_id)
            if keys:
                done.append((clip_id, keys))
        return done

    def _state(self, clip_id: str) -> dict[str, Any]:
        raw = self.db.get_setting(LIVE_SETTING + clip_id, "")
        if raw:
            return dict(json.loads(raw))
        state = {"day": datetime.now(UTC).date().isoformat(), "progress": None}
        self.db.set_setting(LIVE_SETTING + clip_id, json.dumps(state))  # fixed at the first
        return state

    def _base(self, clip_id: str, state: Mapping[str, Any]) -> str:
        keys = object_keys(self.prefix, self.device_id, clip_id, date.fromisoformat(state["day"]))
        return keys.manifest.removesuffix(".manifest.jws")


def _progress_of(state: Mapping[str, Any], key: Ed25519PrivateKey) -> ClipProgress | None:
    token = state.get("progress")
    return verify_progress(token, public_raw(key)) if token else None


def _read_range(path: Path, offset: int, length: int) -> bytes | None:
    """``length`` bytes at ``offset`` of the partial file; None once it is gone (sealed and
    renamed, erased) or shorter (cut back by recovery): the whole clip's upload covers it."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read(length)
    except FileNotFoundError:
        return None
    return data if len(data) == length else None
