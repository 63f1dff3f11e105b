"""The device's real upload path, in process: for tests that drive a revocation or an expiry
precisely while an upload is in flight.

``UploadRig`` holds a device data directory with a paired owner, the uploads lane exactly as the
daemon wires it (``agent.delivery.lanes.lane_ports`` -> ``ClipUploader`` -> the given
``ObjectStore``)
on a real :class:`OutboxWorker` thread, the loop-side ``Delivery``, and the daemon's own revoke
hook (``agent.delivery.wiring.uplink_hooks``): ``rig.revoke(scopes)`` does what the controller
does after the signed command commits (revoke in the database, then the hook: purge, wait for the
lane). The worker's clock is ``time.time() + rig.skew_s``, so a test can let a grant expire
mid-upload.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.delivery.lanes import LaneContext, lane_ports
from agent.delivery.outbox import Backoff, Outbox, drop_records
from agent.delivery.outbox_worker import OutboxWorker, WorkerSettings
from agent.delivery.queueing import Delivery
from agent.delivery.wiring import Uplink, uplink_hooks
from agent.device.consent import ConsentStore
from agent.device.database import DeviceDB
from agent.device.identity import DeviceIdentity
from agent.device.ledger import Ledger
from agent.paths import DataDir
from uplink.agekeys import Identity
from uplink.objectstore import ObjectStore

PREFIX = "doorward"


@dataclass
class UploadRig:
    """See the module docstring. Build with :func:`upload_rig`."""

    data: Path
    db: DeviceDB
    consent: ConsentStore
    ledger: Ledger
    outbox: Outbox
    worker: OutboxWorker
    delivery: Delivery
    on_revoked: Callable[[list[str]], None]
    recipient: str
    skew_s: float = 0.0

    def grant(self, scopes: Sequence[str], *, for_s: float = 3600.0) -> None:
        self.consent.grant(scopes, time.time() + for_s, by="k-test", now=time.time())

    def revoke(self, scopes: list[str]) -> None:
        """What the controller does for an accepted ``consent.revoke``; returns when the reply
        would be sent."""
        revoked = self.consent.revoke(scopes, "k-test", time.time())
        self.on_revoked(revoked)

    def queue_clip(self, clip: Path, snapshot: Path | None, scope: str,
                   clip_id: str = "c0ffee0001") -> None:
        now = time.time()
        spec = {"clip_id": clip_id, "clip": str(clip),
                "snapshot": str(snapshot) if snapshot else None,
                "started_at": "2026-12-03T10:00:00+00:00", "ended_at": "2026-12-03T10:00:10+00:00",
                "duration_s": 10.0, "recipients": [self.recipient]}
        self.outbox.enqueue_upload(spec, scope, now=now)
        self.worker.wake()

    def settled(self) -> bool:
        return not any(k.startswith("upload:") for k in self.outbox.pending())

    def entries(self) -> list[dict[str, Any]]:
        return [{"kind": e.kind, "data": e.data} for e in self.ledger.entries()]


@contextmanager
def upload_rig(tmp: Path, store_factory: Callable[[], ObjectStore], *,
               bucket: str = "bucket") -> Iterator[UploadRig]:
    """An :class:`UploadRig` whose uploads lane runs (stopped on exit)."""
    data = tmp / "device"
    identity = DeviceIdentity.load_or_create(data)
    db = DeviceDB(DataDir(data).device_db)
    consent, ledger = ConsentStore(db), Ledger(db, identity.key)
    owner = Identity.generate()
    consent.add_owner(Ed25519PrivateKey.generate().public_key().public_bytes_raw(),
                      str(owner.recipient), "owner", time.time())

    def record(items: Sequence[Any]) -> None:
        for entry in drop_records(items):
            ledger.append("outbox-drop", entry, time.time())

    outbox = Outbox(DataDir(data).outbox_db, on_drop=record)
    ctx = LaneContext(data, identity, None, store_factory, PREFIX, bucket, queue.Queue())
    rig_box: list[UploadRig] = []
    worker = OutboxWorker(DataDir(data).outbox_db, lambda lane: lane_ports(ctx, lane),
                          lanes=("uploads",),
                          settings=WorkerSettings(backoff=Backoff(base_s=0.2, cap_s=0.5)),
                          clock=lambda: time.time() + (rig_box[0].skew_s if rig_box else 0.0))
    delivery = Delivery(outbox, identity, db, consent, recipients=lambda: (),
                        uploads_enabled=True, messages_enabled=False, wake=worker.wake)
    hooks = uplink_hooks(Uplink(delivery, worker), time.monotonic())
    rig = UploadRig(data, db, consent, ledger, outbox, worker, delivery, hooks.on_revoked,
                    str(owner.recipient))
    rig_box.append(rig)
    worker.start()
    try:
        yield rig
    finally:
        worker.stop()
        outbox.close()
        db.close()
