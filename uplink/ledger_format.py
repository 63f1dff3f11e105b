"""The ledger export format and its offline verification: pure, shared by device and owner.

A ledger export (JSON Lines, ``FORMAT``) is a header signed by the device key,
``{"format", "device_id", "public_key" (b64u raw), "count", "head", "sig"}`` (signature over
:data:`HEADER_CONTEXT` + the canonical JSON of the other fields), then one entry per line:
``{"seq", "ts", "kind", "data", "prev", "hash", "sig"}`` where ``hash`` = SHA-256 of the
canonical JSON of ``{seq, ts, kind, data, prev}``, ``prev`` the previous entry's hash (64 zeros
for entry 1) and ``sig`` the device's Ed25519 signature over the 32 hash bytes. The device writes
it (agent/device/ledger.py); the owner's tool verifies it (agent/owner/ledger_cli.py) with only this
module and the key it learnt at pairing::

    report = verify_jsonl(text, device_public_key, require_header=True)
    if not report.ok: print(report)            # names the first broken seq and why
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from uplink.keys import b64u, b64u_decode, device_id_for, public_raw
from uplink.wire import canonical_json, is_hex64, is_int, loads_strict

__all__ = [
    "FORMAT", "GENESIS_PREV", "HEADER_CONTEXT", "VerifyReport", "canonical_json", "entry_hash",
    "verify_entries", "verify_jsonl",
]  # fmt: skip

GENESIS_PREV = "0" * 64
FORMAT = "doorward-ledger/1"
# Domain separation: entry signatures cover 32 hash bytes; header signatures this prefix + JSON.
HEADER_CONTEXT = b"doorward-ledger-header/1\x00"
_ENTRY_FIELDS = frozenset({"seq", "ts", "kind", "data", "prev", "hash", "sig"})
_HEADER_FIELDS = frozenset({"format", "device_id", "public_key", "count", "head", "sig"})


def entry_hash(seq: int, ts: int, kind: str, data: Mapping[str, Any], prev: str) -> str:
    body = {"seq": seq, "ts": ts, "kind": kind, "data": data, "prev": prev}
    return hashlib.sha256(canonical_json(body)).hexdigest()


@dataclass(frozen=True)
class VerifyReport:
    """``ok`` or the first broken entry: ``broken_seq`` (the first seq at which the log stops
    being intact; None for a header problem) and ``problem``, one of malformed, altered,
    bad-signature, removed, reordered, bad-prev, wrong-key, empty, no-header (owner side), no-head
    (agent.device.ledger.verify_local)."""

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
        where = "its header" if self.broken_seq is None else f"entry {self.broken_seq}"
        return f"ledger NOT intact, broken at {where}: {self.problem}: {self.detail}"


def _load(line: str | Mapping[str, Any]) -> dict[str, Any] | str:
    """A dict, or a string saying why the line is malformed."""
    if isinstance(line, Mapping):
        return dict(line)
    try:
        obj = loads_strict(line)
    except (ValueError, RecursionError) as e:
        return f"not JSON: {e}"
    return obj if isinstance(obj, dict) else "not a JSON object"


def _entry_shape(obj: dict[str, Any]) -> str | None:
    if set(obj) != _ENTRY_FIELDS:
        return f"fields {sorted(obj)} are not {sorted(_ENTRY_FIELDS)}"
    ok = (
        is_int(obj["seq"]) and obj["seq"] >= 1 and is_int(obj["ts"])
        and isinstance(obj["kind"], str) and isinstance(obj["data"], dict)
        and is_hex64(obj["prev"]) and is_hex64(obj["hash"]) and isinstance(obj["sig"], str)
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
    expected_id = device_id_for(public_raw(key))
    if obj["public_key"] != b64u(public_raw(key)) or obj["device_id"] != expected_id:
        return "wrong-key", (
            f"the header is for device {str(obj['device_id'])[:40]!r} with key "
            f"{str(obj['public_key'])[:48]!r}, not {expected_id} whose key you trust: "
            "fetch this device's ledger, or pass --device for the one it came from"
        )
    body = {k: v for k, v in obj.items() if k != "sig"}
    if not _sig_ok(key, obj["sig"], HEADER_CONTEXT + canonical_json(body)):
        return "bad-signature", "the header signature does not verify with the device key"
    if not (is_int(obj["count"]) and obj["count"] >= 0 and is_hex64(obj["head"])):
        return "malformed", "header count/head have the wrong type"
    return None


def verify_entries(
    lines: Iterable[str | Mapping[str, Any]], device_public_key: Ed25519PublicKey, *,
    require_header: bool = False,
) -> VerifyReport:
    """Verify an export (or bare entries) against the device key; pure, usable offline.

    Checks, per entry in order: well-formed, hash matches content (else ``altered``),
    signature (``bad-signature``), seq continues the chain (``removed`` for a gap, ``reordered``
    when the missing seq appears later or a seq repeats), ``prev`` links (``bad-prev``); then the
    header's count and head (``removed`` for a missing tail). With ``require_header`` (the
    owner's tool: an export from ``ledger.get``), nothing at all is ``empty`` and entries without
    the signed header are ``no-header``: without it a removed tail cannot be seen.
    """
    items = [_load(x) for x in lines if not (isinstance(x, str) and not x.strip())]
    header: dict[str, Any] | None = None
    first = items[0] if items else None
    if require_header and first is None:
        return VerifyReport(False, 0, GENESIS_PREV, False, None, "empty",
                            "the file holds nothing, not even the signed header: fetch the "
                            "ledger again with `doorward owner ledger fetch -o FILE`")
    if require_header and not (isinstance(first, dict) and "format" in first):
        return VerifyReport(False, 0, GENESIS_PREV, False, None, "no-header",
                            "the first line is not the signed header, so a removed tail could "
                            "not be seen: use the file as `doorward owner ledger fetch` wrote it")
    if isinstance(first, dict) and "format" in first:
        header = first
        items.pop(0)
        problem = _check_header(header, device_public_key)
        if problem:
            return VerifyReport(False, 0, GENESIS_PREV, False, None, *problem)
    seen_seqs = [x["seq"] if isinstance(x, dict) and is_int(x.get("seq")) else None for x in items]

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


def verify_jsonl(text: str, device_public_key: Ed25519PublicKey, *,
                 require_header: bool = False) -> VerifyReport:
    """:func:`verify_entries` over the text of ``Ledger.export_jsonl``."""
    return verify_entries(text.splitlines(), device_public_key, require_header=require_header)
