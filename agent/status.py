"""What the daemon is doing, for ``doorward status``: a small JSON file in the data directory.

The daemon owns the file and rewrites it atomically (temp file + rename) at most once a second and
on every state change, so a reader never sees half a document. ``doorward status`` reads it and
tells a running daemon from a stale file by the pid and the age of ``updated_at``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

STATUS_FILE = "status.json"


def status_path(data_dir: Path) -> Path:
    return data_dir / STATUS_FILE


class StatusFile:
    """Owned by the daemon loop; ``update()`` merges fields, ``flush()`` writes if due."""

    def __init__(self, data_dir: Path, *, min_interval_s: float = 1.0) -> None:
        self._path = status_path(data_dir)
        self._state: dict[str, Any] = {"pid": os.getpid(), "started_at": time.time()}
        self._min_interval_s = min_interval_s
        self._last_write = 0.0
        self._dirty = True

    def update(self, **fields: Any) -> None:
        for key, value in fields.items():
            if self._state.get(key) != value:
                self._state[key] = value
                self._dirty = True

    def flush(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and (not self._dirty or now - self._last_write < self._min_interval_s):
            return
        self._state["updated_at"] = time.time()
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._state, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self._path)  # no fsync: status is advisory and rewritten every second
        self._last_write = now
        self._dirty = False


def read_status(data_dir: Path) -> dict[str, Any] | None:
    """The last status the daemon wrote, with ``running`` computed; None if there is none."""
    path = status_path(data_dir)
    try:
        state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"running": False, "error": f"{path} is unreadable"}
    pid = state.get("pid")
    alive = False
    if isinstance(pid, int) and state.get("state") != "stopped":
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
    state["running"] = alive
    return state
