"""What leaves the device, and only with consent: event messages over MQTT, sealed clips to S3.

Two sides, on two kinds of thread:

* :class:`Delivery` lives on the daemon loop's thread. It turns events and sealed clips into
  outbox items *if consent allows them now*, signing each message into the device's chain (seq and
  prev commit with the item, so a crash never reuses a seq).
* :func:`lane_ports` builds, on each outbox lane's own thread, what that lane needs: the MQTT batch
  publisher (messages) or :class:`ClipUploader` (uploads), each with its own connections to
  device.sqlite (consent is checked again at the moment of sending) and outbox.sqlite.

Every upload is recorded in the ledger as a disclosure (what, where, under which grant), announced
by a signed ``uploaded`` message carrying the manifest, and reported to the loop so the store can
mark the clip delivered (delivered clips are evicted first when the disk fills).

An upload that ends unfinished (consent revoked or expired mid-upload, the item purged or
expired in the queue, or a permanent failure) leaves nothing in the bucket without its manifest:
:class:`ClipUploader` aborts its multipart uploads, deletes the objects it had stored, and records
a ``disclosure`` of those objects followed by ``withdrawn`` (an ``outbox-drop`` only when nothing
had left). Bodies are streamed with a consent check every 64 KiB (``ObjectStore.put_file(check=
...)``), and the revoke hook waits for the lane (``OutboxWorker.wait_stopped``) before the reply
goes out.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.delivery.checkpoints import (
    CheckpointSent,
    checkpoint_sent,
    is_checkpoint_job,
    upload_checkpoint,
)
from agent.delivery.outbox import Item, Outbox, drop_records
from agent.delivery.outbox_worker import (
    WITHDRAWN,
    PermanentSendError,
    Ports,
    TransientSendError,
    UploadCancelled,
    mqtt_batch_publisher,
)
from agent.delivery.segment_upload import (
    WITHDRAW_LIVE,
    SegmentUploaded,
    SegmentUploader,
    Superseded,
    live_segments_sent,
)
from agent.device.consent import ConsentStore
from agent.device.database import DEVICE_DB_FILE, DeviceDB
from agent.device.identity import DeviceIdentity
from agent.device.ledger import Ledger
from agent.device.owner_commands import bucket_replies, reply_topic
from agent.recording.live_segments import LiveCut
from agent.recording.sealing import members_only, sealed_to_members
from agent.runtime.status_file import LinkState
from agent.store import ClipRecord
from uplink import (
    Body,
    ClipObject,
    EventBody,
    ForgetResultBody,
    Manifest,
    ObjectStore,
    Recipient,
    ResumeState,
    S3AuthError,
    S3Error,
    S3IntegrityError,
    S3Unavailable,
    SeqState,
    StatusBody,
    UploadedBody,
    file_sha256,
    is_checkpoint_key,
    next_message,
    object_keys,
    seal_times,
    sign_manifest,
    sign_status,
    token_hash,
    topic_for,
)
from uplink import iso_utc_z as iso  # event and clip times: 2026-05-01T19:30:00Z

if TYPE_CHECKING:  # paho is loaded only where a broker is configured (agent.app.build_mqtt)
    from uplink import MqttClient

log = logging.getLogger("doorward")

OUTBOX_FILE = "outbox.sqlite"
CONTENT_SETTING = "event_content"
MANIFEST_CHAIN_SETTING = "manifest_chain"


@dataclass(frozen=True)
class ClipDelivered:
    """Posted to the loop's inbox by the upload lane: mark the clip delivered in the store."""

    clip_id: str


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


class Delivery:
    """The loop thread's side (see the module docstring). ``wake`` nudges the outbox worker."""

    def __init__(self, outbox: Outbox, identity: DeviceIdentity, db: DeviceDB,
                 consent: ConsentStore, *, recipients: Callable[[], tuple[Recipient, ...]],
                 uploads_enabled: bool, messages_enabled: bool, wake: Callable[[], None],
                 wall: Callable[[], float] = time.time) -> None:
        self.outbox, self.identity, self.db, self.consent = outbox, identity, db, consent
        self.recipients = recipients
        self.uploads_enabled = uploads_enabled
        self.messages_enabled = messages_enabled
        self.wake, self.wall = wake, wall

    @property
    def content(self) -> str:
        return self.db.get_setting(CONTENT_SETTING, "sealed")

    def _send(self, body: Body, scope: str, now: float) -> None:
        owners = [Recipient.parse(r) for r in self.consent.recipients()]
        content = self.content if owners else "clear"
        sign_into_chain(self.outbox, self.identity, body, scope, content=content,
                        recipients=owners, now=now)
        self.wake()

    def event(self, kind: str, event_id: int | str, *, clip_id: str | None = None,
              peak_area: float | None = None) -> bool:
        """Queue an event message if ``events`` consent is in force now; True if queued."""
        now = self.wall()
        if not self.messages_enabled or not self.consent.allows("events", now):
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
                                    "device", now=now, retain=True)
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
        if self.consent.allows("clips", now):
            return "clips"
        if rec.snapshot_path and self.consent.allows("snapshots", now):
            return "snapshots"
        return None

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
        spec = {"clip_id": rec.id, "clip": str(rec.path),
                "snapshot": str(rec.snapshot_path) if rec.snapshot_path else None,
                "started_at": rec.started_at, "ended_at": rec.ended_at,
                "duration_s": rec.duration_s, "recipients": list(rec.recipients)}
        if rec.truncated:
            spec["truncated"] = True
        self.outbox.enqueue_upload(spec, scope, now=now)
        self.wake()
        return scope

    def queue_segment(self, cut: LiveCut) -> bool:
        """Queue one segment of the clip being recorded (agent/recording/live_segments.py) if
        ``clips``
        consent is in force now and the clip is sealed to a current owner; True if queued."""
        now = self.wall()
        if not self.uploads_enabled or not self.consent.allows("clips", now):
            return False
        if not sealed_to_members(cut.recipients, self.consent.recipients()):
            return False  # e.g. sealed to the development owner: never leaves
        self.outbox.enqueue_upload({"live": True, "clip_id": cut.clip_id, "segment": cut.n,
                                    "offset": cut.offset, "length": cut.length,
                                    "path": str(cut.path), "recipients": list(cut.recipients)},
                                   "clips", now=now)
        self.wake()
        return True

    def purge(self, scopes: Sequence[str], reason: str) -> int:
        """Revocation: every queued item of these scopes that never left is dropped at once (and
        recorded as an ``outbox-drop``). Left to the uploads lane, which sees the revocation at
        its next check and withdraws what reached the bucket: the upload in flight, and uploads
        waiting to retry after storing something (:func:`left_the_device`). Wire it after the
        revocation commits, then ``OutboxWorker.wait_stopped(scopes, ...)`` before replying."""
        now = self.wall()
        ids = [i.id for i in self.outbox.items(("queued",))
               if i.scope in scopes and not (i.kind == "upload" and left_the_device(i.progress))]
        dropped = len(self.outbox.drop_many(ids, reason, now)) if ids else 0
        if "clips" in scopes and self.uploads_enabled and live_segments_sent(self.db):
            # segments of clips being recorded are in the bucket without a manifest: the uploads
            # lane deletes them next (agent/delivery/segment_upload.py), a job that needs no consent
            self.outbox.enqueue_upload({WITHDRAW_LIVE: True, "reason": reason}, "device", now=now)
            self.wake()
        return dropped

    def forget(self, clip_ids: Sequence[str], *, everything: bool, request: str,
               before: str | None = None) -> None:
        """Drop the queued uploads of these clips, erase the outbox's finished rows about them,
        and queue the bucket side of the erasure on the uploads lane (after pending uploads)."""
        now = self.wall()
        for item in self.outbox.items(("queued",)):
            if item.kind == "upload" and item.spec and not is_checkpoint_job(item.spec) and (
                    everything or item.spec.get("clip_id") in clip_ids):
                self.outbox.drop(item.id, "erased by the owner", now)
        self.outbox.erase_done(clip_ids, everything=everything)  # nothing of them stays queued
        if self.uploads_enabled:
            self.outbox.enqueue_upload({"forget": list(clip_ids), "all": everything,
                                        "before": before, "request": request}, "device", now=now)
            self.wake()


# ---- the lanes ---------------------------------------------------------------------------------


@dataclass
class LaneContext:
    """Everything a lane builds for itself, on its own thread."""

    data_dir: Path
    identity: DeviceIdentity
    mqtt: MqttClient | None
    store_factory: Callable[[], ObjectStore] | None
    prefix: str
    bucket: str
    inbox: queue.Queue[Any]
    # The worker's wake(): a lane that queues a message (uploaded, a forget's sealed replies) must
    # wake the messages lane, or it sleeps until its next idle check.
    wake: Callable[[], None] = lambda: None


def lane_ports(ctx: LaneContext, lane: str) -> Ports:
    """``OutboxWorker``'s ``ports_for``: runs on the lane's thread, opens its own connections."""
    db = DeviceDB(ctx.data_dir / DEVICE_DB_FILE)
    consent = ConsentStore(db)
    ledger = Ledger(db, ctx.identity.key)

    def allows(scope: str, now: float) -> bool:
        return scope == "device" or consent.allows(scope, now)

    def on_drop(items: Sequence[Item]) -> None:
        now = time.time()
        # a withdrawn upload left the device: the uploader recorded disclosure and withdrawn
        left = [i for i in items if not (i.drop_reason or "").startswith(WITHDRAWN)]
        for record in drop_records(left):
            ledger.append("outbox-drop", record, now)

    if lane == "messages" or ctx.store_factory is None:
        publish = mqtt_batch_publisher(ctx.mqtt) if ctx.mqtt is not None else None
        return Ports(allows=allows, publish=publish, on_drop=on_drop, close=db.close)
    outbox = Outbox(ctx.data_dir / OUTBOX_FILE)
    uploader = ClipUploader(ctx, ctx.store_factory(), db, consent, ledger, outbox)

    def close() -> None:
        outbox.close()
        db.close()

    # Checked again at the moment of sending: never a clip sealed to a development key.
    upload = members_only(uploader.upload, consent.recipients)
    return Ports(allows=allows, upload=upload, on_sent=uploader.on_sent,
                 on_drop=on_drop, close=close)


class _SnapshotRefused(UploadCancelled):
    """``snapshots`` consent went while a snapshot was being sent."""


@dataclass(frozen=True)
class Uploaded:
    clip_id: str
    manifest: str
    keys: tuple[str, ...]
    scope: str
    replaced: tuple[str, ...] = ()  # segments sent while it was recorded, now deleted


class ClipUploader:
    """The uploads lane's port: sealed clip, snapshot and signed manifest to the bucket."""

    def __init__(self, ctx: LaneContext, store: ObjectStore, db: DeviceDB, consent: ConsentStore,
                 ledger: Ledger, outbox: Outbox) -> None:
        self.ctx, self.store, self.db, self.consent = ctx, store, db, consent
        self.ledger, self.outbox = ledger, outbox
        self.segments = SegmentUploader(store, db, prefix=ctx.prefix,
                                        device_id=ctx.identity.device_id,
                                        device_key=ctx.identity.key)

    def upload(self, item: Item, progress: Callable[[dict[str, Any] | None], None]) -> object:
        """The port; tells the loop how the bucket answered (status: last seen reachability)."""
        try:
            result = self._upload(item, progress)
        except Exception as exc:
            cause = exc if isinstance(exc, S3Error) else exc.__cause__
            if isinstance(cause, S3Error):  # the bucket answered (or not); not a local failure
                self.ctx.inbox.put(LinkState("bucket", "failed", time.time(), str(cause)))
            raise
        self.ctx.inbox.put(LinkState("bucket", "ok", time.time()))
        return result

    def _upload(self, item: Item, progress: Callable[[dict[str, Any] | None], None]) -> object:
        spec = item.spec or {}
        if "forget" in spec:
            return self._forget(spec)
        if is_checkpoint_job(spec):  # the ledger's signed head (agent/delivery/checkpoints.py)
            return upload_checkpoint(self.store, self.ledger, self.ctx.prefix, progress)
        # a segment of a clip being recorded (agent/delivery/segment_upload.py)
        if spec.get("live"):
            return self._segment(spec, progress)
        if spec.get(WITHDRAW_LIVE):
            return self._withdraw_live(str(spec.get("reason", "consent revoked")))
        state: dict[str, Any] = dict(item.progress or {})
        try:
            return self._attempt(item, spec, state, progress)
        except (UploadCancelled, PermanentSendError) as exc:
            # the upload ends here: nothing of it may stay in the bucket without its manifest
            withdrawn = self._withdraw(item, spec, state, exc)
            if withdrawn is exc:
                raise
            raise withdrawn from exc

    def _segment(self, spec: dict[str, Any],
                 progress: Callable[[dict[str, Any] | None], None]) -> object:
        """One segment and its progress record: bounded requests (a few seconds of video),
        consent asked before each; S3 errors translated for the worker as for a clip."""
        try:
            return self.segments.upload(spec, progress)
        except (S3Unavailable, S3AuthError) as exc:
            raise TransientSendError(str(exc)) from exc
        except S3Error as exc:
            raise PermanentSendError(str(exc)) from exc

    def _withdraw_live(self, reason: str) -> Superseded:
        """Delete every segment sent of clips still being recorded (a revocation), recording a
        ``withdrawn`` ledger entry for each such clip."""
        try:
            for clip_id, keys in self.segments.withdraw_all():
                self.ledger.append("withdrawn", {"clip_id": clip_id, "bucket": self.ctx.bucket,
                                                 "objects": keys, "reason": reason}, time.time())
                log.warning("clip %s: withdrew %d object(s) sent while it was recorded (%s)",
                            clip_id, len(keys), reason)
        except S3Error as exc:
            raise TransientSendError(f"withdrawing segments failed ({exc}); retried") from exc
        return Superseded("")

    def _attempt(self, item: Item, spec: dict[str, Any], state: dict[str, Any],
                 progress: Callable[[dict[str, Any] | None], None]) -> Uploaded:
        """One attempt, S3 errors translated for the worker (retry, or drop)."""
        try:
            return self._upload_clip(item, spec, state, progress)
        except S3Unavailable as exc:
            raise TransientSendError(str(exc)) from exc
        except S3IntegrityError as exc:
            raise TransientSendError(f"{exc}: will re-read and retry") from exc
        except S3AuthError as exc:
            # refused credentials, or a clock the bucket finds skewed (the Pi has no real-time
            # clock): both are fixed on the device's side, and footage must outlast the fix
            raise TransientSendError(f"{exc}; the upload waits in the outbox and is tried "
                                     "again") from exc
        except S3Error as exc:
            raise PermanentSendError(str(exc)) from exc
        except FileNotFoundError as exc:
            raise PermanentSendError(f"the sealed file is gone (evicted or erased): {exc}") \
                from exc

    def _upload_clip(self, item: Item, spec: dict[str, Any], state: dict[str, Any],
                     progress: Callable[[dict[str, Any] | None], None]) -> Uploaded:
        """One attempt: clip (scope ``clips``), snapshot (if ``snapshots`` consent), manifest.
        ``state`` (the item's saved progress) is updated in place and saved through
        ``progress``; ``state["stored"]`` lists every object stored, for a withdrawal."""
        progress(None)  # raises if consent was revoked or the item purged
        if "keys" not in state:  # fixed at the first attempt: a retry after midnight keeps them
            keys = object_keys(self.ctx.prefix, self.ctx.identity.device_id, spec["clip_id"],
                               datetime.now(UTC).date())
            state["keys"] = {"clip": keys.clip, "snapshot": keys.snapshot,
                             "manifest": keys.manifest}
            state["clip_sha256"] = file_sha256(Path(spec["clip"]))
            if spec.get("snapshot"):
                state["snapshot_sha256"] = file_sha256(Path(spec["snapshot"]))
            progress(state)
        keys = state["keys"]
        objects: dict[str, ClipObject] = {}
        if item.scope == "clips":
            objects["clip"] = self._put(keys["clip"], Path(spec["clip"]), state["clip_sha256"],
                                        state, "clip_parts", progress)
        if spec.get("snapshot") and self._snapshots_allowed():
            snap = self._put_snapshot(item, spec, state, progress)
            if snap is not None:
                objects["snapshot"] = snap
        if not objects:
            raise PermanentSendError("nothing left to upload under the consent in force")
        if "manifest" not in state:
            state["manifest"] = self._manifest(spec, objects)
            progress(state)
        progress(None)
        self.store.put_bytes(keys["manifest"], state["manifest"].encode("ascii"))
        replaced = self.segments.retire(spec["clip_id"])  # the whole clip supersedes them
        return Uploaded(spec["clip_id"], state["manifest"],
                        (*(o.key for o in objects.values()), keys["manifest"]), item.scope,
                        tuple(replaced))

    def _snapshots_allowed(self) -> bool:
        return self.consent.allows("snapshots", time.time())

    def _put_snapshot(self, item: Item, spec: dict[str, Any], state: dict[str, Any],
                      progress: Callable[[dict[str, Any] | None], None]) -> ClipObject | None:
        """The snapshot, checked against ``snapshots`` consent every 64 KiB as well; in a
        ``clips`` upload a snapshots-only revocation stops just the snapshot (None)."""
        def check() -> None:
            progress(None)
            if not self._snapshots_allowed():
                raise _SnapshotRefused("consent for snapshots withdrawn; abort the snapshot")

        try:
            return self._put(state["keys"]["snapshot"], Path(spec["snapshot"]),
                             state["snapshot_sha256"], state, "snap_parts", progress, check)
        except _SnapshotRefused:
            if item.scope != "clips":
                raise
            self._abort_parts(state, "snap_parts")
            return None

    def _put(self, key: str, path: Path, sha: str, state: dict[str, Any], slot: str,
             progress: Callable[[dict[str, Any] | None], None],
             check: Callable[[], None] | None = None) -> ClipObject:
        def save(rs: ResumeState) -> None:
            state[slot] = rs.to_json()
            progress(state)

        resume = (ResumeState.from_json(state[slot], on_save=save) if state.get(slot)
                  else ResumeState(on_save=save))
        size = path.stat().st_size
        self.store.put_file(key, path, sha256_hex=sha, size=size, resume_state=resume,
                            check=check or (lambda: progress(None)))
        stored = state.setdefault("stored", [])
        if key not in stored:
            stored.append(key)
            state.setdefault("grants", [g.to_json() for g in self.consent.in_force(time.time())
                                        if g.scope in ("clips", "snapshots")])
        progress(state)  # saves what is in the bucket first, then checks consent
        return ClipObject(key=key, size=size, sha256=sha)

    def _abort_parts(self, state: dict[str, Any], slot: str) -> dict[str, Any] | None:
        """AbortMultipartUpload for the upload saved in ``state[slot]``, if any."""
        if not state.get(slot):
            return None
        rs = ResumeState.from_json(state[slot])
        if rs.upload_id is None or rs.key is None:
            return None
        self.store.abort_upload(rs.key, rs.upload_id)
        state[slot] = None
        return {"key": rs.key, "upload_id": rs.upload_id, "parts": len(rs.parts)}

    def _withdraw(self, item: Item, spec: dict[str, Any], state: dict[str, Any],
                  cancel: Exception) -> Exception:
        """An upload that ends unfinished (cancelled, or failed for good): abort its multipart
        uploads, delete whatever of the clip reached the bucket, and record it (``disclosure`` of
        the stored objects once, then ``withdrawn``). Returns the exception to raise: ``cancel``
        itself when nothing had left (the worker then records an ``outbox-drop``), else
        ``UploadCancelled(withdrawn=True)``. If the bucket fails meanwhile: TransientSendError,
        the item stays queued and is withdrawn at its next attempt."""
        if "keys" not in state:
            return cancel
        try:
            return self._withdraw_objects(item, spec, state, cancel)
        except S3Error as exc:
            raise TransientSendError(f"withdrawing clip {spec['clip_id']} from the bucket failed "
                                     f"({exc}); retried later") from exc

    def _withdraw_objects(self, item: Item, spec: dict[str, Any], state: dict[str, Any],
                          cancel: Exception) -> Exception:
        aborted = [a for slot in ("clip_parts", "snap_parts")
                   if (a := self._abort_parts(state, slot)) is not None]
        present = list(state.get("stored", []))
        now = time.time()
        if present and not state.get("disclosed"):
            self.ledger.append("disclosure", {
                "clip_id": spec["clip_id"], "bucket": self.ctx.bucket, "objects": present,
                "scope": item.scope, "grants": state.get("grants", []), "complete": False}, now)
            state["disclosed"] = True
            self.outbox.save_progress(item.id, state)
        deleted = self.store.delete(present) if present else []
        if not present and not any(a["parts"] for a in aborted):
            return cancel
        self.ledger.append("withdrawn", {
            "clip_id": spec["clip_id"], "bucket": self.ctx.bucket, "objects": sorted(deleted),
            "aborted": aborted, "reason": str(cancel)}, now)
        log.warning("upload of clip %s cancelled (%s): withdrew %s from the bucket",
                    spec["clip_id"], cancel, ", ".join(deleted) or "its partial upload")
        return UploadCancelled(f"{cancel}; withdrew {len(deleted)} object(s) and "
                               f"{len(aborted)} partial upload(s)", withdrawn=True)

    def _manifest(self, spec: dict[str, Any], objects: dict[str, ClipObject]) -> str:
        """The next manifest of the device's manifest chain (state persisted before use)."""
        raw = self.db.get_setting(MANIFEST_CHAIN_SETTING, "")
        seq, prev = (0, "0" * 64)
        if raw:
            seq_s, prev = raw.split(":", 1)
            seq = int(seq_s)
        owners = tuple(spec.get("recipients") or ())
        recipients = [Recipient.parse(r) for r in owners]
        start = datetime.fromisoformat(spec["started_at"]).timestamp()
        end = datetime.fromisoformat(spec["ended_at"]).timestamp()
        manifest = Manifest(
            device_id=self.ctx.identity.device_id, clip_id=spec["clip_id"], seq=seq + 1,
            prev_manifest=prev, objects=objects, recipients=owners,
            sealed_times=seal_times(started_at=iso(start), ended_at=iso(end),
                                    duration_s=float(spec["duration_s"]), recipients=recipients,
                                    truncated=bool(spec.get("truncated"))),
            uploaded_at=iso(time.time()))
        token = sign_manifest(manifest, self.ctx.identity.key)
        self.db.set_setting(MANIFEST_CHAIN_SETTING, f"{seq + 1}:{token_hash(token)}")
        return token

    def on_sent(self, item: Item, result: object) -> None:
        now = time.time()
        if isinstance(result, CheckpointSent):  # no ledger entry: it would grow the ledger again
            checkpoint_sent(self.db, result)
            return
        if isinstance(result, Superseded):
            return  # nothing left the device for it
        if isinstance(result, SegmentUploaded):
            self.ledger.append("disclosure", {
                "clip_id": result.clip_id, "bucket": self.ctx.bucket, "objects": list(result.keys),
                "scope": "clips", "segment": result.n, "grants": self._grants(now)}, now)
            return
        if isinstance(result, ForgetResultBody):
            self.ledger.append("erasure", {"request": result.request, "clips": list(result.clips),
                                           "objects": len(result.objects),
                                           "failed": list(result.failed)}, now)
            if self.ctx.mqtt is not None:  # to the owners only, sealed: never a broadcast
                for reply in bucket_replies(result, self.consent, self.ctx.identity.key, now):
                    self.outbox.enqueue_message(reply_topic(self.ctx.identity.device_id),
                                                reply.encode("ascii"), "device", now=now)
                self.ctx.wake()
            return
        assert isinstance(result, Uploaded)
        record = {"clip_id": result.clip_id, "bucket": self.ctx.bucket,
                  "objects": list(result.keys), "scope": result.scope,
                  "grants": self._grants(now)}
        if result.replaced:
            record["replaced"] = list(result.replaced)
        self.ledger.append("disclosure", record, now)
        if self.ctx.mqtt is not None and (self.consent.allows("clips", now)
                                          or self.consent.allows("snapshots", now)):
            owners = [Recipient.parse(r) for r in self.consent.recipients()]
            content = self.db.get_setting(CONTENT_SETTING, "sealed") if owners else "clear"
            sign_into_chain(self.outbox, self.ctx.identity,
                            UploadedBody(manifest=result.manifest, clip_id=result.clip_id),
                            result.scope, content=content, recipients=owners, now=now)
            self.ctx.wake()
        self.ctx.inbox.put(ClipDelivered(result.clip_id))

    def _grants(self, now: float) -> list[dict[str, Any]]:
        return [g.to_json() for g in self.consent.in_force(now)
                if g.scope in ("clips", "snapshots")]

    def _forget(self, spec: dict[str, Any]) -> ForgetResultBody:
        base = f"{self.ctx.prefix}/{self.ctx.identity.device_id}/".lstrip("/")
        wanted = set(spec["forget"])
        before = (spec.get("before") or "").replace("-", "/")  # keys hold the upload day

        def chosen(key: str) -> bool:
            day = "/".join(key[len(base):].split("/")[:3])
            return bool(spec["all"] or key.rsplit("/", 1)[-1].split(".", 1)[0] in wanted
                        or (before and day < before))

        # Ledger checkpoints are never erased: counts and hashes, the record of what was disclosed.
        keys = [k for k in self.store.list(base) if chosen(k) and not is_checkpoint_key(k)]
        try:
            deleted = self.store.delete(keys) if keys else []
        except S3Unavailable as exc:
            raise TransientSendError(str(exc)) from exc
        failed = sorted(set(keys) - set(deleted))
        clips = sorted({k.rsplit("/", 1)[-1].split(".", 1)[0] for k in deleted})
        return ForgetResultBody(request=spec["request"], clips=tuple(clips),
                                objects=tuple(deleted), failed=tuple(failed))


