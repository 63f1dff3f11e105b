"""The owner's keys and paired devices, kept in ``--owner-dir`` (0700).

Files: ``signing.key`` (Ed25519, signs commands), ``identity.txt`` (a standard age identity, so the
``age`` CLI opens the owner's clips), ``devices.json`` (paired devices: id, public key, broker, and
the last command counter used, which must only grow).

Usage::

    ring = OwnerKeyring.open(owner_dir)          # after `doorward owner init`
    ring.key_id, ring.recipient
    ring.add_device(PairedDevice(...))
    with ring.sending(device_id) as ctr:        # sign with ctr and publish inside the block
        ...

``devices.json`` is only changed under an exclusive ``flock`` on ``.devices.lock`` in the same
directory, so the app, the CLI and the Home Assistant bridge can share one owner dir.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.errors import DoorwardError
from uplink import (
    AgeError,
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
DEVICES = "devices.json"
DEVICES_LOCK = ".devices.lock"
LOCK_WAIT_S = 60.0  # longer than a command's publish can take (its broker timeout)


def default_owner_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "doorward-owner"


@dataclass(frozen=True)
class PairedDevice:
    device_id: str
    public_key: str  # b64u raw Ed25519
    fingerprint: str
    broker: str
    paired_at: float
    counter: int = 0


class OwnerKeyring:
    """The owner's signing key, age identity and paired devices."""

    def __init__(self, owner_dir: Path, key: Ed25519PrivateKey, identity: Identity) -> None:
        self.dir = owner_dir
        self.key = key
        self.identity = identity

    @property
    def public_raw(self) -> bytes:
        return public_raw(self.key)

    @property
    def key_id(self) -> str:
        return key_id_for(self.public_raw)

    @property
    def recipient(self) -> str:
        return str(self.identity.recipient)

    @property
    def identity_path(self) -> Path:
        return self.dir / IDENTITY

    @classmethod
    def init(cls, owner_dir: Path) -> tuple[OwnerKeyring, bool]:
        """Create the keys if absent; returns (keyring, created)."""
        owner_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(owner_dir, 0o700)
        created = False
        try:
            if not (owner_dir / SIGNING_KEY).exists():
                save_ed25519(owner_dir / SIGNING_KEY, Ed25519PrivateKey.generate())
                created = True
            if not (owner_dir / IDENTITY).exists():
                write_identity_file(owner_dir / IDENTITY, Identity.generate(),
                                    comment="Doorward owner identity: opens your clips")
                created = True
        except (UplinkError, OSError) as exc:
            raise DoorwardError(f"cannot create owner keys in {owner_dir}: {exc}") from exc
        return cls.open(owner_dir), created

    @classmethod
    def open(cls, owner_dir: Path) -> OwnerKeyring:
        if not (owner_dir / SIGNING_KEY).exists():
            raise DoorwardError(f"no owner keys in {owner_dir}: run `doorward owner init` first "
                                "(or pass --owner-dir)")
        try:
            key = load_ed25519(owner_dir / SIGNING_KEY)
            identity = load_identities(owner_dir / IDENTITY)[0]
        except (UplinkError, AgeError, OSError, IndexError) as exc:
            raise DoorwardError(f"owner keys in {owner_dir} cannot be used: {exc}") from exc
        return cls(owner_dir, key, identity)

    # -- paired devices --------------------------------------------------------------------
    def devices(self) -> list[PairedDevice]:
        path = self.dir / DEVICES
        try:
            raw: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise DoorwardError(f"{path} is unreadable ({exc}): restore it from a backup") from exc
        return [PairedDevice(**d) for d in raw]

    def device(self, device_id: str | None) -> PairedDevice:
        """The named device, or the only paired one when ``device_id`` is None."""
        devices = self.devices()
        if device_id is None:
            if len(devices) == 1:
                return devices[0]
            if not devices:
                raise DoorwardError("no paired device: run `doorward owner pair` first")
            names = ", ".join(d.device_id for d in devices)
            raise DoorwardError(f"several paired devices ({names}): pass --device ID")
        for d in devices:
            if d.device_id == device_id:
                return d
        raise DoorwardError(f"device {device_id} is not paired with this owner: "
                            "see `doorward owner show`")

    def add_device(self, device: PairedDevice) -> None:
        with self._locked():
            self._put(device)

    def next_counter(self, device_id: str) -> int:
        """The next command counter for ``device_id``, stored before it is used. To send a
        command use :meth:`sending`, which also keeps the order of sending."""
        with self._locked():
            return self._next_counter(device_id)

    @contextmanager
    def sending(self, device_id: str) -> Iterator[int]:
        """The next command counter for ``device_id``, with every other sender on this owner dir
        (threads and processes) held off until the block ends: sign and publish inside it.

        The device refuses a counter not above the last it accepted, so a command must reach the
        broker before any command with a later counter is even signed; a counter taken before a
        slow connection would otherwise be overtaken and refused as stale.
        """
        with self._locked():
            yield self._next_counter(device_id)

    def _next_counter(self, device_id: str) -> int:
        # Counters only grow; starting from the clock in milliseconds keeps them growing even if
        # devices.json is restored from an older backup.
        device = self.device(device_id)
        ctr = max(device.counter + 1, int(time.time() * 1000))
        self._put(replace(device, counter=ctr))
        return ctr

    def _put(self, device: PairedDevice) -> None:
        others = [d for d in self.devices() if d.device_id != device.device_id]
        self._save([*others, device])

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive flock on .devices.lock: one read-modify-write of devices.json (and one
        command's send) at a time. A new open file each time, so threads contend as well."""
        path = self.dir / DEVICES_LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise DoorwardError(f"cannot open {path} ({exc}): the owner dir must be writable "
                                "by you") from exc
        try:
            deadline = time.monotonic() + LOCK_WAIT_S
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise DoorwardError(
                            f"another doorward owner command has held {path} for over "
                            f"{LOCK_WAIT_S:.0f} s: is one stuck? (stop it, then try again)"
                        ) from None
                    time.sleep(0.005)
            yield
        finally:
            os.close(fd)  # closing the file releases the lock

    def _save(self, devices: list[PairedDevice]) -> None:
        path = self.dir / DEVICES
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".devices.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump([asdict(d) for d in devices], fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def describe(self) -> dict[str, Any]:
        return {"owner_dir": str(self.dir), "key_id": self.key_id,
                "public_key": b64u(self.public_raw), "recipient": self.recipient,
                "identity_file": str(self.identity_path),
                "devices": [asdict(d) for d in self.devices()]}
