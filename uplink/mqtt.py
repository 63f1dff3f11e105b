"""MQTT adapter over paho-mqtt 2.x: MQTT 5 (3.1.1 fallback), TLS client certs, queue-only callbacks.

Wiring (the daemon's main loop owns all state)::

    inbox: queue.Queue[InboundMessage] = queue.Queue()
    client = MqttClient(settings, on_message=inbox.put)
    client.subscribe(device_topic(device_id, "cmd"))  # re-subscribed on every reconnect
    client.start()                                    # paho's own network thread
    ...between frames: drain inbox and client.events (ConnectionEvent), publish, poll handles...
    handle = client.publish(topic, payload, retain=True)
    client.wait_published(handle, timeout=5.0)        # or client.is_published(handle) to poll
    client.stop()

With ``MqttSettings(manual_ack=True)`` (the device's client) a QoS 1 message is acknowledged
only when its handler calls ``client.ack(message)``: one taken into the inbox by a process that
dies before handling it is sent again to the session's next connection.

paho callbacks run on paho's thread and ONLY enqueue (``on_message`` is given a frozen
``InboundMessage``; connection changes become ``ConnectionEvent`` on ``client.events``) or record
acknowledgements; the one exception is on_connect re-sending SUBSCRIBE, as paho intends.

Failures become ``MqttError`` subclasses (see uplink.brokerurl) naming the fix. Publishes are held
to what fleet brokers (AWS IoT Core) accept: QoS <= 1, payload <= 128 KB, at most 7 slashes.

MQTT 3.1.1 fallback: when a broker answers our MQTT 5 CONNECT with "Unsupported protocol version"
(``should_fall_back_to_v311``), the same paho client is switched to 3.1.1 the way paho itself
downgrades 3.1.1 -> 3.1 (its ``_protocol`` / ``_clean_session`` attributes), so messages already
queued are kept, and paho's reconnect loop connects again. Message expiry and content type are
MQTT 5 properties and are simply not sent over 3.1.1. Some 3.1.1-only brokers (RabbitMQ 3.10's
MQTT plugin) cannot parse an MQTT 5 CONNECT and close the connection without any CONNACK: after
``V5_SILENT_CLOSES`` such closes in a row (one alone may be a broker restarting) we fall back too.

CLI tools use the synchronous helpers ``request_reply`` and ``collect``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from uplink.brokerurl import (
    BrokerUrl,
    MqttAuthError,
    MqttConfigError,
    MqttConnectError,
    MqttError,
    MqttLimitError,
    MqttPublishError,
    MqttTlsError,
    client_cert_rejected,
    error_for_connack,
    error_for_exception,
    error_for_tls_text,
    is_loopback,
    parse_broker_url,
    should_fall_back_to_v311,
)
from uplink.mqtt_types import (
    ConnectionEvent,
    InboundMessage,
    MqttSettings,
    PublishHandle,
    check_publish_limits,
)

__all__ = [
    "BrokerUrl", "ConnectionEvent", "InboundMessage", "MqttAuthError", "MqttClient",
    "MqttConfigError", "MqttConnectError", "MqttError", "MqttLimitError", "MqttPublishError",
    "MqttSettings", "MqttTlsError", "PublishHandle", "check_publish_limits", "collect",
    "is_loopback", "parse_broker_url", "request_reply", "should_fall_back_to_v311",
]

log = logging.getLogger(__name__)

# Connections closed in a row, under MQTT 5, before any CONNACK: then the broker is taken to be
# 3.1.1-only (a single close may be a broker going down while we connected).
V5_SILENT_CLOSES = 2


def _downgrade_to_v311(client: paho.Client) -> None:
    # paho has no public switch; it downgrades 3.1.1 -> 3.1 itself by setting these attributes
    client._protocol = MQTTProtocolVersion.MQTTv311
    client._clean_session = False  # keep the session, like MQTT 5 with expiry


class _Paho(paho.Client):
    """paho's client, remembering the exception of the last failed connection attempt."""

    last_exception: BaseException | None = None

    def reconnect(self) -> MQTTErrorCode:
        try:
            return super().reconnect()
        except OSError as exc:  # ssl.SSLError, ConnectionRefusedError...: paho retries, we report
            self.last_exception = exc
            raise


class MqttClient:
    """One connection to the broker, kept up by paho's network thread (see module docstring)."""

    def __init__(self, settings: MqttSettings, *,
                 on_message: Callable[[InboundMessage], None]) -> None:
        self.settings = settings
        self.broker = parse_broker_url(settings.url)
        if not self.broker.tls and not settings.allow_plain and not is_loopback(self.broker.host):
            raise MqttConfigError(
                f"refusing plain TCP to non-loopback broker {self.broker.where}: use mqtts:// "
                "with a client certificate, or set [mqtt] allow_plain = true for a trusted LAN")
        self.events: queue.Queue[ConnectionEvent] = queue.Queue()
        self._deliver = on_message
        self._subscriptions: dict[str, int] = {}
        self._lock = threading.Lock()  # guards _subscriptions; never held while calling paho
        self._acks = threading.Condition()  # guards _acked, _ack_count
        self._acked: dict[int, tuple[int, ReasonCode]] = {}
        self._ack_count = 0
        self._connected = threading.Event()
        self._last_error: MqttError | None = None
        self._last_log = ""
        self._refused = False  # CONNACK refused: the disconnect that follows is no news
        self._silent_closes = 0  # closes before any CONNACK in a row (see V5_SILENT_CLOSES)
        self._stopping = False
        self._resubscribe_mid: int | None = None  # SUBSCRIBE sent by on_connect, awaiting SUBACK
        # manual_ack: which connection a message came on (paho's thread writes, ack() reads one
        # int): a packet id is the broker's for one session, and a new one may reuse it
        self._link = 0
        self._paho = self._build()

    # ---- setup ---------------------------------------------------------------------------
    def _build(self) -> _Paho:
        s = self.settings
        client = _Paho(CallbackAPIVersion.VERSION2, client_id=s.client_id,
                       protocol=paho.MQTTv5, reconnect_on_failure=True, manual_ack=s.manual_ack)
        if s.username:
            client.username_pw_set(s.username, s.password)
        if self.broker.tls:
            self._set_tls(client)
        if s.will_topic:
            check_publish_limits(s.will_topic, s.will_payload, 1)
            client.will_set(s.will_topic, s.will_payload, qos=1, retain=True)
        client.reconnect_delay_set(s.reconnect_min_s, s.reconnect_max_s)
        client.max_inflight_messages_set(s.max_inflight)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_log = self._on_log
        return client

    def _set_tls(self, client: paho.Client) -> None:
        s = self.settings
        for key, path in (("ca_file", s.ca_file), ("cert_file", s.cert_file),
                          ("key_file", s.key_file)):
            if path is not None and not Path(path).is_file():
                raise MqttConfigError(f"[mqtt] {key} {path} does not exist or is not a file")
        try:
            client.tls_set(ca_certs=str(s.ca_file) if s.ca_file else None,
                           certfile=str(s.cert_file) if s.cert_file else None,
                           keyfile=str(s.key_file) if s.key_file else None)
        except OSError as exc:  # ssl.SSLError too: unreadable PEM, key not matching the cert
            raise MqttConfigError(f"cannot load [mqtt] ca_file/cert_file/key_file ({exc}): check "
                                  "they are PEM files, readable, and the key matches the "
                                  "certificate") from exc

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Begin connecting in the background (paho's thread); returns at once."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.settings.session_expiry_s
        clean = False if self.settings.resume_session else paho.MQTT_CLEAN_START_FIRST_ONLY
        self._paho.connect_async(self.broker.host, self.broker.port, self.settings.keepalive_s,
                                 clean_start=clean, properties=props)
        if self._paho.loop_start() != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttError("MqttClient.start() called twice: create a new client instead")

    def stop(self) -> None:
        """Disconnect cleanly (no will) and stop paho's thread; idempotent. Takes up to 1 s while
        paho waits between reconnection attempts."""
        self._stopping = True
        self._paho.disconnect()
        try:
            self._paho.loop_stop()
        except AttributeError as exc:
            # paho-mqtt 2.x reads its thread handle twice in loop_stop, and the thread, ending on
            # the disconnect above, clears it in between (eclipse-paho/paho.mqtt.python#872,
            # open): the thread is then past its loop, stopped as asked. Anything else is a bug.
            if "'join'" not in str(exc):
                raise
        self._connected.clear()

    def wait_connected(self, timeout: float) -> bool:
        """Block up to ``timeout`` s until connected: CONNACK accepted and the subscriptions made
        before connecting acknowledged (the ``connected=True`` event means the same)."""
        return self._connected.wait(timeout)

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    @property
    def protocol(self) -> str:
        """"5" or "3.1.1": what the client speaks now (after any fallback)."""
        return "5" if self._paho.protocol == paho.MQTTv5 else "3.1.1"

    @property
    def last_error(self) -> MqttError | None:
        """The most recent connection failure, translated (None after a successful connect)."""
        return self._last_error

    # ---- publish / subscribe --------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                message_expiry_s: int | None = None,
                content_type: str | None = None) -> PublishHandle:
        """Queue a publish (sent now or on reconnection); MqttLimitError beyond fleet limits."""
        check_publish_limits(topic, payload, qos)
        props: Properties | None = None
        if self._paho.protocol == paho.MQTTv5 and (message_expiry_s or content_type):
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            if message_expiry_s:
                props.MessageExpiryInterval = int(message_expiry_s)
            if content_type:
                props.ContentType = content_type
        with self._acks:
            after = self._ack_count
        info = self._paho.publish(topic, payload, qos=qos, retain=retain, properties=props)
        # NO_CONN: paho keeps the message and sends it on reconnection
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise MqttPublishError(f"publish to {topic!r} not queued: {paho.error_string(info.rc)}"
                                   " (too many messages in flight: wait for acknowledgements)")
        return PublishHandle(info.mid, after, topic)

    def is_published(self, handle: PublishHandle) -> bool:
        """True once acknowledged (QoS 1) or written (QoS 0); MqttPublishError if refused."""
        with self._acks:
            return self._check_ack(handle)

    def wait_published(self, handle: PublishHandle, timeout: float) -> bool:
        """Block up to ``timeout`` s for the acknowledgement; MqttPublishError if refused."""
        with self._acks:
            return self._acks.wait_for(lambda: self._check_ack(handle), timeout)

    def _check_ack(self, handle: PublishHandle) -> bool:
        got = self._acked.get(handle.mid)
        if got is None or got[0] <= handle.after:
            return False
        if got[1].is_failure:
            cls = MqttAuthError if got[1].value == 0x87 else MqttPublishError
            raise cls(f"broker {self.broker.where} refused the publish to {handle.topic!r} "
                      f"({got[1]}): check the broker's ACL allows this client that topic")
        return True

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe now if connected, and again on every reconnection."""
        if qos not in (0, 1):
            raise MqttLimitError(f"QoS {qos} for {topic!r}: fleet brokers accept QoS 0 or 1 only")
        with self._lock:
            self._subscriptions[topic] = qos
        # paho's own state (set before on_connect reads the list) closes the gap between CONNACK and
        # our "connected": a topic added then is either in on_connect's SUBSCRIBE or sent here
        if self._paho.is_connected():
            self._paho.subscribe(topic, qos)

    def ack(self, message: InboundMessage) -> None:
        """With ``manual_ack``: tell the broker ``message`` (QoS 1, from this client) is handled,
        so it is not sent again. Call it once the message's effect is kept (from any thread).
        A message that came on an earlier connection is not acknowledged here: the broker sends
        it again on the session's next connection, and the handler meets it twice (owner
        commands are then refused as replays). Does nothing without ``manual_ack``."""
        if not self.settings.manual_ack or message.mid == 0:
            return
        if message.link != self._link:
            log.debug("not acknowledging %s: it came on an earlier connection, and the broker "
                      "sends it again", message.topic)
            return
        # NO_CONN: the connection dropped since; the broker sends it again, as above
        self._paho.ack(message.mid, message.qos)

    # ---- paho callbacks (paho's thread: enqueue / record only) -----------------------------
    def _on_connect(self, client: paho.Client, _userdata: Any, _flags: Any,
                    reason: ReasonCode, _props: Any) -> None:
        self._link += 1  # before any message of this connection (they follow CONNACK)
        self._silent_closes = -1  # a CONNACK came: this connection's close is not "silent"
        if reason.is_failure:
            self._refused = True
            if should_fall_back_to_v311(int(client.protocol), reason.value):
                _downgrade_to_v311(client)
                self._emit(False, f"broker {self.broker.where} refused MQTT 5; retrying with "
                                  "MQTT 3.1.1")
                return
            self._fail(error_for_connack(reason.value, str(reason), self.broker,
                                         with_password=self.settings.password is not None))
            return
        with self._lock:
            subscriptions = list(self._subscriptions.items())
        self._last_error = None
        if not subscriptions:
            self._ready()
            return
        # "connected" waits for the SUBACK (same thread, so no race): a command sent to us after
        # the event is never lost to a subscription not yet in force
        result, self._resubscribe_mid = client.subscribe(subscriptions)
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._fail(MqttConnectError(f"cannot re-subscribe at {self.broker.where}: "
                                        f"{paho.error_string(result)}"))

    def _ready(self) -> None:
        self._connected.set()
        self._emit(True, f"connected to {self.broker.where} with MQTT {self.protocol}")

    def _on_connect_fail(self, client: paho.Client, _userdata: Any) -> None:
        exc = self._paho.last_exception
        self._fail(error_for_exception(exc, self.broker, has_client_cert=bool(
            self.settings.cert_file)) if exc else MqttConnectError(
            f"cannot connect to broker {self.broker.where}: check [mqtt] url"))

    def _on_disconnect(self, client: paho.Client, _userdata: Any, _flags: Any,
                       reason: ReasonCode, _props: Any) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        self._link += 1  # an ack from now on would go out on the next connection, if at all
        log, refused = self._last_log, self._refused
        self._last_log, self._refused = "", False
        if refused:
            return
        if self._stopping:
            self._emit(False, f"disconnected from {self.broker.where} (stopped)")
            return
        silent = self._silent_closes >= 0 and not was_connected
        self._silent_closes = self._silent_closes + 1 if silent else 0
        if client_cert_rejected(log):
            self._fail(error_for_tls_text(log, self.broker,
                                          has_client_cert=bool(self.settings.cert_file)))
        elif silent and self._silent_closes >= V5_SILENT_CLOSES and client.protocol == paho.MQTTv5:
            _downgrade_to_v311(client)
            self._emit(False, f"broker {self.broker.where} closed the connection "
                              f"{V5_SILENT_CLOSES} times without answering our MQTT 5 CONNECT; "
                              "retrying with MQTT 3.1.1")
        elif was_connected or reason.is_failure:
            detail = f"{reason}" + (f"; {log}" if log else "")
            hint = "" if was_connected or self.broker.tls else \
                ": if that port is a TLS listener, use mqtts://"
            self._fail(MqttConnectError(f"lost connection to broker {self.broker.where} "
                                        f"({detail}); reconnecting{hint}"))

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        qos = int(msg.qos)
        mid = int(msg.mid) if self.settings.manual_ack and qos > 0 else 0
        self._deliver(InboundMessage(msg.topic, bytes(msg.payload), bool(msg.retain), qos,
                                     mid=mid, link=self._link))

    def _on_publish(self, _client: paho.Client, _userdata: Any, mid: int, reason: ReasonCode,
                    _props: Any) -> None:
        with self._acks:
            self._ack_count += 1
            self._acked[mid] = (self._ack_count, reason)
            self._acks.notify_all()

    def _on_subscribe(self, _client: paho.Client, _userdata: Any, mid: int,
                      reasons: list[ReasonCode], _props: Any) -> None:
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            self.events.put(ConnectionEvent(True, f"subscription refused: {refused}",
                                            MqttAuthError(f"broker {self.broker.where} refused a "
                                                          f"subscription ({refused}): check its "
                                                          "ACL")))
        if mid == self._resubscribe_mid:
            self._resubscribe_mid = None
            self._ready()

    def _on_log(self, _client: paho.Client, _userdata: Any, level: int, text: str) -> None:
        if level in (paho.MQTT_LOG_ERR, paho.MQTT_LOG_WARNING):
            self._last_log = text  # read by _on_disconnect on the same thread

    def _fail(self, error: MqttError) -> None:
        self._last_error = error
        self._emit(False, str(error), error)

    def _emit(self, connected: bool, reason: str, error: MqttError | None = None) -> None:
        self.events.put(ConnectionEvent(connected, reason, error))


# ---- synchronous helpers for CLI tools ---------------------------------------------------------

def _connected_client(settings: MqttSettings, inbox: queue.Queue[InboundMessage],
                      topic: str, deadline: float) -> MqttClient:
    client = MqttClient(settings, on_message=inbox.put)
    client.subscribe(topic)  # sent from on_connect, so before any publish of ours
    client.start()
    if not client.wait_connected(max(0.0, deadline - time.monotonic())):
        error = client.last_error
        client.stop()
        raise error or MqttConnectError(f"no connection to broker {client.broker.where} in time: "
                                        "check [mqtt] url and that the broker is running")
    return client


def request_reply(settings: MqttSettings, publish_topic: str, payload: bytes, reply_topic: str,
                  predicate: Callable[[InboundMessage], bool], timeout: float,
                  ) -> InboundMessage | None:
    """Subscribe to ``reply_topic``, publish ``payload``, return the first reply matching
    ``predicate`` (None after ``timeout`` s). Raises MqttError when the broker is unreachable.

    The broker handles one client's packets in order, so the subscription is in force before the
    request reaches anyone who could answer it.
    """
    deadline = time.monotonic() + timeout
    inbox: queue.Queue[InboundMessage] = queue.Queue()
    client = _connected_client(settings, inbox, reply_topic, deadline)
    try:
        client.publish(publish_topic, payload)
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = inbox.get(timeout=left)
            except queue.Empty:
                break
            if predicate(message):
                return message
        return None
    finally:
        client.stop()


def collect(settings: MqttSettings, topic: str, timeout: float, *,
            until: Callable[[InboundMessage], bool] | None = None) -> list[InboundMessage]:
    """Messages on ``topic`` (filters allowed) for ``timeout`` s, or up to and including the first
    for which ``until`` is true."""
    deadline = time.monotonic() + timeout
    inbox: queue.Queue[InboundMessage] = queue.Queue()
    client = _connected_client(settings, inbox, topic, deadline)
    got: list[InboundMessage] = []
    try:
        while (left := deadline - time.monotonic()) > 0:
            try:
                got.append(inbox.get(timeout=left))
            except queue.Empty:
                break
            if until is not None and until(got[-1]):
                break
        return got
    finally:
        client.stop()
