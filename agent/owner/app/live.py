"""The live feed: the device's messages as they arrive, verified, for the page (server-sent events).

One MQTT client per broker subscribes to ``doorward/<device>/+`` of every paired device. Its
callback only enqueues; one worker thread verifies each message as ``doorward owner events``
does (device signature, the message chain, sealed bodies opened with the owner's identity), keeps
the device's status (online/offline, version, last seen) and the newest events, and hands each
new item to the listeners (the server's SSE streams, through their event loop).

An event that names a clip gets a snapshot as soon as the device's footage allows: from the
clip's signed manifest once it is uploaded, or earlier from the sealed segments of the clip still
being recorded (``snapshots.py``), decoded in memory. The snapshot's bytes stay in memory.

Wiring (agent.owner.app.server)::

    feed = LiveFeed(ring, snapshots=SnapshotFinder(...))
    feed.start(); feed.listen(callback); ... feed.stop()

A consumer that hands the items on to somewhere that can fail (the Home Assistant bridge) passes
``settle``: the feed's clients then acknowledge a QoS 1 message to the broker only when the
consumer calls the acknowledgement ``settle`` was given for it (after its listeners got the item),
so a message taken in by a process that dies before passing it on is sent again at the next
start of the broker session. Without ``settle`` paho acknowledges on arrival (the page's feed).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from agent.owner.client import BrokerOptions
from agent.owner.keyring import OwnerKeyring, PairedDevice
from uplink import (
    ChainChecker,
    ChainIssue,
    EventBody,
    InboundMessage,
    MqttConnector,
    MqttPort,
    StatusBody,
    UplinkError,
    UploadedBody,
    b64u_decode,
    verify_message,
)

log = logging.getLogger("doorward")
KEEP = 200  # newest events kept for a page that opens later
Listener = Callable[[dict[str, Any]], None]
# settle(ack): the message whose item the listeners just got is passed on once ack() is called
Settle = Callable[[Callable[[], None]], None]


def replayed(issues: list[ChainIssue]) -> bool:
    """Whether a signed message came again: the same seq twice, one older than the chain seen
    so far that fills no gap (a broker replaying an old ring), or a chained one the broker
    handed over as retained (stored there to be replayed at every subscription). A late message
    that fills a gap is not a replay."""
    return any(i.kind in ("duplicate", "retained") or (
        i.kind == "out-of-order" and not i.detail.startswith("arrived late")) for i in issues)


# How long the broker keeps a stopped bridge's messages (a host down over a weekend still gets
# them); the broker's own queue limits (max_queued_messages) still apply.
SESSION_EXPIRY_S = 4 * 24 * 3600


class LiveFeed:
    """See the module docstring. ``snapshot(device_id, clip_id)`` returns a snapshot URL or None
    (called on the worker thread; it may block for a bucket request)."""

    def __init__(self, ring: OwnerKeyring, *, broker_url: str | None = None,
                 snapshot: Callable[[str, str], str | None] | None = None,
                 warm: Callable[[], None] | None = None,
                 connect_timeout: float = 10.0, broker: BrokerOptions | None = None,
                 login: BrokerOptions | None = None,
                 connector: MqttConnector | None = None, session: str | None = None,
                 settle: Settle | None = None) -> None:
        # broker: one broker for every device, with its login and TLS files (the HA bridge);
        # login: the username/password for each device's own broker (the app's --username);
        # connector: the client factory (MqttClient, or LoopbackBroker.client in tests);
        # session: a stable client id whose broker session outlives this process (the bridge):
        # what the devices send while it is stopped waits on the broker and comes in at start.
        # settle: see the module docstring (called on the worker thread; enqueue only).
        self.ring = ring
        self.settle = settle
        self.broker = broker
        self.broker_url = broker.url if broker is not None else broker_url
        self.connector = connector
        self.login = login
        self.session = session
        self.snapshot = snapshot
        self.warm = warm
        self.connect_timeout = connect_timeout
        # each message with the client it came on (its acknowledgement is that client's)
        self.inbox: queue.Queue[tuple[MqttPort, InboundMessage] | None] = queue.Queue()
        self.events: deque[dict[str, Any]] = deque(maxlen=KEEP)
        self.status: dict[str, dict[str, Any]] = {}
        self.brokers: dict[str, dict[str, Any]] = {}
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._clients: list[MqttPort] = []
        self._chain = ChainChecker()
        self._keys: dict[str, bytes] = {}
        self._worker: threading.Thread | None = None
        self._snapshots: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._snapper: threading.Thread | None = None
        self._next_id = 0
        self._quiet = False

    # -- wiring --------------------------------------------------------------------------------
    def start(self) -> None:
        devices = self.load_keys()
        by_broker: dict[str, list[PairedDevice]] = {}
        for d in devices:
            by_broker.setdefault(self.broker_url or d.broker, []).append(d)
        for url, group in by_broker.items():
            self._connect(url, group)
        self._worker = threading.Thread(target=self._run, name="owner-app-feed", daemon=True)
        self._worker.start()
        self._snapper = threading.Thread(target=self._snap_loop, name="owner-app-snapshots",
                                         daemon=True)
        self._snapper.start()

    def _connect(self, url: str, group: list[PairedDevice]) -> None:
        connector = self.connector
        if connector is None:
            from uplink import MqttClient

            connector = MqttClient
        try:
            options = self.broker or (replace(self.login, url=url) if self.login
                                      else BrokerOptions(url))
            manual = {"manual_ack": True} if self.settle is not None else {}
            if self.session is not None:
                settings = options.settings(self.session, resume_session=True,
                                            session_expiry_s=SESSION_EXPIRY_S, **manual)
            else:
                settings = options.settings(f"owner-app-{uuid.uuid4().hex[:8]}", **manual)
            came: list[MqttPort] = []  # filled before start(): no message comes before it
            client = connector(settings, on_message=lambda m: self.inbox.put((came[0], m)))
            came.append(client)
        except (UplinkError, ValueError) as exc:
            self.brokers[url] = {"url": url, "connected": False, "error": str(exc)}
            return
        for d in group:
            client.subscribe(f"doorward/{d.device_id}/+")
        self.brokers[url] = {"url": url, "connected": False, "error": None}
        client.start()
        self._clients.append(client)

    def add_device(self, device: PairedDevice) -> None:
        """Follow a device paired while the app runs (from the pairing page)."""
        self._keys[device.device_id] = b64u_decode(device.public_key)
        url = self.broker_url or device.broker
        for c in self._clients:
            if c.settings.url == url:
                c.subscribe(f"doorward/{device.device_id}/+")
                return
        self._connect(url, [device])

    def load_keys(self) -> list[PairedDevice]:
        """The paired devices, whose keys :meth:`feed` verifies against (``start`` calls it)."""
        devices = self.ring.devices()
        self._keys = {d.device_id: b64u_decode(d.public_key) for d in devices}
        return devices

    def clients(self) -> list[MqttPort]:
        """The MQTT clients, one per broker (to wait for their connection)."""
        return list(self._clients)

    def quiesce(self) -> None:
        """Hand nothing more to the listeners or to ``settle`` (what is already in the inbox is
        handled first); the clients stay connected, so the acknowledgements already handed out
        can still be given. :meth:`stop` then disconnects. Idempotent."""
        if self._quiet:
            return
        self._quiet = True
        self.inbox.put(None)
        self._snapshots.put(None)
        for t in (self._worker, self._snapper):
            if t is not None:
                t.join(timeout=5)

    def stop(self) -> None:
        self.quiesce()
        for c in self._clients:
            c.stop()

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(item)`` for every new item (on the worker thread: enqueue only);
        returns the function that stops it."""
        with self._lock:
            self._listeners.append(listener)

        def stop() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return stop

    def recent(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(reversed(self.events))

    def broker_state(self) -> list[dict[str, Any]]:
        """Each broker: ``url``, ``connected`` and, when not, ``error`` (what to fix)."""
        for c in self._clients:
            url, up = c.settings.url, c.is_connected
            err = None if up else str(c.last_error or "not connected yet")
            self.brokers[url] = {"url": url, "connected": up, "error": err}
        return list(self.brokers.values())

    # -- the worker ----------------------------------------------------------------------------
    def _emit(self, item: dict[str, Any]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(item)

    def _run(self) -> None:
        while (job := self.inbox.get()) is not None:
            client, msg = job
            try:
                item = self.feed(msg)
            except Exception:  # one bad message must not stop the feed; it is logged
                log.exception("owner app: cannot handle a message on %s", msg.topic)
                item = None
            if item is not None:
                self._emit(item)
            if self.settle is not None:  # in arrival order, also for a message with no item
                self.settle(partial(client.ack, msg))

    def feed(self, msg: InboundMessage) -> dict[str, Any] | None:
        """Verify one message; the item for the page, or None (commands, replies, pairing)."""
        parts = msg.topic.split("/")
        if len(parts) != 3 or parts[2] in ("cmd", "resp") or parts[1] not in self._keys:
            return None
        device_id, stream = parts[1], parts[2]
        now = time.time()
        if msg.payload == b"offline":  # the broker's will: unsigned by design, so said so
            doc = {"state": "offline", "verified": False, "last_seen": now}
            self.status[device_id] = {**self.status.get(device_id, {}), **doc}
            return {"type": "status", "device_id": device_id, **self.status[device_id]}
        try:
            v = verify_message(msg.payload, self._keys[device_id], identities=[self.ring.identity])
        except UplinkError as exc:
            return self._add({"type": "rejected", "device_id": device_id, "stream": stream,
                              "reason": str(exc), "received_at": now})
        found = self._chain.feed(v, retained=msg.retain)
        issues = [f"{i.kind} {i.detail}".strip() for i in found]
        body = v.body
        if isinstance(body, StatusBody):
            self.status[device_id] = {"state": body.state, "version": body.version,
                                      "uptime_s": body.uptime_s, "verified": True,
                                      "since": v.message.iat, "last_seen": now}
            return {"type": "status", "device_id": device_id, **self.status[device_id]}
        self.status.setdefault(device_id, {"state": "online", "verified": True})
        self.status[device_id]["last_seen"] = now
        item: dict[str, Any] = {"type": "event", "device_id": device_id, "seq": v.message.seq,
                                "typ": v.message.typ, "content": v.message.content,
                                "chain": issues, "received_at": now, "verified": True,
                                "retained": msg.retain, "replayed": replayed(found)}
        if isinstance(body, EventBody):
            item.update(kind=body.kind, event_id=body.event_id, at=body.at, clip_id=body.clip_id)
        elif isinstance(body, UploadedBody):
            item.update(kind="uploaded", clip_id=body.clip_id)
        else:
            item.update(kind="sealed" if body is None else body.typ)
        added = self._add(item)
        if item.get("clip_id") and item["kind"] in ("ring", "motion-started", "uploaded"):
            self._snapshots.put(added)
        return added

    def _add(self, item: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._next_id += 1
            item["id"] = self._next_id
            self.events.append(item)
        return item

    # -- snapshots -----------------------------------------------------------------------------
    def _snap_loop(self) -> None:
        if self.warm is not None and self.snapshot is not None:
            self.warm()  # on this thread, so the first ring's picture does not wait for imports
        while (item := self._snapshots.get()) is not None:
            if self.snapshot is None:
                continue
            try:
                url = self.snapshot(item["device_id"], item["clip_id"])
            except Exception:  # a bucket or decode failure: the event stays, without a picture
                log.exception("owner app: no snapshot for clip %s", item["clip_id"])
                continue
            if url is None:
                continue
            with self._lock:
                touched = [e for e in self.events if e.get("clip_id") == item["clip_id"]
                           and e.get("device_id") == item["device_id"]]
                for e in touched:
                    e["snapshot"] = url
            for e in touched:
                self._emit({"type": "snapshot", "id": e["id"], "device_id": e["device_id"],
                            "clip_id": e["clip_id"], "snapshot": url, "kind": e.get("kind")})
