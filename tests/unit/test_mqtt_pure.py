"""uplink.brokerurl and the broker-free parts of uplink.mqtt (no network: nothing is started)."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest

from uplink.brokerurl import (
    BrokerUrl,
    MqttAuthError,
    MqttConfigError,
    MqttConnectError,
    MqttTlsError,
    client_cert_rejected,
    error_for_connack,
    error_for_exception,
    is_loopback,
    parse_broker_url,
    should_fall_back_to_v311,
)
from uplink.errors import UplinkError
from uplink.mqtt import MqttClient, MqttLimitError, MqttSettings, check_publish_limits

BROKER = BrokerUrl("mqtts", "broker.example", 8883, True)


@pytest.mark.parametrize(("url", "expected"), [
    ("mqtt://localhost", BrokerUrl("mqtt", "localhost", 1883, False)),
    ("mqtt://10.0.0.2:1884", BrokerUrl("mqtt", "10.0.0.2", 1884, False)),
    ("mqtts://broker.example", BrokerUrl("mqtts", "broker.example", 8883, True)),
    ("MQTTS://Broker.Example:9000/", BrokerUrl("mqtts", "broker.example", 9000, True)),
    ("mqtts://[::1]:8884", BrokerUrl("mqtts", "::1", 8884, True)),
])
def test_parse_accepts(url: str, expected: BrokerUrl) -> None:
    assert parse_broker_url(url) == expected


@pytest.mark.parametrize("url", [
    "broker.example", "tcp://broker.example", "ws://broker.example", "mqtt://",
    "mqtt://host:99999", "mqtt://host:0", "mqtt://host/path", "mqtt://u:p@host", "mqtt://host?x=1",
    "mqtt://host:port",
])
def test_parse_rejects_naming_the_accepted_forms(url: str) -> None:
    with pytest.raises(MqttConfigError, match=r"mqtts://HOST\[:PORT\]") as info:
        parse_broker_url(url)
    assert isinstance(info.value, UplinkError)


@pytest.mark.parametrize(("host", "loop"), [
    ("localhost", True), ("LOCALHOST.", True), ("127.0.0.1", True), ("127.8.9.10", True),
    ("::1", True), ("[::1]", True), ("10.0.0.1", False), ("broker.example", False),
    ("localhost.example", False),
])
def test_is_loopback(host: str, loop: bool) -> None:
    assert is_loopback(host) is loop


def test_fallback_decision() -> None:
    assert should_fall_back_to_v311(5, 0x84)
    assert not should_fall_back_to_v311(4, 0x84)  # already 3.1.1: nothing lower to try
    assert not should_fall_back_to_v311(5, 0x87)  # not authorised is not a version problem
    assert not should_fall_back_to_v311(5, 0)


def test_publish_limits() -> None:
    check_publish_limits("doorward/dw-a/1/2/3/4/5/6", b"x" * 131072, 1)
    with pytest.raises(MqttLimitError, match="QoS 2"):
        check_publish_limits("doorward/dw-a/events", b"", 2)
    with pytest.raises(MqttLimitError, match="131073 bytes"):
        check_publish_limits("doorward/dw-a/events", b"x" * 131073, 0)
    with pytest.raises(MqttLimitError, match="8 slashes"):
        check_publish_limits("doorward/dw-a/1/2/3/4/5/6/7", b"", 1)
    with pytest.raises(MqttLimitError, match="wildcards"):
        check_publish_limits("doorward/+/events", b"", 1)


def test_plain_tcp_to_remote_broker_needs_allow_plain() -> None:
    with pytest.raises(MqttConfigError, match=r"allow_plain.*|mqtts://"):
        MqttClient(MqttSettings(url="mqtt://10.0.0.2", client_id="dw-a"), on_message=print)
    MqttClient(MqttSettings(url="mqtt://10.0.0.2", client_id="dw-a", allow_plain=True),
               on_message=print)
    MqttClient(MqttSettings(url="mqtt://127.0.0.1", client_id="dw-a"), on_message=print)


def test_missing_cert_file_is_a_config_error(tmp_path: Path) -> None:
    settings = MqttSettings(url="mqtts://broker.example", client_id="dw-a",
                            cert_file=tmp_path / "nope.crt", key_file=tmp_path / "nope.key")
    with pytest.raises(MqttConfigError, match=r"\[mqtt\] cert_file .*nope.crt"):
        MqttClient(settings, on_message=print)


def test_garbage_cert_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("not a certificate")
    settings = MqttSettings(url="mqtts://broker.example", client_id="dw-a",
                            cert_file=tmp_path / "c.pem", key_file=tmp_path / "c.pem")
    with pytest.raises(MqttConfigError, match="PEM"):
        MqttClient(settings, on_message=print)


def test_exception_translation() -> None:
    verify = ssl.SSLCertVerificationError("certificate verify failed")
    verify.verify_message = "unable to get local issuer certificate"
    err = error_for_exception(verify, BROKER, has_client_cert=True)
    assert isinstance(err, MqttTlsError) and "ca_file" in str(err)
    err = error_for_exception(ConnectionRefusedError(), BROKER, has_client_cert=True)
    assert isinstance(err, MqttConnectError) and "broker.example:8883" in str(err)
    err = error_for_exception(socket.gaierror(-2, "Name or service not known"), BROKER,
                              has_client_cert=True)
    assert isinstance(err, MqttConnectError) and "resolve" in str(err)
    alert = ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate "
                            "required")
    err = error_for_exception(alert, BROKER, has_client_cert=True)
    assert isinstance(err, MqttAuthError) and "refused the client certificate" in str(err)
    err = error_for_exception(alert, BROKER, has_client_cert=False)
    assert isinstance(err, MqttAuthError) and "set [mqtt] cert_file" in str(err)


def test_client_cert_rejected_texts() -> None:
    assert client_cert_rejected("[SSL: SSLV3_ALERT_BAD_CERTIFICATE] sslv3 alert bad certificate")
    assert client_cert_rejected("tlsv1 alert unknown ca")
    assert not client_cert_rejected("[Errno 104] Connection reset by peer")


def test_connack_translation() -> None:
    err = error_for_connack(0x87, "Not authorized", BROKER)
    assert isinstance(err, MqttAuthError) and "0x87" in str(err)
    assert isinstance(error_for_connack(0x89, "Server busy", BROKER), MqttConnectError)
