"""``doorward status`` and the read side of the daemon's status: what it last wrote to status.json
(:class:`agent.runtime.status_file.StatusFile` writes it), plus read-only looks at the databases
for what must be right even while the daemon is down. ``doorward doctor`` reuses the looks.

Wiring (agent/tools/clips_cli.py dispatches ``doorward status`` to :func:`status`)::

    st = read_status(data_dir)            # status.json with ``running`` computed, or None
    dev = read_device(data_dir, now)      # owners and consent from device.sqlite (read-only)
    n = count_events_since(data_dir, local_midnight(now))
    q = read_queues(data_dir)             # open outbox items per lane
    warning = clock_warning(now, clock_floors(data_dir))   # None while the clock is plausible
    doc = status_document(data_dir, max_bytes=..., broker_configured=..., bucket_configured=...)
    print("\n".join(status_lines(doc, time.time())))

Nothing here writes: every database is opened read-only (:func:`agent.sqlite.open_readonly`), so
a stopped or a running daemon's files are looked at without being created or migrated.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.config import Config
from agent.device.consent import SCOPES
from agent.paths import DataDir
from agent.sqlite import open_readonly
from agent.tools.display import utc_minute


def read_status(data_dir: Path) -> dict[str, Any] | None:
    """The last status the daemon wrote, with ``running`` computed; None if there is none."""
    path = DataDir(data_dir).status
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


# ---- read-only looks at the databases -----------------------------------------------------------


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
        with open_readonly(DataDir(data_dir).device_db) as db:
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
        with open_readonly(DataDir(data_dir).index_db) as db:
            row = db.execute("SELECT COUNT(*) FROM events WHERE started_at >= ?",
                             (iso_utc(since),)).fetchone()
    except FileNotFoundError:
        return None
    return int(row[0])


def store_bytes(data_dir: Path) -> tuple[int, int] | None:
    """(bytes used by clips and snapshots, complete clips) from the clip index."""
    try:
        with open_readonly(DataDir(data_dir).index_db) as db:
            used = db.execute("SELECT COALESCE(SUM(bytes + COALESCE(snapshot_bytes, 0)), 0) "
                              "FROM clips").fetchone()[0]
            clips = db.execute("SELECT COUNT(*) FROM clips WHERE state = 'complete'").fetchone()[0]
    except FileNotFoundError:
        return None
    return int(used), int(clips)


def read_queues(data_dir: Path) -> dict[str, int] | None:
    """Open outbox items per lane: ``{"messages": n, "uploads": m}`` (None: no outbox yet)."""
    try:
        with open_readonly(DataDir(data_dir).outbox_db) as db:
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
        with open_readonly(DataDir(data_dir).device_db) as db:
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
    """What ``doorward status --json`` prints (see :func:`status` for the keys):
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

    paths = DataDir(data_dir)

    def guarded(what: str, fn: Any) -> Any:
        try:
            return fn()
        except (sqlite3.Error, OSError) as exc:
            fix = ""
            if what == paths.index_db.name and type(exc) is sqlite3.DatabaseError:  # damaged
                fix = (" (damaged: restart the daemon; it keeps the damaged file and rebuilds "
                       "the index from the clip files)")
            problems.append(f"{what}: {exc}{fix}")
            return None

    device = guarded(paths.device_db.name, lambda: read_device(data_dir, now))
    floors = clock_floors(data_dir)
    newest = max(floors, key=lambda f: f.at)
    grants = device.grants if device is not None else {}
    used = guarded(paths.index_db.name, lambda: store_bytes(data_dir))
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
                   "recording": running and bool(st.get("recording")),
                   "ir_led": st.get("ir_led") if running else None},
        "events": {"today": guarded(paths.index_db.name, lambda: count_events_since(
            data_dir, local_midnight(now))), "this_run": st.get("events", 0)},
        "queues": guarded(paths.outbox_db.name, lambda: read_queues(data_dir)),
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


# ---- the `doorward status` command --------------------------------------------------------------


def status(args: argparse.Namespace, cfg: Config) -> int:
    """``doorward status [--json]``: works with the daemon stopped (databases read read-only).

    ``--json`` prints one object, schema 1 (times are epoch seconds, sizes bytes; a key whose
    value is unknown is null):

    - ``schema`` (1), ``version`` (this doorward), ``running`` (the daemon's pid is alive),
      ``state`` (starting | running | stopped | never-run), ``pid``, ``started_at``,
      ``updated_at`` (last status.json write), ``data_dir``, ``device_id``;
    - ``sealing`` (owners | dev-owner | not-recording) and ``sealing_reason``; ``frames``;
    - ``pairing``: ``paired``, ``owners``, ``viewers``, ``window_open``;
    - ``consent``: for each of events, snapshots, clips: ``in_force``, ``until`` (null: until
      revoked, or not in force);
    - ``camera``: ``source``, ``frames``, ``dropped_frames``, ``stalls`` and ``recoveries``
      (capture stalls and reopens, Pi camera), ``last_frame_at``, ``last_frame_age_s``,
      ``recording``, ``ir_led`` (on | off; null without an IR LED or a running daemon);
    - ``events``: ``today`` (local day, from the clip index), ``this_run``;
    - ``queues``: ``messages``, ``uploads`` (open outbox items; null without an outbox);
    - ``storage``: ``used_bytes``, ``clips``, ``max_bytes``, ``free_bytes``;
    - ``broker``, ``bucket``: ``configured``, ``state`` (broker: connected | disconnected |
      failed; bucket: ok | failed; both: unknown until seen), ``at``, ``error`` - as last seen
      by the daemon (a stopped daemon's broker reads disconnected);
    - ``clock``: ``now``, ``warning`` (null while plausible: not before this version's release
      date nor before the newest ledger entry), ``not_before`` and ``not_before_what``;
    - ``problems``: what could not be read, and what stops clips being kept (a full disk, free
      space below ``[store] min_free_bytes``), each naming the fix.
    """
    data_dir = cfg.data_dir(args.data_dir)
    doc = status_document(data_dir, max_bytes=cfg.store.max_bytes,
                          min_free_bytes=cfg.store.min_free_bytes,
                          broker_configured=bool(cfg.mqtt.url),
                          bucket_configured=bool(cfg.s3.bucket))
    if args.json:
        print(json.dumps(doc, indent=2, sort_keys=True, default=str))
        return 0
    print("\n".join(status_lines(doc, time.time())))
    return 0


def _ago(now: float, then: float | None) -> str:
    if then is None:
        return "never"
    s = max(0.0, now - float(then))
    if s < 90:
        return f"{s:.0f} s ago"
    if s < 5400:
        return f"{s / 60:.0f} min ago"
    if s < 172800:
        return f"{s / 3600:.0f} h ago"
    return f"{s / 86400:.0f} days ago"


def _mb(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:,.1f} MB"


def _link_line(link: dict[str, Any], what: str, now: float) -> str:
    if not link["configured"]:
        return f"not configured (no {what})"
    if link["state"] == "unknown":
        return "not seen yet"
    text = f"{link['state']} {_ago(now, link['at'])}"
    return text + (f": {link['error']}" if link.get("error") else "")


def status_lines(doc: dict[str, Any], now: float) -> list[str]:
    """The human form of :func:`status_document`: one aligned line per
    topic."""
    state = "running" if doc["running"] else "not running"
    head = f"doorward {doc['version']}: {state}"
    if doc["pid"] and doc["running"]:
        head += f" (pid {doc['pid']})"
    if doc["updated_at"] is not None:
        head += f", status updated {_ago(now, doc['updated_at'])}"
    elif doc["state"] == "never-run":
        head += ", no daemon has run with this data directory"
    p = doc["pairing"]
    pairing = (f"paired: {p['owners']} owner(s), {p['viewers']} viewer(s)" if p["paired"] else
               "not paired (hold SETUP 3 s, then `doorward owner pair`)")
    if p["window_open"]:
        pairing += "; pairing window open"
    consent = "; ".join(
        f"{scope} " + ("until revoked" if c["until"] is None else f"until {utc_minute(c['until'])}")
        for scope, c in doc["consent"].items() if c["in_force"]) or "none (nothing leaves)"
    cam = doc["camera"]
    camera = f"{cam['source'] or '?'}"
    if cam["last_frame_at"] is not None:
        camera += (f", last frame {_ago(now, cam['last_frame_at'])}, {cam['frames']} frames, "
                   f"{cam['dropped_frames']} dropped")
    if cam["stalls"]:
        camera += f", {cam['stalls']} stall(s), {cam['recoveries']} recovered"
    if cam["recording"]:
        camera += ", recording"
    if cam.get("ir_led"):
        camera += f", IR LED {cam['ir_led']}"
    ev = doc["events"]
    events = f"{'?' if ev['today'] is None else ev['today']} today, {ev['this_run']} this run"
    q = doc["queues"]
    queues = "no outbox" if q is None else f"{q['messages']} message(s), {q['uploads']} upload(s)"
    s = doc["storage"]
    storage = (f"{_mb(s['used_bytes'])} used of {_mb(s['max_bytes'])} ({s['clips']} clip(s)), "
               f"{_mb(s['free_bytes'])} free on disk")
    rows = [("device", f"{doc['device_id'] or '?'} (data: {doc['data_dir']})"),
            ("pairing", pairing), ("consent", consent), ("camera", camera),
            ("sealing", doc["sealing_reason"] or doc["sealing"] or "?"),
            ("events", events), ("outbox", queues), ("storage", storage),
            ("broker", _link_line(doc["broker"], "[mqtt] url", now)),
            ("bucket", _link_line(doc["bucket"], "[s3] bucket", now))]
    if doc["clock"]["warning"]:
        rows.append(("clock", f"{doc['clock']['warning']}: set it (`doorward doctor` checks)"))
    rows += [("problem", p) for p in doc["problems"]]
    width = max(len(k) for k, _ in rows)
    return [head, *(f"  {k:<{width}}  {v}" for k, v in rows)]
