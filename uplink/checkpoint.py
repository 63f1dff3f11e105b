"""Ledger checkpoints: the device's signed statement "my ledger held COUNT entries ending in HEAD".

Think of Certificate Transparency's signed tree heads. The device signs one with every ledger
append (it keeps the newest beside its ledger, in the same transaction) and, while the owner's
``clips`` consent is in force, publishes it to the bucket, where the owner's tool finds it later.
A ledger is hash-chained, so a ledger of ``n >= count`` entries *extends* a checkpoint when its
first entry hashes to ``chain`` and its entry ``count`` hashes to ``head``. Once an owner has seen
a checkpoint, the device can still lie about what comes after it, but a ledger cut back or
rewritten below it no longer verifies.

Format: a compact JWS (EdDSA, header ``{"alg": "EdDSA", "kid": <device id>, "typ": TYP}``) whose
claims are exactly ``{"v": 1, "device_id", "chain", "count", "head", "ts"}``: ``chain`` is the
hash of entry 1 (it changes only when a factory reset restarts the ledger), ``count`` >= 1,
``head`` the hash of entry ``count``, ``ts`` the newest entry's time (device clock, epoch s).
The ``typ`` keeps a checkpoint from being read as any other token the device signs. Objects
live at :func:`checkpoint_key`, one per (count, head), never overwritten or deleted by the device.

Device side::

    cp = Checkpoint(device_id=dev, chain=first_hash, count=n, head=last_hash, ts=int(now))
    token = sign_checkpoint(cp, device_key)          # deterministic: same cp, same bytes
    store.put_bytes(checkpoint_key(prefix, dev, cp), token.encode("ascii"))

Owner side::

    cp = verify_checkpoint(token, device_public_key)      # CheckpointError unless signed by it
    problem = not_extended(entry_hashes, cp)              # None when the ledger extends it
    problems = inconsistent([cp1, cp2, ...])              # forks: one count, two heads

What this does not give: a checkpoint proves nothing about entries after ``count``, and a device
whose key was stolen can sign anything about the future. Checkpoints in the bucket are only as
permanent as the bucket's permissions make them (see SECURITY notes in agent/device/ledger.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from uplink import jws
from uplink.errors import (  # re-exported: this module's callers catch them here
    CheckpointError as CheckpointError,
)
from uplink.keys import device_id_for, public_raw
from uplink.wire import MAX_INT, is_device_id, is_hex64, is_int

VERSION = 1
TYP = "doorward-checkpoint+jwt"
MAX_CHECKPOINT_BYTES = 2048
CLAIMS = frozenset({"v", "device_id", "chain", "count", "head", "ts"})
SUFFIX = ".checkpoint.jws"
_KEY_NAME = re.compile(r"(\d{12})-([0-9a-f]{16})" + re.escape(SUFFIX))


@dataclass(frozen=True)
class Checkpoint:
    """One signed ledger head; constructing it checks every field (CheckpointError)."""

    device_id: str
    chain: str
    count: int
    head: str
    ts: int
    v: int = VERSION

    def __post_init__(self) -> None:
        if not is_int(self.v) or self.v != VERSION:
            raise CheckpointError(f"unsupported checkpoint version {self.v!r}: expected {VERSION}")
        if not is_device_id(self.device_id):
            raise CheckpointError(f"checkpoint device_id {str(self.device_id)[:40]!r} is not a "
                                  "device id (dw-...)")
        for name in ("chain", "head"):
            value = getattr(self, name)
            if not is_hex64(value):
                raise CheckpointError(f"checkpoint {name} must be 64 lowercase hex digits")
        if not is_int(self.count) or not 1 <= self.count <= MAX_INT:
            raise CheckpointError(f"checkpoint count must be an integer in 1..{MAX_INT}")
        if not is_int(self.ts) or not 0 <= self.ts <= MAX_INT:
            raise CheckpointError("checkpoint ts must be a non-negative integer (epoch seconds)")
        if self.count == 1 and self.chain != self.head:
            raise CheckpointError("a checkpoint of one entry must have chain == head")

    def to_claims(self) -> dict[str, Any]:
        return {"v": self.v, "device_id": self.device_id, "chain": self.chain,
                "count": self.count, "head": self.head, "ts": self.ts}

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Checkpoint:
        """Strict inverse of :meth:`to_claims`: exactly the known claims, nothing else."""
        missing, extra = CLAIMS - claims.keys(), claims.keys() - CLAIMS
        if missing or extra:
            raise CheckpointError(f"checkpoint claims: missing {sorted(missing)}, "
                                  f"unknown {sorted(extra)[:5]}")
        return cls(device_id=claims["device_id"], chain=claims["chain"], count=claims["count"],
                   head=claims["head"], ts=claims["ts"], v=claims["v"])


def sign_checkpoint(cp: Checkpoint, device_key: Ed25519PrivateKey) -> str:
    """The compact JWS of ``cp`` (Ed25519 is deterministic: a pure function of its inputs)."""
    if device_id_for(public_raw(device_key)) != cp.device_id:
        raise CheckpointError(f"checkpoint is for {cp.device_id}: sign it with that device's key")
    header = {"alg": jws.ALG, "kid": cp.device_id, "typ": TYP}
    return jws.sign_payload(jws.canonical_json(cp.to_claims()), device_key, header)


def verify_checkpoint(token: str | bytes, device_public_key: Ed25519PublicKey | bytes
                      ) -> Checkpoint:
    """The checkpoint if ``token`` is one, signed by this device; CheckpointError otherwise."""
    tok = jws.verify_device_token(token, device_public_key, what="checkpoint",
                                  max_bytes=MAX_CHECKPOINT_BYTES, error=CheckpointError, typ=TYP)
    cp = Checkpoint.from_claims(tok.claims)
    if cp.device_id != tok.device_id:
        raise CheckpointError(f"checkpoint names {cp.device_id} but is signed by {tok.device_id}")
    if jws.canonical_json(tok.claims) != tok.payload:
        raise CheckpointError("checkpoint claims are not in canonical form")
    return cp


# ---- where they live --------------------------------------------------------------------------


def checkpoint_prefix(prefix: str, device_id: str) -> str:
    """``<prefix>/<device_id>/ledger/`` (an empty prefix is allowed)."""
    return "/".join(p for p in (prefix.strip("/"), device_id, "ledger") if p) + "/"


def checkpoint_key(prefix: str, device_id: str, cp: Checkpoint) -> str:
    """``<prefix>/<device_id>/ledger/<count, 12 digits>-<head, 16 hex>.checkpoint.jws``: one
    object per head, so two different heads at one count (a fork) are two objects, never one
    overwriting the other; names sort by count."""
    return f"{checkpoint_prefix(prefix, device_id)}{cp.count:012d}-{cp.head[:16]}{SUFFIX}"


def is_checkpoint_key(key: str) -> bool:
    return "/ledger/" in f"/{key}" and key.endswith(SUFFIX)


def check_key(key: str, cp: Checkpoint) -> None:
    """The object's name must say what it holds (a renamed copy is refused)."""
    name = key.rsplit("/", 1)[-1]
    m = _KEY_NAME.fullmatch(name)
    if m is None or int(m.group(1)) != cp.count or m.group(2) != cp.head[:16]:
        raise CheckpointError(f"{key} holds the checkpoint of {cp.count} entries, head "
                              f"{cp.head[:16]}: its name says otherwise")


# ---- the owner's checks (pure) ------------------------------------------------------------------


def not_extended(hashes: Sequence[str], cp: Checkpoint) -> str | None:
    """None when a ledger whose entry hashes are ``hashes`` (entry 1 first) extends ``cp``;
    otherwise why not, in words an owner can act on."""
    if not hashes or hashes[0] != cp.chain:
        return (f"the checkpoint of {cp.count} entries belongs to a ledger whose first entry is "
                f"{cp.chain[:16]}..., not this one's")
    if len(hashes) < cp.count:
        return (f"the device signed a checkpoint of {cp.count} entries (head {cp.head[:16]}...) "
                f"but this ledger has only {len(hashes)}")
    if hashes[cp.count - 1] != cp.head:
        return (f"entry {cp.count} is different from the one the device signed in a checkpoint "
                f"(head {cp.head[:16]}...)")
    return None


def inconsistent(checkpoints: Iterable[Checkpoint]) -> list[str]:
    """Pairs of checkpoints that cannot both be true of one ledger: same chain and count, two
    heads (a fork). Checkpoints of different chains belong to ledgers before and after a reset."""
    seen: dict[tuple[str, int], str] = {}
    problems = []
    for cp in sorted(checkpoints, key=lambda c: (c.chain, c.count, c.head)):
        head = seen.setdefault((cp.chain, cp.count), cp.head)
        if head != cp.head:
            problems.append(f"two checkpoints of {cp.count} entries with different heads "
                            f"({head[:16]}... and {cp.head[:16]}...): the device forked its "
                            "ledger")
    return problems
