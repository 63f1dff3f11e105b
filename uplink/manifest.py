"""Clip manifests: the device-signed record of one upload, and the owner's chain check over them.

A manifest lies beside each uploaded clip as ``<clip_id>.manifest.jws``. It names the sealed
objects with their sizes and SHA-256, the owners they are sealed to, and the capture times
sealed to those owners, so the bucket learns only sizes and upload times. Manifests form a hash
chain (``seq`` from 1, ``prev_manifest`` = SHA-256 of the previous manifest's JWS bytes, 64 zeros
for the first), so the owner sees a clip deleted from the bucket or a manifest replaced.

Device side (the uplink thread, after the objects are stored)::

    times = seal_times(started_at=..., ended_at=..., duration_s=..., recipients=owners)
    m = Manifest(device_id=dev, clip_id=cid, seq=state.last_seq + 1, prev_manifest=state.last_hash,
                 objects={"clip": ClipObject(key, size, sha), "snapshot": None},
                 recipients=tuple(str(r) for r in owners), sealed_times=times,
                 uploaded_at=iso_utc(now))
    token = sign_manifest(m, device_key)
    state = state.advance(m.seq, token)   # persist with the upload job, in the same transaction

Owner side::

    m = verify_manifest(token, device_public_key)     # ManifestError unless the device signed it
    times = unseal_times(m, identities)                # {"started_at", "ended_at", "duration_s"}
    report = check_manifest_chain([(token, m), ...])   # missing / out of order / broken / dupes

Also here, because :mod:`uplink.messages` shares them: :class:`SeqState` (the last seq and hash
of a chain, persisted by the caller), :func:`token_hash`, and the strict sealed-JSON helpers
:func:`seal_json` / :func:`open_sealed_json`. The JSON, id and time rules they build on are in
:mod:`uplink.wire`; device-token verification is :func:`uplink.jws.verify_device_token`.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from uplink import jws
from uplink.age import VERSION_LINE, AgeError, decrypt, encrypt
from uplink.agekeys import Identity, Recipient
from uplink.errors import (  # re-exported: this module's callers catch them here
    ManifestError as ManifestError,
)
from uplink.errors import UplinkError
from uplink.jws import PublicKey
from uplink.keys import device_id_for, public_raw
from uplink.wire import (
    MAX_INT,
    is_device_id,
    is_hex64,
    is_id,
    is_int,
    is_iso_utc,
    std_b64,
    std_b64_decode,
    strict_json_object,
)

VERSION = 1
ZERO_HASH = "0" * 64
MAX_MANIFEST_BYTES = 32 * 1024  # ~40 owners; an ``uploaded`` message must still fit 128 KB
MAX_RECIPIENTS = 32
MANIFEST_CLAIMS = frozenset({
    "v", "device_id", "clip_id", "seq", "prev_manifest", "objects", "recipients",
    "sealed_times", "uploaded_at",
})  # fmt: skip
TIMES_FIELDS = frozenset({"started_at", "ended_at", "duration_s"})
# Present (and true) only on a clip cut short by a crash or power loss and recovered on the device:
# sealed with the times, so the bucket does not learn which clips ended abnormally.
OPTIONAL_TIMES_FIELDS = frozenset({"truncated"})
# <prefix>/<device id>/YYYY/MM/DD/<clip id><suffix>: the device id and the file name are checked
# against the manifest's own
_DATED_KEY = re.compile(r"(?:.*/)?([^/]+)/\d{4}/\d{2}/\d{2}/([^/]+)")
OBJECT_SUFFIXES = {"clip": ".mp4.age", "snapshot": ".jpg.age"}

# --- helpers shared with uplink.messages ---------------------------------------------------


def token_hash(token: str | bytes) -> str:
    """Hex SHA-256 of a JWS's ASCII bytes: the ``prev`` / ``prev_manifest`` of its successor."""
    raw = token.encode("ascii") if isinstance(token, str) else bytes(token)
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class SeqState:
    """The last ``seq`` and JWS hash of one signed chain; ``SeqState()`` before the first.

    The caller persists it (the outbox keeps it in its database, in the same transaction as the
    signed item) and passes it back in: signing is a pure function of it.
    """

    last_seq: int = 0
    last_hash: str = ZERO_HASH

    def __post_init__(self) -> None:
        if not is_int(self.last_seq) or not 0 <= self.last_seq < MAX_INT:
            raise ValueError(f"SeqState.last_seq must be an int in 0..{MAX_INT - 1}")
        if not is_hex64(self.last_hash):
            raise ValueError("SeqState.last_hash must be 64 lowercase hex digits")

    def advance(self, seq: int, token: str | bytes) -> SeqState:
        """The state after ``token`` (which carries ``seq``) was signed."""
        if seq != self.last_seq + 1:
            raise ValueError(f"seq {seq} does not follow {self.last_seq}: sign with the next seq")
        return SeqState(seq, token_hash(token))


def seal_json(
    obj: Mapping[str, Any], recipients: Sequence[Recipient], error: type[UplinkError]
) -> str:
    """Standard base64 of the age file sealing ``obj``'s canonical JSON to ``recipients``."""
    if not recipients:
        raise error("no recipients to seal to: pass the owners' age1... Recipients")
    try:
        return std_b64(encrypt(jws.canonical_json(obj), recipients))
    except (AgeError, jws.JwsError) as e:
        raise error(f"cannot seal: {e}") from e


def check_sealed(text: object, what: str, error: type[UplinkError]) -> bytes:
    """Decode ``text`` (from :func:`seal_json`) and check it starts like an age file."""
    raw = std_b64_decode(text, what, error)
    if not raw.startswith(VERSION_LINE + b"\n"):
        raise error(f"{what} is not an age v1 file")
    return raw


def open_sealed_json(
    sealed: bytes, identities: Sequence[Identity], what: str, error: type[UplinkError]
) -> dict[str, Any]:
    """Decrypt an age blob with the owner ``identities`` and parse it as a strict JSON object."""
    if not identities:
        raise error(f"{what} is sealed to the owners: pass an owner identity to open it")
    try:
        plain = decrypt(sealed, identities)
    except AgeError as e:  # NoIdentityMatch, HeaderError, PayloadError, TruncatedError
        raise error(f"{what} cannot be opened ({type(e).__name__}): {e}") from e
    return strict_json_object(plain, f"{what} (unsealed)", error)


# --- the manifest ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipObject:
    """One sealed object in the bucket: its key, size in bytes and hex SHA-256 (of the sealed
    bytes, which are what the bucket holds and the owner downloads)."""

    key: str
    size: int
    sha256: str

    def __post_init__(self) -> None:
        key = self.key
        if not isinstance(key, str) or not 0 < len(key) <= 1024 or not key.isascii():
            raise ManifestError("object key must be 1-1024 ASCII characters")
        if not key.isprintable():
            raise ManifestError("object key must not contain control characters")
        if not is_int(self.size) or not 0 <= self.size <= MAX_INT:
            raise ManifestError(f"object size must be an int in 0..{MAX_INT}")
        if not is_hex64(self.sha256):
            raise ManifestError("object sha256 must be 64 lowercase hex digits")

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "size": self.size, "sha256": self.sha256}

    @classmethod
    def from_json(cls, obj: object, where: str) -> ClipObject:
        if not isinstance(obj, dict) or set(obj) != {"key", "size", "sha256"}:
            raise ManifestError(f"objects.{where} must be an object with exactly key, size, sha256")
        try:
            return cls(obj["key"], obj["size"], obj["sha256"])
        except ManifestError as e:
            raise ManifestError(f"objects.{where}: {e}") from e


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """A clip upload's manifest. ``objects`` has ``"clip"``, ``"snapshot"`` or both (None or
    absent when there is none: a clip uploaded under ``clips`` consent without ``snapshots``,
    or a snapshot alone under ``snapshots`` consent only); keys must be
    ``.../<device_id>/YYYY/MM/DD/<clip_id>`` + ``.mp4.age`` / ``.jpg.age`` as uplink.s3 names
    them. Construction validates every field.

    Privacy: ``clip_id`` appears in object names, so it must not reveal capture times; only the
    sealed ``sealed_times`` may."""

    v: int = VERSION
    device_id: str
    clip_id: str
    seq: int
    prev_manifest: str
    objects: Mapping[str, ClipObject | None]
    recipients: tuple[str, ...]
    sealed_times: str
    uploaded_at: str

    def __post_init__(self) -> None:
        if not is_int(self.v) or self.v != VERSION:
            raise ManifestError(f"unsupported manifest version {self.v!r}: expected {VERSION}")
        if not is_device_id(self.device_id):
            raise ManifestError("device_id must be 'dw-' and 16 of a-z, 2-7")
        if not is_id(self.clip_id):
            raise ManifestError("clip_id must be 1-64 of A-Za-z0-9._- (not starting with '.')")
        if not is_int(self.seq) or not 1 <= self.seq <= MAX_INT:
            raise ManifestError(f"seq must be an int in 1..{MAX_INT}")
        if not is_hex64(self.prev_manifest):
            raise ManifestError("prev_manifest must be 64 lowercase hex digits")
        # normalised: only the objects present, so {"snapshot": None} equals no snapshot
        object.__setattr__(self, "objects", self._check_objects())
        self._check_recipients()
        check_sealed(self.sealed_times, "sealed_times", ManifestError)
        if not is_iso_utc(self.uploaded_at):
            raise ManifestError("uploaded_at must be an ISO 8601 date-time in UTC")

    def _check_objects(self) -> dict[str, ClipObject]:
        if not isinstance(self.objects, Mapping) or not set(self.objects) <= set(OBJECT_SUFFIXES):
            raise ManifestError('objects must map "clip" and/or "snapshot" to objects')
        present = {k: v for k, v in self.objects.items() if v is not None}
        if not present:
            raise ManifestError('objects must include "clip" or "snapshot"')
        for name, obj in present.items():
            if not isinstance(obj, ClipObject):
                raise ManifestError(f"objects.{name} must be a ClipObject")
            # one compiled pattern for every manifest (a pattern per clip missed re's cache: the
            # owner app checks 1,000 manifests on a cold start); then the two parts compared
            m = _DATED_KEY.fullmatch(obj.key)
            if m is None or m.group(1) != self.device_id \
                    or m.group(2) != self.clip_id + OBJECT_SUFFIXES[name]:
                raise ManifestError(
                    f"objects.{name}.key {obj.key[:80]!r} is not <prefix>/{self.device_id}/"
                    f"YYYY/MM/DD/{self.clip_id}{OBJECT_SUFFIXES[name]}"
                )
        return present

    def _check_recipients(self) -> None:
        rs = self.recipients
        if not isinstance(rs, tuple) or not 1 <= len(rs) <= MAX_RECIPIENTS:
            raise ManifestError(f"recipients must be a tuple of 1..{MAX_RECIPIENTS} age1... keys")
        for r in rs:
            try:
                Recipient.parse(r if isinstance(r, str) else "")
            except AgeError as e:
                raise ManifestError(f"recipients: {e}") from e
        if len(set(rs)) != len(rs):
            raise ManifestError("recipients lists a key twice")

    @property
    def clip(self) -> ClipObject | None:
        """The video; None for a snapshot-only upload."""
        return self.objects.get("clip")

    @property
    def snapshot(self) -> ClipObject | None:
        return self.objects.get("snapshot")

    def to_claims(self) -> dict[str, Any]:
        """The JSON claims that get signed (a missing snapshot is omitted)."""
        return {
            "v": self.v, "device_id": self.device_id, "clip_id": self.clip_id, "seq": self.seq,
            "prev_manifest": self.prev_manifest,
            "objects": {k: v.to_json() for k, v in sorted(self.objects.items()) if v},
            "recipients": list(self.recipients), "sealed_times": self.sealed_times,
            "uploaded_at": self.uploaded_at,
        }  # fmt: skip

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Manifest:
        """Strict inverse of :meth:`to_claims`; raises ManifestError naming the problem."""
        missing, extra = MANIFEST_CLAIMS - claims.keys(), claims.keys() - MANIFEST_CLAIMS
        if missing or extra:
            raise ManifestError(
                f"manifest claims: missing {sorted(missing)}, unknown {sorted(extra)[:5]}"
            )
        objs = claims["objects"]
        if not isinstance(objs, dict):
            raise ManifestError("objects must be a JSON object")
        unknown = set(objs) - set(OBJECT_SUFFIXES)
        if unknown:
            raise ManifestError(f"objects has unknown entries {sorted(unknown)[:5]}")
        recipients = claims["recipients"]
        if not isinstance(recipients, list):
            raise ManifestError("recipients must be a JSON array")
        return cls(
            v=claims["v"], device_id=claims["device_id"], clip_id=claims["clip_id"],
            seq=claims["seq"], prev_manifest=claims["prev_manifest"],
            objects={k: ClipObject.from_json(v, k) for k, v in objs.items()},
            recipients=tuple(recipients), sealed_times=claims["sealed_times"],
            uploaded_at=claims["uploaded_at"],
        )  # fmt: skip


def seal_times(
    *, started_at: str, ended_at: str, duration_s: float, recipients: Sequence[Recipient],
    truncated: bool = False,
) -> str:
    """``sealed_times`` for a manifest: the capture times, readable only by the owners.
    ``truncated`` marks a clip recovered after a crash (its end is where the recording stopped)."""
    times: dict[str, Any] = {"started_at": started_at, "ended_at": ended_at,
                             "duration_s": duration_s}
    if truncated:
        times["truncated"] = True
    _check_times(times)
    return seal_json(times, recipients, ManifestError)


def _check_times(times: Mapping[str, Any]) -> None:
    if not TIMES_FIELDS <= set(times) <= TIMES_FIELDS | OPTIONAL_TIMES_FIELDS:
        raise ManifestError(f"sealed times must hold exactly {sorted(TIMES_FIELDS)}, and "
                            f"optionally {sorted(OPTIONAL_TIMES_FIELDS)}")
    if "truncated" in times and times["truncated"] is not True:
        raise ManifestError("sealed times: truncated, when present, must be true")
    for name in ("started_at", "ended_at"):
        if not is_iso_utc(times[name]):
            raise ManifestError(f"sealed times: {name} must be an ISO 8601 date-time in UTC")
    d = times["duration_s"]
    if not (is_int(d) or isinstance(d, float)) or not math.isfinite(d) or d < 0:
        raise ManifestError("sealed times: duration_s must be a finite number >= 0")


def unseal_times(manifest: Manifest, identities: Sequence[Identity]) -> dict[str, Any]:
    """``{"started_at", "ended_at", "duration_s"}`` (and ``"truncated": true`` for a clip recovered
    after a crash) opened with an owner identity."""
    raw = check_sealed(manifest.sealed_times, "sealed_times", ManifestError)
    times = open_sealed_json(raw, identities, f"sealed_times of clip {manifest.clip_id}",
                             ManifestError)
    _check_times(times)
    return times


def sign_manifest(manifest: Manifest, device_key: Ed25519PrivateKey) -> str:
    """The compact JWS (EdDSA, kid = device id) to store as ``<clip_id>.manifest.jws``."""
    key_id = device_id_for(public_raw(device_key))
    if key_id != manifest.device_id:
        raise ManifestError(
            f"manifest is for {manifest.device_id} but the key is {key_id}'s: sign with that "
            "device's key"
        )
    token = jws.sign(manifest.to_claims(), device_key, kid=manifest.device_id)
    if len(token) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"manifest JWS is {len(token)} bytes, over {MAX_MANIFEST_BYTES}")
    return token


def verify_manifest(token: str | bytes, device_public_key: PublicKey) -> Manifest:
    """The manifest if the device signed it (algorithm pinned to EdDSA); ManifestError otherwise.

    Also checks that the manifest names the signing device (device_id == device_id_for(key))."""
    tok = jws.verify_device_token(token, device_public_key, what="manifest",
                                  max_bytes=MAX_MANIFEST_BYTES, error=ManifestError)
    manifest, device_id = Manifest.from_claims(tok.claims), tok.device_id
    if manifest.device_id != device_id:
        raise ManifestError(
            f"manifest names device {manifest.device_id} but is signed by {device_id}"
        )
    return manifest


# --- chain check -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainReport:
    """What :func:`check_manifest_chain` found. ``missing`` are inclusive seq ranges (a clip
    deleted from the bucket, never uploaded, or forgotten on the owner's order);
    ``out_of_order``: seqs uploaded before a lower seq; ``broken``: seqs whose ``prev_manifest``
    is not the hash of the manifest before them; ``duplicates``: seqs seen more than once."""

    device_id: str | None
    count: int
    first_seq: int | None
    last_seq: int | None
    missing: tuple[tuple[int, int], ...]
    out_of_order: tuple[int, ...]
    broken: tuple[int, ...]
    duplicates: tuple[int, ...]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.out_of_order or self.broken or self.duplicates)

    @property
    def missing_count(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.missing)


def check_manifest_chain(items: Iterable[tuple[str | bytes, Manifest]]) -> ChainReport:
    """Check one device's verified manifests, given as ``(token, manifest)`` in any order.

    Sorts by seq; seqs before the first one present count as missing (the chain starts at 1).
    A missing newest manifest cannot be seen from the chain alone: compare ``last_seq`` with the
    latest ``uploaded`` message. Raises ManifestError for manifests of several devices.
    """
    by_seq: dict[int, list[tuple[str, Manifest]]] = {}
    devices: set[str] = set()
    count = 0
    for token, m in items:
        by_seq.setdefault(m.seq, []).append((token_hash(token), m))
        devices.add(m.device_id)
        count += 1
    if len(devices) > 1:
        raise ManifestError(f"manifests of {len(devices)} devices: check each device on its own")
    seqs = sorted(by_seq)
    missing: list[tuple[int, int]] = []
    broken: list[int] = []
    out_of_order: list[int] = []
    expected, latest = 1, None
    for seq in seqs:
        if seq > expected:
            missing.append((expected, seq - 1))
        expected = seq + 1
        entries = by_seq[seq]
        # a link is checkable only when the manifest before it is here (seq 1: the zero hash)
        prev_hashes = {ZERO_HASH} if seq == 1 else {h for h, _ in by_seq.get(seq - 1, [])}
        if prev_hashes and any(m.prev_manifest not in prev_hashes for _, m in entries):
            broken.append(seq)
        times = [datetime.fromisoformat(m.uploaded_at) for _, m in entries]
        if latest is not None and min(times) < latest:
            out_of_order.append(seq)
        latest = max([*times, latest] if latest is not None else times)
    return ChainReport(
        device_id=next(iter(devices), None), count=count,
        first_seq=seqs[0] if seqs else None, last_seq=seqs[-1] if seqs else None,
        missing=tuple(missing), out_of_order=tuple(out_of_order), broken=tuple(broken),
        duplicates=tuple(s for s in seqs if len(by_seq[s]) > 1),
    )  # fmt: skip

