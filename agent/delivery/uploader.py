"""The uploads lane's port: sealed clip, snapshot and signed manifest to the bucket, and the
other jobs of that lane (segments, erasure, ledger checkpoints, withdrawal of segments).

Built on the lane's thread by :func:`agent.delivery.lanes.lane_ports`; it reads each item's
typed job (agent/delivery/jobs.py) and dispatches on its type.

Every upload is recorded in the ledger as a disclosure (what, where, under which grant), announced
by a signed ``uploaded`` message carrying the manifest, and reported to the loop
(:class:`ClipDelivered`) so the store can mark the clip delivered (delivered clips are evicted
first when the disk fills).

An upload that ends unfinished (consent revoked or expired mid-upload, the item purged or
expired in the queue, or a permanent failure) leaves nothing in the bucket without its manifest:
:class:`ClipUploader` aborts its multipart uploads, deletes the objects it had stored, and records
a ``disclosure`` of those objects followed by ``withdrawn`` (an ``outbox-drop`` only when nothing
had left). Bodies are streamed with a consent check every 64 KiB (``ObjectStore.put_file(check=
...)``), asked of the consent gate (agent/delivery/gate.py), whose revocation waits for the lane
before the reply goes out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.delivery.checkpoints import CheckpointSent, checkpoint_sent, upload_checkpoint
from agent.delivery.gate import ConsentGate
from agent.delivery.jobs import (
    CheckpointJob,
    ForgetJob,
    JobError,
    SegmentJob,
    UploadJob,
    WithdrawLiveJob,
)
from agent.delivery.links import ClipDelivered, LinkState
from agent.delivery.outbox import Item, Outbox
from agent.delivery.ports import (
    LaneContext,
    PermanentSendError,
    TransientSendError,
    UploadCancelled,
)
from agent.delivery.queueing import iso, sign_into_chain
from agent.delivery.segment_upload import SegmentUploaded, SegmentUploader, Superseded
from agent.device.consent import ConsentStore
from agent.device.database import DeviceDB
from agent.device.ledger import Ledger
from agent.device.owner_commands import bucket_replies, reply_topic
from uplink import (
    ClipObject,
    ForgetResultBody,
    Manifest,
    ObjectStore,
    Recipient,
    ResumeState,
    S3AuthError,
    S3Error,
    S3IntegrityError,
    S3Unavailable,
    UploadedBody,
    file_sha256,
    is_checkpoint_key,
    object_keys,
    seal_times,
    sign_manifest,
    token_hash,
)

log = logging.getLogger("doorward")

MANIFEST_CHAIN_SETTING = "manifest_chain"
UPLOAD_SCOPES = ("clips", "snapshots")  # the grants a disclosure records


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
                 ledger: Ledger, outbox: Outbox, gate: ConsentGate | None = None) -> None:
        self.ctx, self.store, self.db, self.consent = ctx, store, db, consent
        self.ledger, self.outbox = ledger, outbox
        self.gate = gate or ConsentGate()
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
        try:
            job = item.job()
        except JobError as exc:  # a damaged row: retrying cannot help
            raise PermanentSendError(str(exc)) from exc
        if isinstance(job, ForgetJob):
            return self._forget(job)
        if isinstance(job, CheckpointJob):  # the ledger's head (agent/delivery/checkpoints.py)
            return upload_checkpoint(self.store, self.ledger, self.ctx.prefix, progress)
        if isinstance(job, SegmentJob):  # a clip being recorded (agent/delivery/segment_upload.py)
            return self._segment(job, progress)
        if isinstance(job, WithdrawLiveJob):
            return self._withdraw_live(job.reason)
        state: dict[str, Any] = dict(item.progress or {})
        try:
            return self._attempt(item, job, state, progress)
        except (UploadCancelled, PermanentSendError) as exc:
            # the upload ends here: nothing of it may stay in the bucket without its manifest
            withdrawn = self._withdraw(item, job, state, exc)
            if withdrawn is exc:
                raise
            raise withdrawn from exc

    def _segment(self, job: SegmentJob,
                 progress: Callable[[dict[str, Any] | None], None]) -> object:
        """One segment and its progress record: bounded requests (a few seconds of video),
        consent asked before each; S3 errors translated for the worker as for a clip."""
        try:
            return self.segments.upload(job, progress)
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

    def _attempt(self, item: Item, job: UploadJob, state: dict[str, Any],
                 progress: Callable[[dict[str, Any] | None], None]) -> Uploaded:
        """One attempt, S3 errors translated for the worker (retry, or drop)."""
        try:
            return self._upload_clip(item, job, state, progress)
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

    def _upload_clip(self, item: Item, job: UploadJob, state: dict[str, Any],
                     progress: Callable[[dict[str, Any] | None], None]) -> Uploaded:
        """One attempt: clip (scope ``clips``), snapshot (if ``snapshots`` consent), manifest.
        ``state`` (the item's saved progress) is updated in place and saved through
        ``progress``; ``state["stored"]`` lists every object stored, for a withdrawal."""
        progress(None)  # raises if consent was revoked or the item purged
        if "keys" not in state:  # fixed at the first attempt: a retry after midnight keeps them
            keys = object_keys(self.ctx.prefix, self.ctx.identity.device_id, job.clip_id,
                               datetime.now(UTC).date())
            state["keys"] = {"clip": keys.clip, "snapshot": keys.snapshot,
                             "manifest": keys.manifest}
            state["clip_sha256"] = file_sha256(job.clip)
            if job.snapshot is not None:
                state["snapshot_sha256"] = file_sha256(job.snapshot)
            progress(state)
        keys = state["keys"]
        objects: dict[str, ClipObject] = {}
        if item.scope == "clips":
            objects["clip"] = self._put(keys["clip"], job.clip, state["clip_sha256"],
                                        state, "clip_parts", progress)
        if job.snapshot is not None and self._snapshots_allowed():
            snap = self._put_snapshot(item, job.snapshot, state, progress)
            if snap is not None:
                objects["snapshot"] = snap
        if not objects:
            raise PermanentSendError("nothing left to upload under the consent in force")
        if "manifest" not in state:
            state["manifest"] = self._manifest(job, objects)
            progress(state)
        progress(None)
        self.store.put_bytes(keys["manifest"], state["manifest"].encode("ascii"))
        replaced = self.segments.retire(job.clip_id)  # the whole clip supersedes them
        return Uploaded(job.clip_id, state["manifest"],
                        (*(o.key for o in objects.values()), keys["manifest"]), item.scope,
                        tuple(replaced))

    def _snapshots_allowed(self) -> bool:
        return self.gate.may_leave(self.consent.allows, "snapshots", time.time())

    def _put_snapshot(self, item: Item, snapshot: Path, state: dict[str, Any],
                      progress: Callable[[dict[str, Any] | None], None]) -> ClipObject | None:
        """The snapshot, checked against ``snapshots`` consent every 64 KiB as well; in a
        ``clips`` upload a snapshots-only revocation stops just the snapshot (None)."""
        def check() -> None:
            progress(None)
            if not self._snapshots_allowed():
                raise _SnapshotRefused("consent for snapshots withdrawn; abort the snapshot")

        try:
            return self._put(state["keys"]["snapshot"], snapshot,
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
            state.setdefault("grants", self._grants(time.time()))
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

    def _withdraw(self, item: Item, job: UploadJob, state: dict[str, Any],
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
            return self._withdraw_objects(item, job, state, cancel)
        except S3Error as exc:
            raise TransientSendError(f"withdrawing clip {job.clip_id} from the bucket failed "
                                     f"({exc}); retried later") from exc

    def _withdraw_objects(self, item: Item, job: UploadJob, state: dict[str, Any],
                          cancel: Exception) -> Exception:
        aborted = [a for slot in ("clip_parts", "snap_parts")
                   if (a := self._abort_parts(state, slot)) is not None]
        present = list(state.get("stored", []))
        now = time.time()
        if present and not state.get("disclosed"):
            self.ledger.append("disclosure", {
                "clip_id": job.clip_id, "bucket": self.ctx.bucket, "objects": present,
                "scope": item.scope, "grants": state.get("grants", []), "complete": False}, now)
            state["disclosed"] = True
            self.outbox.save_progress(item.id, state)
        deleted = self.store.delete(present) if present else []
        if not present and not any(a["parts"] for a in aborted):
            return cancel
        self.ledger.append("withdrawn", {
            "clip_id": job.clip_id, "bucket": self.ctx.bucket, "objects": sorted(deleted),
            "aborted": aborted, "reason": str(cancel)}, now)
        log.warning("upload of clip %s cancelled (%s): withdrew %s from the bucket",
                    job.clip_id, cancel, ", ".join(deleted) or "its partial upload")
        return UploadCancelled(f"{cancel}; withdrew {len(deleted)} object(s) and "
                               f"{len(aborted)} partial upload(s)", withdrawn=True)

    def _manifest(self, job: UploadJob, objects: dict[str, ClipObject]) -> str:
        """The next manifest of the device's manifest chain (state persisted before use)."""
        raw = self.db.get_setting(MANIFEST_CHAIN_SETTING, "")
        seq, prev = (0, "0" * 64)
        if raw:
            seq_s, prev = raw.split(":", 1)
            seq = int(seq_s)
        owners = job.recipients
        recipients = [Recipient.parse(r) for r in owners]
        start = datetime.fromisoformat(job.started_at).timestamp()
        end = datetime.fromisoformat(job.ended_at).timestamp()
        manifest = Manifest(
            device_id=self.ctx.identity.device_id, clip_id=job.clip_id, seq=seq + 1,
            prev_manifest=prev, objects=objects, recipients=owners,
            sealed_times=seal_times(started_at=iso(start), ended_at=iso(end),
                                    duration_s=job.duration_s, recipients=recipients,
                                    truncated=job.truncated),
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
        if self.ctx.mqtt is not None and self.gate.upload_scope(self.consent.allows, now,
                                                                snapshot=True) is not None:
            owners = [Recipient.parse(r) for r in self.consent.recipients()]
            content = "sealed" if owners else "clear"  # nobody to seal to: nothing personal
            sign_into_chain(self.outbox, self.ctx.identity,
                            UploadedBody(manifest=result.manifest, clip_id=result.clip_id),
                            result.scope, content=content, recipients=owners, now=now)
            self.ctx.wake()
        self.ctx.inbox.put(ClipDelivered(result.clip_id))

    def _grants(self, now: float) -> list[dict[str, Any]]:
        return [g.to_json() for g in self.consent.in_force(now) if g.scope in UPLOAD_SCOPES]

    def _forget(self, job: ForgetJob) -> ForgetResultBody:
        """The bucket side of an erasure: the chosen clips' objects under the device's prefix
        (by clip id, by upload day before ``job.before``, or all), never ledger checkpoints."""
        base = f"{self.ctx.prefix}/{self.ctx.identity.device_id}/".lstrip("/")
        wanted = set(job.clips)
        before = (job.before or "").replace("-", "/")  # keys hold the upload day

        def chosen(key: str) -> bool:
            day = "/".join(key[len(base):].split("/")[:3])
            return bool(job.everything or key.rsplit("/", 1)[-1].split(".", 1)[0] in wanted
                        or (before and day < before))

        # Ledger checkpoints are never erased: counts and hashes, the record of what was disclosed.
        keys = [k for k in self.store.list(base) if chosen(k) and not is_checkpoint_key(k)]
        try:
            deleted = self.store.delete(keys) if keys else []
        except S3Unavailable as exc:
            raise TransientSendError(str(exc)) from exc
        failed = sorted(set(keys) - set(deleted))
        clips = sorted({k.rsplit("/", 1)[-1].split(".", 1)[0] for k in deleted})
        return ForgetResultBody(request=job.request, clips=tuple(clips),
                                objects=tuple(deleted), failed=tuple(failed))
