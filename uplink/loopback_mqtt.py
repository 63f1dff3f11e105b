"""An in-process MQTT broker and a client with :class:`uplink.mqtt.MqttClient`'s surface: the twin
that tests (and a daemon built in-process) use instead of Mosquitto and paho. Stdlib only.

Wiring (as ``MqttClient(settings, on_message=...)``; ``broker.client`` has the same shape, so it
can be handed wherever a client factory is taken)::

    broker = LoopbackBroker()
    inbox: queue.Queue[InboundMessage] = queue.Queue()
    client = broker.client(MqttSettings(url="mqtt://127.0.0.1", client_id="dw-1",
                                        will_topic="doorward/dw-1/status"), on_message=inbox.put)
    client.subscribe("doorward/dw-1/cmd")
    client.start()                       # connects on the broker's thread; events as paho's
    client.wait_published(client.publish("doorward/dw-1/events", b"..."), timeout=5.0)
    broker.cut("dw-1")                   # connection dropped: the will goes out, it reconnects
    broker.offline(); broker.online()    # an outage of the whole broker (or of one client)
    broker.messages                      # everything routed, in order (what tests assert on)
    client.stop(); broker.close()

What it keeps of MQTT (what agent relies on, shown against Mosquitto by
tests/integration/test_mqtt_contract.py): topic filters with ``+`` and ``#`` (``$`` topics not
matched by a leading wildcard), retained messages (an empty retained payload clears), QoS 0/1
with acknowledgements through :class:`PublishHandle`, subscriptions made before connecting in
force when ``connected=True`` is reported, re-subscription (and retained messages again) on
every reconnection, publishes made while disconnected sent on reconnection, the retained QoS 1
last will published when a connection is cut (not on ``stop()``), and persistent sessions:
QoS 1 messages for a subscriber that is offline wait for it (session expiry is not modelled).
With ``MqttSettings.manual_ack`` a QoS 1 message stays the session's until the client calls
``ack(message)``; one not acknowledged when the connection ends is sent again on the next
(``broker.unacked(client_id)`` lists them).
``deny(filter)`` makes the broker refuse publishes like an ACL would (MqttAuthError on the ack).

Threads: one broker thread routes everything in publish order and calls ``on_message`` (which,
as with paho, must only enqueue); connection changes go to ``client.events``.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from uplink.brokerurl import (
    BrokerUrl,
    MqttAuthError,
    MqttConnectError,
    MqttError,
    MqttLimitError,
    MqttPublishError,
    parse_broker_url,
)
from uplink.mqtt_types import (
    ConnectionEvent,
    InboundMessage,
    MqttSettings,
    PublishHandle,
    check_publish_limits,
)

__all__ = ["LoopbackBroker", "LoopbackMqttClient", "Published", "topic_matches"]

NOT_AUTHORIZED = 0x87  # the PUBACK reason code an ACL refusal carries (as Mosquitto's)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching: ``+`` one level, ``#`` the rest (and the parent level itself);
    topics starting with ``$`` are not matched by a filter starting with a wildcard."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    want, have = topic_filter.split("/"), topic.split("/")
    for i, part in enumerate(want):
        if part == "#":
            return True
        if i >= len(have) or (part != "+" and part != have[i]):
            return False
    return len(want) == len(have)


@dataclass(frozen=True)
class Published:
    """One message the broker routed (``sender`` None for a last will)."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    sender: str | None


@dataclass
class _Session:
    """The broker's side of one client id: subscriptions and QoS 1 messages kept while away."""

    subscriptions: dict[str, int] = field(default_factory=dict)
    waiting: list[InboundMessage] = field(default_factory=list)
    unacked: dict[int, InboundMessage] = field(default_factory=dict)  # manual_ack, by mid
    client: LoopbackMqttClient | None = None  # connected now


class LoopbackBroker:
    """The in-process broker (see the module docstring). Thread-safe; ``close()`` when done."""

    def __init__(self) -> None:
        self._lock = threading.RLock()  # guards everything below; held only on the broker thread
        self._work: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._sessions: dict[str, _Session] = {}
        self._retained: dict[str, Published] = {}
        self._denied: list[str] = []
        self._online = True
        self._held: set[str] = set()  # client ids kept offline
        self._clients: list[LoopbackMqttClient] = []
        self._mids = itertools.count(1)  # manual_ack's packet ids: never reused
        self.messages: list[Published] = []

    # ---- for tests --------------------------------------------------------------------------
    def client(self, settings: MqttSettings, *,
               on_message: Callable[[InboundMessage], None]) -> LoopbackMqttClient:
        """A client of this broker: the shape of ``MqttClient(settings, on_message=...)``."""
        return LoopbackMqttClient(settings, on_message=on_message, broker=self)

    def retained(self, topic: str) -> bytes | None:
        """The retained payload on ``topic`` now (None if none); waits for routing to finish."""
        self.sync()
        with self._lock:
            found = self._retained.get(topic)
        return None if found is None else found.payload

    def published(self, topic_filter: str = "#") -> list[Published]:
        """Messages routed so far whose topic matches ``topic_filter``; waits for routing."""
        self.sync()
        with self._lock:
            return [m for m in self.messages if topic_matches(topic_filter, m.topic)]

    def unacked(self, client_id: str) -> list[InboundMessage]:
        """The messages sent to ``client_id`` (with ``manual_ack``) and not yet acknowledged,
        in the order sent; waits for routing."""
        self.sync()
        with self._lock:
            session = self._sessions.get(client_id)
            return [] if session is None else list(session.unacked.values())

    def deny(self, topic_filter: str) -> None:
        """Refuse publishes on topics matching ``topic_filter`` (as an ACL: the ack fails)."""
        with self._lock:
            self._denied.append(topic_filter)

    def cut(self, client_id: str) -> None:
        """Drop that client's connection without DISCONNECT (its will goes out); it reconnects
        at once unless it or the broker is held offline."""
        self._submit(lambda: self._drop(client_id, "connection cut"))
        self._submit(lambda: self._reconnect_all())
        self.sync()

    def offline(self, client_id: str | None = None) -> None:
        """An outage: of the whole broker (connections lost, no wills: as a broker going down),
        or of one client (its will goes out). Connected again by :meth:`online`."""
        def down() -> None:
            if client_id is None:
                self._online = False
                for session_id in list(self._sessions):
                    self._drop(session_id, "broker went down", will=False)
            else:
                self._held.add(client_id)
                self._drop(client_id, "connection cut")
        self._submit(down)
        self.sync()

    def online(self, client_id: str | None = None) -> None:
        """End an outage begun by :meth:`offline`; started clients reconnect."""
        def up() -> None:
            if client_id is None:
                self._online = True
            else:
                self._held.discard(client_id)
            self._reconnect_all()
        self._submit(up)
        self.sync()

    def sync(self, timeout: float = 5.0) -> None:
        """Wait until everything submitted so far has been routed."""
        if self._thread is None or threading.current_thread() is self._thread:
            return
        done = threading.Event()
        self._submit(done.set)
        if not done.wait(timeout):
            raise TimeoutError("loopback broker thread did not answer in time")

    def close(self) -> None:
        """Stop the broker thread (clients are left disconnected). Idempotent."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._work.put(None)
            thread.join(5.0)

    def __enter__(self) -> LoopbackBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the broker thread ------------------------------------------------------------------
    def _submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="loopback-broker",
                                                daemon=True)
                self._thread.start()
        self._work.put(job)

    def _run(self) -> None:
        while (job := self._work.get()) is not None:
            with self._lock:
                job()

    def _connect(self, client: LoopbackMqttClient) -> None:
        cid = client.settings.client_id
        if client not in self._clients:
            self._clients.append(client)
        if not self._online or cid in self._held or client.stopped or client.connected:
            return
        session = self._sessions.setdefault(cid, _Session())
        old = session.client
        if old is not None and old is not client:  # same id elsewhere: the broker drops the old
            self._drop(cid, "another client connected with this id")
        session.client = client
        session.subscriptions.update(client.subscriptions())
        for topic_filter in client.subscriptions():  # re-SUBSCRIBE: retained messages again
            self._send_retained(client, topic_filter)
        waiting, session.waiting = session.waiting, []
        for message in waiting:
            self._deliver(session, client, message)
        client.set_connected(True, f"connected to {client.broker.where} with MQTT 5")
        for job in client.take_unsent():  # what was published while disconnected
            self._route(client, *job)

    def _reconnect_all(self) -> None:
        for client in self._clients:
            if client.started and not client.connected:
                self._connect(client)

    def _drop(self, client_id: str, why: str, *, will: bool = True) -> None:
        session = self._sessions.get(client_id)
        if session is None or session.client is None:
            return
        client, session.client = session.client, None
        self._requeue_unacked(session)
        error = MqttConnectError(f"lost connection to broker {client.broker.where} ({why}); "
                                 "reconnecting")
        client.set_connected(False, str(error), error)
        s = client.settings
        if will and s.will_topic:
            self._publish(Published(s.will_topic, s.will_payload, 1, True, None))

    def _disconnect(self, client: LoopbackMqttClient) -> None:
        session = self._sessions.get(client.settings.client_id)
        if session is not None and session.client is client:
            session.client = None
            self._requeue_unacked(session)
        if client in self._clients:
            self._clients.remove(client)
        if client.connected:
            client.set_connected(False, f"disconnected from {client.broker.where} (stopped)")

    def _subscribe(self, client: LoopbackMqttClient, topic_filter: str, qos: int) -> None:
        session = self._sessions.get(client.settings.client_id)
        if session is None or session.client is not client:
            return  # not connected: sent with the others on connection
        session.subscriptions[topic_filter] = qos
        self._send_retained(client, topic_filter)

    def _send_retained(self, client: LoopbackMqttClient, topic_filter: str) -> None:
        qos = client.subscriptions().get(topic_filter, 0)
        session = self._sessions[client.settings.client_id]
        for message in sorted(self._retained.values(), key=lambda m: m.topic):
            if topic_matches(topic_filter, message.topic):
                self._deliver(session, client, InboundMessage(
                    message.topic, message.payload, True, min(qos, message.qos)))

    def _route(self, client: LoopbackMqttClient, mid: int, topic: str, payload: bytes, qos: int,
               retain: bool) -> None:
        if not client.connected:  # lost before routing: kept for the next connection
            client.keep_unsent((mid, topic, payload, qos, retain))
            return
        if any(topic_matches(f, topic) for f in self._denied):
            client.acknowledge(mid, NOT_AUTHORIZED)
            return
        self._publish(Published(topic, payload, qos, retain, client.settings.client_id))
        client.acknowledge(mid, 0)

    def _publish(self, message: Published) -> None:
        self.messages.append(message)
        if message.retain:
            if message.payload:
                self._retained[message.topic] = message
            else:
                self._retained.pop(message.topic, None)
        for session in self._sessions.values():
            granted = [q for f, q in session.subscriptions.items()
                       if topic_matches(f, message.topic)]
            if not granted:
                continue
            inbound = InboundMessage(message.topic, message.payload, False,
                                     min(max(granted), message.qos))
            if session.client is not None:
                self._deliver(session, session.client, inbound)
            elif inbound.qos == 1:
                session.waiting.append(inbound)

    def _deliver(self, session: _Session, client: LoopbackMqttClient,
                 message: InboundMessage) -> None:
        if client.settings.manual_ack and message.qos == 1:
            mid = next(self._mids)
            message = InboundMessage(message.topic, message.payload, message.retain, 1, mid=mid)
            session.unacked[mid] = message
        client.deliver(message)

    def _requeue_unacked(self, session: _Session) -> None:
        """The connection ended: what it was sent and did not acknowledge goes out again,
        first, on the next one (as a broker resends in-flight messages on resuming a session)."""
        session.waiting[:0] = [InboundMessage(m.topic, m.payload, m.retain, m.qos)
                               for m in session.unacked.values()]
        session.unacked.clear()

    def _ack(self, client: LoopbackMqttClient, mid: int) -> None:
        session = self._sessions.get(client.settings.client_id)
        if session is not None and session.client is client:
            session.unacked.pop(mid, None)  # a stale mid (an earlier connection's) matches none


_Unsent = tuple[int, str, bytes, int, bool]


class LoopbackMqttClient:
    """A :class:`LoopbackBroker`'s client, with the surface of ``uplink.mqtt.MqttClient``:
    ``start``, ``stop``, ``subscribe``, ``publish`` -> :class:`PublishHandle`, ``is_published``,
    ``wait_published``, ``wait_connected``, ``is_connected``, ``events``, ``protocol``,
    ``last_error``, ``settings`` and ``broker`` (the parsed URL, as the real one's)."""

    _mids = itertools.count(1)  # never reused: no wrap-around to model

    def __init__(self, settings: MqttSettings, *, on_message: Callable[[InboundMessage], None],
                 broker: LoopbackBroker) -> None:
        self.settings = settings
        self.broker: BrokerUrl = parse_broker_url(settings.url)
        if settings.will_topic:
            check_publish_limits(settings.will_topic, settings.will_payload, 1)
        self.hub = broker
        self.events: queue.Queue[ConnectionEvent] = queue.Queue()
        self._deliver = on_message
        self._lock = threading.Lock()  # guards _subscriptions and _unsent
        self._subscriptions: dict[str, int] = {}
        self._unsent: list[_Unsent] = []
        self._acks = threading.Condition()  # guards _acked, _ack_count
        self._acked: dict[int, tuple[int, int]] = {}
        self._ack_count = 0
        self._connected = threading.Event()
        self._last_error: MqttError | None = None
        self.started = False
        self.stopped = False

    # ---- the MqttClient surface -------------------------------------------------------------
    def start(self) -> None:
        """Begin connecting (on the broker's thread); returns at once."""
        if self.started:
            raise MqttError("MqttClient.start() called twice: create a new client instead")
        self.started = True
        self.hub._submit(lambda: self.hub._connect(self))

    def stop(self) -> None:
        """Disconnect cleanly (no will); idempotent."""
        if self.stopped or not self.started:
            self.stopped = True
            return
        self.stopped = True
        self.hub._submit(lambda: self.hub._disconnect(self))
        self.hub.sync()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def ack(self, message: InboundMessage) -> None:
        """With ``manual_ack``: ``message`` is handled; the broker forgets it (as paho's)."""
        if self.settings.manual_ack and message.mid:
            self.hub._submit(lambda: self.hub._ack(self, message.mid))

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    @property
    def protocol(self) -> str:
        return "5"

    @property
    def last_error(self) -> MqttError | None:
        return self._last_error

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                message_expiry_s: int | None = None,
                content_type: str | None = None) -> PublishHandle:
        """Queue a publish (routed now, or on reconnection); MqttLimitError beyond fleet
        limits. Expiry and content type are accepted and not modelled."""
        check_publish_limits(topic, payload, qos)
        with self._acks:
            after = self._ack_count
        mid = next(self._mids)
        job: _Unsent = (mid, topic, bytes(payload), qos, retain)
        self.hub._submit(lambda: self.hub._route(self, *job))
        return PublishHandle(mid, after, topic)

    def is_published(self, handle: PublishHandle) -> bool:
        with self._acks:
            return self._check_ack(handle)

    def wait_published(self, handle: PublishHandle, timeout: float) -> bool:
        with self._acks:
            return self._acks.wait_for(lambda: self._check_ack(handle), timeout)

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe now if connected, and again on every reconnection."""
        if qos not in (0, 1):
            raise MqttLimitError(f"QoS {qos} for {topic!r}: fleet brokers accept QoS 0 or 1 only")
        with self._lock:
            self._subscriptions[topic] = qos
        self.hub._submit(lambda: self.hub._subscribe(self, topic, qos))

    # ---- called on the broker's thread ------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def subscriptions(self) -> dict[str, int]:
        with self._lock:
            return dict(self._subscriptions)

    def take_unsent(self) -> list[_Unsent]:
        with self._lock:
            unsent, self._unsent = self._unsent, []
        return unsent

    def keep_unsent(self, job: _Unsent) -> None:
        with self._lock:
            self._unsent.append(job)

    def deliver(self, message: InboundMessage) -> None:
        self._deliver(message)

    def acknowledge(self, mid: int, reason: int) -> None:
        with self._acks:
            self._ack_count += 1
            self._acked[mid] = (self._ack_count, reason)
            self._acks.notify_all()

    def set_connected(self, connected: bool, reason: str, error: MqttError | None = None) -> None:
        if connected:
            self._last_error = None
            self._connected.set()
        else:
            self._connected.clear()
            if error is not None:
                self._last_error = error
        self.events.put(ConnectionEvent(connected, reason, error))

    def _check_ack(self, handle: PublishHandle) -> bool:
        got = self._acked.get(handle.mid)
        if got is None or got[0] <= handle.after:
            return False
        if got[1] == NOT_AUTHORIZED:
            raise MqttAuthError(f"broker {self.broker.where} refused the publish to "
                                f"{handle.topic!r} (Not authorized): check the broker's ACL "
                                "allows this client that topic")
        if got[1]:
            raise MqttPublishError(f"broker {self.broker.where} refused the publish to "
                                   f"{handle.topic!r} (reason {got[1]:#x})")
        return True
