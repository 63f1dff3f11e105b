"""Clip progress: the device-signed record of a clip uploaded *while it is being recorded*.

A doorbell torn off the wall mid-event must already have sent that event's footage. While a clip
is recorded (and ``clips`` consent is in force), the device uploads the sealed age stream as it
grows, in segments of whole sealed chunks: ``<base>.live-NNNN.age`` holds bytes ``[offset, offset +
size)`` of the clip's ``.mp4.age`` file, and ``<base>.progress.jws`` (overwritten after each
segment) lists every segment so far with its SHA-256, signed by the device. Concatenated in order,
the segments are a prefix of the sealed clip: the owner opens it with
``AgeReader(..., allow_truncated=True)`` and gets a playable fragmented MP4 up to the last
segment. When the whole clip is uploaded with its :mod:`uplink.manifest` manifest, the device
deletes the segments and the progress record; a progress record without a manifest is a clip the
device stopped recording (crash, power, destruction) or is still recording.

The bucket learns what it learns of any upload: sizes and upload times. ``<base>`` is the same
``<prefix>/<device_id>/YYYY/MM/DD/<clip_id>`` as the clip's other objects
(:func:`uplink.objectstore.object_keys`).

Usage (device, uploads lane)::

    progress = ClipProgress(device_id, clip_id, segments=(*old, Segment(key, off, n, sha)),
                            recipients=owners, updated_at=iso_utc(now))
    store.put_bytes(progress_key(base), sign_progress(progress, device_key).encode())

Owner::

    progress = verify_progress(token, device_public_key)   # ClipProgressError if not genuine
    for seg in progress.segments: ... download, check seg.sha256, append ...
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from uplink import jws
from uplink.errors import (  # re-exported: this module's callers catch them here
    ClipProgressError as ClipProgressError,
)
from uplink.jws import PublicKey
from uplink.keys import device_id_for, public_raw
from uplink.manifest import (
    MAX_RECIPIENTS,
)
from uplink.wire import (
    MAX_INT,
    is_device_id,
    is_hex64,
    is_id,
    is_int,
    is_iso_utc,
)

VERSION = 1
KIND = "clip-progress"
CLAIMS = frozenset({"v", "kind", "device_id", "clip_id", "segments", "recipients", "updated_at"})
SEGMENT_FIELDS = frozenset({"key", "offset", "size", "sha256"})
MAX_SEGMENTS = 2000  # 2 s segments: over an hour of one clip
MAX_PROGRESS_BYTES = 512 * 1024
SEGMENT_SUFFIX = re.compile(r"\.live-(\d{4,6})\.age")


def segment_key(base: str, n: int) -> str:
    """The object key of segment ``n`` (from 1) of the clip whose keys start with ``base``."""
    return f"{base}.live-{n:04d}.age"


def progress_key(base: str) -> str:
    return f"{base}.progress.jws"


@dataclass(frozen=True)
class Segment:
    """Bytes ``[offset, offset + size)`` of the sealed clip, stored at ``key``."""

    key: str
    offset: int
    size: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "offset": self.offset, "size": self.size, "sha256": self.sha256}

    @classmethod
    def from_json(cls, obj: object, i: int) -> Segment:
        if not isinstance(obj, dict) or set(obj) != SEGMENT_FIELDS:
            raise ClipProgressError(f"segments[{i}] must hold exactly {sorted(SEGMENT_FIELDS)}")
        return cls(obj["key"], obj["offset"], obj["size"], obj["sha256"])


@dataclass(frozen=True, kw_only=True)
class ClipProgress:
    """What of a clip in progress is in the bucket; construction validates every field."""

    v: int = VERSION
    device_id: str
    clip_id: str
    segments: tuple[Segment, ...]
    recipients: tuple[str, ...]
    updated_at: str

    def __post_init__(self) -> None:
        if not is_int(self.v) or self.v != VERSION:
            raise ClipProgressError(f"unsupported progress version {self.v!r}: expected {VERSION}")
        if not is_device_id(self.device_id):
            raise ClipProgressError("device_id must be 'dw-' and 16 of a-z, 2-7")
        if not is_id(self.clip_id):
            raise ClipProgressError("clip_id must be 1-64 of A-Za-z0-9._- (not starting with .)")
        if not is_iso_utc(self.updated_at):
            raise ClipProgressError("updated_at must be an ISO 8601 date-time in UTC")
        rs = self.recipients
        if (not isinstance(rs, tuple) or not 1 <= len(rs) <= MAX_RECIPIENTS
                or not all(isinstance(r, str) and r.startswith("age1") for r in rs)):
            raise ClipProgressError(f"recipients must be 1..{MAX_RECIPIENTS} age1... keys")
        self._check_segments()

    def _check_segments(self) -> None:
        segs = self.segments
        if not isinstance(segs, tuple) or not 1 <= len(segs) <= MAX_SEGMENTS:
            raise ClipProgressError(f"segments must be 1..{MAX_SEGMENTS} segments")
        pattern = re.compile(rf"(?:.*/)?{self.device_id}/\d{{4}}/\d{{2}}/\d{{2}}/"
                             rf"{re.escape(self.clip_id)}" + SEGMENT_SUFFIX.pattern)
        end = 0
        for i, s in enumerate(segs, 1):
            if not isinstance(s, Segment):
                raise ClipProgressError(f"segments[{i - 1}] must be a Segment")
            m = pattern.fullmatch(s.key) if isinstance(s.key, str) else None
            if m is None or int(m.group(1)) != i:
                raise ClipProgressError(f"segments[{i - 1}].key is not segment {i} of clip "
                                        f"{self.clip_id}")
            if not is_int(s.offset) or s.offset != end:  # contiguous from the file's start
                raise ClipProgressError(f"segments[{i - 1}].offset must be {end}")
            if not is_int(s.size) or not 0 < s.size <= MAX_INT - end:
                raise ClipProgressError(f"segments[{i - 1}].size must be a positive int")
            if not is_hex64(s.sha256):
                raise ClipProgressError(f"segments[{i - 1}].sha256 must be 64 lowercase hex")
            end += s.size

    @property
    def size(self) -> int:
        """Bytes of the sealed clip in the bucket so far."""
        last = self.segments[-1]
        return last.offset + last.size

    def to_claims(self) -> dict[str, Any]:
        return {"v": self.v, "kind": KIND, "device_id": self.device_id, "clip_id": self.clip_id,
                "segments": [s.to_json() for s in self.segments],
                "recipients": list(self.recipients), "updated_at": self.updated_at}

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> ClipProgress:
        """Strict inverse of :meth:`to_claims`."""
        missing, extra = CLAIMS - claims.keys(), claims.keys() - CLAIMS
        if missing or extra:
            raise ClipProgressError(f"progress claims: missing {sorted(missing)}, unknown "
                                    f"{sorted(extra)[:5]}")
        if claims["kind"] != KIND:
            raise ClipProgressError(f"kind must be {KIND!r}")
        segs, recipients = claims["segments"], claims["recipients"]
        if not isinstance(segs, list) or not isinstance(recipients, list):
            raise ClipProgressError("segments and recipients must be JSON arrays")
        return cls(v=claims["v"], device_id=claims["device_id"], clip_id=claims["clip_id"],
                   segments=tuple(Segment.from_json(s, i) for i, s in enumerate(segs)),
                   recipients=tuple(recipients), updated_at=claims["updated_at"])


def extended(previous: ClipProgress | None, *, device_id: str, clip_id: str, key: str,
             size: int, sha256: str, recipients: Sequence[str], updated_at: str) -> ClipProgress:
    """The progress record after one more segment (``previous`` None for the first)."""
    segs = previous.segments if previous is not None else ()
    offset = previous.size if previous is not None else 0
    return ClipProgress(device_id=device_id, clip_id=clip_id,
                        segments=(*segs, Segment(key, offset, size, sha256)),
                        recipients=tuple(recipients), updated_at=updated_at)


def sign_progress(progress: ClipProgress, device_key: Ed25519PrivateKey) -> str:
    """The compact JWS (EdDSA, kid = device id) to store at :func:`progress_key`."""
    if device_id_for(public_raw(device_key)) != progress.device_id:
        raise ClipProgressError(f"progress is for {progress.device_id}: sign with its key")
    token = jws.sign(progress.to_claims(), device_key, kid=progress.device_id)
    if len(token) > MAX_PROGRESS_BYTES:
        raise ClipProgressError(f"progress JWS is {len(token)} bytes, over {MAX_PROGRESS_BYTES}")
    return token


def verify_progress(token: str | bytes, device_public_key: PublicKey) -> ClipProgress:
    """The progress record if the device signed it (EdDSA pinned); ClipProgressError otherwise."""
    tok = jws.verify_device_token(token, device_public_key, what="progress",
                                  max_bytes=MAX_PROGRESS_BYTES, error=ClipProgressError)
    progress, device_id = ClipProgress.from_claims(tok.claims), tok.device_id
    if progress.device_id != device_id:
        raise ClipProgressError(f"progress names {progress.device_id} but is signed by {device_id}")
    return progress
