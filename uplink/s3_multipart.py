"""Resumable multipart uploads: the part bookkeeping, and its boto3 adapter.

``upload_multipart(parts, path, size=..., sha256_hex=..., part_size=..., state=...)`` drives a
:class:`PartStore` (:class:`BotoParts` on a boto3 client, as ``S3ObjectStore`` in uplink/s3.py
uses it; unit tests can use a fake) through create -> upload_part* -> complete, persisting
progress in a :class:`ResumeState`:

* after every part the state holds ``upload_id`` and ``parts`` (``PartNumber``, ``ETag``,
  ``ChecksumSHA256``: exactly what ``complete_multipart_upload`` wants) and ``state.save()`` runs,
  so the caller (the outbox) can write ``state.to_json()`` to its database;
* after a crash the caller passes the saved state back (``ResumeState.from_json``): the parts the
  server still lists are kept, the others re-sent; an upload the server no longer knows (aborted,
  expired or already completed) starts over; a state recorded for another key, file hash or part
  size is abandoned (its upload aborted) and the upload starts over;
* on completion the state is cleared (``upload_id = None``) and saved once more.

Errors from the PartStore and from the ``progress`` callback propagate unchanged: whether to abort
(a permanent failure) or keep the upload for a later resume (an outage, a crash) is the caller's
decision.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypedDict, TypeVar

from uplink.s3_errors import S3NoSuchUpload

MIN_PART_SIZE = 5 * 1024 * 1024  # S3's minimum for every part but the last
MAX_PARTS = 10_000  # S3's maximum number of parts per upload

T = TypeVar("T")
Progress = Callable[[int, int], None]
"""``progress(bytes_done, bytes_total)``, called after each part (or single PUT) is stored."""


class PartRecord(TypedDict):
    """One stored part, in the shape ``complete_multipart_upload`` takes."""

    PartNumber: int
    ETag: str
    ChecksumSHA256: str


@dataclass
class ResumeState:
    """Where a multipart upload stands; mutable, persisted by the caller through ``on_save``.

    Give each upload job its own state; ``on_save(state)`` should store ``state.to_json()``
    durably (it runs after the upload is created, after every part and on completion).
    """

    upload_id: str | None = None
    parts: list[PartRecord] = field(default_factory=list)
    key: str | None = None
    sha256: str | None = None
    part_size: int | None = None
    on_save: Callable[[ResumeState], None] | None = field(default=None, compare=False,
                                                          repr=False)

    def save(self) -> None:
        if self.on_save is not None:
            self.on_save(self)

    def reset(self) -> None:
        self.upload_id, self.parts = None, []
        self.key, self.sha256, self.part_size = None, None, None

    def to_json(self) -> str:
        return json.dumps({"upload_id": self.upload_id, "parts": self.parts, "key": self.key,
                           "sha256": self.sha256, "part_size": self.part_size},
                          sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str,
                  on_save: Callable[[ResumeState], None] | None = None) -> ResumeState:
        """Rebuild a saved state (from ``to_json``); a malformed text raises ValueError."""
        try:
            raw: dict[str, Any] = json.loads(text)
            parts = [PartRecord(PartNumber=int(p["PartNumber"]), ETag=str(p["ETag"]),
                                ChecksumSHA256=str(p["ChecksumSHA256"])) for p in raw["parts"]]
            return cls(upload_id=raw["upload_id"], parts=parts, key=raw["key"],
                       sha256=raw["sha256"], part_size=raw["part_size"], on_save=on_save)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"saved multipart resume state is malformed ({exc}): {text[:200]!r}; "
                             "drop it to restart the upload from the first part") from exc


class PartStore(Protocol):
    """The multipart operations on one object key, as uplink/s3.py provides them."""

    def create(self) -> str:
        """Start an upload; return its UploadId."""

    def list_parts(self, upload_id: str) -> dict[int, str] | None:
        """PartNumber -> ETag of the stored parts, or None when the upload does not exist."""

    def upload_part(self, upload_id: str, number: int, body: bytes, checksum_b64: str) -> str:
        """Store one part (rejected on a checksum mismatch); return its ETag."""

    def complete(self, upload_id: str, parts: list[PartRecord]) -> None:
        """Assemble the object from ``parts`` (sorted by PartNumber)."""

    def abort(self, upload_id: str) -> None:
        """Discard the upload and its parts (no error when it is already gone)."""


def effective_part_size(size: int, part_size: int) -> int:
    """``part_size`` grown just enough that ``size`` fits in S3's 10,000 parts."""
    return max(part_size, MIN_PART_SIZE, math.ceil(size / MAX_PARTS))


def part_count(size: int, part_size: int) -> int:
    return max(1, math.ceil(size / part_size))


def read_part(path: Path, number: int, part_size: int) -> bytes:
    with path.open("rb") as f:
        f.seek((number - 1) * part_size)
        return f.read(part_size)


def _bind(state: ResumeState, parts: PartStore, key: str, sha256_hex: str,
          part_size: int) -> tuple[str, set[int]]:
    """Check a saved state against the server; return the UploadId and the parts it holds."""
    if state.upload_id is not None and (state.key, state.sha256, state.part_size) != (
            key, sha256_hex, part_size):
        parts.abort(state.upload_id)  # recorded for another object: its parts are useless
        state.reset()
    if state.upload_id is not None:
        listed = parts.list_parts(state.upload_id)
        if listed is None:
            state.reset()  # aborted, expired or already completed: start over
        else:
            state.parts = [p for p in state.parts if listed.get(p["PartNumber"]) == p["ETag"]]
    upload_id = state.upload_id
    if upload_id is None:
        upload_id = state.upload_id = parts.create()
        state.key, state.sha256, state.part_size, state.parts = key, sha256_hex, part_size, []
    state.save()
    return upload_id, {p["PartNumber"] for p in state.parts}


def upload_multipart(parts: PartStore, path: Path, *, key: str, size: int, sha256_hex: str,
                     part_size: int, state: ResumeState, progress: Progress | None = None) -> int:
    """Upload ``path`` in parts, resuming from ``state``; return how many parts were sent now.

    Reads one part at a time (memory ~ ``part_size``). Each part carries its own SHA-256 so the
    store rejects a part corrupted in transit.
    """
    part_size = effective_part_size(size, part_size)
    upload_id, done = _bind(state, parts, key, sha256_hex, part_size)
    total = part_count(size, part_size)
    sent = 0
    done_bytes = sum(min(part_size, size - (n - 1) * part_size) for n in done)
    for number in range(1, total + 1):
        if number in done:
            continue
        body = read_part(path, number, part_size)
        checksum = base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")
        etag = parts.upload_part(upload_id, number, body, checksum)
        state.parts.append(PartRecord(PartNumber=number, ETag=etag, ChecksumSHA256=checksum))
        state.parts.sort(key=lambda p: p["PartNumber"])
        state.save()
        sent += 1
        done_bytes += len(body)
        if progress is not None:
            progress(done_bytes, size)
    parts.complete(upload_id, list(state.parts))
    state.reset()
    state.save()
    return sent


class Caller(Protocol):
    """Runs one S3 request with retries and error translation (``S3ObjectStore.call``)."""

    def __call__(self, what: str, fn: Callable[[], T], /) -> T: ...


@dataclass(frozen=True)
class BotoParts:
    """The :class:`PartStore` for one key on a boto3 S3 ``client``, every request via ``call``.

    Uploads are created with ``ChecksumAlgorithm=SHA256`` and the file's hex digest as metadata
    ``x-amz-meta-sha256`` (the completed object's own checksum is composite).
    """

    call: Caller
    client: Any
    bucket: str
    key: str
    sha256_hex: str = ""
    content_type: str = "application/octet-stream"

    def _kw(self, **extra: Any) -> dict[str, Any]:
        return {"Bucket": self.bucket, "Key": self.key, **extra}

    def create(self) -> str:
        kwargs = self._kw(ChecksumAlgorithm="SHA256", ContentType=self.content_type,
                          Metadata={"sha256": self.sha256_hex})

        def create() -> str:
            return str(self.client.create_multipart_upload(**kwargs)["UploadId"])

        return self.call(f"CREATE upload {self.key}", create)

    def list_parts(self, upload_id: str) -> dict[int, str] | None:
        listed: dict[int, str] = {}
        marker = 0

        def page() -> dict[str, Any]:
            return dict(self.client.list_parts(**self._kw(UploadId=upload_id,
                                                          PartNumberMarker=marker)))

        try:
            while True:
                response = self.call(f"LIST parts {self.key}", page)
                listed.update({int(p["PartNumber"]): str(p["ETag"])
                               for p in response.get("Parts", [])})
                if not response.get("IsTruncated"):
                    return listed
                marker = int(response["NextPartNumberMarker"])
        except S3NoSuchUpload:
            return None

    def upload_part(self, upload_id: str, number: int, body: bytes, checksum_b64: str) -> str:
        kwargs = self._kw(UploadId=upload_id, PartNumber=number, Body=body,
                          ChecksumAlgorithm="SHA256", ChecksumSHA256=checksum_b64)

        def put() -> str:
            return str(self.client.upload_part(**kwargs)["ETag"])

        return self.call(f"PUT part {number} of {self.key}", put)

    def complete(self, upload_id: str, parts: list[PartRecord]) -> None:
        kwargs = self._kw(UploadId=upload_id, MultipartUpload={"Parts": parts})
        self.call(f"COMPLETE upload {self.key}",
                  lambda: self.client.complete_multipart_upload(**kwargs))

    def abort(self, upload_id: str) -> None:
        try:
            self.call(f"ABORT upload {self.key}",
                      lambda: self.client.abort_multipart_upload(**self._kw(UploadId=upload_id)))
        except S3NoSuchUpload:
            return  # already gone: that is what we wanted
