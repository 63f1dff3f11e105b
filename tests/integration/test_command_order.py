"""Commands from one owner reach the device in counter order, whoever sends them.

The device refuses a command whose counter is not above the last one it accepted from that owner
(``stale-counter``: a replay defence that outlives the jti table). The owner's counters are handed
out from ``devices.json``; two senders at once (the app's live view and its consent page, or the
app and the CLI) must not let a later counter reach the device first. CI once saw exactly that: the
page's ``live.start`` took its counter, then connected to the broker more slowly than a
``consent.show`` that took the next one, and was refused.

A real daemon and a real Mosquitto; the slow connection is made slow on purpose, not hoped for.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.owner import client as client_mod
from agent.owner.client import BrokerOptions, send_command
from agent.owner.keyring import OwnerKeyring
from tests.adversarial.device_rig import DeviceRig
from tests.servers import Mosquitto


@pytest.fixture
def dev(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[DeviceRig]:
    yield DeviceRig.provision(tmp_path, mosquitto)


def _slow_to_connect(monkeypatch: pytest.MonkeyPatch, slow_thread: str,
                     until: threading.Event) -> None:
    """The session of the thread named ``slow_thread`` connects only once ``until`` is set."""
    enter = client_mod._Session.__enter__

    def held(self: Any) -> Any:
        if threading.current_thread().name == slow_thread:
            assert until.wait(60), "the other command never finished"
        return enter(self)

    monkeypatch.setattr(client_mod._Session, "__enter__", held)


def test_a_command_overtaken_on_its_way_to_the_broker_is_not_refused(
        dev: DeviceRig, monkeypatch: pytest.MonkeyPatch) -> None:
    overtaken = threading.Event()
    _slow_to_connect(monkeypatch, "slow", overtaken)
    app_ring = OwnerKeyring.open(dev.owner_dir)  # the app's keyring, loaded once
    replies: dict[str, Any] = {}

    def slow() -> None:
        device = app_ring.device(dev.device_id)
        replies["slow"] = send_command(app_ring, device, BrokerOptions(dev.broker.url),
                                       "consent.show", {}, timeout=30)

    with dev.running():
        worker = threading.Thread(target=slow, name="slow")
        worker.start()
        try:  # meanwhile the CLI, another process on the same owner dir, sends and is answered
            dev.owner("consent", "show")
        finally:
            overtaken.set()
            worker.join(60)
    assert not worker.is_alive()
    reply = replies["slow"]
    assert reply["ok"], f"the overtaken command was refused: {reply.get('reason')} " \
                        f"({reply.get('detail')})"


def test_many_senders_at_once_are_all_accepted(dev: DeviceRig) -> None:
    rings = [OwnerKeyring.open(dev.owner_dir) for _ in range(4)]
    replies: list[dict[str, Any]] = []
    lock = threading.Lock()

    def send(ring: OwnerKeyring) -> None:
        for _ in range(3):
            reply = send_command(ring, ring.device(dev.device_id), BrokerOptions(dev.broker.url),
                                 "consent.show", {}, timeout=30)
            with lock:
                replies.append(reply)

    with dev.running():
        threads = [threading.Thread(target=send, args=(r,)) for r in rings]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    refused = [(r.get("reason"), r.get("detail")) for r in replies if not r["ok"]]
    assert len(replies) == 12 and refused == []
