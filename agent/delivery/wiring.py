"""The delivery side as the daemon runs it: the outbox, its worker lanes, the loop-side
:class:`Delivery`, the removal of old Home Assistant configs and ledger checkpoints, opened together
(:func:`open_uplink`), with what the loop asks of them (:class:`Uplink`) and the controller's
hooks into them (:func:`uplink_hooks`).

Wiring (agent.app)::

    uplink = open_uplink(data_dir, device, mqtt, store_factory, policy.recipients,
                         inbox=inbox, prefix=..., bucket=...)
    if uplink is not None:
        uplink.redeliver(store, device.ledger, device.consent)   # before the first frame
        hooks = uplink_hooks(uplink, clock.monotonic(), reports=reports)
        uplink.worker.start()
    ... at EOF with --exit-at-eof: uplink.drain(timeout_s)
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent import __version__
from agent.delivery.checkpoints import CheckpointPublisher
from agent.delivery.gate import ConsentGate
from agent.delivery.lanes import LaneContext, lane_ports
from agent.delivery.legacy_discovery import LegacyDiscovery
from agent.delivery.links import LaneReports
from agent.delivery.outbox import Item, Outbox, drop_records
from agent.delivery.outbox_worker import OutboxWorker
from agent.delivery.queueing import Delivery
from agent.delivery.redelivery import requeue_undelivered
from agent.device.consent import ConsentStore
from agent.device.control_plane import DeviceState, UplinkHooks
from agent.device.ledger import Ledger
from agent.paths import DataDir
from agent.progress import Progress
from agent.store import ClipStore
from uplink import ConnectionEvent, MqttPort, ObjectStore, Recipient

log = logging.getLogger("doorward")


@dataclass
class Uplink:
    delivery: Delivery
    worker: OutboxWorker
    discovery: LegacyDiscovery | None = None  # with a broker only: old configs removed
    checkpoints: CheckpointPublisher | None = None  # with a bucket only

    def pending(self) -> dict[str, int]:
        return self.delivery.outbox.pending()

    def redeliver(self, store: ClipStore, ledger: Ledger, consent: ConsentStore,
                  now: float | None = None) -> None:
        """Before the first frame: queue what a crash kept from the queue
        (agent/delivery/redelivery.py)."""
        report = requeue_undelivered(store.list_clips(), self.delivery,
                                     self.delivery.outbox.items(), ledger.entries(), consent,
                                     now=time.time() if now is None else now)
        for clip_id in report.delivered:
            store.mark_delivered(clip_id)

    def drain(self, timeout_s: float) -> None:
        """Send what is queued, for up to ``timeout_s`` (``doorward run --exit-at-eof``)."""
        pending = self.pending()
        if pending:
            log.info("draining the outbox (up to %.0f s): %s", timeout_s, pending)
        total = sum(pending.values())
        if total:
            with Progress("draining the outbox", total=total, unit="items") as bar:
                left = self.worker.drain(
                    timeout_s, progress=lambda left: bar.update(total - sum(left.values())))
        else:
            left = self.worker.drain(timeout_s)
        if left:
            log.warning("outbox not drained after %.0f s; still queued (sent on the next start): "
                        "%s", timeout_s, left)


def open_uplink(data_dir: Path, device: DeviceState, mqtt: MqttPort | None,
                store_factory: Callable[[], ObjectStore] | None,
                recipients: Callable[[], tuple[Recipient, ...]], *, inbox: Any, prefix: str,
                bucket: str, wall: Callable[[], float] = time.time) -> Uplink | None:
    """The outbox (recovered), its worker lanes and the loop-side Delivery; None when there is
    nothing to deliver to (no broker and no bucket). ``store_factory`` runs on the uploads
    lane's thread."""
    if mqtt is None and store_factory is None:
        return None
    gate = ConsentGate()  # every send path asks it (agent/delivery/gate.py)
    ctx = LaneContext(data_dir, device.identity, mqtt, store_factory, prefix, bucket, inbox,
                      gate=gate)

    def record_drops(items: Sequence[Item]) -> None:  # never drop silently: log and ledger
        now = wall()
        for record in drop_records(items):
            device.ledger.append("outbox-drop", record, now)

    outbox_db = DataDir(data_dir).outbox_db
    outbox, lost = Outbox.open_or_set_aside(outbox_db, on_drop=record_drops)
    if lost is not None:  # a damaged file: the daemon starts all the same, and says what went
        device.ledger.append("outbox-drop", {"reason": lost, "items": []}, wall())
    outbox.recover(wall())
    lanes = tuple(lane for lane, on in (("messages", mqtt is not None),
                                        ("uploads", store_factory is not None)) if on)
    worker = OutboxWorker(outbox_db, functools.partial(lane_ports, ctx), lanes=lanes,
                          gate=gate)
    ctx.wake = worker.wake
    delivery = Delivery(outbox, device.identity, device.db, device.consent,
                        recipients=recipients, uploads_enabled=store_factory is not None,
                        messages_enabled=mqtt is not None, wake=worker.wake, gate=gate)
    ha = LegacyDiscovery(delivery, device.identity.device_id) if mqtt is not None else None
    checkpoints = None
    if store_factory is not None:  # the ledger's signed heads go to the bucket (clips consent)
        checkpoints = CheckpointPublisher(outbox, device.db, device.ledger, device.consent,
                                          wake=worker.wake, gate=gate)
    return Uplink(delivery, worker, ha, checkpoints)


def uplink_hooks(uplink: Uplink | None, started: float, *, reports: LaneReports | None = None,
                 mono: Callable[[], float] = time.monotonic) -> UplinkHooks:
    """The controller's hooks into the delivery side. ``started``: the daemon's start on
    ``mono``'s clock (the status message's uptime)."""
    on_connection: Callable[[ConnectionEvent], None] = (
        reports.on_connection if reports is not None else lambda event: None)
    if uplink is None:
        return UplinkHooks(on_connection=on_connection)
    delivery, discovery = uplink.delivery, uplink.discovery

    def connected() -> None:
        delivery.status_online(__version__, mono() - started)
        if discovery is not None:
            discovery.cleanup()  # queues nothing unless an earlier version left configs

    gate = uplink.worker.gate  # no send races a revoke: agent/delivery/gate.py
    return UplinkHooks(command_guard=gate.paused,
                       on_revoked=functools.partial(gate.revoked, purge=delivery.purge),
                       on_connected=connected, on_connection=on_connection)
