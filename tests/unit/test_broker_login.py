"""Broker logins: ``[mqtt] username``/``password_file`` for the device, ``--username``/
``--password-file`` for the owner's tool: the file read at start (one trailing newline stripped),
the password never in a repr or a message, a refusal naming the fix."""

from __future__ import annotations

import argparse
import queue
from pathlib import Path
from typing import Any

import pytest

from agent.app import build_mqtt
from agent.config import parse_config
from agent.errors import ConfigError, DoorwardError
from agent.owner.client import BrokerOptions
from uplink.brokerurl import MqttAuthError, error_for_connack, parse_broker_url
from uplink.errors import MqttConfigError
from uplink.mqtt_types import MqttSettings, read_password_file

SECRET = "s3cret pass"  # a space inside is part of the password


@pytest.mark.parametrize(("raw", "expected"), [
    (b"s3cret pass\n", SECRET), (b"s3cret pass\r\n", SECRET), (b"s3cret pass", SECRET),
    (b"s3cret pass\n\n", SECRET + "\n"), (b" s3cret pass \n", f" {SECRET} "),
])
def test_the_file_loses_exactly_one_trailing_newline(tmp_path: Path, raw: bytes,
                                                     expected: str) -> None:
    (tmp_path / "pw").write_bytes(raw)
    assert read_password_file(tmp_path / "pw") == expected


@pytest.mark.parametrize(("raw", "needle"), [(b"", "holds no password"),
                                             (b"\n", "holds no password"),
                                             (b"\xff\xfe\n", "not UTF-8")])
def test_an_unusable_file_names_the_key_and_the_fix(tmp_path: Path, raw: bytes,
                                                    needle: str) -> None:
    (tmp_path / "pw").write_bytes(raw)
    with pytest.raises(MqttConfigError, match=needle) as err:
        read_password_file(tmp_path / "pw")
    assert "[mqtt] password_file" in str(err.value)


def test_a_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(MqttConfigError, match="chmod 600"):
        read_password_file(tmp_path / "absent")


def test_systemd_credentials_directory_is_expanded(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mqtt-password").write_text(SECRET + "\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert read_password_file("${CREDENTIALS_DIRECTORY}/mqtt-password") == SECRET
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(MqttConfigError, match="LoadCredential="):
        read_password_file("${CREDENTIALS_DIRECTORY}/mqtt-password")


def test_the_password_is_in_no_repr() -> None:
    settings = MqttSettings(url="mqtt://h", client_id="c", username="u", password=SECRET)
    assert SECRET not in repr(settings) and "u" in repr(settings)
    options = BrokerOptions("mqtt://h", username="u", password=SECRET)
    assert SECRET not in repr(options)
    assert options.settings("c").password == SECRET


def test_config_takes_username_and_password_file() -> None:
    cfg = parse_config('[mqtt]\nurl = "mqtt://h:1883"\nallow_plain = true\nusername = "door"\n'
                       'password_file = "${CREDENTIALS_DIRECTORY}/mqtt-password"\n')
    assert cfg.mqtt.username == "door"
    assert cfg.mqtt.password_file == "${CREDENTIALS_DIRECTORY}/mqtt-password"
    with pytest.raises(ConfigError, match=r"mqtt\.password_file = 5"):
        parse_config("[mqtt]\npassword_file = 5\n")


def captured(cfg_text: str) -> MqttSettings:
    seen: list[MqttSettings] = []

    def connector(settings: MqttSettings, *, on_message: Any) -> Any:
        seen.append(settings)
        return object()

    build_mqtt(parse_config(cfg_text), None, "dw-abcdefghijklmnop", queue.Queue(), connector)
    return seen[0]


def test_the_device_logs_in_with_the_file_read_at_start(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(SECRET + "\n", encoding="utf-8")
    s = captured(f'[mqtt]\nurl = "mqtt://127.0.0.1:1883"\nusername = "door"\n'
                 f'password_file = "{tmp_path / "pw"}"\n')
    assert (s.username, s.password) == ("door", SECRET)
    s = captured(f'[mqtt]\nurl = "mqtt://127.0.0.1:1883"\npassword_file = "{tmp_path / "pw"}"\n')
    assert (s.username, s.password) == ("dw-abcdefghijklmnop", SECRET)  # the device id
    s = captured('[mqtt]\nurl = "mqtt://127.0.0.1:1883"\n')
    assert (s.username, s.password) == ("dw-abcdefghijklmnop", None)
    with pytest.raises(DoorwardError, match="password_file"):
        captured(f'[mqtt]\nurl = "mqtt://127.0.0.1:1883"\npassword_file = "{tmp_path}/no"\n')


def test_owner_flags_read_the_file(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(SECRET + "\n", encoding="utf-8")
    options = BrokerOptions.login("mqtt://h", username="owner", password_file=tmp_path / "pw")
    assert (options.username, options.password) == ("owner", SECRET)
    with pytest.raises(DoorwardError, match="needs --username"):
        BrokerOptions.login("mqtt://h", password_file=tmp_path / "pw")
    with pytest.raises(DoorwardError, match="--password-file"):
        BrokerOptions.login("mqtt://h", username="owner", password_file=tmp_path / "none")


def test_every_broker_command_takes_the_login_flags() -> None:
    from agent.cli import build_parser

    parser = build_parser()
    for argv in (["owner", "consent", "show"], ["owner", "pair", "--broker", "mqtt://h",
                                                 "--device", "d", "--setup-code", "c"],
                 ["owner", "events"], ["owner", "ledger", "fetch", "-o", "x"],
                 ["owner", "bridge", "--ha-broker", "mqtt://h"], ["owner", "app"]):
        args = parser.parse_args([*argv, "--username", "u", "--password-file", "f"])
        assert isinstance(args, argparse.Namespace) and args.username == "u"


def test_the_app_uses_its_login_for_every_broker(tmp_path: Path) -> None:
    from agent.owner.app.live import LiveFeed
    from agent.owner.app.service import OwnerService
    from agent.owner.keyring import OwnerKeyring, PairedDevice

    ring, _ = OwnerKeyring.init(tmp_path / "o")
    ring.add_device(PairedDevice("dw-abcdefghijklmnop", "k", "f", "mqtt://devbroker:1883", 0.0))
    login = BrokerOptions("mqtt://unused", username="owner", password=SECRET)
    service = OwnerService(ring, bucket=None, login=login)
    opts = service.broker(ring.device(None))
    assert (opts.url, opts.username, opts.password) == ("mqtt://devbroker:1883", "owner", SECRET)
    seen: list[MqttSettings] = []

    class Client:
        def __init__(self, settings: MqttSettings, *, on_message: Any) -> None:
            seen.append(settings)

        def subscribe(self, topic: str) -> None: ...

        def start(self) -> None: ...

    feed = LiveFeed(ring, login=login, connector=Client)  # type: ignore[arg-type]
    feed._connect("mqtt://devbroker:1883", ring.devices())
    assert (seen[0].url, seen[0].username, seen[0].password) == (
        "mqtt://devbroker:1883", "owner", SECRET)


@pytest.mark.parametrize("code", [0x86, 0x87])
def test_a_refused_login_names_the_fix(code: int) -> None:
    where = parse_broker_url("mqtt://127.0.0.1:1883")
    err = error_for_connack(code, "Not authorized", where, with_password=True)
    assert isinstance(err, MqttAuthError)
    assert "password_file" in str(err) or "acl_file" in str(err)
    plain = error_for_connack(code, "Not authorized", where)
    assert "password_file" in str(plain)  # a login may be what the broker wants


def test_the_device_keeps_its_broker_session_across_restarts() -> None:
    """Clean start off from the first connection: what an owner sends while the daemon (or the
    broker) restarts waits in the broker for the device (tests/integration/test_device_session.py
    shows it end to end)."""
    s = captured('[mqtt]\nurl = "mqtt://127.0.0.1:1883"\n')
    assert s.resume_session and s.client_id == "dw-abcdefghijklmnop"
    assert s.session_expiry_s >= 600  # longer than a command lives (owner_commands.MAX_LIFETIME_S)
