"""An in-memory ``ObjectStore`` for the adversarial unit tests.

It reads every body through the real ``uplink.s3_multipart.CheckedReader``, so ``check`` runs as
it does against S3 (before the first byte and every 64 KiB); ``before_put(key)`` runs before a
body is read, so a test can revoke or expire consent exactly while that object is being sent.
``fail_puts`` maps a key suffix to an exception raised instead of storing.
"""

from __future__ import annotations

import builtins
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from uplink.objectstore import Fetched, ObjectInfo, PutResult
from uplink.s3_multipart import Check, CheckedReader, Progress, ResumeState


@dataclass
class MemStore:
    objects: dict[str, bytes] = field(default_factory=dict)
    before_put: Callable[[str], None] = lambda key: None
    fail_puts: dict[str, Exception] = field(default_factory=dict)
    checks: int = 0
    requests: list[str] = field(default_factory=list)

    def put_file(self, key: str, path: Path, *, sha256_hex: str, size: int,
                 progress: Progress | None = None, resume_state: ResumeState | None = None,
                 content_type: str = "application/octet-stream",
                 check: Check | None = None) -> PutResult:
        if key in self.objects:
            return PutResult(key, size, sha256_hex, skipped=True)
        self.before_put(key)
        for suffix, exc in self.fail_puts.items():
            if key.endswith(suffix):
                raise exc

        def counted() -> None:
            self.checks += 1
            if check is not None:
                check()

        self.requests.append(f"PUT {key}")
        chunks = []
        with CheckedReader(path, 0, size, counted) as body:
            while piece := body.read(8192):
                chunks.append(piece)
        self.objects[key] = b"".join(chunks)
        return PutResult(key, size, sha256_hex, skipped=False)

    def put_bytes(self, key: str, data: bytes,
                  content_type: str = "application/octet-stream") -> PutResult:
        self.requests.append(f"PUT {key}")
        self.objects[key] = data
        return PutResult(key, len(data), hashlib.sha256(data).hexdigest(), skipped=False)

    def abort_upload(self, key: str, upload_id: str) -> None:
        self.requests.append(f"ABORT {key}")

    def exists(self, key: str) -> ObjectInfo | None:
        data = self.objects.get(key)
        return None if data is None else ObjectInfo(key, len(data),
                                                    hashlib.sha256(data).hexdigest())

    def delete(self, keys: Sequence[str]) -> builtins.list[str]:
        self.requests.append(f"DELETE {' '.join(keys)}")
        for key in keys:
            self.objects.pop(key, None)
        return list(keys)

    def list(self, prefix: str) -> Iterator[str]:
        return iter(sorted(k for k in self.objects if k.startswith(prefix)))

    def get_file(self, key: str, dest_path: Path) -> Fetched:
        dest_path.write_bytes(self.objects[key])
        return Fetched(key, len(self.objects[key]), hashlib.sha256(self.objects[key]).hexdigest())

    def get_bytes(self, key: str, max_bytes: int) -> bytes:
        return self.objects[key][:max_bytes]

    def suffixes(self) -> builtins.list[str]:
        return sorted(k.split(".", 1)[1] for k in self.objects)
