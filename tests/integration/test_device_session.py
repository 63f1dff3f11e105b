"""An owner's command sent while the daemon is away reaches it when it comes back.

The device's MQTT session outlives the daemon (clean start off, the session kept by the broker
for ``session_expiry_s``): a command published while the daemon restarts, or while the broker
itself restarts, waits in the broker for the device instead of being lost. The owner tool then
says "no signed answer", and the command still takes effect once the device connects, if it is
still valid then (a command lives 120 s; one that only narrows consent, such as a revocation,
has no expiry to miss). Nothing about what the device accepts changes: a queued command passes
the same checks as a live one (tests/adversarial/test_clock_skew.py and the processor's unit
tests cover them); the last test here shows one.

A real daemon and a real Mosquitto, as the owner would meet them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.errors import DoorwardError
from agent.owner import client as client_mod
from agent.owner.client import BrokerOptions, send_command
from agent.owner.keyring import OwnerKeyring
from tests.adversarial.device_rig import DeviceRig
from tests.helpers import wait_for
from tests.servers import Mosquitto


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A Mosquitto that keeps sessions and queued messages over a restart, as brokers in
    production are set up to (``persistence true``)."""
    b = Mosquitto(tmp_path / "mq", persistent=True)
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def dev(tmp_path: Path, broker: Mosquitto) -> DeviceRig:
    return DeviceRig.provision(tmp_path, broker)


def _unanswered(dev: DeviceRig, *args: str) -> str:
    """The owner tool sends a command no daemon is there to answer; its error, checked."""
    proc = dev.owner(*args, "--timeout", "2", check=False)
    assert proc.returncode != 0, proc.stdout
    assert "no signed answer" in proc.stderr, proc.stderr
    return proc.stderr


def test_a_revocation_sent_while_the_daemon_is_stopped_takes_effect_when_it_starts(
        dev: DeviceRig) -> None:
    with dev.running():
        dev.owner("consent", "grant", "--scopes", "events,clips", "--days", "1")
    assert dev.grants() == ["clips", "events"]
    error = _unanswered(dev, "consent", "revoke", "--scopes", "clips")
    assert "when the device connects" in error, error  # the tool says the command may still act
    with dev.running():
        wait_for(lambda: dev.grants() == ["events"], timeout=30,
                 what="the revocation queued while the daemon was stopped to take effect")
    assert dev.ledger_kinds().count("consent-revoke") == 1


def test_a_grant_sent_across_a_broker_restart_reaches_the_device(dev: DeviceRig) -> None:
    with dev.running():
        pass  # the device has been connected once: the broker knows its session
    dev.broker.restart()
    _unanswered(dev, "consent", "grant", "--scopes", "events", "--days", "1")
    with dev.running():
        wait_for(lambda: dev.grants() == ["events"], timeout=30,
                 what="the grant sent after the broker's restart to take effect")


def test_a_queued_grant_past_its_lifetime_is_refused_when_the_device_comes_back(
        dev: DeviceRig, monkeypatch: pytest.MonkeyPatch) -> None:
    with dev.running():
        pass
    monkeypatch.setattr(client_mod, "COMMAND_LIFETIME_S", 1)
    ring = OwnerKeyring.open(dev.owner_dir)
    with pytest.raises(DoorwardError, match="no signed answer"):
        send_command(ring, ring.device(dev.device_id), BrokerOptions(dev.broker.url),
                     "consent.grant", {"scopes": ["events"], "days": 1, "until_revoked": False},
                     timeout=1)
    signed_at = time.time()
    wait_for(lambda: time.time() > signed_at + 1, timeout=5, what="the command's lifetime")
    with dev.running():
        rejected = wait_for(
            lambda: [e["data"] for e in dev.ledger_entries() if e["kind"] == "command-rejected"],
            timeout=30, what="the device to refuse the expired command")
        assert [r["reason"] for r in rejected] == ["expired"], rejected
        assert dev.grants() == []
