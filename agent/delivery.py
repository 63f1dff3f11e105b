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

from agent.consent import ConsentStore
from agent.devicedb import DEVICE_DB_FILE, DeviceDB
from agent.identity import DeviceIdentity
from agent.ledger import Ledger
from agent.live_upload import LiveCut
from agent.outbox import Item, Outbox, drop_records
from agent.outbox_worker import (
    PermanentSendError,
    Ports,
    TransientSendError,
    mqtt_batch_publisher,
)
from agent.segment_upload import SegmentUploaded, SegmentUploader, Superseded
from agent.status import LinkState
from agent.store import ClipRecord
from uplink.agekeys import Recipient
from uplink.manifest import ClipObject, Manifest, SeqState, seal_times, sign_manifest, token_hash
from uplink.messages import (
    Body,
    EventBody,
    ForgetResultBody,
    StatusBody,
    UploadedBody,
    next_message,
    topic_for,
)
from uplink.objectstore import ObjectStore, file_sha256, object_keys
from uplink.s3_errors import S3Error, S3IntegrityError, S3Unavailable
from uplink.s3_multipart import ResumeState

if TYPE_CHECKING:  # paho is loaded only where a broker is configured (agent.app.build_mqtt)
    from uplink.mqtt import MqttClient

log = logging.getLogger("doorward")

OUTBOX_FILE = "outbox.sqlite"
CONTENT_SETTING = "event_content"
MANIFEST_CHAIN_SETTING = "manifest_chain"


@dataclass(frozen=True)
class ClipDelivered:
    """Posted to the loop's inbox by the upload lane: mark the clip delivered in the store."""

    clip_id: str


def iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


def sign_into_chain(outbox: Outbox, identity: DeviceIdentity, body: Body, scope: str, *,
                    content: str, recipients: Sequence[Recipient], now: float,
                    retain: bool = False) -> Item:
    """Sign ``body`` as the next message of the device's chain and queue it, atomically."""

    def sign(seq: int, prev: str) -> bytes:
        state = SeqState(last_seq=seq - 1, last_hash=prev)
        signed, _ = next_message(state, body, identity.key, now=now, content=content,
                                 recipients=recipients)
        return signed.jws.encode("ascii")

    typ = {EventBody: "event", StatusBody: "status", UploadedBody: "uploaded",
           ForgetResultBody: "forgotten"}[type(body)]
    return outbox.enqueue_signed(topic_for(identity.device_id, typ), sign, scope, now=now,
                                 retain=retain)


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
        arriving later (Home Assistant's availability) sees online, not an older will."""
        if not self.messages_enabled:
            return
        now = self.wall()
        owners = [Recipient.parse(r) for r in self.consent.recipients()]
        sign_into_chain(self.outbox, self.identity,
                        StatusBody(state="online", version=version, uptime_s=int(uptime_s)),
                        "device", content="clear", recipients=owners, now=now, retain=True)
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
        """Queue one segment of the clip being recorded (agent/live_upload.py) if ``clips``
        consent is in force now and the clip is sealed to a current owner; True if queued."""
        now = self.wall()
        if not self.uploads_enabled or not self.consent.allows("clips", now):
            return False
        if not set(self.consent.recipients()).intersection(cut.recipients):
            return False  # e.g. sealed to the development owner: never leaves
        self.outbox.enqueue_upload({"live": True, "clip_id": cut.clip_id, "segment": cut.n,
                                    "offset": cut.offset, "length": cut.length,
                                    "path": str(cut.path), "recipients": list(cut.recipients)},
                                   "clips", now=now)
        self.wake()
        return True

    def purge(self, scopes: Sequence[str], reason: str) -> int:
        """Revocation: every queued item of these scopes is dropped at once (and recorded)."""
        now = self.wall()
        return sum(len(self.outbox.purge_scope(s, reason, now)) for s in scopes)

    def forget(self, clip_ids: Sequence[str], *, everything: bool, request: str,
               before: str | None = None) -> None:
        """Queue the bucket side of an erasure on the uploads lane (after pending uploads)."""
        now = self.wall()
        for item in self.outbox.items(("queued",)):
            if item.kind == "upload" and item.spec and (everything or
                                                        item.spec.get("clip_id") in clip_ids):
                self.outbox.drop(item.id, "erased by the owner", now)
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
    # The worker's wake(): a lane that queues a message (uploaded, forgotten) must wake the
    # messages lane, or it sleeps until its next idle check.
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
        for record in drop_records(items):
            ledger.append("outbox-drop", record, now)

    if lane == "messages" or ctx.store_factory is None:
        publish = mqtt_batch_publisher(ctx.mqtt) if ctx.mqtt is not None else None
        return Ports(allows=allows, publish=publish, on_drop=on_drop, close=db.close)
    outbox = Outbox(ctx.data_dir / OUTBOX_FILE)
    uploader = ClipUploader(ctx, ctx.store_factory(), db, consent, ledger, outbox)

    def close() -> None:
        outbox.close()
        db.close()

    return Ports(allows=allows, upload=uploader.upload, on_sent=uploader.on_sent,
                 on_drop=on_drop, close=close)


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
        try:
            if spec.get("live"):
                return self.segments.upload(spec, progress)
            return self._upload_clip(item, spec, progress)
        except S3Unavailable as exc:
            raise TransientSendError(str(exc)) from exc
        except S3IntegrityError as exc:
            raise TransientSendError(f"{exc}: will re-read and retry") from exc
        except S3Error as exc:
            raise PermanentSendError(str(exc)) from exc
        except FileNotFoundError as exc:
            raise PermanentSendError(f"the sealed file is gone (evicted or erased): {exc}") \
                from exc

    def _upload_clip(self, item: Item, spec: dict[str, Any],
                     progress: Callable[[dict[str, Any] | None], None]) -> Uploaded:
        state: dict[str, Any] = dict(item.progress or {})
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
        snap_ok = spec.get("snapshot") and self.consent.allows("snapshots", time.time())
        if snap_ok:
            objects["snapshot"] = self._put(keys["snapshot"], Path(spec["snapshot"]),
                                            state["snapshot_sha256"], state, "snap_parts",
                                            progress)
        if "clip" not in objects:
            if "snapshot" not in objects:
                raise PermanentSendError("nothing left to upload under the consent in force")
            objects["clip"] = objects.pop("snapshot")  # a snapshot-only upload
        if "manifest" not in state:
            state["manifest"] = self._manifest(spec, objects)
            progress(state)
        progress(None)
        self.store.put_bytes(keys["manifest"], state["manifest"].encode("ascii"))
        replaced = self.segments.retire(spec["clip_id"])  # the whole clip supersedes them
        return Uploaded(spec["clip_id"], state["manifest"],
                        (*(o.key for o in objects.values()), keys["manifest"]), item.scope,
                        tuple(replaced))

    def _put(self, key: str, path: Path, sha: str, state: dict[str, Any], slot: str,
             progress: Callable[[dict[str, Any] | None], None]) -> ClipObject:
        def save(rs: ResumeState) -> None:
            state[slot] = rs.to_json()
            progress(state)

        resume = (ResumeState.from_json(state[slot], on_save=save) if state.get(slot)
                  else ResumeState(on_save=save))
        size = path.stat().st_size
        self.store.put_file(key, path, sha256_hex=sha, size=size, resume_state=resume,
                            progress=lambda done, total: progress(None))
        return ClipObject(key=key, size=size, sha256=sha)

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
            if self.ctx.mqtt is not None:
                sign_into_chain(self.outbox, self.ctx.identity, result, "device",
                                content="clear", recipients=(), now=now)
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

        keys = [k for k in self.store.list(base) if chosen(k)]
        try:
            deleted = self.store.delete(keys) if keys else []
        except S3Unavailable as exc:
            raise TransientSendError(str(exc)) from exc
        failed = sorted(set(keys) - set(deleted))
        clips = sorted({k.rsplit("/", 1)[-1].split(".", 1)[0] for k in deleted})
        return ForgetResultBody(request=spec["request"], clips=tuple(clips),
                                objects=tuple(deleted), failed=tuple(failed))


