"""The loop thread's side of delivery: what leaves the device, and only with consent.

:class:`Delivery` lives on the daemon loop's thread. It turns events and sealed clips into
outbox items *if the consent gate allows them now* (agent/delivery/gate.py), signing each
message into the device's chain (seq and prev commit with the item, so a crash never reuses a
seq), and queues uploads as typed jobs (agent/delivery/jobs.py). The lanes that send them are
built by :func:`agent.delivery.lanes.lane_ports` on their own threads, and ask the gate again at
the moment of sending.

Wiring (agent.app)::

    delivery = Delivery(outbox, identity, db, consent, recipients=policy.recipients,
                        uploads_enabled=..., messages_enabled=..., wake=worker.wake, gate=gate)
    pipeline on_clip=delivery.clip_sealed; on_event -> delivery.event(...)
    on revoke: gate.revoked(scopes, purge=delivery.purge)      # inside gate.paused()
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from agent.delivery.gate import DEVICE_SCOPE, ConsentGate
from agent.delivery.jobs import (
    CheckpointJob,
    ForgetJob,
    JobError,
    SegmentJob,
    UploadJob,
    WithdrawLiveJob,
)
from agent.delivery.members import sealed_to_members
from agent.delivery.outbox import Item, Outbox
from agent.delivery.segment_upload import live_segments_sent
from agent.device.consent import ConsentStore
from agent.device.database import DeviceDB
from agent.device.identity import DeviceIdentity
from agent.recording.live_segments import LiveCut
from agent.store import ClipRecord
from uplink import (
    Body,
    EventBody,
    Recipient,
    ResumeState,
    SeqState,
    StatusBody,
    UploadedBody,
    next_message,
    sign_status,
    topic_for,
)
from uplink import iso_utc_z as iso  # event and clip times: 2026-05-01T19:30:00Z

__all__ = ["Delivery", "iso", "left_the_device", "sign_into_chain"]

log = logging.getLogger("doorward")


def sign_into_chain(outbox: Outbox, identity: DeviceIdentity, body: Body, scope: str, *,
                    content: str, recipients: Sequence[Recipient], now: float,
                    retain: bool = False) -> Item:
    """Sign ``body`` as the next message of the device's chain and queue it, atomically."""

    def sign(seq: int, prev: str) -> bytes:
        state = SeqState(last_seq=seq - 1, last_hash=prev)
        signed, _ = next_message(state, body, identity.key, now=now, content=content,
                                 recipients=recipients)
        return signed.jws.encode("ascii")

    typ = {EventBody: "event", UploadedBody: "uploaded"}[type(body)]
    return outbox.enqueue_signed(topic_for(identity.device_id, typ), sign, scope, now=now,
                                 retain=retain)


def left_the_device(progress: dict[str, Any] | None) -> bool:
    """Whether an upload's saved progress shows something in the bucket: an object stored, or a
    multipart upload started (the ``ClipUploader`` state). Such an upload is withdrawn by the
    uploads lane, never dropped as "never sent"."""
    state = progress or {}
    try:
        return bool(state.get("stored")) or any(
            state.get(slot) and ResumeState.from_json(state[slot]).upload_id
            for slot in ("clip_parts", "snap_parts"))
    except ValueError:  # unreadable state: let the lane look (it records what it finds)
        return True


def _forgettable(item: Item, clip_ids: Sequence[str], everything: bool) -> bool:
    """Whether a forget drops this queued upload: every job but a ledger checkpoint with
    ``everything``, else the jobs about these clips."""
    try:
        job = item.job()
    except JobError:  # a damaged row: by the clip it names, if any
        return everything or (item.spec or {}).get("clip_id") in clip_ids
    if isinstance(job, CheckpointJob):
        return False
    return everything or (isinstance(job, UploadJob | SegmentJob) and job.clip_id in clip_ids)


class Delivery:
    """The loop thread's side (see the module docstring). ``wake`` nudges the outbox worker;
    ``gate``: the daemon's consent gate (a private one when omitted: its rules are the same)."""

    def __init__(self, outbox: Outbox, identity: DeviceIdentity, db: DeviceDB,
                 consent: ConsentStore, *, recipients: Callable[[], tuple[Recipient, ...]],
                 uploads_enabled: bool, messages_enabled: bool, wake: Callable[[], None],
                 wall: Callable[[], float] = time.time, gate: ConsentGate | None = None) -> None:
        self.outbox, self.identity, self.db, self.consent = outbox, identity, db, consent
        self.gate = gate or ConsentGate()
        self.recipients = recipients
        self.uploads_enabled = uploads_enabled
        self.messages_enabled = messages_enabled
        self.wake, self.wall = wake, wall

    def may_leave(self, scope: str, now: float) -> bool:
        """The consent gate's answer for ``scope`` at ``now``, on this (the loop's) thread."""
        return self.gate.may_leave(self.consent.allows, scope, now)

    def _send(self, body: Body, scope: str, now: float) -> None:
        owners = [Recipient.parse(r) for r in self.consent.recipients()]
        # Always sealed to the members (Home Assistant hears through the owner-side bridge);
        # with no member there is nobody to seal to, and no consent to let anything out.
        content = "sealed" if owners else "clear"
        sign_into_chain(self.outbox, self.identity, body, scope, content=content,
                        recipients=owners, now=now)
        self.wake()

    def event(self, kind: str, event_id: int | str, *, clip_id: str | None = None,
              peak_area: float | None = None) -> bool:
        """Queue an event message if ``events`` consent is in force now; True if queued."""
        now = self.wall()
        if not self.messages_enabled or not self.may_leave("events", now):
            return False
        self._send(EventBody(kind=kind, event_id=str(event_id), at=iso(now), clip_id=clip_id,
                             peak_area=None if peak_area is None else round(peak_area, 4)),
                   "events", now)
        return True

    def status_online(self, version: str, uptime_s: float) -> None:
        """The retained ``online`` status (scope ``device``: needs no consent, carries nothing
        about the door; the broker's will turns it into ``offline``). Retained, so a subscriber
        arriving later (Home Assistant's availability) sees online, not an older will. Signed but
        outside the message chain (no seq), so it counts nothing (uplink.messages.sign_status)."""
        if not self.messages_enabled:
            return
        now = self.wall()
        body = StatusBody(state="online", version=version, uptime_s=int(uptime_s))
        self.outbox.enqueue_message(topic_for(self.identity.device_id, "status"),
                                    sign_status(body, self.identity.key, now=now).encode("ascii"),
                                    DEVICE_SCOPE, now=now, retain=True)
        self.wake()

    def publish_retained(self, topic: str, payload: bytes, scope: str, *,
                         expires_in_s: float) -> None:
        """Queue a plain (unsigned) retained message, e.g. a Home Assistant discovery config;
        an empty ``payload`` clears what the broker retains there. ``scope`` gates it at the
        moment of sending like any other item (``device`` for a removal, which must leave
        even after consent is gone)."""
        now = self.wall()
        self.outbox.enqueue_message(topic, payload, scope, now=now, retain=True,
                                    expires_at=now + expires_in_s)
        self.wake()

    def clip_sealed(self, rec: ClipRecord) -> None:
        """Announce the clip (events consent) and queue its upload (clips/snapshots consent)."""
        self.event("clip-sealed", rec.event_id or "", clip_id=rec.id)
        self.queue_upload(rec)

    def upload_scope(self, rec: ClipRecord, now: float) -> str | None:
        """The scope ``rec`` would be uploaded under now: ``clips``, ``snapshots`` (the snapshot
        alone) or None (no consent for either, or uploads are off)."""
        if not self.uploads_enabled:
            return None
        return self.gate.upload_scope(self.consent.allows, now,
                                      snapshot=rec.snapshot_path is not None)

    def queue_upload(self, rec: ClipRecord) -> str | None:
        """Queue ``rec``'s upload if consent allows it now; the scope queued under, or None.
        (Consent is asked again before every request the uploads lane makes.)"""
        now = self.wall()
        scope = self.upload_scope(rec, now)
        if scope is None:
            return None
        if not sealed_to_members(rec.recipients, self.consent.recipients()):
            log.warning("clip %s is sealed to a key that is not a paired member's (the "
                        "development owner?): it is never uploaded", rec.id)
            return None
        job = UploadJob(clip_id=rec.id, clip=rec.path, snapshot=rec.snapshot_path or None,
                        started_at=rec.started_at, ended_at=rec.ended_at,
                        duration_s=rec.duration_s, recipients=tuple(rec.recipients),
                        truncated=bool(rec.truncated))
        self.outbox.enqueue_upload(job.to_json(), scope, now=now)
        self.wake()
        return scope

    def queue_segment(self, cut: LiveCut) -> bool:
        """Queue one segment of the clip being recorded (agent/recording/live_segments.py) if
        ``clips``
        consent is in force now and the clip is sealed to a current owner; True if queued."""
        now = self.wall()
        if not self.uploads_enabled or not self.may_leave("clips", now):
            return False
        if not sealed_to_members(cut.recipients, self.consent.recipients()):
            return False  # e.g. sealed to the development owner: never leaves
        job = SegmentJob(clip_id=cut.clip_id, segment=cut.n, offset=cut.offset, length=cut.length,
                         path=cut.path, recipients=tuple(cut.recipients))
        self.outbox.enqueue_upload(job.to_json(), "clips", now=now)
        self.wake()
        return True

    def purge(self, scopes: Sequence[str], reason: str) -> int:
        """Revocation: every queued item of these scopes that never left is dropped at once (and
        recorded as an ``outbox-drop``). Left to the uploads lane, which sees the revocation at
        its next check and withdraws what reached the bucket: the upload in flight, and uploads
        waiting to retry after storing something (:func:`left_the_device`). The consent gate
        calls it after the revocation commits (``gate.revoked(scopes, purge=delivery.purge)``),
        then waits for the upload in flight before the reply goes out."""
        now = self.wall()
        ids = [i.id for i in self.outbox.items(("queued",))
               if i.scope in scopes and not (i.kind == "upload" and left_the_device(i.progress))]
        dropped = len(self.outbox.drop_many(ids, reason, now)) if ids else 0
        if "clips" in scopes and self.uploads_enabled and live_segments_sent(self.db):
            # segments of clips being recorded are in the bucket without a manifest: the uploads
            # lane deletes them next (agent/delivery/segment_upload.py), a job that needs no consent
            self.outbox.enqueue_upload(WithdrawLiveJob(reason).to_json(), DEVICE_SCOPE, now=now)
            self.wake()
        return dropped

    def forget(self, clip_ids: Sequence[str], *, everything: bool, request: str,
               before: str | None = None) -> None:
        """Drop the queued uploads of these clips, erase the outbox's finished rows about them,
        and queue the bucket side of the erasure on the uploads lane (after pending uploads)."""
        now = self.wall()
        for item in self.outbox.items(("queued",)):
            if item.kind == "upload" and item.spec and _forgettable(item, clip_ids, everything):
                self.outbox.drop(item.id, "erased by the owner", now)
        self.outbox.erase_done(clip_ids, everything=everything)  # nothing of them stays queued
        if self.uploads_enabled:
            job = ForgetJob(clips=tuple(clip_ids), everything=everything, before=before,
                            request=request)
            self.outbox.enqueue_upload(job.to_json(), DEVICE_SCOPE, now=now)
            self.wake()
