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

Errors from the PartStore and from the ``progress`` and ``check`` callbacks propagate unchanged:
whether to abort (a permanent failure, a cancellation) or keep the upload for a later resume (an
outage, a crash) is the caller's decision.

Bounding what is in flight: every part body is a :class:`CheckedReader`, which calls the caller's
``check()`` before its first read and again after every ``CHECK_EVERY_BYTES`` (64 KiB) read, so a
``check`` that raises (consent withdrawn) stops a part mid-body; the HTTP adapter then abandons the
connection and re-raises what ``check`` raised (``CheckedReader.stopped``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypedDict, TypeVar

from uplink.s3_errors import S3NoSuchUpload

MIN_PART_SIZE = 5 * 1024 * 1024  # S3's minimum for every part but the last
MAX_PARTS = 10_000  # S3's maximum number of parts per upload

CHECK_EVERY_BYTES = 64 * 1024  # a cancellation stops a request body within this many bytes
T = TypeVar("T")
Check = Callable[[], None]
"""``check()`` raises to stop a transfer (e.g. consent withdrawn); returns None to go on."""
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

    def upload_part(self, upload_id: str, number: int, body: CheckedReader,
                    checksum_b64: str) -> str:
        """Store one part streamed from ``body`` (rejected on a checksum mismatch); return its
        ETag. What ``body``'s check raised (``body.stopped``) must propagate unchanged."""

    def complete(self, upload_id: str, parts: list[PartRecord]) -> None:
        """Assemble the object from ``parts`` (sorted by PartNumber)."""

    def abort(self, upload_id: str) -> None:
        """Discard the upload and its parts (no error when it is already gone)."""


def effective_part_size(size: int, part_size: int) -> int:
    """``part_size`` grown just enough that ``size`` fits in S3's 10,000 parts."""
    return max(part_size, MIN_PART_SIZE, math.ceil(size / MAX_PARTS))


def part_count(size: int, part_size: int) -> int:
    return max(1, math.ceil(size / part_size))


class CheckedReader:
    """A read-only, seekable view of ``length`` bytes of ``path`` from ``offset``, as an HTTP
    request body: ``check()`` runs before the first read and after every ``CHECK_EVERY_BYTES``
    read (also while botocore hashes the body to sign it), so a cancellation stops the body
    within 64 KiB. What ``check`` raised is kept in ``stopped`` and raised again from every
    later read, so the adapter can tell it from a network error whatever botocore wraps it in.

    Wiring: ``with CheckedReader(path, 0, size, check) as body: client.put_object(Body=body)``
    and, on any exception, ``if body.stopped: raise body.stopped``.
    """

    def __init__(self, path: Path, offset: int, length: int, check: Check | None) -> None:
        self._file = path.open("rb")
        self._offset, self._length, self._check = offset, length, check
        self._pos = 0
        self._unchecked = CHECK_EVERY_BYTES  # check before the very first byte
        self.stopped: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        if self.stopped is not None:
            raise self.stopped
        left = self._length - self._pos
        want = left if size is None or size < 0 else min(size, left)
        if want <= 0:
            return b""
        if self._unchecked >= CHECK_EVERY_BYTES:
            self._run_check()
        want = min(want, CHECK_EVERY_BYTES - self._unchecked)
        self._file.seek(self._offset + self._pos)
        data = self._file.read(want)
        self._pos += len(data)
        self._unchecked += len(data)
        return data

    def _run_check(self) -> None:
        self._unchecked = 0
        if self._check is None:
            return
        try:
            self._check()
        except BaseException as exc:
            self.stopped = exc
            raise

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._length}[whence]
        self._pos = max(0, min(self._length, base + pos))
        return self._pos

    def tell(self) -> int:
        return self._pos

    def __len__(self) -> int:
        return self._length

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> CheckedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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


def part_sha256(path: Path, number: int, part_size: int) -> tuple[str, int]:
    """The base64 SHA-256 of part ``number`` and its length (read in 1 MiB pieces)."""
    digest, length = hashlib.sha256(), 0
    with path.open("rb") as f:
        f.seek((number - 1) * part_size)
        while length < part_size and (piece := f.read(min(1 << 20, part_size - length))):
            digest.update(piece)
            length += len(piece)
    return base64.b64encode(digest.digest()).decode("ascii"), length


def upload_multipart(parts: PartStore, path: Path, *, key: str, size: int, sha256_hex: str,
                     part_size: int, state: ResumeState, progress: Progress | None = None,
                     check: Check | None = None) -> int:
    """Upload ``path`` in parts, resuming from ``state``; return how many parts were sent now.

    Each part is streamed from the file (a :class:`CheckedReader`: ``check`` runs every 64 KiB)
    and carries its own SHA-256 so the store rejects a part corrupted in transit. ``check`` also
    runs before the upload is created and before it is completed.
    """
    part_size = effective_part_size(size, part_size)
    if check is not None:
        check()
    upload_id, done = _bind(state, parts, key, sha256_hex, part_size)
    total = part_count(size, part_size)
    sent = 0
    done_bytes = sum(min(part_size, size - (n - 1) * part_size) for n in done)
    for number in range(1, total + 1):
        if number in done:
            continue
        checksum, length = part_sha256(path, number, part_size)
        with CheckedReader(path, (number - 1) * part_size, length, check) as body:
            etag = parts.upload_part(upload_id, number, body, checksum)
        state.parts.append(PartRecord(PartNumber=number, ETag=etag, ChecksumSHA256=checksum))
        state.parts.sort(key=lambda p: p["PartNumber"])
        state.save()
        sent += 1
        done_bytes += length
        if progress is not None:
            progress(done_bytes, size)
    if check is not None:
        check()
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

    def upload_part(self, upload_id: str, number: int, body: CheckedReader,
                    checksum_b64: str) -> str:
        kwargs = self._kw(UploadId=upload_id, PartNumber=number, Body=body,
                          ContentLength=len(body), ChecksumAlgorithm="SHA256",
                          ChecksumSHA256=checksum_b64)

        def put() -> str:
            body.seek(0)  # a retry sends the part again from its start
            try:
                return str(self.client.upload_part(**kwargs)["ETag"])
            except Exception:
                if body.stopped is not None:
                    raise body.stopped from None  # cancelled: not a network failure
                raise

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
