"""The device's identity: an Ed25519 key and a 128-bit setup secret, created at first start.

Both live in the data directory, mode 0600. The device id is derived from the public key
(``dw-`` + 16 base32 characters of its SHA-256), so it carries no serial number or personal data.
What goes on the label inside the housing (:meth:`DeviceIdentity.label`) is the device id, the
public key, its fingerprint and the setup code: the owner's tool checks the device key against the
fingerprint, and the device checks that the owner knows the setup code. No default password exists.

Usage::

    ident = DeviceIdentity.load_or_create(data_dir)
    ident.device_id, ident.key            # sign with ident.key
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.errors import DoorwardError
from agent.paths import DataDir
from uplink import (
    UplinkError,
    b64u,
    device_id_for,
    fingerprint,
    load_ed25519,
    public_raw,
    read_private_file,
    save_ed25519,
    setup_code_from_secret,
    write_private_file,
)


@dataclass(frozen=True)
class DeviceIdentity:
    key: Ed25519PrivateKey
    setup_secret: bytes

    @property
    def public_raw(self) -> bytes:
        return public_raw(self.key)

    @property
    def device_id(self) -> str:
        return device_id_for(self.public_raw)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_raw)

    def label(self) -> dict[str, str]:
        """The label's content: the JSON keys of ``doorward device label --json``."""
        return {
            "device_id": self.device_id,
            "public_key": b64u(self.public_raw),
            "fingerprint": self.fingerprint,
            "setup_code": setup_code_from_secret(self.setup_secret),
        }

    @classmethod
    def load_or_create(cls, data_dir: Path) -> DeviceIdentity:
        """Load the identity, creating key and secret (0600) on first start."""
        paths = DataDir(data_dir)
        key_path, secret_path = paths.device_key, paths.setup_secret
        try:
            data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not key_path.exists():
                save_ed25519(key_path, Ed25519PrivateKey.generate())
            if not secret_path.exists():
                write_private_file(secret_path, os.urandom(16))
            return cls(load_ed25519(key_path), read_private_file(secret_path))
        except (UplinkError, OSError) as exc:
            raise DoorwardError(f"device identity in {data_dir} cannot be used: {exc}") from exc


def label_text(label: dict[str, str], *, qr: bool = True) -> str:
    """The label as text, with a terminal QR code of ``doorward:<device_id>:<fingerprint>:<code>``.
    """
    lines = [
        "Doorward doorbell - keep this label private: the setup code makes you its owner.",
        f"  device id:   {label['device_id']}",
        f"  public key:  {label['public_key']}",
        f"  fingerprint: {label['fingerprint']}",
        f"  setup code:  {label['setup_code']}",
    ]
    if qr:
        import io

        import segno

        payload = "doorward:{device_id}:{fingerprint}:{setup_code}".format(**label)
        buf = io.StringIO()
        segno.make(payload, error="m").terminal(out=buf, compact=True, border=2)
        lines += ["", buf.getvalue().rstrip("\n")]
    return "\n".join(lines)
