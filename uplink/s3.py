"""Sealed objects to an S3 bucket: the ``ObjectStore`` port and its boto3 adapter.

Wiring::

    settings = S3Settings(bucket="doorbell", endpoint_url="http://nas:8333",
                          addressing_style="path", credentials_file=Path("/etc/doorward/s3"))
    store = S3ObjectStore(settings)
    keys = object_keys(settings.prefix, device_id, clip_id, upload_day=now_utc.date())
    store.put_file(keys.clip, clip.path, sha256_hex=file_sha256(clip.path), size=size,
                   resume_state=ResumeState.from_json(saved, on_save=persist))

Every PUT carries the SHA-256 we computed from the sealed file (``ChecksumSHA256``), so the store
rejects a corrupted upload (``S3IntegrityError``); the hex digest also rides along as metadata
``x-amz-meta-sha256``, which ``exists()`` reports even for multipart objects (whose checksum is
composite). ``put_file`` first asks ``exists()``: the same size and digest already stored means
the upload is skipped, so a retried job never stores twice. Above ``multipart_threshold_bytes``
the upload goes in parts and resumes from a persisted ``ResumeState`` (uplink/s3_multipart.py).

Bodies stream from the file through ``s3_multipart.CheckedReader``: ``put_file(check=...)`` runs
the caller's check before every 64 KiB read, and what it raises aborts the request and propagates
unchanged (a revocation stops an upload within one 64 KiB read, plus the kernel's send buffer,
which ``S3Settings.send_buffer_bytes`` caps). ``abort_upload`` discards a kept multipart upload.

Transient failures (connection errors, timeouts, 5xx, throttling) are retried here, up to
``max_attempts`` calls per operation with exponential backoff and full jitter (botocore's own
retries are off so the attempts don't multiply and tests can inject ``sleep``/``rng``); what is
still failing becomes ``S3Unavailable`` and the job stays in the outbox. Permanent failures
(credentials, a missing bucket, a bad digest) are raised at once as the ``S3Error`` subclass that
names the fix. No botocore exception crosses this module's boundary.
"""

from __future__ import annotations

import base64
import builtins
import configparser
import hashlib
import logging
import os
import random
import socket
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from uplink.objectstore import (
    ClipKeys,
    Fetched,
    ObjectInfo,
    ObjectStore,
    PutResult,
    S3Settings,
    file_sha256,
    object_keys,
)
from uplink.s3_errors import (
    S3AuthError,
    S3Error,
    S3IntegrityError,
    S3NoSuchUpload,
    S3NotFound,
    S3Unavailable,
    error_code,
    translate,
)
from uplink.s3_multipart import (
    BotoParts,
    Check,
    CheckedReader,
    PartRecord,
    Progress,
    ResumeState,
    upload_multipart,
)
from uplink.wire import is_hex64

__all__ = [
    "ClipKeys", "Fetched", "ObjectInfo", "ObjectStore", "PartRecord", "PutResult", "ResumeState",
    "S3AuthError", "S3Error", "S3IntegrityError", "S3NoSuchUpload", "S3NotFound", "S3ObjectStore",
    "S3Settings", "S3Unavailable", "file_sha256", "object_keys",
]

log = logging.getLogger(__name__)
MiB = 1024 * 1024
SHA256_META = "sha256"  # sent as the x-amz-meta-sha256 header
T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# The boto3 adapter


def _credentials(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser()
    try:
        with path.open(encoding="utf-8") as f:
            parser.read_file(f)
    except (OSError, configparser.Error) as exc:
        raise S3AuthError(f"cannot read [s3] credentials_file {path}: {exc}; write it in the AWS "
                          "shared-credentials format ([default] aws_access_key_id = ..., "
                          "aws_secret_access_key = ...)") from exc
    section = parser["default"] if parser.has_section("default") else None
    if section is None or not section.get("aws_access_key_id") \
            or not section.get("aws_secret_access_key"):
        raise S3AuthError(f"[s3] credentials_file {path} lacks a [default] profile with "
                          "aws_access_key_id and aws_secret_access_key")
    creds = {"aws_access_key_id": section["aws_access_key_id"].strip(),
             "aws_secret_access_key": section["aws_secret_access_key"].strip()}
    if section.get("aws_session_token"):
        creds["aws_session_token"] = section["aws_session_token"].strip()
    return creds


def make_client(settings: S3Settings) -> Any:
    """A boto3 S3 client for ``settings`` (no botocore retries: S3ObjectStore retries).

    ``total_max_attempts`` because botocore's ``max_attempts`` key counts *retries* (1 -> 2 sends).
    """
    config = Config(s3={"addressing_style": settings.addressing_style},
                    signature_version="s3v4",
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                    retries={"mode": "standard", "total_max_attempts": 1},
                    connect_timeout=settings.connect_timeout_s,
                    read_timeout=settings.read_timeout_s)
    creds = _credentials(settings.credentials_file) if settings.credentials_file else {}
    client = boto3.session.Session().client("s3", endpoint_url=settings.endpoint_url,
                                            region_name=settings.region, config=config, **creds)
    _bound_send_buffer(client, settings.send_buffer_bytes)
    return client


def _bound_send_buffer(client: Any, size: int) -> None:
    """Cap the kernel send buffer of the client's sockets at ``size`` (Linux doubles it), and
    reset rather than flush a connection that is closed with data unsent.

    Why: a request body is checked every 64 KiB as it is *read*, but what is read sits in the
    kernel's send buffer until the network takes it, and Linux grows that buffer to 4 MiB: a
    whole clip could be handed over before a revocation is seen, and would still leave after
    the request was abandoned. botocore has no setting for this; its HTTP session passes one
    list of socket options to every connection it opens, so appending to it before the first
    request applies to all of them. Without that attribute (another botocore), log and go on.
    """
    options = getattr(getattr(getattr(client, "_endpoint", None), "http_session", None),
                      "_socket_options", None)
    if not isinstance(options, list):
        log.warning("cannot cap the S3 send buffer with this botocore: a cancelled upload may "
                    "still send what the kernel buffered (up to a few MiB)")
        return
    options.append((socket.SOL_SOCKET, socket.SO_SNDBUF, size))
    # linger 0: closing an abandoned request resets the connection and discards what the kernel
    # still held, instead of sending it on (a finished request has nothing left to discard)
    options.append((socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)))


@dataclass
class S3ObjectStore:
    """The ``ObjectStore`` on S3 (AWS or compatible). Not thread-safe: one uplink thread owns it.

    ``sleep`` and ``rng`` (uniform in [0, 1)) drive the retry backoff; tests inject fakes.
    ``client`` is the boto3 client (``client.meta.events`` lets tests watch requests).
    """

    settings: S3Settings
    sleep: Callable[[float], None] = time.sleep
    rng: Callable[[], float] = field(default_factory=lambda: random.SystemRandom().random)
    client: Any = None

    def __post_init__(self) -> None:
        if self.client is None:
            self.client = make_client(self.settings)

    # -- retries and error translation --------------------------------------------------------

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**(attempt-1)))."""
        ceiling = min(self.settings.backoff_cap_s,
                      self.settings.backoff_base_s * 2.0 ** (attempt - 1))
        return self.rng() * ceiling

    def call(self, what: str, fn: Callable[[], T], /) -> T:
        """Run ``fn`` (one S3 request) with retries; raise the translated S3Error."""
        attempts = self.settings.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                return fn()
            except (BotoCoreError, ClientError) as exc:
                err = self.translate(exc, what)
                if not isinstance(err, S3Unavailable) or attempt == attempts:
                    if isinstance(err, S3Unavailable):
                        err.add_note(f"gave up after {attempts} attempts")
                    raise err from exc
                delay = self.backoff(attempt)
                log.warning("%s failed (%s); retry %d/%d in %.2f s", what, err, attempt,
                            attempts - 1, delay)
                self.sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")

    def translate(self, exc: Exception, what: str) -> S3Error:
        return translate(exc, what, endpoint=self.settings.endpoint_name,
                         bucket=self.settings.bucket)

    # -- the port -----------------------------------------------------------------------------

    def exists(self, key: str) -> ObjectInfo | None:
        def head() -> dict[str, Any] | None:
            try:
                return dict(self.client.head_object(Bucket=self.settings.bucket, Key=key,
                                                    ChecksumMode="ENABLED"))
            except ClientError as exc:
                if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise

        head_response = self.call(f"HEAD {key}", head)
        if head_response is None:
            return None
        return ObjectInfo(key=key, size=int(head_response["ContentLength"]),
                          sha256=_sha256_of(head_response))

    def put_file(self, key: str, path: Path, *, sha256_hex: str, size: int,
                 progress: Progress | None = None, resume_state: ResumeState | None = None,
                 content_type: str = "application/octet-stream",
                 check: Check | None = None) -> PutResult:
        """Store ``path`` under ``key`` unless it is already there with this size and digest.

        ``sha256_hex`` is the digest recorded when the file was sealed; the store verifies it.
        Files above ``multipart_threshold_bytes`` go in parts, resumable from ``resume_state``.
        The body streams from the file; ``check()`` runs before it and every 64 KiB of it
        (s3_multipart.CheckedReader): what it raises aborts the request (the connection is
        dropped, the server stores nothing of it) and propagates unchanged. On a permanent
        failure a multipart upload is aborted; on ``S3Unavailable`` or an exception from
        ``progress`` or ``check`` it is kept (``resume_state.upload_id``): resume it, or
        ``abort_upload`` it.
        """
        actual = path.stat().st_size
        if actual != size:
            raise S3IntegrityError(f"{path} is {actual} bytes but was sealed at {size}: the file "
                                   "changed after sealing; re-seal it")
        if self._stored(key, size, sha256_hex):
            log.info("%s already stored with sha256 %s: upload skipped", key, sha256_hex)
            if resume_state is not None and resume_state.upload_id is not None:
                # crashed after completing but before saving: forget (abort) that upload
                self._parts(key).abort(resume_state.upload_id)
                resume_state.reset()
                resume_state.save()
            return PutResult(key, size, sha256_hex, skipped=True)
        if size <= self.settings.multipart_threshold_bytes:
            self._put_single(key, path, sha256_hex, content_type, size, check)
            if progress is not None:
                progress(size, size)
            return PutResult(key, size, sha256_hex, skipped=False)
        sent = self._put_multipart(key, path, sha256_hex, size, content_type,
                                   resume_state or ResumeState(), progress, check)
        return PutResult(key, size, sha256_hex, skipped=False, parts_sent=sent)

    def put_bytes(self, key: str, data: bytes,
                  content_type: str = "application/octet-stream") -> PutResult:
        """Store a small object (a manifest) with its SHA-256 checksum and metadata."""
        digest = hashlib.sha256(data).digest()
        self._request(f"PUT {key}", "put_object", Bucket=self.settings.bucket, Key=key,
                      Body=data, ContentType=content_type, ChecksumAlgorithm="SHA256",
                      ChecksumSHA256=_b64(digest), Metadata={SHA256_META: digest.hex()})
        return PutResult(key, len(data), digest.hex(), skipped=False)

    def abort_upload(self, key: str, upload_id: str) -> None:
        """AbortMultipartUpload: the server discards the upload's parts (no error when the
        upload is already gone: aborted, expired or completed)."""
        self._parts(key).abort(upload_id)

    def _put_single(self, key: str, path: Path, sha256_hex: str, content_type: str, size: int,
                    check: Check | None) -> None:
        checksum = _b64(bytes.fromhex(sha256_hex))

        def put() -> None:
            # reopened per attempt: a retry re-reads from 0
            with CheckedReader(path, 0, size, check) as body:
                try:
                    self.client.put_object(Bucket=self.settings.bucket, Key=key, Body=body,
                                           ContentLength=size, ContentType=content_type,
                                           ChecksumAlgorithm="SHA256", ChecksumSHA256=checksum,
                                           Metadata={SHA256_META: sha256_hex})
                except Exception:
                    if body.stopped is not None:  # botocore wraps it as a connection error
                        raise body.stopped from None
                    raise

        self.call(f"PUT {key}", put)

    def _put_multipart(self, key: str, path: Path, sha256_hex: str, size: int,
                       content_type: str, state: ResumeState, progress: Progress | None,
                       check: Check | None) -> int:
        # per-part checksums cover transit; the whole-file digest only lands in metadata, so
        # check it here (one extra read) rather than publish a digest the bytes don't have
        local = file_sha256(path)
        if local != sha256_hex:
            raise S3IntegrityError(f"{path} has sha256 {local}, not the {sha256_hex} recorded at "
                                   "sealing: the file changed after sealing; re-seal it")
        parts = self._parts(key, sha256_hex, content_type)
        for round_ in (1, 2):
            try:
                return upload_multipart(parts, path, key=key, size=size, sha256_hex=sha256_hex,
                                        part_size=self.settings.part_size_bytes, state=state,
                                        progress=progress, check=check)
            except S3NoSuchUpload as exc:
                if self._stored(key, size, sha256_hex):
                    state.reset()  # completed by an attempt whose answer was lost
                    state.save()
                    return 0
                if round_ == 2:
                    raise S3Error(f"multipart upload of {key} vanished twice before completion; "
                                  "retry the job later") from exc
                log.warning("multipart upload of %s vanished (%s): starting over", key, exc)
                state.reset()
                state.save()
            except S3Unavailable:
                raise  # keep the upload: the outbox resumes it when the endpoint is back
            except S3Error as exc:
                self._abandon(parts, state, exc)
                raise
        raise AssertionError("unreachable: the loop returns or raises")

    def _stored(self, key: str, size: int, sha256_hex: str) -> bool:
        found = self.exists(key)
        return found is not None and found.size == size and found.sha256 == sha256_hex

    @staticmethod
    def _abandon(parts: BotoParts, state: ResumeState, exc: S3Error) -> None:
        """Abort the upload after a permanent failure, so no parts linger in the bucket."""
        if state.upload_id is None:
            return
        try:
            parts.abort(state.upload_id)
        except S3Error as abort_exc:
            exc.add_note(f"aborting upload {state.upload_id} failed too: {abort_exc}")
        state.reset()
        state.save()

    def _request(self, what: str, operation: str, **kwargs: Any) -> dict[str, Any]:
        """``client.<operation>(**kwargs)`` with retries; the response as a dict."""
        method = getattr(self.client, operation)
        return self.call(what, lambda: dict(method(**kwargs)))

    def _parts(self, key: str, sha256_hex: str = "",
               content_type: str = "application/octet-stream") -> BotoParts:
        return BotoParts(self.call, self.client, self.settings.bucket, key, sha256_hex,
                         content_type)

    def delete(self, keys: Sequence[str]) -> builtins.list[str]:
        """Delete ``keys`` (1,000 per request); return the keys the store reports deleted
        (S3 counts a key that was not there as deleted). Any per-key error raises S3Error."""
        deleted: builtins.list[str] = []
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start:start + 1000]]
            response = self._request(f"DELETE {len(batch)} objects", "delete_objects",
                                     Bucket=self.settings.bucket,
                                     Delete={"Objects": batch, "Quiet": False})
            deleted += [str(d["Key"]) for d in response.get("Deleted", [])]
            errors = response.get("Errors", [])
            if errors:
                detail = "; ".join(f"{e.get('Key')}: {e.get('Code')} {e.get('Message')}"
                                   for e in errors[:5])
                raise S3Error(f"could not delete {len(errors)} object(s) from bucket "
                              f"{self.settings.bucket!r} ({detail}); deleted {len(deleted)}")
        return deleted

    def list(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix``, in key order, one page (1,000 keys) per request."""
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.settings.bucket, "Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._request(f"LIST {prefix}", "list_objects_v2", **kwargs)
            for item in page.get("Contents", []):
                yield str(item["Key"])
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def get_file(self, key: str, dest_path: Path,
                 progress: Callable[[int], None] | None = None) -> Fetched:
        """Stream ``key`` into ``dest_path`` (written as ``<dest>.part``, renamed when complete;
        a retry downloads again from the start). Returns the size and SHA-256 received.
        ``progress(n)``: called after each MiB with the bytes received so far."""
        partial = dest_path.with_name(dest_path.name + ".part")

        def download() -> Fetched:
            response = self.client.get_object(Bucket=self.settings.bucket, Key=key)
            digest, size = hashlib.sha256(), 0
            with partial.open("wb") as out:
                for chunk in response["Body"].iter_chunks(MiB):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                    if progress is not None:
                        progress(size)
            return Fetched(key, size, digest.hexdigest())

        try:
            fetched = self.call(f"GET {key}", download)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        os.replace(partial, dest_path)
        return fetched

    def get_bytes(self, key: str, max_bytes: int) -> bytes:
        """The whole object in memory; S3Error if it is larger than ``max_bytes``."""
        def fetch() -> bytes:
            response = self.client.get_object(Bucket=self.settings.bucket, Key=key)
            body = response["Body"]
            try:
                if int(response.get("ContentLength", 0)) > max_bytes:
                    raise S3Error(f"{key} is {response['ContentLength']} bytes, more than the "
                                  f"{max_bytes} expected: not read")
                return bytes(body.read(max_bytes + 1))
            finally:
                body.close()

        data = self.call(f"GET {key}", fetch)
        if len(data) > max_bytes:
            raise S3Error(f"{key} is more than the {max_bytes} bytes expected: not read")
        return data

    def presign_get(self, key: str, expires_s: int) -> str:
        """A presigned, expiring GET URL for ``key`` (SigV4: at most 7 days). It carries the
        access key id, never the secret; footage requests hand these to a requester."""
        if not 1 <= expires_s <= 7 * 86400:
            raise S3Error(f"a presigned URL lives 1 s to 7 days, not {expires_s} s")
        try:
            return str(self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.settings.bucket, "Key": key},
                ExpiresIn=expires_s))
        except (BotoCoreError, ClientError) as exc:
            raise self.translate(exc, f"presign {key}") from exc

    def abort_stale_uploads(self, prefix: str, older_than_s: float,
                            now: datetime | None = None) -> builtins.list[tuple[str, str]]:
        """Abort multipart uploads under ``prefix`` started more than ``older_than_s`` ago
        (left by jobs that were dropped); return their (key, UploadId)."""
        cutoff = (now or datetime.now(UTC)) - timedelta(seconds=older_than_s)
        aborted: builtins.list[tuple[str, str]] = []
        markers: dict[str, Any] = {}
        while True:
            page = self._request(f"LIST uploads {prefix}", "list_multipart_uploads",
                                 Bucket=self.settings.bucket, Prefix=prefix, **markers)
            for upload in page.get("Uploads", []):
                if upload["Initiated"] < cutoff:
                    key, upload_id = str(upload["Key"]), str(upload["UploadId"])
                    self._parts(key).abort(upload_id)
                    aborted.append((key, upload_id))
            if not page.get("IsTruncated"):
                return aborted
            markers = {"KeyMarker": page["NextKeyMarker"],
                       "UploadIdMarker": page["NextUploadIdMarker"]}


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def _sha256_of(head: dict[str, Any]) -> str | None:
    meta = head.get("Metadata") or {}
    if is_hex64(meta.get(SHA256_META)):
        return str(meta[SHA256_META])
    checksum = head.get("ChecksumSHA256")
    if isinstance(checksum, str) and "-" not in checksum:  # "-N" marks a composite checksum
        return base64.b64decode(checksum).hex()
    return None
