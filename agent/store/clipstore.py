"""The crash-safe local clip store: sealed clips and snapshots under ``<data_dir>/clips``.

Wiring (daemon)::

    store = ClipStore(data_dir, max_bytes=4 << 30, retention_days=30, repair_index=True)
    report = store.recover()                 # once, before recording; report.notes -> status
    sink = store.open_clip(store.new_clip_id(), ClipStart(...))
    ... AgeWriter(sink, recipients) ... ; record = sink.commit(ClipEnd(...))   # or sink.abort()
    store.enforce_limits()                   # after each clip and before the next

Read-only users (``doorward clips list``) just construct the store and call ``list_clips``: they
never call ``recover``, which would disturb a running daemon's clip in progress. A damaged index
raises :class:`IndexCorruptError` for them (the message names the fix: start the daemon), while
``repair_index=True`` (the daemon: it takes the store lock first) moves the damaged file aside
and rebuilds the index from the clip files (:mod:`agent.store.rebuild`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path
from types import TracebackType

from agent.errors import StoreError
from agent.paths import DataDir
from agent.store.files import ClipSink, unlink_quiet_missing, write_durable
from agent.store.index import ClipRow, Index, IndexCorruptError
from agent.store.rebuild import IndexRebuild, rebuild_index
from agent.store.records import (
    CLIP_SUFFIX,
    PARTIAL_SUFFIX,
    SNAPSHOT_SUFFIX,
    ClipEnd,
    ClipRecord,
    ClipStart,
    EventRecord,
    RecoveryReport,
    StoreUsage,
    iso_utc,
    new_clip_id,
)
from agent.store.recovery import recover

log = logging.getLogger(__name__)

DEFAULT_MIN_FREE_BYTES = 64 * 1024 * 1024


class ClipStore:
    """Sealed clips, snapshots and events under ``data_dir``; see the module docstring for wiring.

    Bounded by ``max_bytes`` (clips + snapshots) and ``retention_days``; ``min_free_bytes`` keeps
    that much of the file system free (other writers can fill the card too). Eviction removes the
    oldest delivered clips first, then the oldest.
    """

    #: The clip file class: a seam for test doubles (a sink whose disk fills up).
    sink_class: type[ClipSink] = ClipSink

    def __init__(
        self,
        data_dir: Path,
        *,
        max_bytes: int,
        retention_days: float,
        min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
        clock_wall: Callable[[], float] = time.time,
        repair_index: bool = False,
    ) -> None:
        if max_bytes <= 0:
            raise StoreError(f"store.max_bytes = {max_bytes!r}: must be a positive number of bytes")
        if retention_days <= 0:
            raise StoreError(f"store.retention_days = {retention_days!r}: must be > 0 days")
        self.data_dir = Path(data_dir).absolute()
        self._paths = DataDir(self.data_dir)
        self.clips_dir = self._paths.clips
        self.max_bytes, self.retention_days = max_bytes, retention_days
        self.min_free_bytes = min_free_bytes
        self._clock = clock_wall
        self._lock_fd: int | None = None
        self._last_sealed: str | None = None  # evicting it is worth a warning
        self._rebuild: IndexRebuild | None = None  # set when a damaged index was replaced
        try:
            self.clips_dir.mkdir(parents=True, exist_ok=True)
            if repair_index:
                self._take_lock()  # never move aside the index of a daemon that is running
            self._index = self._open_index(repair=repair_index)
        except BaseException as e:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
            if not isinstance(e, OSError):
                raise
            raise StoreError(
                f"cannot create the clip store in {self.data_dir} ({e}): pass a writable --data-dir"
            ) from e

    def _open_index(self, *, repair: bool) -> Index:
        path = self._paths.index_db
        try:
            return Index(path)
        except IndexCorruptError as e:
            if not repair:
                raise
            index, self._rebuild = rebuild_index(path, e, self._clock())
            return index

    def close(self) -> None:
        self._index.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> ClipStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # start-up

    def recover(self) -> RecoveryReport:
        """Take the store lock (one daemon per data dir), recover partial files, reconcile.
        After an index rebuild, ``notes`` of the report says what was lost (also logged)."""
        self._take_lock()
        report = recover(self.clips_dir, self._index)
        if self._rebuild is not None:
            note = self._rebuild.note(len(report.indexed_orphans))
            log.warning("%s", note)
            report = replace(report, notes=(note, *report.notes))
            self._rebuild = None
        return report

    def _take_lock(self) -> None:
        if self._lock_fd is not None:
            return
        fd = os.open(self._paths.store_lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            os.close(fd)
            raise StoreError(
                f"another doorward daemon is using {self.data_dir}: stop it, or pass a different "
                "--data-dir"
            ) from e
        self._lock_fd = fd

    # paths

    def clip_path(self, clip_id: str) -> Path:
        return self.clips_dir / f"{clip_id}{CLIP_SUFFIX}"

    def snapshot_path(self, clip_id: str) -> Path:
        return self.clips_dir / f"{clip_id}{SNAPSHOT_SUFFIX}"

    def new_clip_id(self) -> str:
        """A fresh opaque clip id, unused in the index and on disk."""
        while True:
            clip_id = new_clip_id()
            if self._index.get(clip_id) is None and not self.clip_path(clip_id).exists():
                return clip_id

    # writing

    def open_clip(self, clip_id: str, start: ClipStart) -> ClipSink:
        """Index the clip as partial, create ``<id>.mp4.age.partial``; OSError/StoreError if not."""
        row = ClipRow(
            clip_id, "partial", start.started_at_s, None, start.source_start_s, None, 0, None,
            False, start.recipients, False, start.event_id, start.reason,
            upload_scopes=start.upload_scopes,
        )  # fmt: skip
        self._index.insert_partial(row)
        final = self.clip_path(clip_id)
        try:
            partial = final.with_name(final.name + PARTIAL_SUFFIX)
            return self.sink_class(clip_id, partial, final, self._commit, self._index.delete)
        except BaseException:
            self._index.delete(clip_id)
            raise

    def _commit(self, sink: ClipSink, end: ClipEnd) -> ClipRecord:
        row = self._index.get(sink.clip_id)
        if row is None:
            raise StoreError(f"clip {sink.clip_id} vanished from the index while it was recording")
        snap = self.snapshot_path(sink.clip_id)
        started = row.started_at_s if end.started_at_s is None else end.started_at_s
        source_start = row.source_start_s if end.source_start_s is None else end.source_start_s
        done = ClipRow(
            row.id, "complete", started, end.ended_at_s, source_start, end.source_end_s,
            sink.final.stat().st_size, snap.stat().st_size if snap.exists() else None, False,
            row.recipients, False, row.event_id, row.reason, upload_scopes=row.upload_scopes,
        )  # fmt: skip
        self._index.upsert(done)
        self._last_sealed = done.id
        return self._record(done)

    def record_progress(self, clip_id: str, plain_bytes: int, source_end_s: float) -> None:
        """While recording: the first ``plain_bytes`` of the clip's plaintext (what goes into
        the age writer) hold whole MP4 fragments playing to source time ``source_end_s``. Call
        it as each fragment is written; recovery takes a cut clip's duration from it. Raises
        StoreError (a full disk): the caller may ignore it, it costs only that precision."""
        self._index.add_progress(clip_id, plain_bytes, source_end_s)

    def put_snapshot(self, clip_id: str, sealed: bytes) -> Path:
        """Durably write a sealed snapshot for ``clip_id``. Raises OSError (ENOSPC...)."""
        path = self.snapshot_path(clip_id)
        write_durable(path, sealed)
        if self._index.get(clip_id) is not None:
            self._index.set_snapshot(clip_id, len(sealed))
        return path

    # reading and housekeeping

    def _record(self, row: ClipRow) -> ClipRecord:
        ended = row.ended_at_s if row.ended_at_s is not None else row.started_at_s
        source_end = row.source_end_s if row.source_end_s is not None else row.source_start_s
        return ClipRecord(
            id=row.id,
            path=self.clip_path(row.id),
            snapshot_path=self.snapshot_path(row.id) if row.snapshot_bytes is not None else None,
            started_at=iso_utc(row.started_at_s),
            ended_at=iso_utc(ended),
            source_start_s=row.source_start_s,
            source_end_s=source_end,
            duration_s=max(0.0, source_end - row.source_start_s),
            bytes=row.bytes,
            truncated=row.truncated,
            recipients=row.recipients,
            delivered=row.delivered,
            event_id=row.event_id,
            reason=row.reason,
            started_at_s=row.started_at_s,
            damage=row.damage,
            upload_scopes=row.upload_scopes,
        )

    def list_clips(self) -> list[ClipRecord]:
        """Complete clips, oldest first (clips being recorded are not listed)."""
        return [self._record(r) for r in self._index.rows("complete")]

    def get_clip(self, clip_id: str) -> ClipRecord | None:
        row = self._index.get(clip_id)
        return self._record(row) if row is not None and row.state == "complete" else None

    def delete_clip(self, clip_id: str) -> bool:
        """Remove a clip's files, then its row (a crash in between leaves a row recovery drops)."""
        row = self._index.get(clip_id)
        removed = unlink_quiet_missing(self.clip_path(clip_id))
        removed |= unlink_quiet_missing(self.snapshot_path(clip_id))
        if row is not None:
            self._index.delete(clip_id)
        return removed or row is not None

    def forget(self, clip_ids: list[str], *, everything: bool = False,
               before: str | None = None) -> list[str]:
        """The owner's erasure: delete these clips (files and rows) and their event history,
        all of it with ``everything``, and every event started before ``before`` (YYYY-MM-DD,
        UTC) when given, leaving nothing of them in the index's files. Returns the ids of the
        clips that existed."""
        deleted = []
        for clip_id in clip_ids:
            row = self._index.get(clip_id)
            removed = unlink_quiet_missing(self.clip_path(clip_id))
            removed |= unlink_quiet_missing(self.snapshot_path(clip_id))
            if removed or row is not None:
                deleted.append(clip_id)
        # ISO 8601 as stored (2027-01-15T...), whatever form of the date was given (20270115)
        cut = None if before is None else f"{date.fromisoformat(before).isoformat()}T00:00:00"
        self._index.erase(list(clip_ids), all_events=everything, events_before=cut)
        return deleted

    def wipe(self) -> dict[str, int]:
        """Factory reset: every clip and snapshot file (partial ones too: discard the clip in
        progress first), every clip row and event, leaving nothing readable in the index's files.
        Returns what went, for the log."""
        rows = self._index.rows()
        for row in rows:
            self.delete_clip(row.id)
        stray = 0
        for path in self.clips_dir.iterdir():
            if path.is_file() and path.name.endswith(
                    (CLIP_SUFFIX, SNAPSHOT_SUFFIX, PARTIAL_SUFFIX)):
                stray += unlink_quiet_missing(path)
        events = self._index.wipe()
        return {"clips": len(rows), "events": events, "stray_files": stray}

    def mark_delivered(self, clip_id: str) -> None:
        """Record that the uplink delivered the clip: it becomes first in line for eviction."""
        if not self._index.mark_delivered(clip_id):
            raise StoreError(f"mark_delivered: no complete clip {clip_id!r} in {self.data_dir}")

    def record_event(
        self,
        *,
        event_id: int | str,
        reason: str,
        onset_s: float,
        last_motion_s: float | None,
        peak_area: float,
        clip_id: str | None = None,
        started_at_s: float | None = None,
        ended_at_s: float | None = None,
    ) -> EventRecord:
        """Insert or replace event ``event_id``. Source times in seconds; wall times (epoch s)
        default to now for the end and now minus the motion span for the start: pass
        ``Recorder.wall_time(onset_s)`` for exact values. ``ended_at_s`` is None-able only by
        recording an event that is still open: pass ``last_motion_s=None``."""
        now = self._clock()
        if ended_at_s is None and last_motion_s is not None:
            ended_at_s = now
        if started_at_s is None:
            span = 0.0 if last_motion_s is None else max(0.0, last_motion_s - onset_s)
            started_at_s = now - span
        event = EventRecord(
            id=str(event_id),
            reason=reason,
            started_at=iso_utc(started_at_s),
            ended_at=iso_utc(ended_at_s) if ended_at_s is not None else None,
            onset_s=onset_s,
            last_motion_s=last_motion_s,
            peak_area=peak_area,
            clip_id=clip_id,
        )
        self._index.record_event(event)
        return event

    def list_events(self) -> list[EventRecord]:
        return self._index.events()

    def usage(self) -> StoreUsage:
        return StoreUsage(
            bytes_used=self._index.total_bytes(),
            clips=len(self._index.rows("complete")),
            disk_free=self.disk_free(),
            max_bytes=self.max_bytes,
        )

    def enforce_limits(self) -> list[str]:
        """Evict clips older than ``retention_days``, then (oldest delivered first, then oldest)
        while over ``max_bytes`` or below ``min_free_bytes`` free. Returns the evicted ids and logs
        each reason. Clips being recorded are never evicted. Raises OSError if a file cannot be
        removed."""
        evicted: list[str] = []
        cutoff = self._clock() - self.retention_days * 86400.0
        for row in self._index.rows("complete"):
            if row.started_at_s < cutoff:
                self._evict(row.id, f"older than retention_days={self.retention_days:g}", evicted)
        queue = self._index.eviction_order()
        total = self._index.total_bytes()
        while queue and total > self.max_bytes:
            row = queue.pop(0)
            self._evict(row.id, f"store over max_bytes={self.max_bytes} ({total} used)", evicted)
            total = self._index.total_bytes()
        while queue and (free := self.disk_free()) < self.min_free_bytes:
            row = queue.pop(0)
            self._evict(row.id, f"disk free {free} below [store] min_free_bytes="
                        f"{self.min_free_bytes}: free space on the card, or lower min_free_bytes",
                        evicted, warn=True)
        try:  # last: on a full card the evictions above make the room this write needs
            self._index.delete_events_before(iso_utc(cutoff))
        except StoreError as e:
            log.warning("old events not removed yet (%s): next time", e)
        return evicted

    def disk_free(self) -> int:
        """Free bytes on the clips' file system."""
        return shutil.disk_usage(self.clips_dir).free

    def _evict(self, clip_id: str, reason: str, evicted: list[str], *, warn: bool = False) -> None:
        """Delete a clip for ``reason``; at WARNING when that is the free-space floor or the clip
        was just sealed (footage lost to a full card must not hide among INFO lines)."""
        row = self._index.get(clip_id)
        delivered = "delivered" if row is not None and row.delivered else "undelivered"
        just = clip_id == self._last_sealed
        level = logging.WARNING if warn or just else logging.INFO
        log.log(level, "evicting %s clip %s%s: %s", delivered, clip_id,
                " (just sealed)" if just else "", reason)
        self.delete_clip(clip_id)
        evicted.append(clip_id)
