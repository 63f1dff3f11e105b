"""Start-up re-delivery (agent/delivery/redelivery.py): what is queued again, once, and what
stays."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from agent.delivery.outbox import Item, Outbox
from agent.delivery.redelivery import RequeueReport, requeue_undelivered
from agent.device.consent import ConsentStore
from agent.device.database import DeviceDB
from agent.device.ledger import Entry
from agent.store import ClipRecord
from agent.store.records import iso_utc
from uplink.agekeys import Identity

OWNER = Identity.generate()
NOW = 1_800_000_000.0


def clip(clip_id: str, *, ended: float = NOW - 60, truncated: bool = False,
         delivered: bool = False, recipients: tuple[str, ...] = (str(OWNER.recipient),),
         snapshot: bool = True, upload_scopes: tuple[str, ...] | None = None) -> ClipRecord:
    return ClipRecord(id=clip_id, path=Path(f"/x/{clip_id}.mp4.age"),
                      snapshot_path=Path(f"/x/{clip_id}.jpg.age") if snapshot else None,
                      started_at=iso_utc(ended - 20), ended_at=iso_utc(ended),
                      source_start_s=0.0, source_end_s=20.0, duration_s=20.0, bytes=100,
                      truncated=truncated, recipients=recipients, delivered=delivered,
                      event_id="e1", started_at_s=ended - 20, upload_scopes=upload_scopes)


class Queue:
    """The Delivery side, recording what it was asked to queue."""

    def __init__(self, consent: ConsentStore) -> None:
        self.consent = consent
        self.queued: list[str] = []

    def upload_scope(self, rec: ClipRecord, now: float) -> str | None:
        if self.consent.allows("clips", now):
            return "clips"
        return "snapshots" if rec.snapshot_path and self.consent.allows("snapshots", now) else None

    def queue_upload(self, rec: ClipRecord) -> str | None:
        self.queued.append(rec.id)
        return "clips"


@pytest.fixture
def consent(tmp_path: Path) -> Iterator[ConsentStore]:
    db = DeviceDB(tmp_path / "device.sqlite")
    store = ConsentStore(db)
    store.add_owner(b"\x01" * 32, str(OWNER.recipient), "owner", NOW - 7200)
    yield store
    db.close()


def run(consent: ConsentStore, clips: list[ClipRecord], *, items: Sequence[Item] = (),
        entries: Sequence[Entry] = ()) -> tuple[list[str], RequeueReport]:
    q = Queue(consent)
    report = requeue_undelivered(clips, q, items, entries, consent, now=NOW)
    return q.queued, report


def test_undelivered_and_truncated_clips_are_queued_delivered_ones_not(
        consent: ConsentStore) -> None:
    consent.grant(["clips"], None, "k-owner", NOW - 3600)
    queued, report = run(consent, [clip("a"), clip("b", truncated=True),
                                   clip("c", delivered=True)])
    assert queued == ["a", "b"] and report.queued == ("a", "b")


def test_a_clip_any_outbox_item_names_is_left_alone(consent: ConsentStore,
                                                    tmp_path: Path) -> None:
    consent.grant(["clips"], None, "k-owner", NOW - 3600)
    outbox = Outbox(tmp_path / "outbox.sqlite")
    try:
        outbox.enqueue_upload({"clip_id": "a"}, "clips", now=NOW)
        dropped = outbox.enqueue_upload({"clip_id": "b"}, "clips", now=NOW)
        outbox.drop(dropped.id, "consent revoked", NOW)  # a decision, not a loss
        queued, _ = run(consent, [clip("a"), clip("b"), clip("c")], items=outbox.items())
    finally:
        outbox.close()
    assert queued == ["c"]


def test_a_clip_the_ledger_disclosed_is_reported_delivered_not_sent_again(
        consent: ConsentStore) -> None:
    consent.grant(["clips"], None, "k-owner", NOW - 3600)
    entry = Entry(7, int(NOW), "disclosure", {"clip_id": "a"}, "0" * 64, "1" * 64, "sig")
    queued, report = run(consent, [clip("a")], entries=[entry])
    assert queued == [] and report.delivered == ("a",)


def test_no_consent_when_sealed_or_now_holds_the_clip(consent: ConsentStore) -> None:
    consent.grant(["clips"], None, "k-owner", NOW - 30)  # after clip "a" was sealed
    queued, report = run(consent, [clip("a"), clip("b", ended=NOW - 10)])
    assert queued == ["b"] and "when it was sealed" in report.held["a"]
    consent.revoke(["clips"], "k-owner", NOW - 5)
    queued, report = run(consent, [clip("b", ended=NOW - 10)])
    assert queued == [] and "now" in report.held["b"]


def test_a_revoked_then_regranted_scope_does_not_reach_back(consent: ConsentStore) -> None:
    consent.grant(["clips"], None, "k-owner", NOW - 3600)
    consent.revoke(["clips"], "k-owner", NOW - 120)
    consent.grant(["clips"], None, "k-owner", NOW - 30)
    queued, _ = run(consent, [clip("gap", ended=NOW - 60), clip("before", ended=NOW - 600)])
    assert queued == ["before"]


def test_a_clip_sealed_to_no_current_owner_is_never_queued(consent: ConsentStore) -> None:
    consent.grant(["clips"], None, "k-owner", NOW - 3600)
    dev_owner = str(Identity.generate().recipient)
    queued, report = run(consent, [clip("dev", recipients=(dev_owner,))])
    assert queued == [] and "not a current member" in report.held["dev"]


def test_snapshots_consent_alone_queues_clips_with_a_snapshot(consent: ConsentStore) -> None:
    consent.grant(["snapshots"], None, "k-owner", NOW - 3600)
    queued, report = run(consent, [clip("snap"), clip("bare", snapshot=False)])
    assert queued == ["snap"] and "bare" in report.held


def test_segments_sent_while_recording_do_not_make_a_clip_delivered(
        consent: ConsentStore, tmp_path: Path) -> None:
    """A device killed mid-event sent segments; the whole clip must still go at the next start."""
    consent.grant(["clips"], None, "k-owner", NOW - 3600)
    outbox = Outbox(tmp_path / "outbox.sqlite")
    try:
        outbox.enqueue_upload({"live": True, "clip_id": "cut", "segment": 1}, "clips", now=NOW)
        segment = Entry(3, int(NOW), "disclosure", {"clip_id": "cut", "segment": 1}, "0" * 64,
                        "1" * 64, "sig")
        queued, report = run(consent, [clip("cut", truncated=True)], items=outbox.items(),
                             entries=[segment])
    finally:
        outbox.close()
    assert queued == ["cut"] and report.delivered == ()


def test_a_withdrawn_or_partly_disclosed_clip_is_neither_sent_again_nor_marked_delivered(
        consent: ConsentStore) -> None:
    consent.grant(["clips"], None, "k-owner", NOW - 3600)
    part = Entry(3, int(NOW), "disclosure", {"clip_id": "w", "complete": False}, "0" * 64,
                 "1" * 64, "sig")
    gone = Entry(4, int(NOW), "withdrawn", {"clip_id": "w"}, "1" * 64, "2" * 64, "sig")
    queued, report = run(consent, [clip("w")], entries=[part, gone])
    assert queued == [] and report.delivered == () and "withdrawn" in report.held["w"]


def test_the_consent_kept_at_the_clip_start_decides_whatever_the_clock_did(
        consent: ConsentStore) -> None:
    """The Pi's clock may jump between runs: a clip recorded under consent, its times now before
    the grant's, still goes; one recorded without, its times after the grant, does not."""
    consent.grant(["clips"], None, "k-owner", NOW - 60)
    queued, report = run(consent, [
        clip("under-consent", ended=NOW - 3 * 3600, upload_scopes=("clips",)),  # clock was 3 h back
        clip("without", ended=NOW - 10, upload_scopes=()),
        clip("snapshots-only", ended=NOW - 10, upload_scopes=("snapshots",))])
    assert queued == ["under-consent"]
    assert "when it started" in report.held["without"]
    assert "when it started" in report.held["snapshots-only"]
