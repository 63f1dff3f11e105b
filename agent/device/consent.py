"""Owners and consent grants, kept in ``device.sqlite``.

Wiring:

    consent = ConsentStore(db)
    consent.add_owner(public_key_raw, "age1...", "owner", now)        # after pairing
    consent.grant(["events", "clips"], expiry_for(days=None, until_revoked=False, now=now),
                  by=key_id, now=now)                                 # default: 30 days
    if consent.allows("clips", time.time()): send(clip)                # at the moment of sending
    seal_to = consent.recipients()                                     # owners and viewers
    consent.wipe()                                                     # factory reset

A grant is per scope (``events``: event metadata over MQTT; ``snapshots``, ``clips``: sealed
uploads). A new grant for a scope supersedes the open one (it is closed with ``revoked_at``), so
each scope has at most one open grant. No grant in force: nothing leaves the device.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agent.device.database import DeviceDB
from agent.errors import DoorwardError
from uplink import Recipient, UplinkError, ed25519_public_from_raw, key_id_for

SCOPES = ("events", "snapshots", "clips")
ROLES = ("owner", "viewer")
DEFAULT_DAYS = 30
MAX_DAYS = 365
DAY_S = 86400.0


class ConsentError(DoorwardError):
    """A grant, revoke or owner change was asked with values that are not allowed."""


@dataclass(frozen=True)
class Owner:
    key_id: str
    public_key: bytes  # raw Ed25519
    recipient: str  # age1...
    role: str  # owner | viewer
    added_at: float


@dataclass(frozen=True)
class Grant:
    scope: str
    granted_at: float
    expires_at: float | None  # None: until revoked
    granted_by: str  # key id

    def to_json(self) -> dict[str, Any]:
        return {
            "scope": self.scope, "granted_at": self.granted_at,
            "expires_at": self.expires_at, "granted_by": self.granted_by,
        }  # fmt: skip


def expiry_for(days: int | None, until_revoked: bool, now: float) -> float | None:
    """When a grant asked for now ends: ``days`` from now, 30 days when omitted, or None
    (until revoked) only when explicitly asked for."""
    if until_revoked:
        if days is not None:
            raise ConsentError("give either days or until_revoked, not both")
        return None
    if days is None:
        days = DEFAULT_DAYS
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise ConsentError(f"days must be an integer 1..{MAX_DAYS}, got {days!r}")
    return now + days * DAY_S


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """The scopes as a tuple; ConsentError on an unknown, repeated or empty list."""
    out = tuple(scopes)
    if not out or len(set(out)) != len(out) or not set(out) <= set(SCOPES):
        raise ConsentError(f"scopes must be a non-empty list of distinct {SCOPES}, got {out!r}")
    return out


class ConsentStore:
    """Owners and grants in ``db`` (the caller's thread owns ``db``)."""

    def __init__(self, db: DeviceDB) -> None:
        self._db = db

    # owners

    def add_owner(self, public_key: bytes, recipient: str, role: str, now: float) -> Owner:
        """Store an owner or viewer; ConsentError on a bad key/recipient/role or a known key."""
        if role not in ROLES:
            raise ConsentError(f"role must be one of {ROLES}, got {role!r}")
        try:
            ed25519_public_from_raw(public_key)
            Recipient.parse(recipient)
        except (ValueError, UplinkError) as e:
            raise ConsentError(f"owner key or recipient rejected: {e}") from e
        owner = Owner(key_id_for(public_key), bytes(public_key), recipient, role, now)
        if self.owner(owner.key_id) is not None:
            raise ConsentError(f"key {owner.key_id} is already paired; remove it first")
        with self._db.transaction() as db:
            db.execute(
                "INSERT INTO owners (key_id, public_key, recipient, role, added_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (owner.key_id, owner.public_key, owner.recipient, owner.role, owner.added_at),
            )
        return owner

    def remove_owner(self, key_id: str) -> Owner:
        """Remove a member (owner or viewer): from now on nothing is sealed to them and their
        commands are refused. ConsentError for an unknown key or the last owner (a factory reset
        hands the doorbell on). Their command counter stays, so should the same key be added
        again, none of its old commands can be replayed."""
        owner = self.owner(key_id)
        if owner is None:
            raise ConsentError(f"key {key_id!r} is not a member of this doorbell")
        if owner.role == "owner" and sum(o.role == "owner" for o in self.owners()) == 1:
            raise ConsentError(f"{key_id} is the last owner: add another owner first, or hand "
                               "the doorbell on with a factory reset (hold SETUP 10 s)")
        with self._db.transaction() as db:
            db.execute("DELETE FROM owners WHERE key_id = ?", (key_id,))
        return owner

    def owners(self) -> list[Owner]:
        rows = self._db.query(
            "SELECT key_id, public_key, recipient, role, added_at FROM owners ORDER BY added_at, "
            "key_id"
        )
        return [Owner(r[0], bytes(r[1]), r[2], r[3], r[4]) for r in rows]

    def owner(self, key_id: str) -> Owner | None:
        return next((o for o in self.owners() if o.key_id == key_id), None)

    def recipients(self) -> list[str]:
        """age recipients of owners and viewers (in pairing order), to seal clips to."""
        return list(dict.fromkeys(o.recipient for o in self.owners()))

    # grants

    def grant(self, scopes: Iterable[str], expires_at: float | None, by: str, now: float) -> None:
        """Grant ``scopes`` until ``expires_at`` (None: until revoked), superseding open grants."""
        chosen = check_scopes(scopes)
        if expires_at is not None and expires_at <= now:
            raise ConsentError(f"expires_at {expires_at} is not after now {now}")
        with self._db.transaction() as db:
            for scope in chosen:
                db.execute(
                    "UPDATE grants SET revoked_at = ?, revoked_by = ? "
                    "WHERE scope = ? AND revoked_at IS NULL",
                    (now, by, scope),
                )
                db.execute(
                    "INSERT INTO grants (scope, granted_at, expires_at, granted_by) "
                    "VALUES (?, ?, ?, ?)",
                    (scope, now, expires_at, by),
                )

    def revoke(self, scopes: Iterable[str] | None, by: str, now: float) -> list[str]:
        """Revoke ``scopes`` (None: all); returns the scopes that had a grant in force."""
        chosen = SCOPES if scopes is None else check_scopes(scopes)
        was = [g.scope for g in self.in_force(now) if g.scope in chosen]
        with self._db.transaction() as db:
            for scope in chosen:
                db.execute(
                    "UPDATE grants SET revoked_at = ?, revoked_by = ? "
                    "WHERE scope = ? AND revoked_at IS NULL",
                    (now, by, scope),
                )
        return was

    def in_force(self, now: float) -> list[Grant]:
        rows = self._db.query(
            "SELECT scope, granted_at, expires_at, granted_by FROM grants "
            "WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?) ORDER BY id",
            (now,),
        )
        return [Grant(r[0], r[1], r[2], r[3]) for r in rows]

    def allows(self, scope: str, now: float) -> bool:
        """Whether ``scope`` may leave the device now; ask at the moment of sending."""
        if scope not in SCOPES:
            raise ConsentError(f"unknown scope {scope!r}; scopes are {SCOPES}")
        return any(g.scope == scope for g in self.in_force(now))

    def upload_scopes(self, now: float) -> tuple[str, ...]:
        """Which of ``clips`` and ``snapshots`` consent allows now. The Recorder keeps this with
        each clip at its start (agent/delivery/redelivery.py goes by it after a crash)."""
        return tuple(s for s in ("clips", "snapshots") if self.allows(s, now))

    def allowed_at(self, scope: str, t: float) -> bool:
        """Whether a grant for ``scope`` was in force at time ``t`` (revoked or superseded grants
        count for the time they were open). Start-up re-delivery asks this of a clip's start, so a
        clip recorded while no grant covered it is never sent because of a later grant."""
        if scope not in SCOPES:
            raise ConsentError(f"unknown scope {scope!r}; scopes are {SCOPES}")
        row = self._db.query(
            "SELECT 1 FROM grants WHERE scope = ? AND granted_at <= ? "
            "AND (revoked_at IS NULL OR revoked_at > ?) AND (expires_at IS NULL OR expires_at > ?) "
            "LIMIT 1",
            (scope, t, t, t),
        )
        return bool(row)

    def show(self, now: float) -> dict[str, Any]:
        """``{"grants": [...]}`` in force, as ``doorward consent show --json`` prints it."""
        return {"grants": [g.to_json() for g in self.in_force(now)]}

    def wipe(self) -> None:
        """Factory reset: forget owners, grants, command counters and seen jtis (one commit)."""
        with self._db.transaction() as db:
            for table in ("owners", "grants", "counters", "jti_seen"):
                db.execute(f"DELETE FROM {table}")
