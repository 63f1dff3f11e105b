"""Replacing a damaged index: keep the damaged file for inspection, start a fresh one, and carry
over whatever rows can still be read from the damaged copy.

The index holds nothing the clip files cannot stand in for, except what a keyless device cannot
read from a sealed file: a clip's times, recipients, event and delivered flag, and the event
history. Those are salvaged row by row where SQLite can still read them; the rest is lost, and
:meth:`IndexRebuild.note` says so. Recovery (:func:`agent.store.recovery.recover`) then re-indexes
every clip file that has no row, so every clip on disk is listed again.

Wiring: only :class:`agent.store.ClipStore` with ``repair_index=True`` (the daemon, holding the
store lock) calls :func:`rebuild_index`.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from agent.store.files import fsync_dir
from agent.store.index import ClipRow, Index, IndexCorruptError
from agent.store.records import EventRecord
from uplink import compact_utc

log = logging.getLogger(__name__)

_SIDE_FILES = ("-wal", "-shm", "-journal")
_EVENT_COLUMNS = "id, reason, started_at, ended_at, onset_s, last_motion_s, peak_area, clip_id"


@dataclass(frozen=True)
class IndexRebuild:
    """What replacing a damaged index did: why, where the damaged file is kept, what was read."""

    reason: str
    kept_as: Path
    clips_salvaged: int
    events_salvaged: int

    def note(self, reindexed_from_files: int) -> str:
        """One line for the log and ``doorward status``: what was kept and what was lost."""
        lost = (f"{reindexed_from_files} clip(s) re-indexed from their files alone lost their "
                "start time, duration, recipients, event and delivered flag"
                if reindexed_from_files else "no clip lost its metadata")
        return (f"index.sqlite was damaged ({self.reason}) and was rebuilt from the clip files: "
                f"the damaged file is kept as {self.kept_as.name}; {self.clips_salvaged} clip "
                f"row(s) and {self.events_salvaged} event(s) were read from it; lost: {lost}, "
                "and any event it could not read")


def rebuild_index(path: Path, error: IndexCorruptError, now: float) -> tuple[Index, IndexRebuild]:
    """Move the damaged ``path`` (and its WAL) aside, open a fresh index there and salvage rows.

    The damaged file is renamed ``index.sqlite.corrupt-<UTC time>`` (its ``-wal`` beside it under
    the matching name, so SQLite still pairs them); it is never opened for writing again.
    """
    stamp = compact_utc(now)
    kept = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while kept.exists():
        n += 1
        kept = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    for suffix in _SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, kept.with_name(kept.name + suffix))
    os.replace(path, kept)
    fsync_dir(path.parent)
    index = Index(path)
    clips, events = _salvage(kept, index)
    rebuild = IndexRebuild(error.reason, kept, clips, events)
    log.warning("clip index %s is damaged (%s): moved aside to %s, rebuilding it from the clip "
                "files (%d clip rows and %d events salvaged)", path, error.reason, kept.name,
                clips, events)
    return index, rebuild


def _salvage(damaged: Path, index: Index) -> tuple[int, int]:
    """Copy the clip rows and events SQLite can still read from ``damaged`` (read-only) into
    ``index``; stops at the first unreadable page of each table."""
    clips = events = 0
    try:
        db = sqlite3.connect(f"file:{damaged}?mode=ro", uri=True, timeout=1)
    except sqlite3.Error:
        return 0, 0
    with closing(db):
        db.row_factory = sqlite3.Row
        for row in _readable(db, "SELECT * FROM clips"):  # any schema version
            try:
                clip = _clip_row(row)
            except (ValueError, TypeError, KeyError, IndexError):
                continue
            index.upsert(clip)
            clips += 1
        for row in _readable(db, f"SELECT {_EVENT_COLUMNS} FROM events"):
            try:
                event = EventRecord(*tuple(row))
            except TypeError:
                continue
            index.record_event(event)
            events += 1
    return clips, events


def _readable(db: sqlite3.Connection, sql: str) -> list[sqlite3.Row]:
    rows: list[sqlite3.Row] = []
    try:
        for row in db.execute(sql):
            rows.append(row)
    except sqlite3.Error as e:
        log.info("salvaging the damaged index: stopped after %d rows of %r (%s)", len(rows),
                 sql, e)
    return rows


def _clip_row(r: sqlite3.Row) -> ClipRow:
    recipients = json.loads(r["recipients"])
    if not isinstance(recipients, list) or r["state"] not in ("partial", "complete"):
        raise ValueError("not a clip row")
    return ClipRow(
        str(r["id"]), r["state"], float(r["started_at_s"]),
        None if r["ended_at_s"] is None else float(r["ended_at_s"]), float(r["source_start_s"]),
        None if r["source_end_s"] is None else float(r["source_end_s"]), int(r["bytes"]),
        None if r["snapshot_bytes"] is None else int(r["snapshot_bytes"]), bool(r["truncated"]),
        tuple(str(x) for x in recipients), bool(r["delivered"]),
        None if r["event_id"] is None else str(r["event_id"]), r["reason"],
        r["damage"] if "damage" in r.keys() else None,  # noqa: SIM118 - sqlite3.Row
        _scopes(r["upload_scopes"]) if "upload_scopes" in r.keys() else None,  # noqa: SIM118
    )  # fmt: skip


def _scopes(raw: object) -> tuple[str, ...] | None:
    """A damaged row's upload scopes, if they still read as a JSON list of strings."""
    try:
        value = json.loads(str(raw)) if raw is not None else None
    except ValueError:
        return None
    return tuple(str(x) for x in value) if isinstance(value, list) else None
