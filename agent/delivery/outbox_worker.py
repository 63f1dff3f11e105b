"""The uplink sender: threads that drain the outbox through injected ports.

Wiring (daemon: agent/app.py with agent/delivery/lanes.py)::

    paths = DataDir(data_dir)                   # agent.paths
    def ports_for(lane: str) -> Ports:          # called ON the lane thread: open per-thread state
        db = DeviceDB(paths.device_db)              # sqlite connections are thread-bound
        consent, ledger = ConsentStore(db), Ledger(db, device_key)
        return Ports(
            allows=consent.allows,                  # asked through the gate: device is exempt
            publish=mqtt_batch_publisher(mqtt_client, ack_timeout_s=5.0),   # messages lane
            upload=s3_upload,                                               # uploads lane
            on_sent=after_sent,      # e.g. enqueue the `uploaded` message, ledger "disclosure"
            on_drop=lambda items: [ledger.append("outbox-drop", e, time.time())
                                   for e in drop_records(items)],
            close=db.close,
        )

    gate = ConsentGate()                            # agent/delivery/gate.py, shared
    worker = OutboxWorker(paths.outbox_db, ports_for, gate=gate)
    worker.start()                                  # one thread per lane, each its own Outbox
    outbox = Outbox(path, on_drop=..., notify=worker.wake)          # the loop's enqueue side
    client.events -> ConnectionEvent(connected=True): worker.wake()  # resume at once
    with gate.paused(): revoke; gate.revoked(scopes, purge=delivery.purge)  # no send races it
    left = worker.drain(timeout_s=60.0)             # --exit-at-eof; {} when all was sent
    worker.stop()

Lanes: ``messages`` and ``uploads`` run on separate threads, so a long clip upload never delays
an event; each lane is strictly FIFO (see :mod:`agent.delivery.outbox`). Consent is asked of the
gate (:meth:`ConsentGate.may_leave` with the lane's ``Ports.allows``) at the moment of sending,
for every item (and before each upload part through the progress callback); an item whose scope
is not allowed is dropped with reason "no consent" and recorded, never sent.

Messages go in batches of up to ``batch_size`` from the head, checked and published under
:meth:`ConsentGate.sending`; the publish port returns how many of them, from the first, the
broker acknowledged (QoS 1). Fewer than all means the broker is away: the lane waits
``offline_retry_s`` or until :meth:`OutboxWorker.wake`, with no spinning and no reordering. The
acknowledged prefix is marked sent in one unsynced transaction per batch.

Uploads (the port's contract: agent/delivery/ports.py): the consent check before an upload starts
and its registration as in flight are one step of the gate (:meth:`ConsentGate.admission`), so an
upload either is waited for by :meth:`ConsentGate.wait_stopped` or sees the revocation before
sending anything. A queued upload that had stored something in an earlier attempt (it has
``progress``) is handed to the port even without consent: its first ``progress(None)`` raises
``UploadCancelled`` and the port withdraws what reached the bucket, then raises
``UploadCancelled(withdrawn=True)``; the item is dropped with a reason starting ``withdrawn`` (the
port has already written the ledger). The same happens to such an upload when it expires in the
queue, before ``Outbox.expire`` drops it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.delivery.gate import ConsentGate
from agent.delivery.outbox import Backoff, Item, Outbox, OutboxLimits
from agent.delivery.ports import (
    WITHDRAWN,
    PermanentSendError,
    Ports,
    Progress,
    PublishBatch,
    Send,
    SendError,
    TransientSendError,
    UploadCancelled,
    UploadInterrupted,
    UploadPort,
)
from agent.delivery.publisher import remaining_expiry
from agent.errors import DoorwardError

log = logging.getLogger(__name__)

LANES = ("messages", "uploads")


@dataclass(frozen=True)
class WorkerSettings:
    batch_size: int = 100
    offline_retry_s: float = 2.0
    idle_check_s: float = 30.0  # wake up at least this often to expire items
    error_pause_s: float = 5.0  # after an unexpected error in the loop itself
    limits: OutboxLimits | None = None
    backoff: Backoff | None = None


class OutboxWorker:
    """The sender threads. ``ports_for(lane)`` runs on each lane thread at its start."""

    def __init__(
        self,
        path: Path,
        ports_for: Callable[[str], Ports],
        *,
        lanes: Sequence[str] = LANES,
        settings: WorkerSettings | None = None,
        clock: Callable[[], float] = time.time,
        gate: ConsentGate | None = None,
    ) -> None:
        if not lanes or not set(lanes) <= set(LANES):
            raise ValueError(f"lanes must be a non-empty subset of {LANES}, got {lanes!r}")
        self.path = path
        self._ports_for = ports_for
        self._lanes = tuple(dict.fromkeys(lanes))
        self.settings = settings or WorkerSettings()
        self._clock = clock
        self._stopping = threading.Event()
        self._wake = {lane: threading.Event() for lane in self._lanes}
        self.gate = gate or ConsentGate()  # consent, the pause, uploads in flight
        self._cond = threading.Condition()
        self._open: dict[str, int] = {}  # lane -> open items, as last seen by that lane
        self._threads: list[threading.Thread] = []

    # ---- control (any thread) ----------------------------------------------------------------

    def start(self) -> None:
        for lane in self._lanes:
            with self._cond:
                self._open[lane] = -1  # unknown until the lane has looked
            thread = threading.Thread(target=self._run, args=(lane,), name=f"outbox-{lane}",
                                      daemon=True)
            self._threads.append(thread)
            thread.start()

    def wake(self) -> None:
        """New work or the broker is back: every lane looks at the outbox now."""
        for event in self._wake.values():
            event.set()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The gate's pause (:meth:`ConsentGate.paused`): holds message sending."""
        with self.gate.paused():
            yield

    def wait_stopped(self, scopes: Sequence[str], timeout_s: float) -> bool:
        """:meth:`ConsentGate.wait_stopped`: no upload of ``scopes`` in flight any more."""
        return self.gate.wait_stopped(scopes, timeout_s)

    def drain(self, timeout_s: float,
              progress: Callable[[dict[str, int]], None] | None = None) -> dict[str, int]:
        """Wait until the lanes report nothing open, or ``timeout_s``; returns what is left
        (``Outbox.pending()`` counts, {} when everything was sent or dropped). ``progress``
        hears what is left at least every 2 s."""
        deadline = time.monotonic() + timeout_s
        outbox = Outbox(self.path, limits=self.settings.limits)
        try:
            while True:
                left = outbox.pending()
                if progress is not None:
                    progress(left)
                remaining = deadline - time.monotonic()
                if not left or remaining <= 0 or not self._alive():
                    return left
                with self._cond:  # a lane's report may predate the last enqueue: ask afresh
                    for lane in self._open:
                        self._open[lane] = -1
                self.wake()
                with self._cond:
                    self._cond.wait_for(
                        lambda: all(n == 0 for n in self._open.values()) or not self._alive(),
                        min(remaining, self.settings.offline_retry_s,
                            2.0 if progress is not None else remaining),
                    )
        finally:
            outbox.close()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the lanes (an upload stops at its next progress callback) and join them."""
        self._stopping.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout_s)
            if thread.is_alive():
                log.error("outbox lane %s did not stop within %.0f s", thread.name, timeout_s)

    def _open_outbox(self, lane: str, ports: Ports) -> Outbox | None:
        """Open the lane's connection; a failure is logged and retried, never fatal to the lane
        (a dead lane would leave its items queued forever without a word)."""
        while not self._stopping.is_set():
            try:
                return Outbox(self.path, limits=self.settings.limits,
                              backoff=self.settings.backoff, on_drop=ports.on_drop)
            except DoorwardError:
                log.exception("outbox lane %s cannot open %s; retrying in %.0f s", lane,
                              self.path, self.settings.error_pause_s)
                self._stopping.wait(self.settings.error_pause_s)
        return None

    def _alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    # ---- lane threads ------------------------------------------------------------------------

    def _run(self, lane: str) -> None:
        ports = self._ports_for(lane)
        outbox = self._open_outbox(lane, ports)
        if outbox is None:  # stopping before it could open
            if ports.close is not None:
                ports.close()
            return
        try:
            if lane == "uploads":
                outbox.recover()
            while not self._stopping.is_set():
                try:
                    wait = self.step(lane, outbox, ports)
                except Exception:  # logged with traceback; the lane must keep going
                    log.exception("outbox lane %s failed; retrying in %.0f s", lane,
                                  self.settings.error_pause_s)
                    wait = self.settings.error_pause_s
                self._report_open(lane, outbox)
                if wait > 0 and not self._stopping.is_set():
                    self._wake[lane].wait(wait)
                self._wake[lane].clear()
        finally:
            outbox.close()
            if ports.close is not None:
                ports.close()
            with self._cond:
                self._cond.notify_all()

    def _report_open(self, lane: str, outbox: Outbox) -> None:
        kind = "message" if lane == "messages" else "upload"
        count = sum(n for key, n in outbox.pending().items() if key.startswith(kind + ":"))
        with self._cond:
            self._open[lane] = count
            self._cond.notify_all()

    def _allowed(self, ports: Ports, scope: str, now: float) -> bool:
        return self.gate.may_leave(ports.allows, scope, now)

    def _idle_wait(self, outbox: Outbox, kind: str, now: float) -> float:
        head = outbox.head(kind)
        if head is not None and head.state == "queued" and head.next_attempt_at > now:
            return min(head.next_attempt_at - now, self.settings.idle_check_s)
        return self.settings.idle_check_s

    def step(self, lane: str, outbox: Outbox, ports: Ports) -> float:
        """One unit of work on ``lane`` with the caller's ``outbox`` and ``ports``; returns how
        long to wait before the next (0: go on at once). The lane threads loop on this; tests
        may call it directly, without threads, for deterministic interleavings."""
        now = self._clock()
        if lane == "uploads" and (head := outbox.head("upload")) is not None \
                and head.progress and head.state == "queued" and head.expires_at <= now:
            return self._withdraw_expired(outbox, ports, head)
        outbox.expire(now)
        if lane == "messages":
            return self._send_messages(outbox, ports)
        return self._send_upload(outbox, ports)

    def _withdraw_expired(self, outbox: Outbox, ports: Ports, item: Item) -> float:
        """An upload that expired after storing something: let the port withdraw it (its first
        ``progress`` raises) before ``Outbox.expire`` forgets it. If the bucket fails, the item
        stays queued (backing off) and the withdrawal is tried again at each next step: it is
        never forgotten while what it stored may still be in the bucket."""
        if ports.upload is None or not outbox.mark_in_flight(item.id):
            return 0.0

        def progress(state: dict[str, Any] | None) -> None:
            raise UploadCancelled(f"outbox item {item.id} expired before it could be sent; "
                                  "abort the upload")

        self.gate.register_upload("uploads", item)
        return self._upload_in_flight(outbox, ports, item, progress)

    def _send_messages(self, outbox: Outbox, ports: Ports) -> float:
        if ports.publish is None:
            raise ValueError("the messages lane needs Ports.publish")
        with self.gate.sending():
            now = self._clock()
            batch = outbox.due_messages(now, self.settings.batch_size)
            if not batch:
                return self._idle_wait(outbox, "message", now)
            verdict: dict[str, bool] = {}
            refused = [i.id for i in batch
                       if not verdict.setdefault(i.scope, self._allowed(ports, i.scope, now))]
            if refused:
                outbox.drop_many(refused, "no consent", now)
            todo = [i for i in batch if verdict[i.scope]]
            sends = [Send(i.id, str(i.topic), bytes(i.payload or b""), remaining_expiry(i, now),
                          i.retain) for i in todo]  # fmt: skip
            acked, failure = self._publish(ports.publish, sends)
            done = self._clock()
            outbox.mark_sent([i.id for i in todo[:acked]], done)
        for item in todo[:acked]:
            if ports.on_sent is not None:
                ports.on_sent(item, None)
        return self._after_batch(outbox, todo, acked, failure, done)

    def _publish(
        self, publish: PublishBatch, sends: Sequence[Send]
    ) -> tuple[int, SendError | Exception | None]:
        if not sends:
            return 0, None
        try:
            return min(max(publish(sends), 0), len(sends)), None
        except SendError as e:
            return min(max(e.acked, 0), len(sends)), e
        except Exception as e:  # unknown failure: treat as transient, keep the traceback
            log.exception("outbox publish port failed")
            return 0, e

    def _after_batch(self, outbox: Outbox, todo: Sequence[Item], acked: int,
                     failure: Exception | None, now: float) -> float:
        if failure is None:
            if acked < len(todo):  # broker away: wait, never reorder
                log.debug("outbox: broker not acknowledging; %d message(s) wait", len(todo) - acked)
                return self.settings.offline_retry_s
            return 0.0
        if acked >= len(todo):
            return 0.0
        head = todo[acked]
        if isinstance(failure, PermanentSendError):
            culprit = failure.item_id if failure.item_id is not None else head.id
            outbox.drop(culprit, f"send failed permanently: {failure}", now)
            return 0.0
        failed = outbox.mark_failed(head.id, now, f"{type(failure).__name__}: {failure}")
        return 0.0 if failed is None else max(0.0, failed.next_attempt_at - now)

    def _send_upload(self, outbox: Outbox, ports: Ports) -> float:
        if ports.upload is None:
            raise ValueError("the uploads lane needs Ports.upload")
        now = self._clock()
        item = outbox.head("upload")
        if item is None or item.next_attempt_at > now:
            return self._idle_wait(outbox, "upload", now)
        with self.gate.admission():  # one step with wait_stopped: sees a revocation or waited for
            allowed = self._allowed(ports, item.scope, now)
            if not allowed and not item.progress:  # never started: nothing can be in the bucket
                outbox.drop(item.id, "no consent", now)
                return 0.0
            if item.state == "queued" and not outbox.mark_in_flight(item.id):
                return 0.0  # dropped meanwhile
            self.gate.register_upload("uploads", item)

        def progress(state: dict[str, Any] | None) -> None:
            if state is not None and not outbox.save_progress(item.id, state):
                raise UploadCancelled(f"outbox item {item.id} was dropped; abort the upload")
            if not self._allowed(ports, item.scope, self._clock()):
                raise UploadCancelled(f"consent for {item.scope} withdrawn; abort the upload")
            if state is None and ((cur := outbox.get(item.id)) is None
                                  or cur.state != "in-flight"):  # dropped, or wiped by a reset
                raise UploadCancelled(f"outbox item {item.id} was dropped; abort the upload")
            if self._stopping.is_set():
                raise UploadInterrupted("doorward is stopping; the upload resumes at next start")

        return self._upload_in_flight(outbox, ports, item, progress)

    def _upload_in_flight(self, outbox: Outbox, ports: Ports, item: Item,
                          progress: Progress) -> float:
        """Send ``item`` (already registered in flight); unregister it however it ends and wake
        whoever waits on it (``wait_stopped``)."""
        assert ports.upload is not None
        try:
            return self._upload_one(outbox, ports, ports.upload, item, progress)
        finally:
            self.gate.upload_ended("uploads")

    def _upload_one(self, outbox: Outbox, ports: Ports, upload: UploadPort, item: Item,
                    progress: Progress) -> float:
        try:
            result = upload(item, progress)
        except UploadCancelled as e:
            reason = "no consent" if "consent" in str(e) else str(e)
            outbox.drop(item.id, f"{WITHDRAWN}: {e}" if e.withdrawn else reason, self._clock())
            return 0.0
        except UploadInterrupted:
            outbox.release(item.id)
            return 0.0
        except PermanentSendError as e:
            outbox.drop(item.id, f"upload failed permanently: {e}", self._clock())
            return 0.0
        except Exception as e:
            if not isinstance(e, TransientSendError):
                log.exception("outbox upload port failed on item %d", item.id)
            now = self._clock()
            failed = outbox.mark_failed(item.id, now, f"{type(e).__name__}: {e}")
            return 0.0 if failed is None else max(0.0, failed.next_attempt_at - now)
        if not outbox.mark_sent([item.id], self._clock()):
            log.warning("outbox upload %d completed while it was being dropped (revocation race):"
                        " its objects are in the bucket; `owner forget` removes them", item.id)
        if ports.on_sent is not None:
            ports.on_sent(item, result)
        return 0.0
