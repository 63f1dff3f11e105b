"""Shared by the owner app's unit tests, browser tests and bench: an owner, a device key, and a
bucket (any ObjectStore) holding signed manifests and sealed clips as the device uploads them."""

from __future__ import annotations

import argparse
import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.owner.keyring import OwnerKeyring, PairedDevice
from uplink.age import encrypt
from uplink.keys import b64u, device_id_for, fingerprint, public_raw
from uplink.manifest import ZERO_HASH, ClipObject, Manifest, seal_times, sign_manifest, token_hash
from uplink.objectstore import ObjectStore, object_keys

PREFIX = "doorward"


def bridge_args(**flags: object) -> argparse.Namespace:
    """``doorward owner bridge``'s parsed flags, all at their defaults (no login, no TLS, the
    bucket ``test-bucket``), then ``flags``: for ``agent.owner.bridge.start`` in tests."""
    ns = argparse.Namespace(
        discovery_prefix="homeassistant", device=None, device_key=None, broker=None,
        ca_file=None, cert_file=None, key_file=None, username=None, password_file=None,
        ha_broker="mqtt://127.0.0.1:1", ha_username=None, ha_password_file=None,
        ha_ca_file=None, bucket="test-bucket", endpoint_url=None, prefix=None, region=None,
        addressing_style=None, connect_timeout=5.0, max_ring_age=300.0)
    vars(ns).update(flags)
    return ns


@dataclass
class Bucketful:
    """An owner in ``owner_dir`` paired (on paper) with a device whose key is here."""

    ring: OwnerKeyring
    device_key: Ed25519PrivateKey
    store: ObjectStore
    seq: int = 0
    prev: str = ZERO_HASH
    keys: dict[str, str] = field(default_factory=dict)  # clip id -> manifest key

    @property
    def device_id(self) -> str:
        return device_id_for(public_raw(self.device_key))

    @classmethod
    def create(cls, owner_dir: Path, store: ObjectStore, broker: str = "mqtt://127.0.0.1:1",
               device_key: Ed25519PrivateKey | None = None) -> Bucketful:
        ring, _ = OwnerKeyring.init(owner_dir)
        key = device_key or Ed25519PrivateKey.generate()
        raw = public_raw(key)
        ring.add_device(PairedDevice(device_id_for(raw), b64u(raw), fingerprint(raw), broker,
                                     time.time()))
        return cls(ring, key, store)

    def add_clip(self, clip_id: str, video: bytes | None, jpeg: bytes | None = b"\xff\xd8jpeg",
                 *, duration_s: float = 4.0, start: datetime | None = None) -> Manifest:
        start = start or datetime(2026, 12, 1, 10, 0, tzinfo=UTC) + timedelta(minutes=self.seq)
        keys = object_keys(PREFIX, self.device_id, clip_id, start.date())
        objects: dict[str, ClipObject | None] = {}
        for name, plain, k in (("clip", video, keys.clip), ("snapshot", jpeg, keys.snapshot)):
            if plain is None:
                continue
            sealed = encrypt(plain, [self.ring.identity.recipient])
            self.store.put_bytes(k, sealed)
            objects[name] = ClipObject(k, len(sealed), hashlib.sha256(sealed).hexdigest())
        end = start + timedelta(seconds=duration_s)
        iso = lambda t: t.isoformat(timespec="milliseconds")  # noqa: E731
        m = Manifest(device_id=self.device_id, clip_id=clip_id, seq=self.seq + 1,
                     prev_manifest=self.prev, objects=objects,
                     recipients=(str(self.ring.identity.recipient),),
                     sealed_times=seal_times(started_at=iso(start), ended_at=iso(end),
                                             duration_s=duration_s,
                                             recipients=[self.ring.identity.recipient]),
                     uploaded_at=iso(end + timedelta(seconds=2)))
        token = sign_manifest(m, self.device_key)
        self.store.put_bytes(keys.manifest, token.encode("ascii"))
        self.seq, self.prev = m.seq, token_hash(token)
        self.keys[clip_id] = keys.manifest
        return m
