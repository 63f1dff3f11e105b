"""The requester's identity in ``--requester-dir`` (0700): who asks, and where answers are sealed.

Files: ``signing.key`` (Ed25519: signs requests; its key id names the requester to the device,
which rate-limits per key id), ``identity.txt`` (an age identity: grants and re-wrapped clips are
sealed to its recipient, so the ``age`` CLI opens them too), ``name.txt`` (the name shown to the
owner). Usage::

    me, created = RequesterIdentity.init(path, name="Insurer Ltd")
    me = RequesterIdentity.open(path); me.key_id, me.recipient, me.name
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.errors import DoorwardError
from uplink import (
    Identity,
    UplinkError,
    b64u,
    key_id_for,
    load_ed25519,
    load_identities,
    public_raw,
    save_ed25519,
    write_identity_file,
)

SIGNING_KEY = "signing.key"
IDENTITY = "identity.txt"
NAME = "name.txt"
MAX_NAME = 200


def default_requester_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "doorward-requester"


@dataclass(frozen=True)
class RequesterIdentity:
    dir: Path
    key: Ed25519PrivateKey
    identity: Identity
    name: str

    @property
    def key_id(self) -> str:
        return key_id_for(public_raw(self.key))

    @property
    def public_key(self) -> str:
        return b64u(public_raw(self.key))

    @property
    def recipient(self) -> str:
        return str(self.identity.recipient)

    @classmethod
    def init(cls, path: Path, *, name: str) -> tuple[RequesterIdentity, bool]:
        """Create the identity (or open the one there: never overwrite keys). (identity, created)"""
        name = name.strip()
        if not 0 < len(name) <= MAX_NAME or not name.isprintable():
            raise DoorwardError(f"--name must be 1-{MAX_NAME} printable characters")
        if (path / SIGNING_KEY).exists():
            return cls.open(path), False
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path, 0o700)
        save_ed25519(path / SIGNING_KEY, Ed25519PrivateKey.generate())
        write_identity_file(path / IDENTITY, Identity.generate())
        (path / NAME).write_text(name + "\n", encoding="utf-8")
        return cls.open(path), True

    @classmethod
    def open(cls, path: Path) -> RequesterIdentity:
        if not (path / SIGNING_KEY).exists():
            raise DoorwardError(f"no requester identity in {path}: run `doorward requester init "
                                f"--requester-dir {path} --name NAME` first")
        try:
            key = load_ed25519(path / SIGNING_KEY)
            identities = load_identities(path / IDENTITY)
            name = (path / NAME).read_text(encoding="utf-8").strip()
        except (OSError, UplinkError) as exc:
            raise DoorwardError(f"cannot read the requester identity in {path}: {exc}") from exc
        return cls(path, key, identities[0], name)
