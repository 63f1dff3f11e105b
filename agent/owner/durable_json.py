"""One JSON file on the owner's side, replaced whole so that a crash or power loss leaves the old
or the new document, never a torn one.

Used by :class:`agent.owner.pins.LedgerPins` and :class:`agent.owner.bridge.shown.ShownSeqs`::

    write_json(path, doc, prefix=".ledger-pins.", indent=1)
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from agent.errors import DoorwardError


def write_json(path: Path, doc: Any, *, prefix: str, indent: int | None = None) -> None:
    """Write ``doc`` to ``path``: a temporary file beside it (``prefix``..., mode 0600 from
    mkstemp) fsynced, renamed over ``path``, then the directory fsynced so the rename itself
    survives power loss. An OSError becomes a DoorwardError naming the fix; on any failure the
    temporary file is removed and ``path`` keeps its old document."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
    except OSError as exc:
        raise _cannot(path, exc) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=indent, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _cannot(path, exc) from exc
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise _cannot(path, exc) from exc


def _cannot(path: Path, exc: OSError) -> DoorwardError:
    return DoorwardError(f"cannot write {path}: {exc} (free space, or fix the directory's "
                         "permissions)")
