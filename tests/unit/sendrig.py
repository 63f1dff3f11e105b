"""The uploads lane exactly as the daemon wires it (``agent.delivery.lanes.lane_ports`` ->
``members_only`` -> ``ClipUploader``), against the in-memory object store, with no thread: a test
drives :meth:`OutboxWorker.step` itself, so every interleaving is deterministic and a run takes
milliseconds (fast enough to run against every mutant of the send-time checks).

``SendRig.clock`` is the worker's clock (``time.time() + skew_s``); the uploader itself reads
``time.time()``, as in the daemon.
"""

from __future__ import annotations

import hashlib
import queue
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.delivery.lanes import LaneContext, lane_ports
from agent.delivery.outbox import Item, Outbox
from agent.delivery.outbox_worker import OutboxWorker
from agent.delivery.ports import Ports
from agent.delivery.queueing import Delivery
from agent.device.consent import ConsentStore
from agent.device.database import DeviceDB
from agent.device.identity import DeviceIdentity
from agent.device.ledger import Ledger
from agent.paths import DataDir
from uplink.agekeys import Identity
from uplink.keys import public_raw
from uplink.memory_store import MemoryObjectStore
from uplink.objectstore import PutResult
from uplink.s3_errors import S3Error, S3IntegrityError
from uplink.s3_multipart import Check, PartRecord, Progress, ResumeState

PREFIX = "doorward"
BUCKET = "bucket"
CLIP_ID = "c0ffee0001"


class PartStore(MemoryObjectStore):
    """A :class:`MemoryObjectStore` that sends bodies larger than ``part_bytes`` as a multipart
    upload of small parts (S3, and so the twin's real multipart, wants parts of 5 MiB or more),
    saving ``resume_state`` as ``uplink.s3_multipart.upload_multipart`` does (created, after each
    part, reset on completion) and checking before each part; the upload of key k has the id
    ``up-k``; ``fail_part`` ((key, n), exc) fails part n of key once."""

    def __init__(self, part_bytes: int = 64 * 1024) -> None:
        super().__init__()
        self.part_bytes = part_bytes
        self.fail_part: tuple[tuple[str, int], Exception] | None = None

    def abort_upload(self, key: str, upload_id: str) -> None:
        if upload_id != f"up-{key}":
            raise S3Error(f"NoSuchUpload: {upload_id!r} for {key}")
        super().abort_upload(key, upload_id)

    def put_file(self, key: str, path: Path, *, sha256_hex: str, size: int,
                 progress: Progress | None = None, resume_state: ResumeState | None = None,
                 content_type: str = "application/octet-stream",
                 check: Check | None = None) -> PutResult:
        if hashlib.sha256(path.read_bytes()).hexdigest() != sha256_hex:
            raise S3IntegrityError(f"{key}: the body does not match its SHA-256")
        if size <= self.part_bytes:
            return super().put_file(key, path, sha256_hex=sha256_hex, size=size,
                                    resume_state=resume_state, check=check)
        if key in self.objects:
            return PutResult(key, size, sha256_hex, skipped=True)
        if self.before_put is not None:
            self.before_put(key)
        state = resume_state if resume_state is not None else ResumeState()
        if check is not None:
            check()
        if state.upload_id is None:
            state.upload_id, state.key, state.sha256 = f"up-{key}", key, sha256_hex
            state.part_size, state.parts = self.part_bytes, []
            self.requests.append(f"CREATE {key}")
        state.save()
        total = -(-size // self.part_bytes)
        for n in range(len(state.parts) + 1, total + 1):
            if check is not None:
                check()
            if self.fail_part is not None and self.fail_part[0] == (key, n):
                exc, self.fail_part = self.fail_part[1], None
                raise exc
            self.requests.append(f"PART {key} {n}")
            state.parts.append(PartRecord(PartNumber=n, ETag=f"e{n}", ChecksumSHA256="x"))
            state.save()
        if check is not None:
            check()
        self.requests.append(f"COMPLETE {key}")
        self.objects[key] = path.read_bytes()
        state.reset()
        state.save()
        return PutResult(key, size, sha256_hex, skipped=False)


@dataclass
class SendRig:
    data: Path
    identity: DeviceIdentity
    db: DeviceDB
    consent: ConsentStore
    ledger: Ledger
    store: MemoryObjectStore
    ctx: LaneContext
    ports: Ports
    outbox: Outbox
    worker: OutboxWorker
    delivery: Delivery
    owner: Identity
    skew_s: float = 0.0
    wakes: list[int] = field(default_factory=list)

    @property
    def recipient(self) -> str:
        return str(self.owner.recipient)

    def clock(self) -> float:
        return time.time() + self.skew_s

    def grant(self, scopes: Sequence[str], *, for_s: float = 3600.0) -> None:
        self.consent.grant(scopes, time.time() + for_s, by="k-test", now=time.time())

    def revoke(self, scopes: Sequence[str]) -> list[str]:
        return self.consent.revoke(scopes, "k-test", time.time())

    def files(self, tmp: Path, clip_size: int = 150_000,
              snap_size: int | None = 70_000) -> tuple[Path, Path | None]:
        clip = tmp / "clip.age"
        clip.write_bytes(bytes(range(256)) * (clip_size // 256) + b"c" * (clip_size % 256))
        snap = None
        if snap_size is not None:
            snap = tmp / "snap.age"
            snap.write_bytes(b"s" * snap_size)
        return clip, snap

    def spec(self, clip: Path, snapshot: Path | None, *, clip_id: str = CLIP_ID,
             recipients: Sequence[str] | None = None) -> dict[str, Any]:
        return {"clip_id": clip_id, "clip": str(clip),
                "snapshot": str(snapshot) if snapshot else None,
                "started_at": "2026-12-03T10:00:00+00:00",
                "ended_at": "2026-12-03T10:00:10+00:00", "duration_s": 10.0,
                "recipients": list(recipients if recipients is not None else [self.recipient])}

    def queue(self, spec: dict[str, Any], scope: str, *, expires_at: float | None = None) -> Item:
        return self.outbox.enqueue_upload(spec, scope, now=time.time(), expires_at=expires_at)

    def step(self) -> float:
        return self.worker.step("uploads", self.outbox, self.ports)

    def entries(self) -> list[tuple[str, dict[str, Any]]]:
        return [(e.kind, dict(e.data)) for e in self.ledger.entries()
                if e.kind not in ("link", "owner-paired")]

    def kinds(self) -> list[str]:
        return [k for k, _ in self.entries()]

    def inbox(self) -> list[Any]:
        out = []
        while True:
            try:
                out.append(self.ctx.inbox.get_nowait())
            except queue.Empty:
                return out


@contextmanager
def send_rig(tmp: Path, *, mqtt: Any = None, store: MemoryObjectStore | None = None,
             prefix: str = PREFIX) -> Iterator[SendRig]:
    """A :class:`SendRig` with a paired owner and no grant."""
    data = tmp / "device"
    identity = DeviceIdentity.load_or_create(data)
    db = DeviceDB(DataDir(data).device_db)
    consent, ledger = ConsentStore(db), Ledger(db, identity.key)
    owner = Identity.generate()
    consent.add_owner(public_raw(Ed25519PrivateKey.generate()),
                      str(owner.recipient), "owner", time.time())
    store = store if store is not None else MemoryObjectStore()
    wakes: list[int] = []
    ctx = LaneContext(data, identity, mqtt, lambda: store, prefix, BUCKET, queue.Queue(),
                      wake=lambda: wakes.append(1))
    ports = lane_ports(ctx, "uploads")
    outbox = Outbox(DataDir(data).outbox_db, on_drop=ports.on_drop)
    box: list[SendRig] = []
    worker = OutboxWorker(DataDir(data).outbox_db, lambda lane: ports, lanes=("uploads",),
                          clock=lambda: box[0].clock())
    delivery = Delivery(outbox, identity, db, consent, recipients=lambda: (),
                        uploads_enabled=True, messages_enabled=True,
                        wake=lambda: wakes.append(2))
    rig = SendRig(data, identity, db, consent, ledger, store, ctx, ports, outbox, worker,
                  delivery, owner, wakes=wakes)
    box.append(rig)
    try:
        yield rig
    finally:
        outbox.close()
        if ports.close is not None:
            ports.close()
        db.close()
