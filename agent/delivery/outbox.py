"""The durable outbox ``<data-dir>/outbox.sqlite``: every outgoing MQTT message and upload job.

Wiring (the daemon loop enqueues; :class:`agent.delivery.outbox_worker.OutboxWorker` sends)::

    outbox = Outbox(DataDir(data_dir).outbox_db, on_drop=record_drops, notify=worker.wake)
    outbox.enqueue_signed(topic_for(dev, "event"), sign, "events", now=now)   # seq, prev inside
    outbox.enqueue_upload(UploadJob(...).to_json(), "clips", now=now)   # agent/delivery/jobs.py
    with gate.paused():                                      # on revocation, at once
        consent.revoke(["clips"], by, now); outbox.purge_scope("clips", "consent revoked", now)
    outbox.close()

``record_drops(items)`` writes the ledger (see :func:`drop_records`); every drop is also logged
here, so nothing is ever dropped silently. A connection belongs to the thread that opened it.

Order: items carry an AUTOINCREMENT id (never reused, even after pruning), and each kind is a
strict FIFO lane: the oldest open message goes first, and a later message waits while the head
backs off or the broker is away; uploads likewise (the manifest chain links uploads in upload
order). The two lanes are independent of each other.

Scopes: ``events``, ``clips``, ``snapshots`` need consent at the moment of sending;
``device`` (status, command responses) is the device's own traffic and needs none.

Durability (SQLite WAL): enqueue, drops and upload progress commit with ``synchronous=FULL``:
once ``enqueue_*`` returns, the item survives power loss, and so does the message chain state
(``seq_state``), which is updated in the same transaction, so a seq is never issued twice. State
updates after sending (``mark_sent`` in batches, ``mark_failed``, ``mark_in_flight``) commit
with ``synchronous=NORMAL``: no fsync, which is what lets 1,000 queued messages drain at well over
500/s on an SD card. Power loss may undo the last such commits, so at most the last batch is
sent again: QoS 1 is at-least-once anyway and receivers drop duplicates by ``seq``. A later FULL
commit fsyncs the WAL and with it every earlier NORMAL commit.

Bounds: at most ``max_items`` open items and ``max_bytes`` of payload/spec. A new item that does
not fit evicts, in order, queued items already expired (oldest first), then the oldest queued
items of the lowest priority (``priority``: lower goes first) up to the new item's own priority;
if that is not enough, the new item itself is dropped (still recorded, and its seq still used:
the receiver sees the gap).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.delivery.gate import DEVICE_SCOPE
from agent.delivery.jobs import Job, parse_job
from agent.device.consent import SCOPES as CONSENT_SCOPES
from agent.errors import StoreError
from agent.sqlite import (
    is_corruption,
    open_private,
    scrub,
    set_aside,
    transaction,
)

log = logging.getLogger(__name__)

KINDS = ("message", "upload")
GATED_SCOPES = CONSENT_SCOPES  # ask the consent gate before sending (agent/delivery/gate.py)
SCOPES = (DEVICE_SCOPE, *GATED_SCOPES)
GENESIS_PREV = "0" * 64
HOUR_S = 3600.0
DAY_S = 86400.0
# Per-scope queue lifetime when the caller gives no expires_at: a stale status is worthless, an
# event a day old is history, a clip is still evidence after a long outage.
DEFAULT_EXPIRY_S: Mapping[str, float] = {
    "device": HOUR_S, "events": DAY_S, "snapshots": 30 * DAY_S, "clips": 30 * DAY_S,
}  # fmt: skip
OPEN_STATES = ("queued", "in-flight")

_MIGRATIONS: tuple[str, ...] = (
    # 1: items and the device message chain
    """
    CREATE TABLE items (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL CHECK (kind IN ('message', 'upload')),
        scope TEXT NOT NULL CHECK (scope IN ('device', 'events', 'snapshots', 'clips')),
        topic TEXT,
        payload BLOB,
        spec TEXT,
        seq INTEGER,
        size INTEGER NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        message_expiry_s INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        state TEXT NOT NULL DEFAULT 'queued'
            CHECK (state IN ('queued', 'in-flight', 'sent', 'dropped')),
        done_at REAL,
        drop_reason TEXT,
        last_error TEXT,
        progress TEXT,
        CHECK ((state = 'dropped') = (drop_reason IS NOT NULL))
    );
    CREATE INDEX items_open ON items (kind, id) WHERE state IN ('queued', 'in-flight');
    CREATE INDEX items_done ON items (done_at) WHERE done_at IS NOT NULL;
    CREATE TABLE seq_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last_seq INTEGER NOT NULL,
        last_hash TEXT NOT NULL
    );
    INSERT INTO seq_state (id, last_seq, last_hash) VALUES (1, 0, '""" + GENESIS_PREV + """')
    """,
    # 2: retained messages (Home Assistant discovery configs, the online status)
    "ALTER TABLE items ADD COLUMN retain INTEGER NOT NULL DEFAULT 0",
)


class OutboxFullError(StoreError):
    """A single item is larger than the whole outbox may hold."""


@dataclass(frozen=True)
class OutboxLimits:
    """Bounds of the open (queued or in-flight) items; ``keep_done_s``: how long sent/dropped rows
    stay for inspection before :meth:`Outbox.expire` prunes them."""

    max_items: int = 10_000
    max_bytes: int = 64 << 20
    priority: Mapping[str, int] = field(
        default_factory=lambda: {"device": 0, "events": 1, "snapshots": 2, "clips": 3}
    )
    keep_done_s: float = HOUR_S

    def __post_init__(self) -> None:
        if self.max_items < 1 or self.max_bytes < 1:
            raise ValueError(f"outbox bounds must be positive, got {self}")
        if set(self.priority) != set(SCOPES):
            raise ValueError(f"outbox priority must rank exactly {SCOPES}, got {self.priority}")


@dataclass(frozen=True)
class Backoff:
    """Retry delay after the n-th failure: ``min(cap_s, base_s * 2**(n-1))``, of which a random
    fraction up to ``jitter`` is taken off, so devices that failed together do not retry together
    (and the delay never collapses to zero)."""

    base_s: float = 2.0
    cap_s: float = 300.0
    jitter: float = 0.5

    def delay(self, attempts: int, rng: random.Random) -> float:
        full = min(self.cap_s, self.base_s * 2.0 ** min(max(attempts, 1) - 1, 32))
        return full * (1.0 - self.jitter * rng.random())


@dataclass(frozen=True)
class Item:
    """One outbox row. Messages have ``topic``/``payload`` (and ``seq`` when signed through
    :meth:`Outbox.enqueue_signed`); uploads have ``spec`` and, once started, ``progress``."""

    id: int
    kind: str
    scope: str
    topic: str | None
    payload: bytes | None
    spec: dict[str, Any] | None
    seq: int | None
    size: int
    created_at: float
    expires_at: float
    message_expiry_s: int | None
    attempts: int
    next_attempt_at: float
    state: str
    done_at: float | None
    drop_reason: str | None
    last_error: str | None
    progress: dict[str, Any] | None
    retain: bool = False  # MQTT retain flag (messages only)

    def job(self) -> Job:
        """The typed job of an upload (agent/delivery/jobs.py); JobError naming the field for a
        row that holds none (or a message)."""
        return parse_job(self.spec)

    def record(self) -> dict[str, Any]:
        """What the ledger keeps about this item: never the payload (it is sealed anyway)."""
        out: dict[str, Any] = {
            "id": self.id, "kind": self.kind, "scope": self.scope,
            "created_at": self.created_at, "attempts": self.attempts,
        }  # fmt: skip
        if self.topic is not None:
            out["topic"] = self.topic
        if self.seq is not None:
            out["seq"] = self.seq
        if self.spec and "clip_id" in self.spec:  # an unreadable job is recorded as it is
            out["clip_id"] = self.spec["clip_id"]
        return out


def drop_records(items: Sequence[Item]) -> list[dict[str, Any]]:
    """Ledger data for dropped ``items``, one entry per reason, for
    ``ledger.append("outbox-drop", entry, now)``: ``[{"reason", "items": [item.record()]}]``."""
    by_reason: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        by_reason.setdefault(item.drop_reason or "unknown", []).append(item.record())
    return [{"reason": r, "items": recs} for r, recs in by_reason.items()]


def _ranges(ids: Sequence[int]) -> str:
    """``1-3,7``: compact ids for one log line."""
    runs: list[list[int]] = []
    for i in sorted(ids):
        if runs and runs[-1][1] == i - 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)


_COLUMNS = (
    "id, kind, scope, topic, payload, spec, seq, size, created_at, expires_at, message_expiry_s, "
    "attempts, next_attempt_at, state, done_at, drop_reason, last_error, progress, retain"
)


def _item(r: sqlite3.Row) -> Item:
    return Item(
        r["id"], r["kind"], r["scope"], r["topic"],
        None if r["payload"] is None else bytes(r["payload"]),
        None if r["spec"] is None else json.loads(r["spec"]), r["seq"], r["size"],
        r["created_at"], r["expires_at"], r["message_expiry_s"], r["attempts"],
        r["next_attempt_at"], r["state"], r["done_at"], r["drop_reason"], r["last_error"],
        None if r["progress"] is None else json.loads(r["progress"]), bool(r["retain"]),
    )  # fmt: skip


class Outbox:
    """One connection to the outbox database (its opening thread only). See the module doc."""

    def __init__(
        self,
        path: Path,
        *,
        limits: OutboxLimits | None = None,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        on_drop: Callable[[Sequence[Item]], None] | None = None,
        notify: Callable[[], None] | None = None,
    ) -> None:
        self.path = path
        self.limits = limits or OutboxLimits()
        self.backoff = backoff or Backoff()
        self._rng = rng or random.Random()
        self._on_drop = on_drop
        self._notify = notify
        self._name = f"outbox database {path}"
        self._db = open_private(path, _MIGRATIONS, name=self._name)
        prio = self.limits.priority
        self._prio_sql = "CASE scope " + " ".join(
            f"WHEN '{s}' THEN {int(prio[s])}" for s in SCOPES
        ) + " END"

    # ---- plumbing ----------------------------------------------------------------------------

    @classmethod
    def open_or_set_aside(cls, path: Path, **kwargs: Any) -> tuple[Outbox, str | None]:
        """Open the outbox; if its file is damaged (not a database, malformed), keep it as
        ``outbox.sqlite.corrupt-<UTC time>`` for inspection and start an empty one, so the
        daemon starts instead of crash-looping. Returns the outbox and what was lost (None if
        nothing): the queued messages and the message chain's state (the next message starts a
        new chain, which receivers see); clips are queued again from the store at start-up
        (agent/delivery/redelivery.py), and the ledger says which were disclosed."""
        try:
            return cls(path, **kwargs), None
        except (StoreError, sqlite3.DatabaseError) as e:
            cause = e.__cause__ if isinstance(e, StoreError) else e
            if not isinstance(cause, sqlite3.DatabaseError) or not is_corruption(cause):
                raise
        kept = set_aside(path, time.time())
        note = (f"outbox database {path} was damaged ({cause}): kept as {kept.name}; its queued "
                "messages are lost and the message chain starts again; clips not yet delivered "
                "are queued again")
        log.error("%s", note)
        return cls(path, **kwargs), note

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction; ``durable=False`` commits without fsync (see the module doc).
        SQLite failures (disk full, I/O) become StoreError naming the file."""
        with transaction(self._db, name=self._name, durable=durable) as db:
            yield db

    def _rows(self, sql: str, args: Sequence[object] = ()) -> list[Item]:
        try:
            return [_item(r) for r in self._db.execute(sql, tuple(args))]
        except sqlite3.OperationalError as e:
            raise StoreError(f"outbox database {self.path}: {e}") from e

    # ---- enqueue -----------------------------------------------------------------------------

    def enqueue_message(
        self, topic: str, payload: bytes, scope: str, *, now: float,
        expires_at: float | None = None, message_expiry_s: int | None = None,
        retain: bool = False,
    ) -> Item:
        """Queue an already-built payload (no chain state). Durable once this returns; the item
        comes back dropped (and recorded) if the outbox is full of higher-priority work.
        ``retain``: the broker keeps it for later subscribers (an empty payload clears that)."""
        return self._enqueue("message", scope, now, expires_at, topic=topic,
                             build=lambda _db: (bytes(payload), None),
                             message_expiry_s=message_expiry_s, retain=retain)

    def enqueue_signed(
        self, topic: str, sign: Callable[[int, str], bytes], scope: str, *, now: float,
        expires_at: float | None = None, message_expiry_s: int | None = None,
        retain: bool = False,
    ) -> Item:
        """Queue a chained device message: ``sign(seq, prev)`` is called inside the enqueue
        transaction with the next seq and the hex SHA-256 of the previous message's bytes, and
        must return the JWS bytes. Chain state and item commit together: a crash never reuses a
        seq, and a failing ``sign`` leaves the chain untouched."""

        def build(db: sqlite3.Connection) -> tuple[bytes, int]:
            last_seq, last_hash = db.execute(
                "SELECT last_seq, last_hash FROM seq_state WHERE id = 1"
            ).fetchone()
            seq = int(last_seq) + 1
            payload = bytes(sign(seq, str(last_hash)))
            db.execute(
                "UPDATE seq_state SET last_seq = ?, last_hash = ? WHERE id = 1",
                (seq, hashlib.sha256(payload).hexdigest()),
            )
            return payload, seq

        return self._enqueue("message", scope, now, expires_at, topic=topic, build=build,
                             message_expiry_s=message_expiry_s, retain=retain)

    def enqueue_upload(
        self, spec: Mapping[str, Any], scope: str, *, now: float, expires_at: float | None = None
    ) -> Item:
        """Queue an upload job; ``spec`` is JSON (e.g. clip_id, files, keys) for the upload port."""
        text = json.dumps(dict(spec), sort_keys=True, separators=(",", ":"), allow_nan=False)
        return self._enqueue("upload", scope, now, expires_at, spec_text=text,
                             build=lambda _db: (None, None))

    def chain_head(self) -> tuple[int, str]:
        """``(last_seq, last_hash)`` of the device message chain."""
        row = self._db.execute("SELECT last_seq, last_hash FROM seq_state WHERE id = 1").fetchone()
        return int(row[0]), str(row[1])

    def _enqueue(
        self, kind: str, scope: str, now: float, expires_at: float | None, *,
        build: Callable[[sqlite3.Connection], tuple[bytes | None, int | None]],
        topic: str | None = None, spec_text: str | None = None,
        message_expiry_s: int | None = None, retain: bool = False,
    ) -> Item:
        if scope not in SCOPES:
            raise ValueError(f"outbox scope {scope!r} is not one of {SCOPES}")
        expires = now + DEFAULT_EXPIRY_S[scope] if expires_at is None else expires_at
        dropped: list[Item] = []
        with self.transaction() as db:
            payload, seq = build(db)
            size = len(payload or b"") + len(spec_text or "") + len(topic or "")
            if size > self.limits.max_bytes:
                raise OutboxFullError(
                    f"outbox item of {size} bytes exceeds max_bytes {self.limits.max_bytes}: "
                    "raise the outbox byte limit or send smaller items"
                )
            victims, admit = self._plan_room(db, size, scope, now)
            cur = db.execute(
                "INSERT INTO items (kind, scope, topic, payload, spec, seq, size, created_at, "
                "expires_at, message_expiry_s, retain) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (kind, scope, topic, payload, spec_text, seq, size, now, expires,
                 message_expiry_s, int(retain)),
            )
            new_id = int(cur.lastrowid or 0)
            for victim_id, reason in victims:
                dropped += self._drop_in(db, [victim_id], reason, now)
            if not admit:
                dropped += self._drop_in(db, [new_id], "outbox full: lowest priority", now)
            item = self._rows(f"SELECT {_COLUMNS} FROM items WHERE id = ?", (new_id,))[0]
        self._report(dropped)
        if admit and self._notify is not None:
            self._notify()
        return item

    def _plan_room(
        self, db: sqlite3.Connection, size: int, scope: str, now: float
    ) -> tuple[list[tuple[int, str]], bool]:
        """Victims (id, reason) that make room for a new item, and whether it is admitted."""
        count, total = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM items "
            "WHERE state IN ('queued', 'in-flight')"
        ).fetchone()
        lim = self.limits

        def fits() -> bool:
            return bool(count + 1 <= lim.max_items and total + size <= lim.max_bytes)

        victims: list[tuple[int, str]] = []
        if fits():
            return victims, True
        candidates = [
            (r[0], r[1], "outbox full: expired")
            for r in db.execute(
                "SELECT id, size FROM items WHERE state = 'queued' AND expires_at <= ? ORDER BY id",
                (now,),
            )
        ]
        seen = {c[0] for c in candidates}
        candidates += [
            (r[0], r[1], "outbox full: lowest priority")
            for r in db.execute(
                f"SELECT id, size FROM items WHERE state = 'queued' AND {self._prio_sql} <= ? "
                f"ORDER BY {self._prio_sql}, id",
                (lim.priority[scope],),
            )
            if r[0] not in seen
        ]
        for victim_id, victim_size, reason in candidates:
            victims.append((victim_id, reason))
            count, total = count - 1, total - victim_size
            if fits():
                return victims, True
        return [], False  # evicting everything allowed would not do: refuse the newcomer only

    # ---- reading -----------------------------------------------------------------------------

    def get(self, item_id: int) -> Item | None:
        rows = self._rows(f"SELECT {_COLUMNS} FROM items WHERE id = ?", (item_id,))
        return rows[0] if rows else None

    def items(self, states: Sequence[str] | None = None) -> list[Item]:
        """All rows (or those in ``states``) in id order; for inspection and tests."""
        if states is None:
            return self._rows(f"SELECT {_COLUMNS} FROM items ORDER BY id")
        marks = ",".join("?" * len(states))
        return self._rows(
            f"SELECT {_COLUMNS} FROM items WHERE state IN ({marks}) ORDER BY id", states
        )

    def head(self, kind: str) -> Item | None:
        """The oldest open item of ``kind`` (queued or in-flight), due or not."""
        rows = self._rows(
            f"SELECT {_COLUMNS} FROM items WHERE kind = ? AND state IN ('queued', 'in-flight') "
            "ORDER BY id LIMIT 1",
            (kind,),
        )
        return rows[0] if rows else None

    def next_due(self, now: float) -> Item | None:
        """The item to send now: the head message if it is due, else the head upload if due."""
        for kind in KINDS:
            item = self.head(kind)
            if item is not None and item.state == "queued" and item.next_attempt_at <= now:
                return item
        return None

    def due_messages(self, now: float, limit: int) -> list[Item]:
        """Up to ``limit`` messages from the head, in order, stopping at the first not yet due."""
        rows = self._rows(
            f"SELECT {_COLUMNS} FROM items WHERE kind = 'message' "
            "AND state IN ('queued', 'in-flight') ORDER BY id LIMIT ?",
            (limit,),
        )
        out: list[Item] = []
        for item in rows:
            if item.next_attempt_at > now:
                break
            out.append(item)
        return out

    def pending(self) -> dict[str, int]:
        """Open items counted by ``"kind:scope"`` (e.g. ``{"message:events": 3}``)."""
        rows = self._db.execute(
            "SELECT kind, scope, COUNT(*) FROM items WHERE state IN ('queued', 'in-flight') "
            "GROUP BY kind, scope ORDER BY kind, scope"
        )
        return {f"{k}:{s}": int(n) for k, s, n in rows}

    def progress(self, item_id: int) -> dict[str, Any] | None:
        row = self._db.execute("SELECT progress FROM items WHERE id = ?", (item_id,)).fetchone()
        return None if row is None or row[0] is None else dict(json.loads(row[0]))

    # ---- state changes -----------------------------------------------------------------------

    def mark_in_flight(self, item_id: int) -> bool:
        """queued -> in-flight (uploads, before the port starts); False if no longer queued."""
        with self.transaction(durable=False) as db:
            cur = db.execute(
                "UPDATE items SET state = 'in-flight' WHERE id = ? AND state = 'queued'",
                (item_id,),
            )
        return cur.rowcount == 1

    def mark_sent(self, item_ids: Sequence[int], now: float) -> list[int]:
        """Open items -> sent, in ONE unsynced transaction (batch them); returns the ids changed
        (an id missing there was dropped meanwhile)."""
        changed: list[int] = []
        with self.transaction(durable=False) as db:
            for item_id in item_ids:
                cur = db.execute(
                    "UPDATE items SET state = 'sent', done_at = ?, progress = NULL "
                    "WHERE id = ? AND state IN ('queued', 'in-flight')",
                    (now, item_id),
                )
                if cur.rowcount:
                    changed.append(item_id)
        return changed

    def mark_failed(self, item_id: int, now: float, error: str) -> Item | None:
        """Count a failed attempt: back to queued, retry after the backoff delay (jittered)."""
        with self.transaction(durable=False) as db:
            row = db.execute(
                "SELECT attempts FROM items WHERE id = ? AND state IN ('queued', 'in-flight')",
                (item_id,),
            ).fetchone()
            if row is None:
                return None
            attempts = int(row[0]) + 1
            due = now + self.backoff.delay(attempts, self._rng)
            db.execute(
                "UPDATE items SET state = 'queued', attempts = ?, next_attempt_at = ?, "
                "last_error = ? WHERE id = ?",
                (attempts, due, error[:500], item_id),
            )
        log.info("outbox item %d failed (attempt %d), retry in %.1f s: %s",
                 item_id, attempts, due - now, error)
        return self.get(item_id)

    def release(self, item_id: int) -> None:
        """in-flight -> queued without counting an attempt (the worker is stopping)."""
        with self.transaction(durable=False) as db:
            db.execute(
                "UPDATE items SET state = 'queued' WHERE id = ? AND state = 'in-flight'", (item_id,)
            )

    def save_progress(self, item_id: int, state: Mapping[str, Any]) -> bool:
        """Durably store an upload's resume state; False if the item is no longer in flight
        (dropped, e.g. by a revocation): the upload must stop."""
        text = json.dumps(dict(state), sort_keys=True, separators=(",", ":"), allow_nan=False)
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE items SET progress = ? WHERE id = ? AND state = 'in-flight'",
                (text, item_id),
            )
        return cur.rowcount == 1

    def recover(self, now: float | None = None) -> int:
        """At start: in-flight items (a crash mid-send) go back to queued, progress kept; and a
        retry time further ahead than any backoff can be (the clock jumped back since it was set:
        a Pi has no real-time clock) becomes due now, or the item would wait out the jump."""
        with self.transaction() as db:
            cur = db.execute("UPDATE items SET state = 'queued' WHERE state = 'in-flight'")
            if now is not None:
                ahead = db.execute(
                    "UPDATE items SET next_attempt_at = ? WHERE state = 'queued' AND "
                    "next_attempt_at > ?", (now, now + self.backoff.cap_s)).rowcount
                if ahead:
                    log.warning("outbox: %d item(s) were due after a clock that has since gone "
                                "back; tried now", ahead)
        if cur.rowcount:
            log.info("outbox: %d interrupted item(s) queued again", cur.rowcount)
        return cur.rowcount

    # ---- drops -------------------------------------------------------------------------------

    def drop(self, item_id: int, reason: str, now: float) -> Item | None:
        """Drop one open item (never sent), logged and recorded; None if it was not open."""
        return next(iter(self.drop_many([item_id], reason, now)), None)

    def drop_many(self, item_ids: Sequence[int], reason: str, now: float) -> list[Item]:
        with self.transaction() as db:
            dropped = self._drop_in(db, item_ids, reason, now)
        self._report(dropped)
        return dropped

    def purge_scope(self, scope: str, reason: str, now: float) -> list[Item]:
        """Revocation: drop every open item of ``scope`` at once (an in-flight upload sees it at
        its next progress callback and stops)."""
        if scope not in SCOPES:
            raise ValueError(f"outbox scope {scope!r} is not one of {SCOPES}")
        ids = [r[0] for r in self._db.execute(
            "SELECT id FROM items WHERE scope = ? AND state IN ('queued', 'in-flight')", (scope,)
        )]  # fmt: skip
        return self.drop_many(ids, reason, now)

    def wipe(self) -> int:
        """Factory reset: every item (open, sent or dropped, with its payload) and the message
        chain go, recorded nowhere (the ledger restarts with the reset), and nothing of them
        stays readable in the file or its WAL. An upload in flight finds its item gone at its
        next progress callback and stops. Item ids are NOT restarted: a lane may still hold an
        old id, which must never name a new item. Returns the number of items."""
        with self.transaction() as db:
            n = db.execute("DELETE FROM items").rowcount
            db.execute("UPDATE seq_state SET last_seq = 0, last_hash = ?", (GENESIS_PREV,))
        scrub(self._db, self.path)
        return int(n)

    def expire(self, now: float) -> list[Item]:
        """Drop queued items whose ``expires_at`` has passed (reason "expired"); prune sent and
        dropped rows older than ``limits.keep_done_s``."""
        ids = [r[0] for r in self._db.execute(
            "SELECT id FROM items WHERE state = 'queued' AND expires_at <= ? ORDER BY id", (now,)
        )]  # fmt: skip
        dropped = self.drop_many(ids, "expired", now) if ids else []
        cutoff = now - self.limits.keep_done_s
        if self._db.execute("SELECT 1 FROM items WHERE done_at < ? LIMIT 1", (cutoff,)).fetchone():
            with self.transaction(durable=False) as db:
                db.execute("DELETE FROM items WHERE done_at < ?", (cutoff,))
        return dropped

    def erase_done(self, clip_ids: Sequence[str], *, everything: bool) -> int:
        """The owner's erasure: delete the finished rows (sent or dropped) that name these clips,
        every finished row with ``everything`` (sent event messages carry their times), then
        truncate the WAL so no copy stays there (deleted pages are zeroed: secure_delete).
        Open items are the caller's to drop first. Returns the rows deleted."""
        wanted = set(clip_ids)
        rows = self._db.execute(
            "SELECT id, spec FROM items WHERE state IN ('sent', 'dropped')").fetchall()
        ids = [r[0] for r in rows if everything
               or (r[1] is not None and json.loads(r[1]).get("clip_id") in wanted)]
        if ids:
            with self.transaction() as db:
                db.executemany("DELETE FROM items WHERE id = ?", [(i,) for i in ids])
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return len(ids)

    def _drop_in(
        self, db: sqlite3.Connection, item_ids: Sequence[int], reason: str, now: float
    ) -> list[Item]:
        out: list[Item] = []
        for item_id in item_ids:
            cur = db.execute(
                "UPDATE items SET state = 'dropped', drop_reason = ?, done_at = ?, progress = NULL "
                "WHERE id = ? AND state IN ('queued', 'in-flight')",
                (reason, now, item_id),
            )
            if cur.rowcount:
                out += self._rows(f"SELECT {_COLUMNS} FROM items WHERE id = ?", (item_id,))
        return out

    def _report(self, dropped: Sequence[Item]) -> None:
        """Every drop is logged here and handed to ``on_drop`` (the ledger), after the commit."""
        if not dropped:
            return
        by_reason: dict[str, list[Item]] = {}
        for item in dropped:
            by_reason.setdefault(item.drop_reason or "unknown", []).append(item)
        for reason, items in by_reason.items():
            scopes = sorted({f"{i.kind}:{i.scope}" for i in items})
            log.warning("outbox dropped %d item(s) (%s) never sent: %s; ids %s",
                        len(items), ", ".join(scopes), reason, _ranges([i.id for i in items]))
        if self._on_drop is not None:
            self._on_drop(list(dropped))
