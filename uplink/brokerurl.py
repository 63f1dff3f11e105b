"""MQTT broker URLs and the MQTT error family.

``parse_broker_url("mqtts://broker.example:8883")`` -> ``BrokerUrl("mqtts", "broker.example", 8883,
tls=True)``. Accepted forms: ``mqtt://HOST[:PORT]`` (plain TCP, default port 1883) and
``mqtts://HOST[:PORT]`` (TLS, default 8883); IPv6 hosts in brackets. Nothing else: no path, query,
user info or websocket schemes, so a typo never silently means something else.

Also the pure functions that translate ssl/OSError/MQTT reason codes into the MQTT error family
(``MqttError`` and subclasses, defined with every other error in :mod:`uplink.errors` and
re-exported here) with a message naming the fix; ``uplink.mqtt`` uses them at its boundary.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from uplink.errors import (  # re-exported: this module's callers catch them here
    MqttAuthError as MqttAuthError,
)
from uplink.errors import (
    MqttConfigError as MqttConfigError,
)
from uplink.errors import (
    MqttConnectError as MqttConnectError,
)
from uplink.errors import (
    MqttError as MqttError,
)
from uplink.errors import (
    MqttLimitError as MqttLimitError,
)
from uplink.errors import (
    MqttPublishError as MqttPublishError,
)
from uplink.errors import (
    MqttTlsError as MqttTlsError,
)

ACCEPTED_FORMS = "mqtt://HOST[:PORT] (plain, port 1883) or mqtts://HOST[:PORT] (TLS, port 8883)"
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class BrokerUrl:
    scheme: str
    host: str
    port: int
    tls: bool

    @property
    def where(self) -> str:
        """``host:port`` for messages (IPv6 in brackets)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerUrl:
    """Parse an ``mqtt://`` or ``mqtts://`` URL; raise MqttConfigError naming the accepted forms."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise MqttConfigError(f"broker URL {url!r} is malformed ({exc}): use {ACCEPTED_FORMS}") \
            from exc
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise MqttConfigError(f"broker URL {url!r} has scheme {parts.scheme or '(none)'!r}: "
                              f"use {ACCEPTED_FORMS}")
    if not parts.hostname:
        raise MqttConfigError(f"broker URL {url!r} names no host: use {ACCEPTED_FORMS}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username \
            or parts.password:
        raise MqttConfigError(f"broker URL {url!r} has a path, query or user info: use "
                              f"{ACCEPTED_FORMS} (credentials go in cert_file/key_file)")
    if port == 0:
        raise MqttConfigError(f"broker URL {url!r} has port 0: use {ACCEPTED_FORMS}")
    return BrokerUrl(scheme, parts.hostname, port or DEFAULT_PORTS[scheme], scheme == "mqtts")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1); no DNS lookups."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------------
# Translation of low-level failures (ssl, OSError, MQTT reason codes) into MqttError subclasses.
# Pure functions, so the wording and the decisions are unit-tested without a broker.

CERT_FIX = "check cert_file/key_file were issued by the broker's CA and are not expired"
# OpenSSL alert texts that mean "the server did not accept our client certificate"
_CLIENT_CERT_ALERTS = ("certificate required", "unknown ca", "bad certificate",
                       "certificate unknown", "certificate revoked", "certificate expired",
                       "access denied", "handshake failure", "decrypt error")
UNSUPPORTED_PROTOCOL_VERSION = 0x84  # MQTT 5 CONNACK; paho also maps a v3 CONNACK rc 1 onto it
MQTT_V311, MQTT_V5 = 4, 5  # protocol levels (paho's MQTTv311 / MQTTv5 enum values)


def should_fall_back_to_v311(protocol: int, reason_code: int) -> bool:
    """Whether a refused MQTT 5 CONNECT should be retried as 3.1.1.

    Only when we spoke MQTT 5 and the broker answered "Unsupported protocol version" (0x84), which
    is also what paho reports when a 3.1.1-only broker answers with its own CONNACK return code 1.
    """
    return protocol == MQTT_V5 and reason_code == UNSUPPORTED_PROTOCOL_VERSION


def client_cert_rejected(text: str) -> bool:
    """True when an SSL error text is an alert that the broker refused our client certificate."""
    lowered = text.lower()
    return "alert" in lowered and any(a in lowered for a in _CLIENT_CERT_ALERTS)


def error_for_exception(exc: BaseException, broker: BrokerUrl, *,
                        has_client_cert: bool) -> MqttError:
    """The MqttError for an exception raised while connecting to or talking with ``broker``."""
    where, text = broker.where, str(exc) or type(exc).__name__
    if isinstance(exc, MqttError):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        return MqttTlsError(f"broker {where} presented a certificate that does not verify "
                            f"({exc.verify_message or text}): set [mqtt] ca_file to the CA that "
                            "issued the broker's certificate and use the host name it was issued "
                            "for in [mqtt] url")
    if isinstance(exc, ssl.SSLError) or client_cert_rejected(text):
        return error_for_tls_text(text, broker, has_client_cert=has_client_cert)
    if isinstance(exc, ConnectionResetError) and broker.tls:
        return MqttTlsError(f"broker {where} reset the connection during the TLS handshake: is "
                            "that port a plain listener? use mqtt:// for it, or the TLS port")
    if isinstance(exc, ConnectionRefusedError):
        return MqttConnectError(f"nothing accepts connections at {where}: check [mqtt] url and "
                                "that the broker is running")
    if isinstance(exc, socket.gaierror):
        return MqttConnectError(f"cannot resolve broker host {broker.host!r} ({text}): check "
                                "[mqtt] url and DNS")
    if isinstance(exc, TimeoutError | socket.timeout):
        return MqttConnectError(f"broker {where} did not answer in time: check [mqtt] url, the "
                                "network and firewalls")
    if isinstance(exc, OSError):
        return MqttConnectError(f"cannot talk to broker {where} ({text}): check [mqtt] url and "
                                "the network")
    return MqttError(f"MQTT failure with broker {where}: {type(exc).__name__}: {text}")


def error_for_tls_text(text: str, broker: BrokerUrl, *, has_client_cert: bool) -> MqttError:
    """The MqttError for an OpenSSL error text (from an exception or paho's log)."""
    where = broker.where
    if client_cert_rejected(text):
        if not has_client_cert:
            return MqttAuthError(f"broker {where} requires a client certificate ({text}): set "
                                 "[mqtt] cert_file and key_file")
        return MqttAuthError(f"broker {where} refused the client certificate ({text}): {CERT_FIX}")
    if "wrong version number" in text.lower() or "record layer failure" in text.lower():
        return MqttTlsError(f"broker {where} does not speak TLS on that port ({text}): use "
                            "mqtt:// for a plain listener or the broker's TLS port")
    return MqttTlsError(f"TLS with broker {where} failed ({text}): check [mqtt] ca_file, "
                        "cert_file and key_file")


_CONNACK_FIXES = {
    0x85: "the client id is not accepted: client id must be the device id",
    0x86: "bad user name or password: the broker wants a login (set [mqtt] username and "
          "password_file; --username/--password-file for the owner's tool) or the device "
          "certificate",
    0x87: "not authorised: register this device's certificate with the broker, or log in with "
          "[mqtt] username and password_file (--username/--password-file for the owner's tool)",
    0x88: "the server is unavailable: retry later",
    0x89: "the server is busy: retry later",
    0x8A: "this client is banned: ask the broker's operator",
    0x8C: "bad authentication method: the broker expects client certificates",
    0x95: "packet too large: the broker's limits are lower than ours",
    0x97: "quota exceeded: slow down or raise the broker's quota",
}


# With a username and password (the Mosquitto add-on's set-up) the fixes are about the login.
# Mosquitto 2 answers a wrong password with 0x87 (not authorised) under MQTT 5, not 0x86.
_LOGIN = ("check [mqtt] username and the password in the file [mqtt] password_file names "
          "(--username/--password-file for the owner's tool) against the broker's password file "
          "(mosquitto_passwd)")
_PASSWORD_FIXES = {
    0x86: f"bad user name or password: {_LOGIN}",
    0x87: f"not authorised: the broker refused this login: {_LOGIN}",
}


def error_for_connack(reason_code: int, reason_name: str, broker: BrokerUrl, *,
                      with_password: bool = False) -> MqttError:
    """The MqttError for a CONNACK failure reason code (MQTT 5 numbering); ``with_password``:
    the client logged in with a username and password, so a refusal names those."""
    fixes = {**_CONNACK_FIXES, **_PASSWORD_FIXES} if with_password else _CONNACK_FIXES
    fix = fixes.get(reason_code, "check the broker's log")
    cls = MqttAuthError if reason_code in (0x85, 0x86, 0x87, 0x8A, 0x8C) else MqttConnectError
    return cls(f"broker {broker.where} refused the connection ({reason_name}, 0x{reason_code:02X}):"
               f" {fix}")
