"""The paho-free half of the MQTT adapter: settings, what the client hands the loop
(:class:`InboundMessage`, :class:`ConnectionEvent`), publish tickets and the fleet-broker limits.

The daemon imports these everywhere and ``uplink.mqtt`` (which loads paho) only where a broker is
configured; ``uplink.mqtt`` re-exports every name here.
"""

from __future__ import annotations

import os
import queue
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from uplink.brokerurl import MqttConfigError, MqttError, MqttLimitError

MAX_QOS = 1
MAX_PAYLOAD = 128 * 1024
MAX_SLASHES = 7
MAX_PASSWORD_BYTES = 65535  # MQTT's limit for the password field
CREDENTIALS = "${CREDENTIALS_DIRECTORY}"  # systemd's LoadCredential= directory, in a path


def read_password_file(path: str | Path, *, what: str = "[mqtt] password_file") -> str:
    """The broker password in ``path``: the file's text without one trailing newline (what
    ``echo`` and editors add; any other whitespace is part of the password). A leading
    ``${CREDENTIALS_DIRECTORY}`` becomes systemd's credentials directory (``LoadCredential=``).
    MqttConfigError naming ``what`` and the fix; the password itself is never in a message."""
    text = str(path)
    if text.startswith(CREDENTIALS):
        creds = os.environ.get("CREDENTIALS_DIRECTORY", "")
        if not creds:
            raise MqttConfigError(f"{what} {text} names ${{CREDENTIALS_DIRECTORY}}, which is not "
                                  "set: run under systemd with LoadCredential=mqtt-password:"
                                  "/etc/doorward/mqtt-password, or give the file's real path")
        text = creds + text[len(CREDENTIALS):]
    try:
        raw = Path(text).expanduser().read_bytes()
    except OSError as exc:
        raise MqttConfigError(f"{what} {text} cannot be read ({exc.strerror}): create it with "
                              "the broker password on one line, readable by this user only "
                              "(chmod 600)") from exc
    if raw.endswith(b"\r\n"):
        raw = raw[:-2]
    elif raw.endswith(b"\n"):
        raw = raw[:-1]
    if not raw or len(raw) > MAX_PASSWORD_BYTES:
        raise MqttConfigError(f"{what} {text} holds {'no' if not raw else 'too long a'} "
                              f"password: put the broker password on its one line (at most "
                              f"{MAX_PASSWORD_BYTES} bytes)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MqttConfigError(f"{what} {text} is not UTF-8 text: MQTT passwords here are text; "
                              "write it again") from exc


@dataclass(frozen=True)
class MqttSettings:
    """Connection settings; ``username`` is the device id (certificate CN brokers ignore it) or
    the broker login (``[mqtt] username``); ``password`` goes with it (read from ``[mqtt]
    password_file`` at start; kept out of ``repr`` so it never reaches a log line).

    ``allow_plain``: plain TCP to a non-loopback broker only when the config says so explicitly
    (``[mqtt] allow_plain = true``). ``will_topic``/``will_payload``: the retained QoS 1 will.
    """

    url: str
    client_id: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    allow_plain: bool = False
    keepalive_s: int = 60
    session_expiry_s: int = 3600
    # resume_session: even the first connection resumes the broker's session under client_id
    # (MQTT clean start off), so a subscriber that was stopped gets the QoS 1 messages the broker
    # kept for it (within session_expiry_s). Off, a new process starts a new session, and only
    # reconnections resume.
    resume_session: bool = False
    # manual_ack: a QoS 1 message is acknowledged to the broker only when the owner of the inbox
    # calls ``ack(message)``, once it has handled it (paho's manual_ack): until then the broker
    # keeps it, and sends it again to the session's next connection. Off, paho acknowledges it as
    # soon as ``on_message`` returns, and a process that dies before handling it loses it. On,
    # every message taken must be acknowledged, or the broker stops sending (its in-flight cap).
    manual_ack: bool = False
    will_topic: str | None = None
    will_payload: bytes = b"offline"
    reconnect_min_s: int = 1
    reconnect_max_s: int = 60
    max_inflight: int = 20


@dataclass(frozen=True)
class InboundMessage:
    """A message the broker sent us. ``mid`` and ``link`` are delivery bookkeeping for
    ``MqttSettings.manual_ack`` (the packet id to acknowledge and the connection it came on; 0
    when there is nothing to acknowledge) and take no part in equality."""

    topic: str
    payload: bytes
    retain: bool
    qos: int
    mid: int = field(default=0, compare=False)
    link: int = field(default=0, compare=False)


@dataclass(frozen=True)
class ConnectionEvent:
    """A connection change: ``connected`` now or not, why, and the error when it is a failure.

    An event with ``connected=True`` and an ``error`` reports a refused subscription.
    """

    connected: bool
    reason: str
    error: MqttError | None = None


@dataclass(frozen=True)
class PublishHandle:
    """Ticket for one publish; ``after`` orders it against acknowledgements (mids are reused)."""

    mid: int
    after: int
    topic: str


def check_publish_limits(topic: str, payload: bytes, qos: int) -> None:
    """Raise MqttLimitError unless fleet brokers would accept this publish."""
    if qos not in (0, 1):
        raise MqttLimitError(f"QoS {qos} on {topic!r}: fleet brokers accept QoS 0 or 1 only")
    if len(payload) > MAX_PAYLOAD:
        raise MqttLimitError(f"payload of {len(payload)} bytes on {topic!r} exceeds "
                             f"{MAX_PAYLOAD} bytes: upload large data to the bucket instead")
    if topic.count("/") > MAX_SLASHES:
        raise MqttLimitError(f"topic {topic!r} has {topic.count('/')} slashes; fleet brokers "
                             f"accept at most {MAX_SLASHES}")
    if not topic or "+" in topic or "#" in topic:
        raise MqttLimitError(f"topic {topic!r} must be non-empty and contain no wildcards")


class MqttPort(Protocol):
    """What the daemon uses of an MQTT client: ``uplink.mqtt.MqttClient`` (paho) and
    ``uplink.loopback_mqtt.LoopbackMqttClient`` (the in-process twin) both have it."""

    settings: MqttSettings
    events: queue.Queue[ConnectionEvent]

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def subscribe(self, topic: str, qos: int = 1) -> None: ...

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                message_expiry_s: int | None = None,
                content_type: str | None = None) -> PublishHandle: ...

    def is_published(self, handle: PublishHandle) -> bool: ...

    def wait_published(self, handle: PublishHandle, timeout: float) -> bool: ...

    def wait_connected(self, timeout: float) -> bool: ...

    def ack(self, message: InboundMessage) -> None: ...

    @property
    def is_connected(self) -> bool: ...

    @property
    def protocol(self) -> str: ...

    @property
    def last_error(self) -> MqttError | None: ...


class MqttConnector(Protocol):
    """Makes a client: ``uplink.mqtt.MqttClient`` itself, or ``LoopbackBroker.client``."""

    def __call__(self, settings: MqttSettings, *,
                 on_message: Callable[[InboundMessage], None]) -> MqttPort: ...
