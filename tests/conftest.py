"""Shared pytest fixtures. Real servers come from tests/servers.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import MOSQUITTO_MISSING, Mosquitto, mosquitto_path


def _broker(directory: Path, *, tls: bool) -> Iterator[Mosquitto]:
    if mosquitto_path() is None:
        pytest.skip(MOSQUITTO_MISSING)
    broker = Mosquitto(directory, tls=tls)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A fresh Mosquitto per test (starts in ~25 ms): plain anonymous listener on 127.0.0.1."""
    yield from _broker(tmp_path / "mosquitto", tls=False)


@pytest.fixture
def mosquitto_tls(tmp_path: Path) -> Iterator[Mosquitto]:
    """A fresh Mosquitto per test with the plain listener plus a client-certificate TLS listener
    (``tls_url``, ``ca_file``, ``issue_client_cert(cn)``; ACL in tests/servers.py)."""
    yield from _broker(tmp_path / "mosquitto", tls=True)
