"""The uplink sender: threads that drain the outbox through injected ports.

Wiring (daemon)::

    def ports_for(lane: str) -> Ports:          # called ON the lane thread: open per-thread state
        db = DeviceDB(data_dir / DEVICE_DB_FILE)    # sqlite connections are thread-bound
        consent, ledger = ConsentStore(db), Ledger(db, device_key)
        return Ports(
            allows=consent.allows,
            publish=mqtt_batch_publisher(mqtt_client, ack_timeout_s=5.0),   # messages lane
            upload=s3_upload,                                               # uploads lane
            on_sent=after_sent,      # e.g. enqueue the `uploaded` message, ledger "disclosure"
            on_drop=lambda items: [ledger.append("outbox-drop", e, time.time())
                                   for e in drop_records(items)],
            close=db.close,
        )

    worker = OutboxWorker(data_dir / OUTBOX_FILE, ports_for)
    worker.start()                                  # one thread per lane, each its own Outbox
    outbox = Outbox(path, on_drop=..., notify=worker.wake)          # the loop's enqueue side
    client.events -> ConnectionEvent(connected=True): worker.wake()  # resume at once
    with worker.paused(): revoke + outbox.purge_scope(...)            # no send races a revoke
    worker.wait_stopped(revoked_scopes, timeout_s=10.0)  # then reply: the upload has stopped
    left = worker.drain(timeout_s=60.0)             # --exit-at-eof; {} when all was sent
    worker.stop()

Lanes: ``messages`` and ``uploads`` run on separate threads, so a long clip upload never delays
an event; each lane is strictly FIFO (see :mod:`agent.delivery.outbox`). Consent is asked through
``Ports.allows`` at the moment of sending, for every gated item (and before each upload part
through the progress callback); an item whose scope is not allowed is dropped with reason
"no consent" and recorded, never sent.

Messages go in batches of up to ``batch_size`` from the head; the publish port returns how many
of them, from the first, the broker acknowledged (QoS 1). Fewer than all means the broker is
away: the lane waits ``offline_retry_s`` or until :meth:`OutboxWorker.wake`, with no spinning and
no reordering. The acknowledged prefix is marked sent in one unsynced transaction per batch.

Upload port: ``upload(item, progress) -> result``. ``item.progress`` is the resume state saved
by an earlier run (None at first). The port calls ``progress(state)`` after each part (state:
JSON-able dict, saved durably) and ``progress(None)`` just to check before each step, in
particular before completing; ``progress`` raises :class:`UploadCancelled` (consent withdrawn or
item purged: abort the multipart upload, delete objects this job completed, and let it propagate)
or :class:`UploadInterrupted` (stopping: keep the multipart upload to resume, let it propagate).
The port should call ``progress(None)`` between 64 KiB reads of a request body too (the object
store's ``check``), so at most one bounded request is in flight when consent goes.
Revocation: :meth:`OutboxWorker.wait_stopped` returns once no upload of the revoked scopes is in
flight (the consent check before an upload starts and its registration as in flight happen under
one lock, so an upload either is waited for or sees the revocation before sending anything). A
queued upload that had stored something in an earlier attempt (it has ``progress``) is handed to
the port even without consent: its first ``progress(None)`` raises ``UploadCancelled`` and the port
withdraws what reached the bucket, then raises ``UploadCancelled(withdrawn=True)``; the item is
dropped with a reason starting ``withdrawn`` (the port has already written the ledger). The same
happens to such an upload when it expires in the queue, before ``Outbox.expire`` drops it.
The port raises :class:`TransientSendError` (retry with backoff) or :class:`PermanentSendError`
(dropped with the reason, recorded). Any other exception is logged with its traceback and
retried like a transient one, so a bug cannot kill the sender silently.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from agent.delivery.outbox import GATED_SCOPES, Backoff, Item, Outbox, OutboxLimits
from agent.errors import DoorwardError
from uplink import MqttAuthError, MqttLimitError, MqttPublishError

if TYPE_CHECKING:  # paho is loaded only where a broker is configured (agent.app.build_mqtt)
    from uplink import MqttClient

log = logging.getLogger(__name__)

LANES = ("messages", "uploads")


class SendError(DoorwardError):
    """A port could not send. ``acked``: messages of the batch acknowledged before the failure."""

    def __init__(self, message: str, *, acked: int = 0, item_id: int | None = None) -> None:
        super().__init__(message)
        self.acked = acked
        self.item_id = item_id


class TransientSendError(SendError):
    """Worth retrying later (network, 5xx, throttling): the item backs off."""


class PermanentSendError(SendError):
    """Retrying cannot help (object too large, file gone, access denied): the item is dropped.
    For a message batch, ``item_id`` names the culprit."""


class UploadCancelled(DoorwardError):
    """The item must not be sent (consent withdrawn or the item was purged); never resume it.

    ``withdrawn``: raised by the port after it deleted what had reached the bucket and recorded
    that (disclosure, withdrawn) in the ledger; the drop is then not recorded again as an
    ``outbox-drop`` (reason prefix :data:`WITHDRAWN`)."""

    def __init__(self, message: str, *, withdrawn: bool = False) -> None:
        super().__init__(message)
        self.withdrawn = withdrawn


WITHDRAWN = "withdrawn"  # drop-reason prefix of an upload whose stored objects were withdrawn


class UploadInterrupted(DoorwardError):
    """The worker is stopping; the upload resumes from its saved progress at the next start."""


@dataclass(frozen=True)
class Send:
    """One message handed to the publish port; ``message_expiry_s`` is what is left of the item's
    lifetime (MQTT 5 message expiry), None for no expiry; ``retain``: the MQTT retain flag."""

    item_id: int
    topic: str
    payload: bytes
    message_expiry_s: int | None
    retain: bool = False


PublishBatch = Callable[[Sequence[Send]], int]
Progress = Callable[[dict[str, Any] | None], None]


class UploadPort(Protocol):
    def __call__(self, item: Item, progress: Progress) -> object: ...


@dataclass(frozen=True)
class Ports:
    """What a lane needs; built on the lane's own thread by the ``ports_for(lane)`` factory."""

    allows: Callable[[str, float], bool]
    publish: PublishBatch | None = None
    upload: UploadPort | None = None
    on_sent: Callable[[Item, object], None] | None = None
    on_drop: Callable[[Sequence[Item]], None] | None = None
    close: Callable[[], None] | None = None


@dataclass(frozen=True)
class WorkerSettings:
    batch_size: int = 100
    offline_retry_s: float = 2.0
    idle_check_s: float = 30.0  # wake up at least this often to expire items
    error_pause_s: float = 5.0  # after an unexpected error in the loop itself
    limits: OutboxLimits | None = None
    backoff: Backoff | None = None


def one_by_one(publish: Callable[[str, bytes, int | None], bool]) -> PublishBatch:
    """A batch port from ``publish(topic, payload, message_expiry_s) -> acknowledged``."""

    def batch(sends: Sequence[Send]) -> int:
        for n, s in enumerate(sends):
            if not publish(s.topic, s.payload, s.message_expiry_s):
                return n
        return len(sends)

    return batch


def mqtt_batch_publisher(client: MqttClient, ack_timeout_s: float = 5.0) -> PublishBatch:
    """Publish a batch at QoS 1 through ``client`` (paho pipelines it) and count the
    acknowledged prefix. Nothing is handed to paho while disconnected: paho would keep it and
    send it on reconnection, behind the outbox's back (a duplicate, possibly out of order)."""

    def batch(sends: Sequence[Send]) -> int:
        if not client.is_connected:
            return 0
        handles = []
        for s in sends:
            try:
                handles.append(client.publish(s.topic, s.payload, qos=1, retain=s.retain,
                                              message_expiry_s=s.message_expiry_s))
            except MqttLimitError as e:
                raise PermanentSendError(str(e), acked=_acked(client, handles, sends,
                                                              ack_timeout_s),
                                         item_id=s.item_id) from e
            if not client.is_connected:
                break  # the rest waits for the next batch
        return _acked(client, handles, sends, ack_timeout_s)

    return batch


def _acked(client: MqttClient, handles: Sequence[Any], sends: Sequence[Send],
           timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    for n, handle in enumerate(handles):
        try:
            if not client.wait_published(handle, max(0.0, deadline - time.monotonic())):
                return n
        except (MqttPublishError, MqttAuthError) as e:
            if sends[n].retain:
                # A retained message states what is true now and is sent again when that changes
                # (status on every connect, Home Assistant discovery on reconcile): dropping a
                # refused one (logged and in the ledger) loses nothing, keeping it would hold
                # every event behind it until the operator fixes the ACL.
                raise PermanentSendError(
                    f"broker refused retained {sends[n].topic!r}: {e}; allow the device to "
                    "write that topic in the broker's ACL", acked=n,
                    item_id=sends[n].item_id) from e
            # refused (e.g. by an ACL): keep it, in order, until the operator fixes it
            raise TransientSendError(f"broker refused a publish: {e}", acked=n) from e
    return len(handles)


def remaining_expiry(item: Item, now: float) -> int | None:
    """MQTT 5 message expiry left for ``item`` (>= 1 s), None when it has none."""
    if item.message_expiry_s is None:
        return None
    return max(1, math.ceil(min(float(item.message_expiry_s), item.expires_at - now)))


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
        self._gate = threading.Lock()  # held while a message batch is checked and sent
        self._cond = threading.Condition()
        self._open: dict[str, int] = {}  # lane -> open items, as last seen by that lane
        self._in_flight: dict[str, Item] = {}  # lane -> the upload its port is running
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
        """Hold message sending (waits for a batch in progress) e.g. while revoking and purging,
        so no message of a revoked scope leaves after the revocation commits."""
        with self._gate:
            yield

    def wait_stopped(self, scopes: Sequence[str], timeout_s: float) -> bool:
        """After a revocation of ``scopes`` committed: wait until no upload of those scopes is in
        flight (a ``clips`` upload carries the snapshot too, so revoking ``snapshots`` waits for
        it). False if one is still running after ``timeout_s`` (logged)."""
        def busy() -> list[Item]:
            return [i for i in self._in_flight.values()
                    if i.scope in scopes or ("snapshots" in scopes and i.scope == "clips")]

        with self._cond:
            if self._cond.wait_for(lambda: not busy(), timeout_s):
                return True
            log.error("uploads %s still running %.0f s after the revocation of %s",
                      [i.id for i in busy()], timeout_s, ", ".join(scopes))
            return False

    def drain(self, timeout_s: float) -> dict[str, int]:
        """Wait until the lanes report nothing open, or ``timeout_s``; returns what is left
        (``Outbox.pending()`` counts, {} when everything was sent or dropped)."""
        deadline = time.monotonic() + timeout_s
        outbox = Outbox(self.path, limits=self.settings.limits)
        try:
            while True:
                left = outbox.pending()
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
                        min(remaining, self.settings.offline_retry_s),
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
        return scope not in GATED_SCOPES or ports.allows(scope, now)

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

        with self._cond:
            self._in_flight["uploads"] = item
        return self._upload_in_flight(outbox, ports, item, progress)

    def _send_messages(self, outbox: Outbox, ports: Ports) -> float:
        if ports.publish is None:
            raise ValueError("the messages lane needs Ports.publish")
        with self._gate:
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
        with self._cond:  # one step with wait_stopped: checked after a revocation, or waited for
            allowed = self._allowed(ports, item.scope, now)
            if not allowed and not item.progress:  # never started: nothing can be in the bucket
                outbox.drop(item.id, "no consent", now)
                return 0.0
            if item.state == "queued" and not outbox.mark_in_flight(item.id):
                return 0.0  # dropped meanwhile
            self._in_flight["uploads"] = item

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
            with self._cond:
                self._in_flight.pop("uploads", None)
                self._cond.notify_all()

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
