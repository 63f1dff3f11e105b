"""agent.owner.ledger_cli.check: the owner's three checks (export, pin, bucket checkpoints) over
real device ledgers, with an in-memory bucket in place of S3."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.device.database import DeviceDB
from agent.device.ledger import Ledger
from agent.owner import ledger_cli, uplink_cli
from agent.owner.keyring import OwnerKeyring, PairedDevice
from agent.owner.pins import PinStore
from uplink.checkpoint import Checkpoint, checkpoint_key, sign_checkpoint
from uplink.keys import b64u, device_id_for, fingerprint, public_raw

T0 = 1_800_000_000.0


class MemoryBucket:
    """Just what the owner's checkpoint check uses of an ObjectStore."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def list(self, prefix: str) -> Iterator[str]:
        return iter(sorted(k for k in self.objects if k.startswith(prefix)))

    def get_bytes(self, key: str, max_bytes: int) -> bytes:
        return self.objects[key][:max_bytes]


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch) -> MemoryBucket:
    store = MemoryBucket()
    monkeypatch.setattr(uplink_cli, "bucket_store", lambda _args: store)
    return store


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def ledger(tmp_path: Path, key: Ed25519PrivateKey) -> Iterator[Ledger]:
    db = DeviceDB(tmp_path / "device.sqlite")
    yield Ledger(db, key)
    db.close()


@pytest.fixture
def ring(tmp_path: Path, key: Ed25519PrivateKey) -> OwnerKeyring:
    ring, _ = OwnerKeyring.init(tmp_path / "owner")
    pub = public_raw(key)
    ring.add_device(PairedDevice(device_id_for(pub), b64u(pub), fingerprint(pub),
                                 "mqtt://127.0.0.1:1", time.time()))
    return ring


ARGS = argparse.Namespace(bucket="b", prefix="doorward")


def grow(ledger: Ledger, n: int, tag: str = "a") -> None:
    for i in range(n):
        ledger.append("setting", {"i": i, "tag": tag}, T0 + i)


def publish(ledger: Ledger, bucket: MemoryBucket) -> Checkpoint:
    """What the device's uploads lane does with its newest signed head."""
    head = ledger.signed_head()
    token = ledger.signed_head_token()
    assert head is not None and token is not None
    bucket.objects[checkpoint_key("doorward", head.device_id, head)] = token.encode("ascii")
    return head


def verdict(ring: OwnerKeyring, ledger: Ledger) -> ledger_cli.Verdict:
    return ledger_cli.check(ring, ring.device(None), ledger.export_jsonl(), ARGS)


def test_a_growing_ledger_extends_its_checkpoints(ring: OwnerKeyring, ledger: Ledger,
                                                  bucket: MemoryBucket) -> None:
    grow(ledger, 3)
    publish(ledger, bucket)
    grow(ledger, 2)
    publish(ledger, bucket)
    bucket.objects["doorward/" + ring.device(None).device_id + "/ledger/junk.txt"] = b"x"
    v = verdict(ring, ledger)
    assert v.ok, v.problems
    assert any("2 checkpoint(s)" in n for n in v.notes)
    assert any("ignored 1 object" in n for n in v.notes)  # planted junk is not a failure


def test_a_ledger_shorter_than_a_checkpoint_is_a_rollback(ring: OwnerKeyring, ledger: Ledger,
                                                          bucket: MemoryBucket) -> None:
    grow(ledger, 5)
    publish(ledger, bucket)
    ledger._db.set_setting("ledger_head", "")  # the thief removes the local head...
    with ledger._db.transaction() as db:  # ...and the last two rows
        db.execute("DELETE FROM ledger WHERE seq > 3")
    v = verdict(ring, ledger)
    assert not v.ok and v.rollback and "only 3" in v.problems[0]


def test_a_fork_between_checkpoints_is_a_rollback(ring: OwnerKeyring, ledger: Ledger,
                                                  bucket: MemoryBucket,
                                                  key: Ed25519PrivateKey) -> None:
    grow(ledger, 3)
    head = publish(ledger, bucket)
    other = Checkpoint(device_id=head.device_id, chain=head.chain, count=3, head="f" * 64,
                       ts=head.ts)
    bucket.objects[checkpoint_key("doorward", head.device_id, other)] = \
        sign_checkpoint(other, key).encode("ascii")
    v = verdict(ring, ledger)
    assert v.rollback and any("forked" in p for p in v.problems)


def test_checkpoints_of_an_earlier_ledger_need_a_factory_reset(
        ring: OwnerKeyring, ledger: Ledger, bucket: MemoryBucket) -> None:
    grow(ledger, 4)
    publish(ledger, bucket)
    with ledger._db.transaction() as db:  # everything deleted, then the device appends again
        db.execute("DELETE FROM ledger")
    grow(ledger, 5, tag="b")
    v = verdict(ring, ledger)
    assert v.rollback and any("factory reset" in p for p in v.problems)
    ledger.restart("factory-reset", {}, T0 + 20)  # an honest reset starts a new chain
    v = verdict(ring, ledger)
    assert v.ok, v.problems
    assert any("before the factory reset" in n for n in v.notes)


def test_pin_then_rollback_then_repair(ring: OwnerKeyring, ledger: Ledger,
                                       bucket: MemoryBucket) -> None:
    grow(ledger, 3)
    device = ring.device(None)
    assert ledger_cli.report(ring, device, verdict(ring, ledger)) == 0
    pin = PinStore(ring.dir).get(device.device_id)
    assert pin is not None and pin.count == 3
    ledger.restart("factory-reset", {}, T0 + 20)
    v = verdict(ring, ledger)
    assert v.rollback and "factory reset" in v.problems[0]
    assert ledger_cli.report(ring, device, v) == 1
    assert PinStore(ring.dir).get(device.device_id) == pin  # a refused ledger moves nothing
