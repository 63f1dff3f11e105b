"""The object-store port and what goes with it, free of boto3 (so the daemon imports boto3 only
when a bucket is configured): :class:`S3Settings`, object keys, file digests, and the
:class:`ObjectStore` protocol that :class:`uplink.s3.S3ObjectStore` implements.

Usage: build ``S3Settings`` from the config, hand it to ``uplink.s3.S3ObjectStore`` (imported where
a bucket is configured); code that only moves objects depends on ``ObjectStore``.
"""

from __future__ import annotations

import builtins
import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal, Protocol

from uplink.s3_multipart import MIN_PART_SIZE, Check, Progress, ResumeState

MiB = 1024 * 1024


@dataclass(frozen=True)
class S3Settings:
    """The ``[s3]`` config section. ``endpoint_url=None`` means AWS; ``credentials_file`` (AWS
    shared-credentials INI, profile ``default``) overrides the standard boto3 chain (environment
    ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``~/.aws/credentials``, instance roles)."""

    bucket: str
    endpoint_url: str | None = None
    prefix: str = "doorward"
    region: str = "us-east-1"
    addressing_style: Literal["path", "virtual", "auto"] = "auto"
    credentials_file: Path | None = None
    multipart_threshold_bytes: int = 8 * MiB
    part_size_bytes: int = 8 * MiB
    max_attempts: int = 5
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0
    # Kernel send buffer per connection: bounds what can still leave once an upload is
    # cancelled (see uplink.s3._bound_send_buffer); 128 KiB keeps ~20 Mbit/s at 50 ms RTT.
    send_buffer_bytes: int = 128 * 1024

    def __post_init__(self) -> None:
        if not self.bucket:
            raise ValueError("[s3] bucket is empty: name the bucket the device uploads to")
        if self.addressing_style not in ("path", "virtual", "auto"):
            raise ValueError(f"[s3] addressing_style must be path, virtual or auto, "
                             f"not {self.addressing_style!r}")
        if self.part_size_bytes < MIN_PART_SIZE:
            raise ValueError(f"[s3] part_size_bytes = {self.part_size_bytes} is below S3's "
                             f"minimum part size {MIN_PART_SIZE} (5 MiB): raise it")
        if self.max_attempts < 1:
            raise ValueError(f"[s3] max_attempts must be >= 1, not {self.max_attempts}")

    @property
    def endpoint_name(self) -> str:
        return self.endpoint_url or f"AWS S3 ({self.region})"


# ---------------------------------------------------------------------------------------------
# Keys and digests

_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class ClipKeys:
    """The three object keys of one uploaded clip."""

    clip: str
    snapshot: str
    manifest: str


def object_keys(prefix: str, device_id: str, clip_id: str, upload_day: date) -> ClipKeys:
    """``<prefix>/<device_id>/<YYYY>/<MM>/<DD>/<clip_id>.{mp4.age,jpg.age,manifest.jws}``.

    ``upload_day`` is the UTC day of the upload (never the capture time: the bucket learns no
    more than upload days). An empty prefix is allowed.
    """
    for name, value in (("device_id", device_id), ("clip_id", clip_id)):
        if not _SAFE_ID.fullmatch(value):
            raise ValueError(f"{name} {value!r} cannot go into an object key: use letters, "
                             "digits, '.', '_' and '-' only")
    parts = [prefix.strip("/"), device_id, f"{upload_day:%Y}", f"{upload_day:%m}",
             f"{upload_day:%d}"]
    base = "/".join(p for p in parts if p) + f"/{clip_id}"
    return ClipKeys(clip=f"{base}.mp4.age", snapshot=f"{base}.jpg.age",
                    manifest=f"{base}.manifest.jws")


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks (constant memory)."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# ---------------------------------------------------------------------------------------------
# The port


@dataclass(frozen=True)
class ObjectInfo:
    """What the store says about an object; ``sha256`` (hex) from our metadata or a
    non-composite checksum, None if the object has neither."""

    key: str
    size: int
    sha256: str | None


@dataclass(frozen=True)
class PutResult:
    key: str
    size: int
    sha256: str
    skipped: bool  # already stored with this size and digest: nothing was sent
    parts_sent: int = 0  # multipart only: parts sent by this call (a resume sends fewer)


@dataclass(frozen=True)
class Fetched:
    """A downloaded object: its size and the SHA-256 of the bytes received."""

    key: str
    size: int
    sha256: str


class ObjectStore(Protocol):
    """Where sealed clips go. ``S3ObjectStore`` implements it; all failures are ``S3Error``.

    ``put_file`` streams the file and calls ``check()`` before it and every 64 KiB: what
    ``check`` raises stops the request at once and propagates unchanged (a multipart upload is
    then kept in ``resume_state``: resume it later, or ``abort_upload`` it).
    """

    def put_file(self, key: str, path: Path, *, sha256_hex: str, size: int,
                 progress: Progress | None = None, resume_state: ResumeState | None = None,
                 content_type: str = "application/octet-stream",
                 check: Check | None = None) -> PutResult: ...

    def abort_upload(self, key: str, upload_id: str) -> None: ...

    def put_bytes(self, key: str, data: bytes,
                  content_type: str = "application/octet-stream") -> PutResult: ...

    def exists(self, key: str) -> ObjectInfo | None: ...

    def delete(self, keys: Sequence[str]) -> builtins.list[str]: ...

    def list(self, prefix: str) -> Iterator[str]: ...

    def get_file(self, key: str, dest_path: Path,
                 progress: Callable[[int], None] | None = None) -> Fetched: ...

    def get_bytes(self, key: str, max_bytes: int) -> bytes: ...
