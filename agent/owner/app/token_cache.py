"""Signed tokens (manifests, progress records) already fetched from the bucket, by key and ETag.

``<owner-dir>/cache/<device_id>.tokens.json`` (0600, replaced atomically) maps an object key to
``[etag, token]``. The tokens are what the bucket holds in the clear anyway (JWS signed by the
device; a manifest's capture times inside stay sealed): no plaintext of a clip or snapshot is ever
written here. Every token is verified again when used; the ETag only saves the GET.

Usage (agent.owner.app.service)::

    cache = TokenCache.load(owner_dir, device_id)
    data = cache.get(key, etag)          # None: fetch it, then cache.put(key, etag, data)
    cache.keep(listed_keys); cache.save()
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from agent.errors import DoorwardError


class TokenCache:
    def __init__(self, path: Path, entries: dict[str, tuple[str, str]]) -> None:
        self.path = path
        self.entries = entries
        self.changed = False

    @classmethod
    def load(cls, owner_dir: Path, device_id: str) -> TokenCache:
        path = owner_dir / "cache" / f"{device_id}.tokens.json"
        try:
            raw = json.loads(path.read_text(encoding="ascii"))
            entries = {str(k): (str(v[0]), str(v[1])) for k, v in raw.items()}
        except (OSError, ValueError, TypeError, IndexError, AttributeError):
            entries = {}  # absent or damaged: it is only a cache, fetch again
        return cls(path, entries)

    def get(self, key: str, etag: str) -> bytes | None:
        hit = self.entries.get(key)
        if not etag or hit is None or hit[0] != etag:
            return None
        return hit[1].encode("ascii")

    def put(self, key: str, etag: str, data: bytes) -> None:
        if not etag or not data.isascii():
            return
        self.entries[key] = (etag, data.decode("ascii"))
        self.changed = True

    def keep(self, keys: set[str]) -> None:
        """Forget keys no longer in the bucket."""
        gone = set(self.entries) - keys
        for k in gone:
            del self.entries[k]
        self.changed = self.changed or bool(gone)

    def save(self) -> None:
        if not self.changed:
            return
        self.path.parent.mkdir(mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tokens.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                json.dump({k: list(v) for k, v in self.entries.items()}, fh)
            os.replace(tmp, self.path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise DoorwardError(f"cannot write {self.path}: {exc}") from exc
        self.changed = False
