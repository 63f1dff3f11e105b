"""What the daemon is doing, for ``doorward status``: a small JSON file in the data directory,
plus read-only looks at the databases for what must be right even while the daemon is down.

The daemon owns the file and rewrites it atomically (temp file + rename) at most once a second and
on every state change, so a reader never sees half a document. ``doorward status`` reads it and
tells a running daemon from a stale file by the pid and the age of ``updated_at``.

Read side (``doorward status`` and ``doorward doctor``)::

    st = read_status(data_dir)            # status.json with ``running`` computed, or None
    dev = read_device(data_dir, now)      # owners and consent from device.sqlite (read-only)
    n = count_events_since(data_dir, local_midnight(now))
    q = read_queues(data_dir)             # open outbox items per lane
    warning = clock_warning(now, clock_floors(data_dir))   # None while the clock is plausible

Reachability (:class:`LinkState`): the controller keeps the last seen state of the broker (from
the MQTT client's connection events) and of the bucket (from the upload lane's results, posted to
the loop's inbox); the daemon's tick writes them here as ``broker`` and ``bucket``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.tools.display import utc_minute

STATUS_FILE = "status.json"

log = logging.getLogger(__name__)


def status_path(data_dir: Path) -> Path:
    return data_dir / STATUS_FILE


class StatusFile:
    """Owned by the daemon loop; ``update()`` merges fields, ``flush()`` writes if due.

    ``runtime_dir`` (systemd's ``$RUNTIME_DIRECTORY``, a tmpfs): the file is rewritten there and
    ``<data_dir>/status.json`` becomes a symlink to it, so the once-a-second rewrites never wear the
    SD card while readers keep looking in the data directory.
    """

    def __init__(self, data_dir: Path, *, min_interval_s: float = 1.0,
                 runtime_dir: Path | None = None) -> None:
        self._path = status_path(data_dir)
        if runtime_dir is not None:
            self._path = runtime_dir / STATUS_FILE
            link = status_path(data_dir)
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


def read_status(data_dir: Path) -> dict[str, Any] | None:
    """The last status the daemon wrote, with ``running`` computed; None if there is none."""
    path = status_path(data_dir)
    try:
        state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if path.is_symlink():  # it pointed into a runtime directory that a reboot cleared
            return {"running": False, "state": "stopped",
                    "note": f"not running since {os.readlink(path)} was cleared (reboot?)"}
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


# ---- reachability, as last seen by the daemon ---------------------------------------------------


@dataclass(frozen=True)
class LinkState:
    """The last seen state of an uplink: ``link`` is "broker" or "bucket"; ``state`` is
    "connected", "disconnected" or "failed" (broker), "ok" or "failed" (bucket); ``at`` is the
    wall time it was seen; ``error`` the translated error of a failure (it names the fix).

    The upload lane posts one to the loop's inbox after every bucket request it makes; the
    controller records the broker's from the MQTT client's connection events.
    """

    link: str
    state: str
    at: float
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "at": round(self.at, 3), "error": self.error}


def links_json(links: Mapping[str, LinkState]) -> dict[str, dict[str, Any]]:
    """The status.json fields (``broker``, ``bucket``) for the links seen so far."""
    return {name: link.to_json() for name, link in links.items()}


# ---- read-only looks at the databases -----------------------------------------------------------

DEVICE_DB = "device.sqlite"
INDEX_DB = "index.sqlite"
OUTBOX_DB = "outbox.sqlite"


@contextmanager
def open_readonly(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to an existing SQLite file (FileNotFoundError if there is none).

    Never creates or migrates anything, so ``status`` and ``doctor`` can look at a stopped or a
    running daemon's databases without changing them (WAL lets them read beside the writer).
    """
    if not path.is_file():
        raise FileNotFoundError(path)
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
    with closing(db):
        yield db


@dataclass(frozen=True)
class DeviceView:
    """Owners and consent as device.sqlite has them: ``grants`` maps each scope in force to its
    end (epoch s; None: until revoked)."""

    owners: int
    viewers: int
    grants: dict[str, float | None]


def read_device(data_dir: Path, now: float) -> DeviceView | None:
    """Pairing and consent from ``device.sqlite`` (None before the first run); the same
    queries as :class:`agent.device.consent.ConsentStore`, without opening it for writing."""
    try:
        with open_readonly(data_dir / DEVICE_DB) as db:
            roles = dict(db.execute("SELECT role, COUNT(*) FROM owners GROUP BY role").fetchall())
            rows = db.execute(
                "SELECT scope, expires_at FROM grants WHERE revoked_at IS NULL "
                "AND (expires_at IS NULL OR expires_at > ?) ORDER BY id", (now,)).fetchall()
    except FileNotFoundError:
        return None
    return DeviceView(owners=int(roles.get("owner", 0)), viewers=int(roles.get("viewer", 0)),
                      grants={str(scope): until for scope, until in rows})


def local_midnight(now: float) -> float:
    """The start of the local day containing ``now`` (epoch s)."""
    day = datetime.fromtimestamp(now).astimezone()
    return day.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def count_events_since(data_dir: Path, since: float) -> int | None:
    """Events in the clip index that started at or after ``since`` (None: no index yet)."""
    from agent.store import iso_utc  # the index's own time format, so text order is time order

    try:
        with open_readonly(data_dir / INDEX_DB) as db:
            row = db.execute("SELECT COUNT(*) FROM events WHERE started_at >= ?",
                             (iso_utc(since),)).fetchone()
    except FileNotFoundError:
        return None
    return int(row[0])


def store_bytes(data_dir: Path) -> tuple[int, int] | None:
    """(bytes used by clips and snapshots, complete clips) from the clip index."""
    try:
        with open_readonly(data_dir / INDEX_DB) as db:
            used = db.execute("SELECT COALESCE(SUM(bytes + COALESCE(snapshot_bytes, 0)), 0) "
                              "FROM clips").fetchone()[0]
            clips = db.execute("SELECT COUNT(*) FROM clips WHERE state = 'complete'").fetchone()[0]
    except FileNotFoundError:
        return None
    return int(used), int(clips)


def read_queues(data_dir: Path) -> dict[str, int] | None:
    """Open outbox items per lane: ``{"messages": n, "uploads": m}`` (None: no outbox yet)."""
    try:
        with open_readonly(data_dir / OUTBOX_DB) as db:
            rows = db.execute("SELECT kind, COUNT(*) FROM items WHERE state IN "
                              "('queued', 'in-flight') GROUP BY kind").fetchall()
    except FileNotFoundError:
        return None
    counts = {str(kind): int(n) for kind, n in rows}
    return {"messages": counts.get("message", 0), "uploads": counts.get("upload", 0)}


# ---- is the clock plausible? ---------------------------------------------------------------------

# The day this version of doorward was released (bumped with agent.__version__). A Raspberry Pi has
# no real-time clock: until NTP answers it runs from 1970 or from the time fake-hwclock saved at
# the last shutdown. No correct clock reads a time before the code it runs was written.
RELEASE_DATE = "2026-12-01"
# NTP corrects a drifting clock by stepping it a little, back as well as forward: being up to this
# much before the newest ledger entry is not yet a clock that went back in time.
CLOCK_SLACK_S = 300.0


@dataclass(frozen=True)
class ClockFloor:
    """A time the clock cannot plausibly be before: ``at`` (epoch s), ``what`` it is, and whether
    being before it is ``certain`` proof of a wrong clock (the release date) or only says that the
    clock was wrong at one of two moments (the newest ledger entry: now, or when it was written)."""

    at: float
    what: str
    certain: bool


def release_floor() -> ClockFloor:
    from agent import __version__

    day = datetime.fromisoformat(RELEASE_DATE).replace(tzinfo=UTC)
    return ClockFloor(day.timestamp(), f"the release of doorward {__version__} ({RELEASE_DATE})",
                      True)


def clock_floors(data_dir: Path) -> list[ClockFloor]:
    """The release date, and the time of the newest ledger entry in ``device.sqlite`` (read-only;
    the ledger is append-only and on the SD card, so it survives reboots, unlike status.json in
    the runtime directory, and each entry was timed by this device's own clock)."""
    floors = [release_floor()]
    try:
        with open_readonly(data_dir / DEVICE_DB) as db:
            row = db.execute("SELECT MAX(ts) FROM ledger").fetchone()
    except (FileNotFoundError, sqlite3.Error):  # no ledger yet (or `doctor`'s db check says why)
        return floors
    if row and isinstance(row[0], int | float):
        floors.append(ClockFloor(float(row[0]), "the newest ledger entry", False))
    return floors


def clock_warning(now: float, floors: list[ClockFloor]) -> str | None:
    """Why the clock reading ``now`` is implausible against ``floors``, or None."""
    stamp = utc_minute(now)
    for floor in sorted(floors, key=lambda f: not f.certain):  # the certain one first
        if now >= floor.at - (0.0 if floor.certain else CLOCK_SLACK_S):
            continue
        when = utc_minute(floor.at)
        if floor.certain:
            return f"the clock says {stamp}, before {floor.what}: it is not set"
        return (f"the clock says {stamp}, before {floor.what} ({when}): the clock went back, or "
                "was ahead when that entry was written")
    return None


# ---- the document `doorward status --json` prints ------------------------------------------------

STATUS_SCHEMA = 1
SCOPES = ("events", "snapshots", "clips")


def _link(st: dict[str, Any], name: str, configured: bool, running: bool) -> dict[str, Any]:
    seen = st.get(name) if isinstance(st.get(name), dict) else None
    doc: dict[str, Any] = {"configured": configured or seen is not None, "state": "unknown",
                           "at": None, "error": None}
    if seen is not None:
        doc.update(state=seen.get("state", "unknown"), at=seen.get("at"), error=seen.get("error"))
        if not running and doc["state"] == "connected":  # a stopped daemon holds no connection
            doc.update(state="disconnected", at=st.get("updated_at", doc["at"]))
    return doc


def status_document(data_dir: Path, *, max_bytes: int, broker_configured: bool,
                    bucket_configured: bool, now: float | None = None,
                    min_free_bytes: int = 0) -> dict[str, Any]:
    """What ``doorward status --json`` prints (see :func:`agent.tools.clips_cli.status` for the
    keys):
    status.json for what only the daemon knows, the databases (read-only) for pairing, consent,
    events, queues and storage, so those are right even while the daemon is stopped.
    ``min_free_bytes`` is ``[store] min_free_bytes`` (0: no floor to check)."""
    from agent import __version__

    now = time.time() if now is None else now
    st = read_status(data_dir) or {"running": False, "state": "never-run"}
    running = bool(st.get("running"))
    problems = [str(st["error"])] if st.get("error") else []
    if st.get("sealing") == "not-recording":  # a real camera without an owner: say why
        problems.append(str(st.get("sealing_reason") or "not recording: no paired owner"))

    def guarded(what: str, fn: Any) -> Any:
        try:
            return fn()
        except (sqlite3.Error, OSError) as exc:
            fix = ""
            if what == INDEX_DB and type(exc) is sqlite3.DatabaseError:  # damaged, not busy
                fix = (" (damaged: restart the daemon; it keeps the damaged file and rebuilds "
                       "the index from the clip files)")
            problems.append(f"{what}: {exc}{fix}")
            return None

    device = guarded("device.sqlite", lambda: read_device(data_dir, now))
    floors = clock_floors(data_dir)
    newest = max(floors, key=lambda f: f.at)
    grants = device.grants if device is not None else {}
    used = guarded("index.sqlite", lambda: store_bytes(data_dir))
    free = guarded("disk", lambda: disk_free(data_dir))
    problems += storage_problems(data_dir, st, free, min_free_bytes)
    last_frame = st.get("last_frame_at")
    return {
        "schema": STATUS_SCHEMA, "version": __version__, "running": running,
        "state": st.get("state", "unknown"), "pid": st.get("pid"),
        "started_at": st.get("started_at"), "updated_at": st.get("updated_at"),
        "data_dir": str(data_dir), "device_id": st.get("device_id"),
        "sealing": st.get("sealing"), "sealing_reason": st.get("sealing_reason"),
        "frames": st.get("frames", 0),
        "pairing": {"paired": bool(device and device.owners), "owners": device.owners if device
                    else 0, "viewers": device.viewers if device else 0,
                    "window_open": running and bool(st.get("pairing_open"))},
        "consent": {s: {"in_force": s in grants, "until": grants.get(s)} for s in SCOPES},
        "camera": {"source": st.get("source"), "frames": st.get("frames", 0),
                   "dropped_frames": st.get("dropped_frames", 0),
                   "stalls": st.get("camera_stalls", 0),
                   "recoveries": st.get("camera_recoveries", 0),
                   "last_frame_at": last_frame,
                   "last_frame_age_s": None if last_frame is None
                   else round(max(0.0, now - float(last_frame)), 1),
                   "recording": running and bool(st.get("recording"))},
        "events": {"today": guarded("index.sqlite", lambda: count_events_since(
            data_dir, local_midnight(now))), "this_run": st.get("events", 0)},
        "queues": guarded("outbox.sqlite", lambda: read_queues(data_dir)),
        "storage": {"used_bytes": used[0] if used else 0, "clips": used[1] if used else 0,
                    "max_bytes": max_bytes, "free_bytes": free},
        "broker": _link(st, "broker", broker_configured, running),
        "bucket": _link(st, "bucket", bucket_configured, running),
        "clock": {"now": now, "warning": clock_warning(now, floors), "not_before": newest.at,
                  "not_before_what": newest.what},
        "problems": problems,
    }


def storage_problems(data_dir: Path, st: Mapping[str, Any], free: int | None,
                     min_free_bytes: int) -> list[str]:
    """What keeps clips from being kept or was lost, each naming the fix: what start-up could not
    put right (``store_recovery``: a rebuilt index, damaged clips; shown until the next start),
    the recorder's last storage error (a full disk aborts clips: ``store_error``, cleared by the
    next good clip) and free space below the floor (then every clip is evicted when sealed)."""
    problems = [f"start-up: {note}" for note in st.get("store_recovery") or ()
                if isinstance(note, str)]
    if st.get("store_error"):
        problems.append(f"recording: {st['store_error']}")
    if free is not None and free < min_free_bytes:
        problems.append(
            f"disk: {free / 1e6:,.1f} MB free on the file system of {data_dir}, below [store] "
            f"min_free_bytes = {min_free_bytes} ({min_free_bytes / 2**20:g} MiB): every new clip "
            "is evicted as soon as it is sealed; free space there, or lower [store] "
            "min_free_bytes")
    return problems


def disk_free(data_dir: Path) -> int:
    """Free bytes on the file system of ``data_dir`` (or of its nearest existing parent)."""
    path = data_dir
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free
