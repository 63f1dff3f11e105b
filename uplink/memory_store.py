"""An in-memory :class:`uplink.objectstore.ObjectStore`: the twin of ``uplink.s3.S3ObjectStore``
for tests and for a daemon built in-process. Stdlib only.

Usage::

    store = MemoryObjectStore()                          # or MemoryObjectStore(settings)
    store.put_file(key, path, sha256_hex=digest, size=n, check=consent_still_given)
    store.objects[key]                                   # the bytes stored (a dict, for asserts)
    store.fail_next(2)                                   # the next 2 requests: S3Unavailable
    store.max_object_bytes = 1024                        # larger bodies: S3Error EntityTooLarge
    store.before_put = lambda key: consent.revoke(...)   # runs as put_file starts sending key
    store.fail_puts[".jpg.age"] = S3Unavailable("away")  # put_file of keys so ending: raises it
    store.checks                                         # how often put_file called check()

What it keeps of the real store (shown against SeaweedFS by
tests/integration/test_object_store_contract.py): a request per operation as S3 counts them
(``requests``: "HEAD k", "PUT k", "CREATE k", "PART k n", "COMPLETE k", "ABORT k", "DELETE ...",
"LIST p", "GET k"); bodies streamed from the file through the real
``uplink.s3_multipart.CheckedReader``, so ``check()`` runs before the first byte and every 64 KiB
and what it raises stops the request and propagates unchanged; ``progress(done, total)`` after
the single PUT or each part; files above ``multipart_threshold_bytes`` sent in parts by the real
``upload_multipart`` (so a ``ResumeState`` resumes, and an upload stopped mid-way stays listed
in ``uploads`` until resumed or aborted); an object already stored with the same size and
SHA-256 is skipped; digests verified (``S3IntegrityError``); a missing key is ``S3NotFound``;
every failure is an ``S3Error`` (``uplink.s3_errors``).

Test knobs on ``put_file`` (after the skip and size checks, in this order): ``before_put(key)``
runs just before the first request that sends the body, so a test can revoke or expire consent
exactly while that object is sent; then a key ending in a suffix of ``fail_puts`` makes each
request that would send it (``PUT k``; ``CREATE k`` and ``PART k n``), counted in ``requests``,
raise the mapped exception instead, every time until the entry is removed. ``checks`` counts the
calls of ``check`` the bodies made (before the first byte and every 64 KiB; counted even when
``check`` is None).

Not modelled: retries and backoff (one attempt per call, as the daemon configures the real
store), metadata other than the SHA-256.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from uplink.objectstore import Fetched, ObjectInfo, PutResult, S3Settings
from uplink.s3_errors import (
    S3Error,
    S3IntegrityError,
    S3NoSuchUpload,
    S3NotFound,
    S3Unavailable,
)
from uplink.s3_multipart import (
    Check,
    CheckedReader,
    PartRecord,
    Progress,
    ResumeState,
    upload_multipart,
)

__all__ = ["MemoryObjectStore"]

MiB = 1024 * 1024


@dataclass
class _Upload:
    key: str
    parts: dict[int, bytes] = field(default_factory=dict)


class MemoryObjectStore:
    """The object store in a dict (see the module docstring). Thread-safe."""

    def __init__(self, settings: S3Settings | None = None, *,
                 multipart_threshold_bytes: int | None = None,
                 part_size_bytes: int | None = None,
                 max_object_bytes: int | None = None) -> None:
        self.settings = settings or S3Settings(bucket="memory")
        self.multipart_threshold_bytes = (multipart_threshold_bytes if multipart_threshold_bytes
                                          is not None else
                                          self.settings.multipart_threshold_bytes)
        self.part_size_bytes = part_size_bytes or self.settings.part_size_bytes
        self.max_object_bytes = max_object_bytes
        self.objects: dict[str, bytes] = {}
        self.uploads: dict[str, _Upload] = {}  # multipart uploads begun, not completed/aborted
        self.requests: list[str] = []
        self.before_put: Callable[[str], None] | None = None
        self.fail_puts: dict[str, Exception] = {}
        self.checks = 0
        self._failures: list[S3Error] = []
        self._lock = threading.RLock()
        self._ids = itertools.count(1)

    # ---- knobs for tests --------------------------------------------------------------------
    def fail_next(self, count: int = 1, error: S3Error | None = None) -> None:
        """The next ``count`` requests fail with ``error`` (default: a transient
        ``S3Unavailable``, as an endpoint that is down)."""
        with self._lock:
            for _ in range(count):
                self._failures.append(error or S3Unavailable(
                    "bucket endpoint memory unreachable; uploads wait in the outbox "
                    "(injected by MemoryObjectStore.fail_next)"))

    def sorted_keys(self) -> builtins.list[str]:
        """Every key stored, sorted (a test's view; no request is counted)."""
        with self._lock:
            return sorted(self.objects)

    # ---- the port ---------------------------------------------------------------------------
    def exists(self, key: str) -> ObjectInfo | None:
        self._request(f"HEAD {key}")
        with self._lock:
            data = self.objects.get(key)
        return None if data is None else ObjectInfo(key, len(data),
                                                    hashlib.sha256(data).hexdigest())

    def put_file(self, key: str, path: Path, *, sha256_hex: str, size: int,
                 progress: Progress | None = None, resume_state: ResumeState | None = None,
                 content_type: str = "application/octet-stream",
                 check: Check | None = None) -> PutResult:
        """As ``S3ObjectStore.put_file``: skipped when stored alike, single PUT or parts."""
        actual = path.stat().st_size
        if actual != size:
            raise S3IntegrityError(f"{path} is {actual} bytes but was sealed at {size}: the file "
                                   "changed after sealing; re-seal it")
        found = self.exists(key)
        if found is not None and (found.size, found.sha256) == (size, sha256_hex):
            if resume_state is not None and resume_state.upload_id is not None:
                self.abort_upload(key, resume_state.upload_id)
                resume_state.reset()
                resume_state.save()
            return PutResult(key, size, sha256_hex, skipped=True)
        self._check_size(key, size)
        if self.before_put is not None:
            self.before_put(key)
        check = self._counted(check)
        if size <= self.multipart_threshold_bytes:
            self._request(f"PUT {key}")
            self._fail_put(key)
            with CheckedReader(path, 0, size, check) as body:
                data = _read_all(body)
            self._store(key, data, sha256_hex)
            if progress is not None:
                progress(size, size)
            return PutResult(key, size, sha256_hex, skipped=False)
        state = resume_state or ResumeState()
        try:
            sent = upload_multipart(_MemoryParts(self, key, sha256_hex), path, key=key,
                                    size=size, sha256_hex=sha256_hex,
                                    part_size=self.part_size_bytes, state=state,
                                    progress=progress, check=check)
        except S3Unavailable:
            raise  # kept for a resume, as the real store does
        except S3Error:
            if state.upload_id is not None:  # a permanent failure: no parts linger
                self.abort_upload(key, state.upload_id)
                state.reset()
                state.save()
            raise
        return PutResult(key, size, sha256_hex, skipped=False, parts_sent=sent)

    def put_bytes(self, key: str, data: bytes,
                  content_type: str = "application/octet-stream") -> PutResult:
        self._check_size(key, len(data))
        self._request(f"PUT {key}")
        digest = hashlib.sha256(data).hexdigest()
        self._store(key, bytes(data), digest)
        return PutResult(key, len(data), digest, skipped=False)

    def abort_upload(self, key: str, upload_id: str) -> None:
        self._request(f"ABORT {key}")
        with self._lock:
            self.uploads.pop(upload_id, None)  # already gone is no error, as on S3

    def delete(self, keys: Sequence[str]) -> builtins.list[str]:
        """Delete ``keys``; S3 counts a key that was not there as deleted."""
        if not keys:
            return []
        self._request(f"DELETE {' '.join(keys)}")
        with self._lock:
            for key in keys:
                self.objects.pop(key, None)
        return list(keys)

    def list(self, prefix: str) -> Iterator[str]:
        self._request(f"LIST {prefix}")
        with self._lock:
            found = sorted(k for k in self.objects if k.startswith(prefix))
        return iter(found)

    def get_file(self, key: str, dest_path: Path,
                 progress: Callable[[int], None] | None = None) -> Fetched:
        data = self._get(key)
        partial = dest_path.with_name(dest_path.name + ".part")
        partial.write_bytes(data)
        if progress is not None:
            progress(len(data))
        partial.replace(dest_path)
        return Fetched(key, len(data), hashlib.sha256(data).hexdigest())

    def get_bytes(self, key: str, max_bytes: int) -> bytes:
        data = self._get(key)
        if len(data) > max_bytes:
            raise S3Error(f"{key} is {len(data)} bytes, more than the {max_bytes} expected: "
                          "not read")
        return data

    # ---- inside -----------------------------------------------------------------------------
    def _counted(self, check: Check | None) -> Check:
        def counted() -> None:
            with self._lock:
                self.checks += 1
            if check is not None:
                check()
        return counted

    def _fail_put(self, key: str) -> None:
        with self._lock:
            failure = next((exc for suffix, exc in self.fail_puts.items()
                            if key.endswith(suffix)), None)
        if failure is not None:
            raise failure

    def presign_get(self, key: str, expires_s: int) -> str:
        """A stand-in for a presigned URL: ``memory://<bucket>/<key>?expires_s=N`` (tests map it
        back with :meth:`get_presigned`)."""
        return f"memory://{self.settings.bucket}/{key}?expires_s={expires_s}"

    def get_presigned(self, url: str) -> bytes:
        """The object a :meth:`presign_get` URL names (no expiry: the tests' clock decides)."""
        key = url.removeprefix(f"memory://{self.settings.bucket}/").split("?", 1)[0]
        return self._get(key)

    def _request(self, what: str) -> None:
        with self._lock:
            self.requests.append(what)
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            raise failure

    def _check_size(self, key: str, size: int) -> None:
        if self.max_object_bytes is not None and size > self.max_object_bytes:
            raise S3Error(f"PUT {key}: EntityTooLarge: {size} bytes is more than the "
                          f"{self.max_object_bytes} this store accepts", code="EntityTooLarge")

    def _store(self, key: str, data: bytes, sha256_hex: str) -> None:
        if hashlib.sha256(data).hexdigest() != sha256_hex:
            raise S3IntegrityError(f"PUT {key}: BadDigest: the bytes received did not match "
                                   "their SHA-256; the sealed file changed or was corrupted in "
                                   "transit", code="BadDigest")
        with self._lock:
            self.objects[key] = data

    def _get(self, key: str) -> bytes:
        self._request(f"GET {key}")
        with self._lock:
            data = self.objects.get(key)
        if data is None:
            raise S3NotFound(f"GET {key}: not found in bucket {self.settings.bucket!r}",
                             code="NoSuchKey")
        return data


def _read_all(body: CheckedReader) -> bytes:
    chunks = []
    while piece := body.read(64 * 1024):
        chunks.append(piece)
    return b"".join(chunks)


class _MemoryParts:
    """``uplink.s3_multipart.PartStore`` on a MemoryObjectStore, for one key."""

    def __init__(self, store: MemoryObjectStore, key: str, sha256_hex: str) -> None:
        self.store, self.key, self.sha256_hex = store, key, sha256_hex

    def create(self) -> str:
        self.store._request(f"CREATE {self.key}")
        self.store._fail_put(self.key)
        upload_id = f"memory-{next(self.store._ids)}"
        with self.store._lock:
            self.store.uploads[upload_id] = _Upload(self.key)
        return upload_id

    def list_parts(self, upload_id: str) -> dict[int, str] | None:
        self.store._request(f"LIST parts {self.key}")
        with self.store._lock:
            upload = self.store.uploads.get(upload_id)
            if upload is None:
                return None
            return {n: _etag(data) for n, data in upload.parts.items()}

    def upload_part(self, upload_id: str, number: int, body: CheckedReader,
                    checksum_b64: str) -> str:
        self.store._request(f"PART {self.key} {number}")
        self.store._fail_put(self.key)
        data = _read_all(body)
        if base64.b64encode(hashlib.sha256(data).digest()).decode("ascii") != checksum_b64:
            raise S3IntegrityError(f"PUT {self.key} part {number}: BadDigest", code="BadDigest")
        with self.store._lock:
            upload = self.store.uploads.get(upload_id)
            if upload is None:
                raise S3NoSuchUpload(f"PUT {self.key} part {number}: upload {upload_id} is "
                                     "unknown", code="NoSuchUpload")
            upload.parts[number] = data
        return _etag(data)

    def complete(self, upload_id: str, parts: builtins.list[PartRecord]) -> None:
        self.store._request(f"COMPLETE {self.key}")
        with self.store._lock:
            upload = self.store.uploads.pop(upload_id, None)
        if upload is None:
            raise S3NoSuchUpload(f"COMPLETE {self.key}: upload {upload_id} is unknown",
                                 code="NoSuchUpload")
        data = b"".join(upload.parts[p["PartNumber"]] for p in parts)
        self.store._store(self.key, data, self.sha256_hex)

    def abort(self, upload_id: str) -> None:
        self.store.abort_upload(self.key, upload_id)


def _etag(data: bytes) -> str:
    return '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'
