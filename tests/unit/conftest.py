"""Fixtures shared by the unit tests of the device's state (ledger, signed head): a fresh
``device.sqlite`` and a device key. A test module that defines its own ``db`` or ``key`` uses
that one instead."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.device.database import DeviceDB


@pytest.fixture
def db(tmp_path: Path) -> Iterator[DeviceDB]:
    d = DeviceDB(tmp_path / "device.sqlite")
    yield d
    d.close()


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()
