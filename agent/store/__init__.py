"""The crash-safe local clip store. See :mod:`agent.store.clipstore` for wiring."""

from agent.store.clipstore import ClipStore
from agent.store.files import ClipSink
from agent.store.records import (
    ClipEnd,
    ClipRecord,
    ClipStart,
    EventRecord,
    RecoveryReport,
    StoreUsage,
    iso_utc,
    new_clip_id,
    new_event_id,
)

__all__ = [
    "ClipEnd",
    "ClipRecord",
    "ClipSink",
    "ClipStart",
    "ClipStore",
    "EventRecord",
    "RecoveryReport",
    "StoreUsage",
    "iso_utc",
    "new_clip_id",
    "new_event_id",
]
