"""Publishing the ledger's signed checkpoints to the bucket, where the device cannot take them back.

Every ledger append signs a checkpoint (agent/device/ledger.py keeps the newest in device.sqlite).
While
the owner's ``clips`` consent is in force, the newest one goes to
``<prefix>/<device_id>/ledger/<count>-<head>.checkpoint.jws`` (uplink/checkpoint.py), so that the
owner's ``doorward owner ledger fetch|verify --bucket ...`` can refuse a ledger that no longer
extends what the device once committed to, even if the owner never fetched it in between.

Two halves, like agent/delivery/queueing.py and agent/delivery/uploader.py:

* :class:`CheckpointPublisher` (the daemon loop; ``tick()`` about once a second) queues a
  checkpoint job on the outbox's uploads lane when the ledger has grown past what was last
  published and ``clips`` consent is in force. One job at a time: the job uploads the newest head
  when it runs, so a burst of entries costs one upload.
* :func:`upload_checkpoint` / :func:`checkpoint_sent` (the uploads lane, called from
  ``ClipUploader``'s dispatch for a spec :func:`is_checkpoint_job` recognises) put it and remember
  the count published. Publishing writes no ledger entry: that would grow the ledger again.

The job is scoped ``clips``: consent is checked again at the moment of sending and a revocation
purges it. A job that is dropped (refused permanently by the bucket, say) is retried only after
``retry_after_drop_s``, since each drop is itself a ledger entry that would queue another job.
The device never deletes checkpoints (``owner forget`` skips them: they hold counts and hashes,
no personal data); a bucket policy denying the device ``DeleteObject`` under ``.../ledger/``
makes that hold even against someone with the device's credentials.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.delivery.gate import ConsentGate
from agent.delivery.jobs import CHECKPOINT, CheckpointJob
from agent.delivery.outbox import OPEN_STATES, Outbox
from agent.delivery.ports import PermanentSendError, TransientSendError
from agent.device.consent import ConsentStore
from agent.device.database import DeviceDB
from agent.device.ledger import Ledger
from uplink import (
    ObjectStore,
    S3Error,
    S3IntegrityError,
    S3Unavailable,
    checkpoint_key,
    verify_checkpoint,
)

JOB = CHECKPOINT  # the "job" field of a CheckpointJob (agent/delivery/jobs.py)
SENT_SETTING = "ledger_checkpoint_sent"  # the count of the newest checkpoint in the bucket
SCOPE = "clips"


def is_checkpoint_job(spec: dict[str, Any]) -> bool:
    """Whether an outbox upload row holds a :class:`CheckpointJob` (without parsing it)."""
    return spec.get("job") == JOB


def published_count(db: DeviceDB) -> int:
    try:
        return int(db.get_setting(SENT_SETTING, "0"))
    except ValueError:  # a mangled row: publish again (idempotent: same key, same bytes)
        return 0


class CheckpointPublisher:
    """The loop's side: ``tick()`` queues a checkpoint job when one is due."""

    def __init__(self, outbox: Outbox, db: DeviceDB, ledger: Ledger, consent: ConsentStore, *,
                 wake: Callable[[], None], retry_after_drop_s: float = 300.0,
                 wall: Callable[[], float] = time.time, gate: ConsentGate | None = None) -> None:
        self.outbox, self.db, self.ledger, self.consent = outbox, db, ledger, consent
        self.wake, self.wall = wake, wall
        self.retry_after_drop_s = retry_after_drop_s
        self.gate = gate or ConsentGate()
        self._job: int | None = None
        self._adopted = False

    def tick(self) -> bool:
        """Queue a job if the ledger grew past the bucket's newest checkpoint, clips consent is
        in force and no job is open (nor was dropped recently). True when one was queued."""
        now = self.wall()
        if not self._adopted:  # after a restart, a job queued by the previous run is ours
            self._adopted = True
            open_jobs = [i for i in self.outbox.items(OPEN_STATES)
                         if i.kind == "upload" and is_checkpoint_job(i.spec or {})]
            self._job = open_jobs[-1].id if open_jobs else None
        if self._job is not None:
            item = self.outbox.get(self._job)
            if item is not None and item.state in OPEN_STATES:
                return False
            if (item is not None and item.state == "dropped"
                    and now < (item.done_at or now) + self.retry_after_drop_s):
                return False
        head = self.ledger.signed_head()
        if head is None or head.count <= published_count(self.db):
            return False
        if not self.gate.may_leave(self.consent.allows, SCOPE, now):
            return False
        self._job = self.outbox.enqueue_upload(CheckpointJob(head.count).to_json(), SCOPE,
                                               now=now).id
        self.wake()
        return True


@dataclass(frozen=True)
class CheckpointSent:
    """The uploads lane's result for a checkpoint job."""

    count: int
    key: str


def upload_checkpoint(store: ObjectStore, ledger: Ledger, prefix: str,
                      progress: Callable[[dict[str, Any] | None], None]) -> CheckpointSent:
    """Put the newest signed head (whatever it is now) under the device's prefix."""
    progress(None)  # raises if consent was withdrawn or the job purged
    token = ledger.signed_head_token()
    if token is None:
        raise PermanentSendError("the ledger has no signed head to publish: `doorward ledger "
                                 "verify` on the device says why")
    cp = verify_checkpoint(token, ledger.public_key)
    key = checkpoint_key(prefix, cp.device_id, cp)
    progress(None)
    try:
        store.put_bytes(key, token.encode("ascii"), content_type="application/jose")
    except (S3Unavailable, S3IntegrityError) as exc:
        raise TransientSendError(str(exc)) from exc
    except S3Error as exc:
        raise PermanentSendError(f"{exc}: the device must be allowed to write {key}") from exc
    return CheckpointSent(cp.count, key)


def checkpoint_sent(db: DeviceDB, result: CheckpointSent) -> None:
    """After the PUT: remember the newest count in the bucket (never lower it)."""
    if result.count > published_count(db):
        db.set_setting(SENT_SETTING, str(result.count))
