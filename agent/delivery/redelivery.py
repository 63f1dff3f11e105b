"""Start-up re-delivery: every clip the device holds but never delivered is queued again, once.

Sealing a clip (the store's index, ``clips.sqlite``) and queueing its upload (``outbox.sqlite``)
are two commits in two databases, and a crash can fall between them; a clip recovered after a
crash or power loss (``truncated``) never reached the queue at all. For a doorbell the second kind
matters most: it is the footage of the event during which the device was torn off the wall. So at
start-up, before the first frame, :func:`requeue_undelivered` compares the store with the outbox
and the ledger and queues what is missing.

Wiring (agent.app, after the uplink is built and before recording starts)::

    report = requeue_undelivered(store.list_clips(), delivery, outbox.items(),
                                 device.ledger.entries(), consent)
    for clip_id in report.delivered:
        store.mark_delivered(clip_id)

Exactly once: a clip is queued only if no outbox item (queued, in flight, sent or dropped) names
it and the ledger records no disclosure of it. A dropped item was a decision (revoked, erased,
expired) and stays one. A disclosure without the store's ``delivered`` mark (a crash between the
upload and the mark) is reported in ``delivered`` so the caller marks it.

Consent: a clip is queued only if the scope it would go under is in force now *and* was in force
when the clip started, as the Recorder noted then in the index (``upload_scopes``): a grant given
later does not reach back to footage recorded without one, and no clock is compared, because the
Pi has none that survives a power cut and its clock may jump between runs (a clip indexed before
this was kept falls back to the grants' times at its end),
and only if it is sealed to members only, as any upload (never a clip sealed to the development
owner, or to an owner since removed). A clip withdrawn from the bucket on a revocation stays.
The uploads lane asks consent again before every request, as for any upload.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from agent.delivery.jobs import JobError, UploadJob
from agent.delivery.members import sealed_to_members
from agent.delivery.outbox import Item
from agent.device.consent import ConsentStore
from agent.device.ledger import Entry
from agent.store import ClipRecord

log = logging.getLogger("doorward")


class UploadQueue(Protocol):
    """What re-delivery needs of :class:`agent.delivery.queueing.Delivery`."""

    def upload_scope(self, rec: ClipRecord, now: float) -> str | None: ...
    def queue_upload(self, rec: ClipRecord) -> str | None: ...


@dataclass(frozen=True)
class RequeueReport:
    """What :func:`requeue_undelivered` did, clip ids in store order."""

    queued: tuple[str, ...] = ()
    delivered: tuple[str, ...] = ()  # disclosed in the ledger but not marked in the store
    held: dict[str, str] = field(default_factory=dict)  # clip id -> why it stays on the device

    def summary(self) -> str:
        held = sorted(set(self.held.values()))
        return (f"re-delivery: {len(self.queued)} undelivered clip(s) queued again, "
                f"{len(self.delivered)} found delivered, {len(self.held)} held on the device"
                + (f" ({'; '.join(held)})" if held else ""))


def clips_named(items: Iterable[Item]) -> set[str]:
    """Clip ids that any outbox item (whatever its state) was made for; segments of a clip in
    progress do not count (the whole clip replaces them)."""
    return {clip_id for i in items if i.kind == "upload" and (clip_id := _clip_of(i))}


def _clip_of(item: Item) -> str | None:
    """The clip an upload row was made for (never a segment's); a damaged row still names the
    clip its ``clip_id`` says, so it is not queued a second time."""
    try:
        job = item.job()
    except JobError:
        spec = item.spec or {}
        return None if spec.get("live") or "clip_id" not in spec else str(spec["clip_id"])
    return job.clip_id if isinstance(job, UploadJob) else None


def clips_disclosed(entries: Iterable[Entry]) -> set[str]:
    """Clip ids the ledger records as uploaded whole at least once (a segment sent while the
    clip was recorded is not the clip: agent/recording/live_segments.py)."""
    return {str(e.data.get("clip_id")) for e in entries
            if e.kind == "disclosure" and "segment" not in e.data
            and e.data.get("complete", True) is not False}


def clips_withdrawn(entries: Iterable[Entry]) -> set[str]:
    """Clip ids whose upload was withdrawn from the bucket (a revocation): a decision."""
    return {str(e.data.get("clip_id")) for e in entries if e.kind == "withdrawn"}


def requeue_undelivered(clips: Sequence[ClipRecord], queue: UploadQueue, items: Iterable[Item],
                        entries: Iterable[Entry], consent: ConsentStore, *,
                        now: float) -> RequeueReport:
    """Queue the upload of every undelivered clip that is in no outbox item and not disclosed."""
    entries = list(entries)
    named, disclosed = clips_named(items), clips_disclosed(entries)
    withdrawn = clips_withdrawn(entries)
    recipients = consent.recipients()
    queued: list[str] = []
    delivered: list[str] = []
    held: dict[str, str] = {}
    for rec in clips:
        if rec.delivered or rec.id in named:
            continue
        if rec.id in disclosed:
            delivered.append(rec.id)
            continue
        if rec.id in withdrawn:
            held[rec.id] = "withdrawn from the bucket when consent was revoked"
            continue
        why = _held_because(rec, queue, consent, recipients, now)
        if why is not None:
            held[rec.id] = why
            continue
        if queue.queue_upload(rec) is not None:
            queued.append(rec.id)
            log.info("clip %s%s was never queued for upload: queued now", rec.id,
                     " (recovered after a crash, truncated)" if rec.truncated else "")
    report = RequeueReport(tuple(queued), tuple(delivered), held)
    log.info("%s", report.summary())
    return report


def _held_because(rec: ClipRecord, queue: UploadQueue, consent: ConsentStore,
                  recipients: list[str], now: float) -> str | None:
    scope = queue.upload_scope(rec, now)
    if scope is None:
        return "no upload consent in force now"
    if rec.upload_scopes is not None:  # kept at the clip's start: no clock involved
        if scope not in rec.upload_scopes:
            return f"no {scope} consent was in force when it started"
    elif not consent.allowed_at(scope, datetime.fromisoformat(rec.ended_at).timestamp()):
        return f"no {scope} consent was in force when it was sealed"
    if not sealed_to_members(rec.recipients, recipients):
        return "sealed to a key that is not a current member's (the development owner?)"
    return None
