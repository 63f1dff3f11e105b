"""The attacks that already failed before issue 12, against the real daemon and broker, so that
they keep failing: forged, replayed, expired, wrong-audience, wrong-device and algorithm-confused
commands from a stranger on the broker. Each is refused and changes nothing (the unit tests cover
every field; this is the wire, end to end). RING held long and wrong setup codes are attacked
through the CLI in tests/e2e/test_pairing_cli.py."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.owner.keyring import OwnerKeyring
from tests.adversarial.device_rig import DeviceRig
from tests.helpers import wait_for
from tests.servers import Mosquitto
from uplink import jws
from uplink.keys import key_id_for, public_raw
from uplink.mqtt import InboundMessage, MqttClient, MqttSettings

pytestmark = pytest.mark.slow


@pytest.fixture
def device(tmp_path: Path) -> Iterator[DeviceRig]:
    broker = Mosquitto(tmp_path / "mq")
    broker.start()
    try:
        yield DeviceRig.provision(tmp_path, broker)
    finally:
        broker.stop()


def b64u(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def grant_claims(dev: DeviceRig, key: Ed25519PrivateKey, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": key_id_for(public_raw(key)), "aud": dev.device_id, "iat": now,
              "exp": now + 300, "jti": f"attack-{time.monotonic_ns()}", "ctr": 9_000_000_000_000,
              "cmd": "consent.grant", "topic": f"doorward/{dev.device_id}/cmd",
              "args": {"scopes": ["clips", "events", "snapshots"], "days": 30,
                       "until_revoked": False}}
    claims.update(over)
    return claims


def stranger(dev: DeviceRig) -> tuple[MqttClient, list[InboundMessage]]:
    got: list[InboundMessage] = []
    client = MqttClient(MqttSettings(url=dev.broker.url, client_id="attacker"),
                        on_message=got.append)
    client.subscribe(f"doorward/{dev.device_id}/resp")
    client.start()
    assert client.wait_connected(10)
    return client, got


def test_forged_replayed_expired_misaddressed_and_alg_confused_commands_change_nothing(
        device: DeviceRig) -> None:
    owner = OwnerKeyring.open(device.owner_dir).key
    thief = Ed25519PrivateKey.generate()  # a key the device never paired
    with device.running():
        device.owner("consent", "grant", "--scopes", "events", "--days", "1")
        assert device.grants() == ["events"]
        client, _ = stranger(device)
        try:
            now = int(time.time())
            attacks = {
                "unpaired key": jws.sign(grant_claims(device, thief), thief,
                                         kid=key_id_for(public_raw(thief))),
                "expired": jws.sign(grant_claims(device, owner, iat=now - 3600, exp=now - 3000),
                                    owner, kid=key_id_for(public_raw(owner))),
                "another device": jws.sign(grant_claims(device, owner, aud="dw-aaaaaaaaaaaaaaaa"),
                                           owner, kid=key_id_for(public_raw(owner))),
                "another topic": jws.sign(grant_claims(device, owner,
                                                       topic="doorward/dw-x/cmd"),
                                          owner, kid=key_id_for(public_raw(owner))),
                "alg none": ".".join([b64u(b'{"alg":"none","typ":"JWT"}'), b64u(json.dumps(
                    grant_claims(device, owner)).encode()), ""]),
                "alg HS256": ".".join([b64u(b'{"alg":"HS256","typ":"JWT"}'), b64u(json.dumps(
                    grant_claims(device, owner)).encode()), b64u(b"x" * 32)]),
            }
            for payload in attacks.values():
                client.publish(f"doorward/{device.device_id}/cmd", payload.encode())
            # then the genuine owner, once, and a replay of it (counter and jti refuse it)
            good = jws.sign(grant_claims(device, owner, ctr=9_100_000_000_000,
                                         args={"scopes": ["snapshots"], "days": 1,
                                               "until_revoked": False}),
                            owner, kid=key_id_for(public_raw(owner)))
            client.publish(f"doorward/{device.device_id}/cmd", good.encode())
            wait_for(lambda: "snapshots" in device.grants(), timeout=30,
                     what="the genuine command")
            client.publish(f"doorward/{device.device_id}/cmd", good.encode())
            # commands are handled in order: once a later genuine one acted, the replay was seen
            later = jws.sign(grant_claims(device, owner, ctr=9_200_000_000_000,
                                          args={"scopes": ["clips"], "days": 1,
                                                "until_revoked": False}),
                             owner, kid=key_id_for(public_raw(owner)))
            client.publish(f"doorward/{device.device_id}/cmd", later.encode())
            wait_for(lambda: "clips" in device.grants(), timeout=30, what="the later command")
        finally:
            client.stop()
    # only the genuine commands acted, once each: the six attacks and the replay did nothing
    assert device.grants() == ["clips", "events", "snapshots"]
    assert device.ledger_kinds().count("consent-grant") == 3
    assert device.ledger_kinds().count("command-rejected") >= 2

