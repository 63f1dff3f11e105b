"""The device ledger: a hash-chained, device-signed, append-only log in ``device.sqlite``.

Wiring:

    ledger = Ledger(db, device_key)
    ledger.append("consent-grant", {"scopes": ["clips"], ...}, now)   # one transaction
    text = ledger.export_jsonl()                                       # for `ledger.get`
    report = verify_local(ledger, device_public_key)   # `ledger verify`: chain + signed head

The export format and its offline verification (``verify_jsonl``, used by the owner's tool) live
in :mod:`uplink.ledger_format`, so the owner side needs nothing of the device's; they are
re-exported here.

Entry ``n``: ``hash`` = SHA-256 of the canonical JSON of ``{seq, ts, kind, data, prev}`` (sorted
keys, no spaces, ASCII), ``prev`` = the ``hash`` of entry ``n-1`` (64 zeros for entry 1), ``sig`` =
base64url Ed25519 signature of the device key over the 32 hash bytes.

Export format (JSON Lines): the first line is a header signed by the device key,
``{"format": "doorward-ledger/1", "device_id", "public_key" (b64u raw), "count", "head", "sig"}``,
then one entry object per line. The signed ``count``/``head`` let the verifier notice a removed
*tail*, which a chain alone cannot show. The verifier trusts only the public key it is given
(the owner learnt it at pairing); the header's key is informative and must match it.

The signed head (issue 12, finding 3). With every append, in the same transaction, the device
signs a :class:`uplink.checkpoint.Checkpoint` (count, head hash, hash of entry 1, time) and keeps
it in the ``settings`` row :data:`HEAD_SETTING`. ``verify_local`` compares the table with it, and
the export header vouches for *that* head, not for whatever the table holds when exported, so
rows deleted with ``sqlite3`` show up as a removed tail in ``doorward ledger verify`` and in the
owner's ``ledger verify``. While ``clips`` consent is in force the same checkpoint goes to the
bucket (agent/delivery/checkpoints.py), where the owner's tool checks every fetched ledger against
it.

What an attacker with the disk can still do, and what catches it:

* Delete rows *and* the head row: the device sees a ledger without a head and says so (never
  "intact"); the next append signs a head over the cut ledger, which the device cannot tell
  from an honest one. The owner's pin and the bucket's checkpoints catch it.
* Copy back an older ``device.sqlite`` (rows and head consistent, just old): undetectable on
  the device. The owner's pin and the bucket's checkpoints catch it once the owner has fetched,
  or the device has published, anything newer.
* Read the device key from the disk and sign whatever they like: then every signature of this
  device is worthless from that moment on; nothing signed before it is changed (the owner's pin
  and published checkpoints still hold the past), but the future is theirs.
* Delete the checkpoints from the bucket with the device's bucket credentials: a bucket policy
  that denies the device ``DeleteObject`` on ``<prefix>/<device>/ledger/`` (or versioning)
  makes them permanent; the device itself never deletes them, ``owner forget`` included.

Rejected commands are recorded through :class:`RejectionLimiter` (at most one entry per reason
per window, the number suppressed in between folded into the next entry), so a flood of garbage
on the command topic cannot fill the card.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.device.database import DeviceDB

# The `NEW as OLD` imports re-export the ledger format under the names callers and tests use.
from uplink import LEDGER_FORMAT as FORMAT
from uplink import LEDGER_GENESIS_PREV as GENESIS_PREV
from uplink import LEDGER_HEADER_CONTEXT as HEADER_CONTEXT
from uplink import (
    Checkpoint,
    CheckpointError,
    b64u,
    canonical_json,
    device_id_for,
    iso_utc_seconds,
    public_raw,
    sign_checkpoint,
    verify_checkpoint,
)
from uplink import LedgerReport as VerifyReport
from uplink import ledger_entry_hash as entry_hash
from uplink import verify_ledger_entries as verify_entries
from uplink import verify_ledger_jsonl as verify_jsonl

__all__ = [
    "FORMAT", "GENESIS_PREV", "HEAD_SETTING", "KINDS", "Entry", "Ledger", "RejectionLimiter",
    "VerifyReport", "canonical_json", "entry_hash", "verify_entries", "verify_jsonl",
    "verify_local",
]  # fmt: skip

HEAD_SETTING = "ledger_head"  # settings row: the newest signed Checkpoint (compact JWS)
KINDS = frozenset({
    "pairing", "factory-reset", "consent-grant", "consent-revoke", "command-rejected",
    "owner-added", "owner-removed", "disclosure", "outbox-drop", "erasure", "setting",
    "withdrawn",
    "request-received", "request-approved", "request-denied",  # footage requests (issue 16)
    "live-view",  # issue 17: a live session (who, from, to, bytes)
})  # fmt: skip


@dataclass(frozen=True)
class Entry:
    seq: int
    ts: int
    kind: str
    data: dict[str, Any]
    prev: str
    hash: str
    sig: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "ts": self.ts, "kind": self.kind, "data": self.data,
            "prev": self.prev, "hash": self.hash, "sig": self.sig,
        }  # fmt: skip


class Ledger:
    """Append and read the ledger in ``db``, signing with the device key."""

    def __init__(self, db: DeviceDB, device_key: Ed25519PrivateKey) -> None:
        self._db = db
        self._key = device_key

    def append(self, kind: str, data: Mapping[str, Any], now: float) -> Entry:
        """Append one entry (its own transaction, or the caller's if one is open)."""
        if kind not in KINDS:
            raise ValueError(f"ledger kind {kind!r} is not one of {sorted(KINDS)}")
        text = canonical_json(dict(data)).decode("ascii")  # ValueError/TypeError if not JSON
        data_obj: dict[str, Any] = json.loads(text)
        ts = int(now)
        with self._db.transaction() as db:
            last = db.execute("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (last["seq"] + 1, last["hash"]) if last else (1, GENESIS_PREV)
            digest = entry_hash(seq, ts, kind, data_obj, prev)
            sig = b64u(self._key.sign(bytes.fromhex(digest)))
            db.execute(
                "INSERT INTO ledger (seq, ts, kind, data, prev, hash, sig) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (seq, ts, kind, text, prev, digest, sig),
            )
            first = db.execute("SELECT hash FROM ledger WHERE seq = 1").fetchone()
            head = Checkpoint(device_id=device_id_for(public_raw(self._key)),
                              chain=first["hash"] if first else digest, count=seq, head=digest,
                              ts=max(ts, 0))
            db.execute("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) "
                       "DO UPDATE SET value = excluded.value",
                       (HEAD_SETTING, sign_checkpoint(head, self._key)))
        return Entry(seq, ts, kind, data_obj, prev, digest, sig)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    def signed_head(self) -> Checkpoint | None:
        """The head the device signed with its last append; None if there is none (an empty
        ledger, one written before signed heads, or the row was deleted). A head that does not
        verify with the device key is reported as None too: it cannot vouch for anything."""
        token = self._db.get_setting(HEAD_SETTING, "")
        return self._parse_head(token) if token else None

    def signed_head_token(self) -> str | None:
        """The compact JWS of :meth:`signed_head` (what goes to the bucket), if it verifies."""
        token = self._db.get_setting(HEAD_SETTING, "")
        return token if token and self._parse_head(token) is not None else None

    def _parse_head(self, token: str) -> Checkpoint | None:
        try:
            return verify_checkpoint(token, self._key.public_key())
        except CheckpointError:
            return None

    def restart(self, kind: str, data: Mapping[str, Any], now: float) -> Entry:
        """Factory reset: drop every entry and start a new chain whose first entry records the old
        chain's head hash and length, so the next owner learns nothing of the previous one while an
        export the previous owner kept still links to the new chain."""
        with self._db.transaction() as db:
            last = db.execute("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
            previous = {"previous_head": last["hash"] if last else GENESIS_PREV,
                        "previous_count": last["seq"] if last else 0}
            db.execute("DELETE FROM ledger")
            return self.append(kind, {**data, **previous}, now)

    def entries(self) -> list[Entry]:
        rows = self._db.query(
            "SELECT seq, ts, kind, data, prev, hash, sig FROM ledger ORDER BY seq"
        )
        return [
            Entry(r["seq"], r["ts"], r["kind"], json.loads(r["data"]), r["prev"], r["hash"],
                  r["sig"])
            for r in rows
        ]  # fmt: skip

    def header(self, entries: list[Entry]) -> dict[str, Any]:
        """The signed export header: the count and head hash of the device's signed head (what it
        committed to when appending), so rows deleted behind its back show as a missing tail.
        Without a signed head (an empty ledger, or one from before signed heads) it vouches for
        ``entries`` as they are."""
        pub = public_raw(self._key)
        signed = self.signed_head()
        count, head = ((signed.count, signed.head) if signed is not None
                       else (len(entries), entries[-1].hash if entries else GENESIS_PREV))
        body: dict[str, Any] = {
            "format": FORMAT, "device_id": device_id_for(pub), "public_key": b64u(pub),
            "count": count, "head": head,
        }  # fmt: skip
        body["sig"] = b64u(self._key.sign(HEADER_CONTEXT + canonical_json(body)))
        return body

    def export_jsonl(self) -> str:
        """Header line, then one entry per line, each canonical JSON, newline-terminated."""
        entries = self.entries()
        lines = [self.header(entries), *(e.to_json() for e in entries)]
        return "".join(canonical_json(obj).decode("ascii") + "\n" for obj in lines)


# ---- verification on the device (the format and offline checks: uplink/ledger_format.py) ----


def verify_local(ledger: Ledger, device_public_key: Ed25519PublicKey) -> VerifyReport:
    """``doorward ledger verify`` on the device: the chain as stored, then against the head the
    device signed with its last append (see the module docstring for what this cannot see)."""
    entries = ledger.entries()
    report = verify_entries([e.to_json() for e in entries], device_public_key)
    if not report.ok:
        return report
    head = ledger.signed_head()
    if head is None:
        if not entries:
            return VerifyReport(True, 0, GENESIS_PREV, True)
        return VerifyReport(
            False, report.count, report.head, False, None, "no-head",
            f"{report.count} entries chain correctly, but there is no signed head to say how "
            "many there were: the head row was deleted, or this ledger predates signed heads "
            "(then the next entry writes one). Compare with the owner's last "
            "`doorward owner ledger fetch` and the checkpoints in the bucket")
    when = iso_utc_seconds(head.ts)
    if head.count > report.count:
        return VerifyReport(
            False, report.count, report.head, True, report.count + 1, "removed",
            f"the device signed a head of {head.count} entries (at {when}) but the ledger holds "
            f"{report.count}: entries {report.count + 1}..{head.count} were deleted outside "
            "doorward (it deletes entries only in a factory reset, which restarts the ledger)")
    hashes = [e.hash for e in entries]
    if head.count < report.count or hashes[head.count - 1] != head.head or hashes[0] != head.chain:
        return VerifyReport(
            False, report.count, report.head, True, min(head.count, report.count), "altered",
            f"the ledger does not end where the device's signed head of {head.count} entries "
            f"(at {when}) says")
    return VerifyReport(True, report.count, report.head, True)


# ---- rate limit for command-rejected entries (pure) ----


class RejectionLimiter:
    """At most one ledger record per rejection reason per ``window_s``.

    ``offer(reason, now)`` returns None when this rejection is only counted, or the number of
    rejections with that reason suppressed since the last record (to fold into this record).
    ``flush(now)`` returns ``(reason, suppressed)`` for reasons whose window has passed with
    suppressed rejections, so the caller can record them even if no new rejection comes;
    ``flush(now, everything=True)`` returns every pending count (at shutdown, so none is lost).
    A clock that steps back counts as the window having passed (the Pi may have no RTC).
    The same limiter bounds the log: a flood of forged commands costs at most one log line and
    one ledger entry per reason per window, plus one summary line per reason and window.
    """

    def __init__(self, window_s: float = 60.0) -> None:
        self.window_s = window_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def _due(self, reason: str, now: float) -> bool:
        last = self._last.get(reason)
        return last is None or now >= last + self.window_s or now < last

    def offer(self, reason: str, now: float) -> int | None:
        if not self._due(reason, now):
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
            return None
        self._last[reason] = now
        return self._suppressed.pop(reason, 0)

    def flush(self, now: float, *, everything: bool = False) -> list[tuple[str, int]]:
        due = [r for r, n in self._suppressed.items() if n and (everything or self._due(r, now))]
        out = []
        for reason in sorted(due):
            self._last[reason] = now
            out.append((reason, self._suppressed.pop(reason)))
        return out
