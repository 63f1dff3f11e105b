"""What the daemon is doing, for ``doorward status``: a small JSON file in the data directory.

The daemon owns the file and rewrites it atomically (temp file + rename) at most once a second and
on every state change, so a reader never sees half a document. The reader is
:mod:`agent.tools.status_report` (``doorward status``), which tells a running daemon from a stale
file by the pid and the age of ``updated_at``. Wiring (the daemon loop)::

    status = StatusFile(data_dir, runtime_dir=runtime)   # $RUNTIME_DIRECTORY, or None
    status.update(state="running", frames=n, **links_json(links))
    status.flush()                                       # writes if due; force=True at exit

Reachability (``agent.delivery.links.LinkState``): the delivery side keeps the last seen state of
the broker and of the bucket; the daemon's tick writes them here as ``broker`` and ``bucket``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from agent.paths import DataDir

log = logging.getLogger(__name__)


class StatusFile:
    """Owned by the daemon loop; ``update()`` merges fields, ``flush()`` writes if due.

    ``runtime_dir`` (systemd's ``$RUNTIME_DIRECTORY``, a tmpfs): the file is rewritten there and
    ``<data_dir>/status.json`` becomes a symlink to it, so the once-a-second rewrites never wear the
    SD card while readers keep looking in the data directory.
    """

    def __init__(self, data_dir: Path, *, min_interval_s: float = 1.0,
                 runtime_dir: Path | None = None) -> None:
        paths = DataDir(data_dir, runtime=runtime_dir)
        self._path = paths.status_target
        if runtime_dir is not None:
            link = paths.status
            tmp_link = link.with_suffix(".link-tmp")
            tmp_link.unlink(missing_ok=True)
            tmp_link.symlink_to(self._path)
            os.replace(tmp_link, link)  # atomic, also over an old regular file
        self._state: dict[str, Any] = {"pid": os.getpid(), "started_at": time.time()}
        self._min_interval_s = min_interval_s
        self._last_write = 0.0
        self._dirty = True
        self._write_error: str | None = None  # logged once, until a write succeeds again

    def update(self, **fields: Any) -> None:
        for key, value in fields.items():
            if self._state.get(key) != value:
                self._state[key] = value
                self._dirty = True

    @property
    def due(self) -> bool:
        """Whether :meth:`flush` may write now (``min_interval_s`` since the last write): a caller
        that gathers many fields every frame gathers them only then, as nothing is written
        between (a forced flush writes whatever was updated last)."""
        return time.monotonic() - self._last_write >= self._min_interval_s

    def flush(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and (not self._dirty or now - self._last_write < self._min_interval_s):
            return
        self._state["updated_at"] = time.time()
        tmp = self._path.with_suffix(".tmp")
        self._last_write = now
        try:
            tmp.write_text(json.dumps(self._state, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self._path)  # no fsync: status is advisory and rewritten every second
        except OSError as e:
            # A full card must not stop the doorbell: status is advisory, the next flush retries.
            tmp.unlink(missing_ok=True)
            if self._write_error is None:
                log.warning("cannot write %s (%s): `doorward status` shows older state until "
                            "there is space again", self._path, e)
            self._write_error = str(e)
            return
        if self._write_error is not None:
            log.info("%s is written again", self._path)
            self._write_error = None
        self._dirty = False


