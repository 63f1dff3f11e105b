"""Start-up recovery: leave the clips directory and the index agreeing, with nothing half-written.

Runs before the recorder starts (the daemon holds the store lock, so no clip is being written). The
device cannot decrypt its clips, so a crashed clip is cut back to whole sealed chunks without a key
(:func:`uplink.age.sealed_prefix_length`) and kept as ``truncated``; the owner reads it with
``AgeReader(..., allow_truncated=True)`` and gets a playable fragmented-MP4 prefix.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path

from agent.store.files import fsync_dir, unlink_quiet_missing
from agent.store.index import ClipRow, Index
from agent.store.records import (
    CLIP_SUFFIX,
    PARTIAL_SUFFIX,
    SNAPSHOT_SUFFIX,
    RecoveryReport,
    is_clip_id,
    iso_utc,
)
from uplink import (
    AGE_CHUNK_SIZE,
    AGE_NONCE_SIZE,
    AGE_SEALED_CHUNK_SIZE,
    AgeError,
    parse_age_header,
    sealed_prefix_length,
)

log = logging.getLogger(__name__)

_HEAD_BYTES = 256 * 1024  # far more than any header with a handful of recipients


class _Report:
    def __init__(self) -> None:
        self.lists: dict[str, list[str]] = {k: [] for k in RecoveryReport.__dataclass_fields__}

    def add(self, what: str, name: str) -> None:
        self.lists[what].append(name)

    def freeze(self) -> RecoveryReport:
        return RecoveryReport(**{k: tuple(v) for k, v in self.lists.items()})


def _split(name: str) -> tuple[str, str, bool] | None:
    """(clip id, kind 'clip'|'snapshot', partial?) for a file name of ours, else None."""
    partial = name.endswith(PARTIAL_SUFFIX)
    base = name[: -len(PARTIAL_SUFFIX)] if partial else name
    for suffix, kind in ((CLIP_SUFFIX, "clip"), (SNAPSHOT_SUFFIX, "snapshot")):
        if base.endswith(suffix) and is_clip_id(base[: -len(suffix)]):
            return base[: -len(suffix)], kind, partial
    return None


def _sealed_prefix(path: Path) -> tuple[int, int] | None:
    """(length of the keyless-sealed prefix of whole chunks, plaintext bytes in it), or None if
    it holds no whole chunk (or no valid header)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(min(size, _HEAD_BYTES))
    try:
        header = parse_age_header(head)
        n = sealed_prefix_length(head, size)
    except AgeError as e:
        log.warning("clip file %s has no valid age header (%s)", path.name, e)
        return None
    if header is None or n is None or n <= header.length + AGE_NONCE_SIZE:
        return None
    return n, (n - header.length - AGE_NONCE_SIZE) // AGE_SEALED_CHUNK_SIZE * AGE_CHUNK_SIZE


def _played_to(index: Index, row: ClipRow, plain_bytes: int) -> float | None:
    """Source time the first ``plain_bytes`` of a clip play to, from the progress recorded as it
    was written (its media timestamps); the clip's start if no fragment is whole in them; None
    if nothing was recorded (a clip written by an older version)."""
    if not index.has_progress(row.id):
        return None
    played = index.played_to(row.id, plain_bytes)
    return row.source_start_s if played is None else max(row.source_start_s, played)


def _new_row(clip_id: str, path: Path, *, truncated: bool) -> ClipRow:
    started = path.stat().st_mtime  # the best a keyless device knows of an unindexed clip
    ended = max(started, path.stat().st_mtime)
    return ClipRow(
        clip_id, "complete", started, ended, 0.0, ended - started, path.stat().st_size, None,
        truncated, (), False, None, "recovered without index row",
    )  # fmt: skip


def _recover_partial(clips: Path, index: Index, clip_id: str, report: _Report) -> None:
    partial = clips / f"{clip_id}{CLIP_SUFFIX}{PARTIAL_SUFFIX}"
    final = clips / f"{clip_id}{CLIP_SUFFIX}"
    row = index.get(clip_id)
    prefix = None if final.exists() else _sealed_prefix(partial)
    if prefix is None:
        partial.unlink()
        report.add("removed_partials", clip_id)
        if row is not None and row.state == "partial" and not final.exists():
            index.delete(clip_id)
        return
    n, plain = prefix
    size, mtime = partial.stat().st_size, partial.stat().st_mtime
    with open(partial, "r+b") as f:
        f.truncate(n)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, final)
    fsync_dir(clips)
    if row is None:
        row = _new_row(clip_id, final, truncated=True)
    else:
        played = _played_to(index, row, plain)
        if played is not None:  # the media's own timestamps
            duration = played - row.source_start_s
        else:  # no progress recorded: estimate from the last write, scaled to what's kept
            ended = max(row.started_at_s, mtime)
            duration = (ended - row.started_at_s) * n / max(size, 1)
        row = replace(
            row, state="complete", ended_at_s=row.started_at_s + duration, truncated=True,
            source_end_s=row.source_start_s + duration, bytes=n,
        )  # fmt: skip
    index.upsert(row)
    report.add("recovered_truncated", clip_id)


def _reconcile_rows(clips: Path, index: Index, report: _Report) -> None:
    for row in index.rows():
        final = clips / f"{row.id}{CLIP_SUFFIX}"
        if final.exists():
            if row.state == "partial":  # crashed after the rename, before the index update
                size = final.stat().st_size
                played = _played_to(index, row, size)  # all of it: it was fsynced, then renamed
                if played is None:  # no progress recorded: the wall clock is all there is
                    played = row.source_start_s + max(
                        0.0, final.stat().st_mtime - row.started_at_s)
                index.upsert(
                    replace(row, state="complete", bytes=size, source_end_s=played,
                            ended_at_s=row.started_at_s + played - row.source_start_s)
                )  # fmt: skip
                report.add("completed", row.id)
            continue
        index.delete(row.id)
        report.add("dropped_rows", row.id)


def _check_sealed(clips: Path, index: Index, report: _Report) -> None:
    """A sealed clip's file must still have the size it was sealed with (one stat per clip). If
    not, it was damaged after sealing (a bad card, a careless hand): mark it truncated and damaged,
    with its real size and the length its whole sealed chunks still play."""
    for row in index.rows("complete"):
        final = clips / f"{row.id}{CLIP_SUFFIX}"
        size = final.stat().st_size
        if size == row.bytes:
            continue
        prefix = _sealed_prefix(final)
        if size > row.bytes:  # grown: the extra bytes fail authentication; the rest may play
            played = row.source_end_s
        else:
            played = row.source_start_s if prefix is None else _played_to(index, row, prefix[1])
            if played is None and row.source_end_s is not None:  # no progress: scale by size
                played = row.source_start_s + (
                    row.source_end_s - row.source_start_s) * size / max(row.bytes, 1)
        end = row.source_start_s if played is None else played
        damage = (f"the file is {size} bytes but the index said {row.bytes} when it was sealed: "
                  f"{'cut short' if size < row.bytes else 'grown'} after sealing")
        index.upsert(replace(
            row, bytes=size, truncated=True, damage=damage, source_end_s=end,
            ended_at_s=row.started_at_s + (end - row.source_start_s),
        ))  # fmt: skip
        report.add("damaged", row.id)
        report.add("notes", f"clip {row.id} is damaged ({damage}); kept as truncated, "
                   f"{end - row.source_start_s:.1f} s playable: the owner reads what verifies")


def _reconcile_snapshots(clips: Path, index: Index, report: _Report) -> None:
    for row in index.rows():
        snap = clips / f"{row.id}{SNAPSHOT_SUFFIX}"
        size = snap.stat().st_size if snap.exists() else None
        if size != row.snapshot_bytes:
            index.set_snapshot(row.id, size)


def _close_open_events(index: Index, report: _Report) -> None:
    """An event still open at start-up was cut by a crash: it ends where its clip ends (the clip's
    media end), or at its start if it has none; ``last_motion_s`` stays unknown (null)."""
    ends = {row.event_id: iso_utc(row.ended_at_s) for row in index.rows("complete")
            if row.event_id is not None and row.ended_at_s is not None}
    for event_id in index.close_open_events(ends):
        report.add("closed_events", event_id)


def recover(clips: Path, index: Index) -> RecoveryReport:
    """Recover or remove partial files, then make files and index rows agree. See the module doc."""
    report = _Report()
    names = sorted(os.listdir(clips))
    for name in names:
        parsed = _split(name)
        if parsed is None:
            report.add("ignored_files", name)
            continue
        clip_id, kind, partial = parsed
        if partial and kind == "clip":
            _recover_partial(clips, index, clip_id, report)
        elif partial:  # snapshots are written in one go: a partial one is worthless
            unlink_quiet_missing(clips / name)
            report.add("removed_files", name)
    _reconcile_rows(clips, index, report)
    _check_sealed(clips, index, report)
    known = {row.id for row in index.rows()}
    for name in sorted(os.listdir(clips)):
        parsed = _split(name)
        if parsed is None or parsed[2] or parsed[0] in known:
            continue
        clip_id, kind, _ = parsed
        if kind == "clip":
            index.upsert(_new_row(clip_id, clips / name, truncated=False))
            known.add(clip_id)
            report.add("indexed_orphans", clip_id)
    for name in sorted(os.listdir(clips)):
        parsed = _split(name)
        if parsed is not None and parsed[1] == "snapshot" and parsed[0] not in known:
            unlink_quiet_missing(clips / name)
            report.add("removed_files", name)
    _reconcile_snapshots(clips, index, report)
    _close_open_events(index, report)
    fsync_dir(clips)
    result = report.freeze()
    log.info("%s", result.summary())
    for note in result.notes:
        log.warning("%s", note)
    return result
