"""Owners and consent grants: scopes, expiry, revocation, recipients, factory reset."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.device.consent import DAY_S, ConsentError, ConsentStore, expiry_for
from agent.device.database import DeviceDB
from uplink.agekeys import Identity
from uplink.keys import key_id_for, public_raw

T0 = 1_800_000_000.0


@pytest.fixture
def db(tmp_path: Path) -> Iterator[DeviceDB]:
    d = DeviceDB(tmp_path / "device.sqlite")
    yield d
    d.close()


@pytest.fixture
def store(db: DeviceDB) -> ConsentStore:
    return ConsentStore(db)


def new_party() -> tuple[bytes, str]:
    return public_raw(Ed25519PrivateKey.generate()), str(Identity.generate().recipient)


def test_add_owner_and_viewer_recipients(store: ConsentStore) -> None:
    (pk1, r1), (pk2, r2) = new_party(), new_party()
    owner = store.add_owner(pk1, r1, "owner", T0)
    store.add_owner(pk2, r2, "viewer", T0 + 1)
    assert owner.key_id == key_id_for(pk1)
    assert [o.role for o in store.owners()] == ["owner", "viewer"]
    assert store.recipients() == [r1, r2]
    assert store.owner(key_id_for(pk2)) is not None and store.owner("k-nobody") is None


@pytest.mark.parametrize(
    ("pub", "recipient", "role", "match"),
    [
        (b"short", None, "owner", "rejected"),
        (None, "age1notarecipient", "owner", "rejected"),
        (None, None, "admin", "role"),
    ],
)
def test_add_owner_validates(
    store: ConsentStore, pub: bytes | None, recipient: str | None, role: str, match: str
) -> None:
    good_pub, good_rec = new_party()
    with pytest.raises(ConsentError, match=match):
        store.add_owner(pub or good_pub, recipient or good_rec, role, T0)
    assert store.owners() == []


def test_add_owner_twice_is_refused(store: ConsentStore) -> None:
    pub, rec = new_party()
    store.add_owner(pub, rec, "owner", T0)
    with pytest.raises(ConsentError, match="already paired"):
        store.add_owner(pub, rec, "viewer", T0)


def test_expiry_defaults_and_explicit_until_revoked() -> None:
    assert expiry_for(None, False, T0) == T0 + 30 * DAY_S
    assert expiry_for(7, False, T0) == T0 + 7 * DAY_S
    assert expiry_for(None, True, T0) is None
    for bad in (0, 366, True):
        with pytest.raises(ConsentError, match="days"):
            expiry_for(bad, False, T0)
    with pytest.raises(ConsentError, match="not both"):
        expiry_for(5, True, T0)


def test_nothing_allowed_without_grant(store: ConsentStore) -> None:
    assert not any(store.allows(s, T0) for s in ("events", "snapshots", "clips"))
    assert store.show(T0) == {"grants": []}


def test_grant_expires(store: ConsentStore) -> None:
    store.grant(["events", "clips"], T0 + 100, "k-owner", T0)
    assert store.allows("clips", T0 + 99.9) and store.allows("events", T0 + 99.9)
    assert not store.allows("snapshots", T0 + 1)
    assert not store.allows("clips", T0 + 100)  # allows() false at and after expires_at
    assert store.in_force(T0 + 100) == []


def test_until_revoked_grant_and_show_json(store: ConsentStore) -> None:
    store.grant(["snapshots"], None, "k-owner", T0)
    assert store.allows("snapshots", T0 + 10 * 365 * DAY_S)
    assert store.show(T0) == {
        "grants": [
            {"scope": "snapshots", "granted_at": T0, "expires_at": None, "granted_by": "k-owner"}
        ]
    }


def test_revoke_one_scope(store: ConsentStore) -> None:
    store.grant(["events", "snapshots", "clips"], T0 + 1000, "k-owner", T0)
    assert store.revoke(["clips"], "k-owner", T0 + 5) == ["clips"]
    assert not store.allows("clips", T0 + 6)
    assert store.allows("events", T0 + 6) and store.allows("snapshots", T0 + 6)
    assert store.revoke(["clips"], "k-owner", T0 + 7) == []  # nothing in force any more


def test_revoke_all(store: ConsentStore) -> None:
    store.grant(["events", "clips"], None, "k-owner", T0)
    assert sorted(store.revoke(None, "k-owner", T0 + 1)) == ["clips", "events"]
    assert store.in_force(T0 + 1) == []


def test_new_grant_supersedes_old(store: ConsentStore) -> None:
    store.grant(["clips"], None, "k-a", T0)
    store.grant(["clips"], T0 + 50, "k-b", T0 + 1)
    grants = store.in_force(T0 + 2)
    assert [(g.scope, g.expires_at, g.granted_by) for g in grants] == [("clips", T0 + 50, "k-b")]
    assert not store.allows("clips", T0 + 60)  # the until-revoked grant did not survive


@pytest.mark.parametrize("scopes", [[], ["clips", "clips"], ["audio"]])
def test_grant_validates_scopes(store: ConsentStore, scopes: list[str]) -> None:
    with pytest.raises(ConsentError, match="scopes"):
        store.grant(scopes, None, "k-owner", T0)
    assert store.in_force(T0) == []


def test_grant_refuses_past_expiry_and_unknown_scope_query(store: ConsentStore) -> None:
    with pytest.raises(ConsentError, match="not after"):
        store.grant(["clips"], T0, "k-owner", T0)
    with pytest.raises(ConsentError, match="unknown scope"):
        store.allows("audio", T0)


def test_wipe_forgets_everything(db: DeviceDB, store: ConsentStore) -> None:
    pub, rec = new_party()
    store.add_owner(pub, rec, "owner", T0)
    store.grant(["clips"], None, "k-owner", T0)
    with db.transaction() as tx:
        tx.execute("INSERT INTO counters VALUES ('k-owner', 5)")
        tx.execute("INSERT INTO jti_seen VALUES ('abcdefgh', 'k-owner', ?)", (T0 + 60,))
    store.wipe()
    assert db.dump() == "-- owners\n-- grants\n-- counters\n-- jti_seen"
    assert store.recipients() == [] and not store.allows("clips", T0)


def test_state_survives_reopen(tmp_path: Path) -> None:
    db = DeviceDB(tmp_path / "device.sqlite")
    pub, rec = new_party()
    ConsentStore(db).add_owner(pub, rec, "owner", T0)
    ConsentStore(db).grant(["clips"], T0 + 10, "k-owner", T0)
    db.close()
    db = DeviceDB(tmp_path / "device.sqlite")
    try:
        store = ConsentStore(db)
        assert store.recipients() == [rec] and store.allows("clips", T0 + 1)
    finally:
        db.close()
