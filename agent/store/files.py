"""Durable file operations: ``NAME.partial``, fsync, ``os.replace``, fsync the directory.

A clip is written once, sequentially, into ``<id>.mp4.age.partial`` through a :class:`ClipSink` and
fsynced once when it is committed (never per frame: SD cards wear out on small syncs).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from agent.store.records import PARTIAL_SUFFIX, ClipEnd, ClipRecord

log = logging.getLogger(__name__)


def fsync_dir(directory: Path) -> None:
    """Make renames and unlinks in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durable(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that after a crash ``path`` holds the old or the new bytes."""
    partial = path.with_name(path.name + PARTIAL_SUFFIX)
    try:
        with open(partial, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def unlink_quiet_missing(path: Path) -> bool:
    """Remove ``path``; False if it was already gone."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


class ClipSink:
    """A write-only file for one clip being recorded; made by :meth:`ClipStore.open_clip`.

    Hand it to ``AgeWriter`` (it only needs ``write``/``flush``). Finish with exactly one of
    :meth:`commit` (durable, indexed; returns the ClipRecord) or :meth:`abort` (removes it).
    ``write`` raises OSError (ENOSPC, EIO) as the file system reports it: the caller aborts.
    """

    def __init__(
        self,
        clip_id: str,
        partial: Path,
        final: Path,
        indexer: Callable[[ClipSink, ClipEnd], ClipRecord],
        forget: Callable[[str], None],
    ) -> None:
        self.clip_id = clip_id
        self.partial = partial
        self.final = final
        self.bytes_written = 0
        self._indexer = indexer
        self._forget = forget
        self._file: BinaryIO | None = open(partial, "xb")  # noqa: SIM115 - lives until commit/abort

    @property
    def open(self) -> bool:
        return self._file is not None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._file is None:
            raise ValueError(f"write to {self.partial.name} after commit/abort: open a new clip")
        n = self._file.write(data)
        self.bytes_written += n
        return n

    def flush(self) -> None:
        """Hand buffered bytes to the OS (no fsync: that happens once, at commit)."""
        if self._file is not None:
            self._file.flush()

    def commit(self, end: ClipEnd) -> ClipRecord:
        """Make the clip durable under its final name and mark it complete in the index.

        On OSError the partial file (or the final file, if the rename happened) is left for the
        caller's :meth:`abort` or the next start's recovery.
        """
        self._finish()
        return self._indexer(self, end)

    def _finish(self) -> None:
        """fsync and close the file, rename it to its final name and fsync the directory."""
        f = self._require_open()
        f.flush()
        os.fsync(f.fileno())
        f.close()
        self._file = None
        os.replace(self.partial, self.final)
        fsync_dir(self.final.parent)

    def abort(self) -> None:
        """Close and remove the partial file and its index row (idempotent; a no-op after commit).

        Never raises for storage errors: what cannot be cleaned up now (the index on a full disk)
        is logged and left for the next start's recovery.
        """
        f, self._file = self._file, None
        if f is None:
            return
        try:
            f.close()
        except OSError as e:  # closing flushes; on a full disk that fails again: remove anyway
            log.warning("closing aborted clip %s failed (%s); removing it", self.partial, e)
        unlink_quiet_missing(self.partial)
        try:
            self._forget(self.clip_id)
        except Exception as e:
            log.warning("could not drop index row of aborted clip %s: %s", self.clip_id, e)

    def _require_open(self) -> BinaryIO:
        if self._file is None:
            raise ValueError(f"{self.partial.name} is already committed or aborted")
        return self._file
