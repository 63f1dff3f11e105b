"""The app's remembered bucket settings: ``<owner-dir>/app.json`` (0600, replaced atomically).

``doorward owner app --bucket B --endpoint-url URL ...`` stores them; a later
``doorward owner app`` reuses them. Credentials are never stored here: boto3's chain
(``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, ``~/.aws/credentials``) supplies them.

Usage::

    opts = BucketOptions.remembered(owner_dir, given=args_bucket_options_or_None)
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from agent.errors import DoorwardError

APP_SETTINGS = "app.json"
STYLES = ("auto", "path", "virtual")


@dataclass(frozen=True)
class BucketOptions:
    """Where the device's clips are, as the owner reaches them (the device's ``[s3]``)."""

    bucket: str
    endpoint_url: str | None = None
    prefix: str = "doorward"
    region: str = "us-east-1"
    addressing_style: str = "auto"

    def __post_init__(self) -> None:
        if not self.bucket:
            raise DoorwardError("--bucket is empty: name the bucket the device uploads to")
        if self.addressing_style not in STYLES:
            raise DoorwardError(f"--addressing-style must be one of {', '.join(STYLES)}")

    @classmethod
    def load(cls, owner_dir: Path) -> BucketOptions | None:
        path = owner_dir / APP_SETTINGS
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise DoorwardError(f"{path} is unreadable ({exc}): delete it and pass --bucket "
                                "again") from exc
        doc = raw.get("bucket") if isinstance(raw, dict) else None
        if doc is None:
            return None
        names = {f.name for f in fields(cls)}
        if not isinstance(doc, dict) or not set(doc) <= names:
            raise DoorwardError(f"{path} does not hold bucket settings: delete it and pass "
                                "--bucket again")
        return cls(**doc)

    def save(self, owner_dir: Path) -> None:
        path = owner_dir / APP_SETTINGS
        fd, tmp = tempfile.mkstemp(dir=owner_dir, prefix=".app.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"bucket": asdict(self)}, fh, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise DoorwardError(f"cannot write {path}: {exc}") from exc

    @classmethod
    def remembered(cls, owner_dir: Path, given: dict[str, Any]) -> BucketOptions | None:
        """The options named in ``given`` (non-None values of the command-line flags) over the
        remembered ones; saved when ``given`` names any. None when no bucket is known."""
        stored = cls.load(owner_dir)
        changes = {k: v for k, v in given.items() if v is not None}
        if not changes:
            return stored
        if stored is None:
            if "bucket" not in changes:
                raise DoorwardError("no bucket remembered yet: pass --bucket as well")
            opts = cls(**changes)
        else:
            opts = replace(stored, **changes)
        opts.save(owner_dir)
        return opts
