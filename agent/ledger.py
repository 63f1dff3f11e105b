"""The device ledger: a hash-chained, device-signed, append-only log in ``device.sqlite``.

Wiring:

    ledger = Ledger(db, device_key)
    ledger.append("consent-grant", {"scopes": ["clips"], ...}, now)   # one transaction
    text = ledger.export_jsonl()                                       # for `ledger.get`
    report = verify_jsonl(text, device_public_key)                     # owner side, offline
    if not report.ok: print(report)            # names the first broken seq and why

Entry ``n``: ``hash`` = SHA-256 of the canonical JSON of ``{seq, ts, kind, data, prev}`` (sorted
keys, no spaces, ASCII), ``prev`` = the ``hash`` of entry ``n-1`` (64 zeros for entry 1), ``sig`` =
base64url Ed25519 signature of the device key over the 32 hash bytes.

Export format (JSON Lines): the first line is a header signed by the device key,
``{"format": "doorward-ledger/1", "device_id", "public_key" (b64u raw), "count", "head", "sig"}``,
then one entry object per line. The signed ``count``/``head`` let the verifier notice a removed
*tail*, which a chain alone cannot show. The verifier trusts only the public key it is given
(the owner learnt it at pairing); the header's key is informative and must match it.

Rejected commands are recorded through :class:`RejectionLimiter` (at most one entry per reason
per window, the number suppressed in between folded into the next entry), so a flood of garbage
on the command topic cannot fill the card.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.devicedb import DeviceDB
from uplink.keys import b64u, b64u_decode, device_id_for, public_raw

GENESIS_PREV = "0" * 64
FORMAT = "doorward-ledger/1"
KINDS = frozenset({
    "pairing", "factory-reset", "consent-grant", "consent-revoke", "command-rejected",
    "owner-added", "disclosure", "outbox-drop", "erasure", "setting", "withdrawn",
})  # fmt: skip
# Domain separation: entry signatures cover 32 hash bytes; header signatures this prefix + JSON.
_HEADER_CONTEXT = b"doorward-ledger-header/1\x00"
_ENTRY_FIELDS = frozenset({"seq", "ts", "kind", "data", "prev", "hash", "sig"})
_HEADER_FIELDS = frozenset({"format", "device_id", "public_key", "count", "head", "sig"})


def canonical_json(obj: object) -> bytes:
    """Sorted keys, no whitespace, ASCII only, no NaN: one byte string per JSON value."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def entry_hash(seq: int, ts: int, kind: str, data: Mapping[str, Any], prev: str) -> str:
    body = {"seq": seq, "ts": ts, "kind": kind, "data": data, "prev": prev}
    return hashlib.sha256(canonical_json(body)).hexdigest()


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
        return Entry(seq, ts, kind, data_obj, prev, digest, sig)

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
        """The signed export header vouching for ``entries`` (count and head hash)."""
        pub = public_raw(self._key)
        body: dict[str, Any] = {
            "format": FORMAT, "device_id": device_id_for(pub), "public_key": b64u(pub),
            "count": len(entries), "head": entries[-1].hash if entries else GENESIS_PREV,
        }  # fmt: skip
        body["sig"] = b64u(self._key.sign(_HEADER_CONTEXT + canonical_json(body)))
        return body

    def export_jsonl(self) -> str:
        """Header line, then one entry per line, each canonical JSON, newline-terminated."""
        entries = self.entries()
        lines = [self.header(entries), *(e.to_json() for e in entries)]
        return "".join(canonical_json(obj).decode("ascii") + "\n" for obj in lines)


# ---- offline verification (pure) ----


@dataclass(frozen=True)
class VerifyReport:
    """``ok`` or the first broken entry: ``broken_seq`` (the first seq at which the log stops
    being intact; None for a header problem) and ``problem``, one of malformed, altered,
    bad-signature, removed, reordered, bad-prev, wrong-key."""

    ok: bool
    count: int  # entries verified intact before the first problem
    head: str  # hash of the last intact entry
    complete: bool  # a signed header vouched for the count, so a removed tail would show
    broken_seq: int | None = None
    problem: str | None = None
    detail: str = ""

    def __str__(self) -> str:
        if self.ok:
            tail = "" if self.complete else " (no signed header: a removed tail cannot be seen)"
            return f"ledger intact: {self.count} entries, head {self.head[:16]}...{tail}"
        where = "header" if self.broken_seq is None else f"entry {self.broken_seq}"
        return f"ledger broken at {where}: {self.problem}: {self.detail}"


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate key in {keys}")
    return dict(pairs)


def _load(line: str | Mapping[str, Any]) -> dict[str, Any] | str:
    """A dict, or a string saying why the line is malformed."""
    if isinstance(line, Mapping):
        return dict(line)
    try:
        obj = json.loads(line, object_pairs_hook=_strict_object)
    except ValueError as e:
        return f"not JSON: {e}"
    return obj if isinstance(obj, dict) else "not a JSON object"


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_hex64(v: object) -> bool:
    return isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)


def _entry_shape(obj: dict[str, Any]) -> str | None:
    if set(obj) != _ENTRY_FIELDS:
        return f"fields {sorted(obj)} are not {sorted(_ENTRY_FIELDS)}"
    ok = (
        _is_int(obj["seq"]) and obj["seq"] >= 1 and _is_int(obj["ts"])
        and isinstance(obj["kind"], str) and isinstance(obj["data"], dict)
        and _is_hex64(obj["prev"]) and _is_hex64(obj["hash"]) and isinstance(obj["sig"], str)
    )  # fmt: skip
    return None if ok else "a field has the wrong type"


def _sig_ok(key: Ed25519PublicKey, sig: object, message: bytes) -> bool:
    try:
        key.verify(b64u_decode(str(sig)), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _check_header(obj: dict[str, Any], key: Ed25519PublicKey) -> tuple[str, str] | None:
    if set(obj) != _HEADER_FIELDS or obj["format"] != FORMAT:
        return "malformed", f"header fields {sorted(obj)} or format {obj.get('format')!r} unknown"
    if obj["public_key"] != b64u(public_raw(key)):
        return "wrong-key", (
            f"the export is signed for key {obj['public_key']!r}, not the device key you trust"
        )
    body = {k: v for k, v in obj.items() if k != "sig"}
    if not _sig_ok(key, obj["sig"], _HEADER_CONTEXT + canonical_json(body)):
        return "bad-signature", "the header signature does not verify with the device key"
    if not (_is_int(obj["count"]) and obj["count"] >= 0 and _is_hex64(obj["head"])):
        return "malformed", "header count/head have the wrong type"
    return None


def verify_entries(
    lines: Iterable[str | Mapping[str, Any]], device_public_key: Ed25519PublicKey
) -> VerifyReport:
    """Verify an export (or bare entries) against the device key; pure, usable offline.

    Checks, per entry in order: well-formed, hash matches content (else ``altered``),
    signature (``bad-signature``), seq continues the chain (``removed`` for a gap, ``reordered``
    when the missing seq appears later or a seq repeats), ``prev`` links (``bad-prev``); then the
    header's count and head (``removed`` for a missing tail).
    """
    items = [_load(x) for x in lines if not (isinstance(x, str) and not x.strip())]
    header: dict[str, Any] | None = None
    first = items[0] if items else None
    if isinstance(first, dict) and "format" in first:
        header = first
        items.pop(0)
        problem = _check_header(header, device_public_key)
        if problem:
            return VerifyReport(False, 0, GENESIS_PREV, False, None, *problem)
    seen_seqs = [x["seq"] if isinstance(x, dict) and _is_int(x.get("seq")) else None for x in items]

    expected, prev = 1, GENESIS_PREV

    def broken(problem: str, detail: str) -> VerifyReport:
        return VerifyReport(
            False, expected - 1, prev, header is not None, expected, problem, detail
        )

    for pos, item in enumerate(items):
        line = pos + (2 if header else 1)
        if isinstance(item, str):
            return broken("malformed", f"line {line}: {item}")
        shape = _entry_shape(item)
        if shape:
            return broken("malformed", f"line {line}: {shape}")
        seq = item["seq"]
        if entry_hash(seq, item["ts"], item["kind"], item["data"], item["prev"]) != item["hash"]:
            return broken("altered", f"line {line} (seq {seq}): content does not match its hash")
        if not _sig_ok(device_public_key, item["sig"], bytes.fromhex(item["hash"])):
            return broken("bad-signature", f"line {line} (seq {seq}): not signed by the device")
        if seq > expected and expected in seen_seqs[pos + 1 :]:
            return broken("reordered", f"line {line} holds seq {seq}; seq {expected} comes later")
        if seq > expected:
            return broken("removed", f"seq {expected}..{seq - 1} missing before line {line}")
        if seq < expected:
            return broken("reordered", f"line {line} repeats or moves back to seq {seq}")
        if item["prev"] != prev:
            return broken("bad-prev", f"line {line} (seq {seq}) does not link to the entry before")
        expected, prev = seq + 1, item["hash"]
    if header is not None:
        if header["count"] > expected - 1:
            return broken(
                "removed",
                f"the signed header lists {header['count']} entries, "
                f"found {expected - 1}: the tail from seq {expected} is missing",
            )
        if header["count"] != expected - 1 or header["head"] != prev:
            return broken("altered", "entries do not end where the signed header says")
    return VerifyReport(True, expected - 1, prev, header is not None)


def verify_jsonl(text: str, device_public_key: Ed25519PublicKey) -> VerifyReport:
    """:func:`verify_entries` over the text of ``Ledger.export_jsonl``."""
    return verify_entries(text.splitlines(), device_public_key)


# ---- rate limit for command-rejected entries (pure) ----


class RejectionLimiter:
    """At most one ledger record per rejection reason per ``window_s``.

    ``offer(reason, now)`` returns None when this rejection is only counted, or the number of
    rejections with that reason suppressed since the last record (to fold into this record).
    ``flush(now)`` returns ``(reason, suppressed)`` for reasons whose window has passed with
    suppressed rejections, so the caller can record them even if no new rejection comes.
    A clock that steps back counts as the window having passed (the Pi may have no RTC).
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

    def flush(self, now: float) -> list[tuple[str, int]]:
        due = [r for r, n in self._suppressed.items() if n and self._due(r, now)]
        out = []
        for reason in sorted(due):
            self._last[reason] = now
            out.append((reason, self._suppressed.pop(reason)))
        return out
