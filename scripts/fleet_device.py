"""One simulated device of ``scripts/fleet``, wired with the daemon's own modules.

Usage (all on ONE thread, the fleet's "loop" thread: SQLite connections are thread-bound)::

    provision(data_dir)                  # identity, an owner (age identity) paired, events consent
    dev = SimDevice.open(data_dir, url)  # Delivery + Outbox + OutboxWorker + MqttClient
    dev.start()
    seq = dev.event(n)                   # Delivery.event -> sealed, signed, chained, queued
    dev.poll()                           # the connection events: status online + wake on connect
    dev.stop(); dev.close()              # stop() may run on any thread, close() on the loop's

What is the daemon's (agent.app wiring): :class:`agent.delivery.queueing.Delivery` on the loop
thread,
:func:`agent.delivery.lanes.lane_ports` building the messages lane (consent checked again at
sending,
drops to the ledger), :class:`agent.delivery.outbox_worker.OutboxWorker` with its lane thread,
:class:`uplink.mqtt.MqttClient` with its paho thread, the will on ``status``, the ``cmd``
subscription, ``status_online`` on every (re)connection. What is not: pairing over MQTT (the owner
is written with ConsentStore.add_owner as pairing does, and consent granted with
ConsentStore.grant, as the owner's command would), the camera, clips and the bucket.
"""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.delivery.lanes import LaneContext, lane_ports
from agent.delivery.outbox import Outbox
from agent.delivery.outbox_worker import OutboxWorker
from agent.delivery.queueing import Delivery
from agent.device.consent import ConsentStore
from agent.device.control_plane import topics
from agent.device.database import DeviceDB
from agent.device.identity import DeviceIdentity
from agent.paths import DataDir
from uplink.agekeys import Identity, Recipient
from uplink.keys import key_id_for, public_raw
from uplink.mqtt import MqttClient, MqttSettings

OWNER_FILE = "fleet-owner.age"  # the owner's age identity: the fleet's subscriber opens with it
SCOPES = ("events",)
VERSION = "fleet-sim"


def provision(data_dir: Path, now: float) -> tuple[DeviceIdentity, Identity]:
    """A device as pairing leaves it: its identity, one owner, ``events`` consent granted."""
    identity = DeviceIdentity.load_or_create(data_dir)
    owner_key, owner_age = Ed25519PrivateKey.generate(), Identity.generate()
    db = DeviceDB(DataDir(data_dir).device_db)
    try:
        consent = ConsentStore(db)
        owner_raw = public_raw(owner_key)
        consent.add_owner(owner_raw, str(owner_age.recipient), "owner", now)
        consent.grant(SCOPES, None, key_id_for(owner_raw), now)
    finally:
        db.close()
    (data_dir / OWNER_FILE).write_text(str(owner_age) + "\n", encoding="ascii")
    return identity, owner_age


@dataclass
class SimDevice:
    identity: DeviceIdentity
    db: DeviceDB
    outbox: Outbox
    delivery: Delivery
    worker: OutboxWorker
    client: MqttClient
    started: float
    connects: int = 0

    @property
    def device_id(self) -> str:
        return self.identity.device_id

    @classmethod
    def open(cls, data_dir: Path, url: str, *, username: bool = True) -> SimDevice:
        """``username=False``: no MQTT username (the daemon sends the device id, which RabbitMQ's
        plugin refuses without a password on a plain listener; see RELIABILITY.md "Fleet")."""
        identity = DeviceIdentity.load_or_create(data_dir)
        dev_id = identity.device_id
        settings = MqttSettings(url=url, client_id=dev_id, username=dev_id if username else None,
                                will_topic=topics(dev_id)["status"])
        commands: queue.Queue[object] = queue.Queue()  # nobody sends the fleet commands
        client = MqttClient(settings, on_message=commands.put)
        client.subscribe(topics(dev_id)["cmd"])
        db = DeviceDB(DataDir(data_dir).device_db)
        consent = ConsentStore(db)
        outbox = Outbox(DataDir(data_dir).outbox_db)
        outbox.recover()
        ctx = LaneContext(data_dir, identity, client, None, "", "", queue.Queue())
        worker = OutboxWorker(DataDir(data_dir).outbox_db, lambda lane: lane_ports(ctx, lane),
                              lanes=("messages",))
        ctx.wake = worker.wake

        def owners() -> tuple[Recipient, ...]:
            return tuple(Recipient.parse(r) for r in consent.recipients())

        delivery = Delivery(outbox, identity, db, consent, recipients=owners,
                            uploads_enabled=False, messages_enabled=True, wake=worker.wake)
        return cls(identity, db, outbox, delivery, worker, client, time.monotonic())

    def start(self) -> None:
        self.worker.start()
        self.client.start()

    def event(self, number: int) -> int | None:
        """A ring at the door: the seq of its message, None if consent did not allow it."""
        if not self.delivery.event("ring", f"ev-{number}"):
            return None
        return self.outbox.chain_head()[0]

    def poll(self) -> None:
        """The loop's handling of connection events, as the daemon's
        (agent.delivery.wiring.uplink_hooks)."""
        while True:
            try:
                event = self.client.events.get_nowait()
            except queue.Empty:
                return
            if event.connected and event.error is None:
                self.connects += 1
                self.delivery.status_online(VERSION, time.monotonic() - self.started)
                self.worker.wake()

    def stop(self) -> None:
        self.worker.stop()
        self.client.stop()

    def close(self) -> None:
        self.outbox.close()
        self.db.close()
