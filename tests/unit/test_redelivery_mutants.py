"""agent/delivery/redelivery.py at start-up: which undelivered clips are queued again, and why the
others
are held (for ``scripts/mutation agent/delivery/redelivery.py``; the base cases are in
test_redelivery)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.delivery.redelivery import RequeueReport
from agent.device.consent import ConsentStore
from agent.device.database import DeviceDB
from agent.device.ledger import Entry
from tests.unit.test_redelivery import NOW, OWNER, clip, run


@pytest.fixture
def consent(tmp_path: Path) -> Iterator[ConsentStore]:
    db = DeviceDB(tmp_path / "device.sqlite")
    store = ConsentStore(db)
    store.add_owner(b"\x01" * 32, str(OWNER.recipient), "owner", NOW - 7200)
    yield store
    db.close()


def entry(kind: str, clip_id: str) -> Entry:
    return Entry(seq=1, ts=int(NOW), kind=kind, data={"clip_id": clip_id}, prev="0" * 64,
                 hash="0" * 64, sig="")


def test_a_grant_with_an_end_counts_now_and_when_the_clip_was_sealed(
        consent: ConsentStore) -> None:
    consent.grant(["clips"], NOW + 3600, "k-owner", NOW - 3600)
    queued, _ = run(consent, [clip("a")])
    assert queued == ["a"]


def test_a_clip_already_dealt_with_does_not_stop_the_next(consent: ConsentStore) -> None:
    consent.grant(["clips"], None, "k-owner", NOW - 3600)
    queued, report = run(consent, [clip("d"), clip("w"), clip("a")],
                         entries=[entry("disclosure", "d"), entry("withdrawn", "w")])
    assert queued == ["a"] and report.delivered == ("d",)
    assert report.held == {"w": "withdrawn from the bucket when consent was revoked"}


def test_why_a_clip_is_held_is_said_exactly(consent: ConsentStore) -> None:
    _, report = run(consent, [clip("n")])
    assert report.held == {"n": "no upload consent in force now"}
    consent.grant(["clips"], None, "k-owner", NOW - 3600)
    _, report = run(consent, [clip("x", recipients=("age1someoneelse",))])
    assert report.held == {
        "x": "sealed to a key that is not a current member's (the development owner?)"}


def test_the_summary_names_each_reason_once() -> None:
    report = RequeueReport(("a",), ("b", "c"), {"d": "r2", "e": "r1", "f": "r2"})
    assert report.summary() == ("re-delivery: 1 undelivered clip(s) queued again, 2 found "
                                "delivered, 3 held on the device (r1; r2)")
    assert RequeueReport().summary() == ("re-delivery: 0 undelivered clip(s) queued again, "
                                         "0 found delivered, 0 held on the device")
