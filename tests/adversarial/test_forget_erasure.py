"""Finding 9a: `owner forget` deleted the clips but left their history: the events rows (when
someone came to the door, for how long, linked to each clip) and, in SQLite's free pages and
write-ahead log, the deleted clip rows themselves (times and sizes).

The owner's signed ``clips.forget`` goes through the real CommandProcessor with the uplink's
commands registered on a real clip store; then the attacker's view: ``sqlite3`` and a byte search
on the data directory's database files, taken while the store is still open (a copy of a running
device's card).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.delivery.clip_commands import register
from agent.device.consent import ConsentStore
from agent.device.database import DeviceDB
from agent.device.ledger import Ledger
from agent.device.owner_commands import CommandProcessor
from agent.store import ClipStore, iso_utc
from tests.unit.test_store import NOW, add_clip, make_store
from uplink import jws
from uplink.agekeys import Identity
from uplink.keys import device_id_for, key_id_for, public_raw

DAY = 86400.0


@dataclass
class Device:
    data: Path
    store: ClipStore
    db: DeviceDB
    proc: CommandProcessor
    owner: Ed25519PrivateKey
    ctr: int = 0

    def forget(self, **selector: Any) -> dict[str, Any]:
        self.ctr += 1
        device_id = self.proc.device_id
        kid = key_id_for(public_raw(self.owner))
        claims = {"iss": kid, "aud": device_id, "iat": int(NOW), "exp": int(NOW) + 300,
                  "jti": f"forget-{self.ctr:04d}", "ctr": self.ctr, "cmd": "clips.forget",
                  "topic": f"doorward/{device_id}/cmd",
                  "args": {"clip": None, "before": None, "all": False, **selector}}
        resp = self.proc.handle(jws.sign(claims, self.owner, kid=kid), claims["topic"], NOW)
        assert resp.ok, resp
        return resp.result


@pytest.fixture
def device(tmp_path: Path) -> Iterator[Device]:
    data = tmp_path / "data"
    store = make_store(data)
    db = DeviceDB(data / "device.sqlite")
    key = Ed25519PrivateKey.generate()
    consent, ledger = ConsentStore(db), Ledger(db, key)
    proc = CommandProcessor(db, consent, ledger, device_id_for(public_raw(key)), key)
    register(proc, db, ledger, store, None)
    owner = Ed25519PrivateKey.generate()
    consent.add_owner(public_raw(owner), str(Identity.generate().recipient), "owner", NOW)
    yield Device(data, store, db, proc, owner)
    db.close()
    store.close()


def visit(store: ClipStore, owner: Identity, t: float, n: int) -> tuple[str, str]:
    """A clip and its event at wall time ``t``; returns (clip id, the event's start time)."""
    clip_id = add_clip(store, owner, t, size=2000 + n, seed=n)
    event = store.record_event(event_id=f"ev{n}", reason="ring", onset_s=10.0,
                               last_motion_s=18.0, peak_area=0.2, clip_id=clip_id,
                               started_at_s=t, ended_at_s=t + 8.0)
    return clip_id, event.started_at


def traces(data: Path, needles: list[str]) -> list[str]:
    """Which needles appear anywhere in the index database's files (main, -wal, -journal)."""
    blobs = b"".join(p.read_bytes() for p in data.glob("index.sqlite*"))
    return [n for n in needles if n.encode() in blobs]


def rows(data: Path, sql: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{data / 'index.sqlite'}?mode=ro", uri=True)
    try:
        return list(db.execute(sql))
    finally:
        db.close()


@pytest.fixture(scope="module")
def sealed_to() -> Identity:
    return Identity.generate()


def test_forget_all_leaves_no_event_history(device: Device, sealed_to: Identity) -> None:
    visits = [visit(device.store, sealed_to, NOW - (3 - i) * DAY, i) for i in range(3)]
    device.store.record_event(event_id="no-clip", reason="motion", onset_s=1.0,
                              last_motion_s=2.0, peak_area=0.1, started_at_s=NOW - 3600,
                              ended_at_s=NOW - 3590)
    needles = [s for v in visits for s in v] + [iso_utc(NOW - 3600)]
    assert traces(device.data, needles) == needles  # what an attacker finds today

    result = device.forget(all=True)

    assert sorted(result["local_deleted"]) == sorted(c for c, _ in visits)
    assert rows(device.data, "SELECT * FROM events") == []
    assert rows(device.data, "SELECT * FROM clips") == []
    assert traces(device.data, needles) == [], "deleted history is still in the database files"


def test_forget_one_clip_erases_its_events_and_keeps_the_others(device: Device,
                                                                 sealed_to: Identity) -> None:
    (gone, gone_at), (kept, kept_at) = [visit(device.store, sealed_to, NOW - i * DAY, i)
                                        for i in (2, 1)]
    device.forget(clip=gone)
    assert rows(device.data, "SELECT clip_id FROM events") == [(kept,)]
    assert [c.id for c in device.store.list_clips()] == [kept]
    assert traces(device.data, [gone, gone_at, kept, kept_at]) == [kept, kept_at]


def test_forget_before_a_date_erases_the_history_before_it(device: Device,
                                                           sealed_to: Identity) -> None:
    old = visit(device.store, sealed_to, NOW - 10 * DAY, 1)
    new = visit(device.store, sealed_to, NOW, 2)
    device.store.record_event(event_id="old-motion", reason="motion", onset_s=1.0,
                              last_motion_s=2.0, peak_area=0.1, started_at_s=NOW - 9 * DAY,
                              ended_at_s=NOW - 9 * DAY + 5)
    cut = iso_utc(NOW - 5 * DAY)[:10]
    device.forget(before=cut)
    assert rows(device.data, "SELECT id FROM events") == [("ev2",)]
    assert traces(device.data, [*old, iso_utc(NOW - 9 * DAY)]) == []
    assert traces(device.data, list(new)) == list(new)
