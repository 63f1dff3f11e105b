"""Shared pytest fixtures. Real servers come from tests/servers.py."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import MOSQUITTO_MISSING, Mosquitto, mosquitto_path


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    """Every test leaves the root logger as it found it. The CLI's ``main()``, run in-process,
    installs a handler on the ``sys.stderr`` of the moment: under ``capsys`` a stream closed when
    the test ends, so a later test's threads (a bridge worker, once) logged to a closed file."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


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


# ---------------------------------------------------------------------------------------------
# SeaweedFS S3 (tests/servers_s3.py); imported lazily so the other tests don't load boto3
import typing  # noqa: E402  (appended with the S3 fixtures; keeps boto3 out of other runs)

if typing.TYPE_CHECKING:
    from tests.servers_s3 import SeaweedS3


def _seaweed(directory: Path) -> Iterator[SeaweedS3]:
    from tests.servers_s3 import WEED_MISSING, SeaweedS3, weed_path

    if weed_path() is None:
        pytest.skip(WEED_MISSING)
    server = SeaweedS3(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """One SeaweedFS S3 server for the session (starts in ~0.7 s, stops in ~1 s): ``url``,
    ``access_key``, ``secret_key``, ``client()``, ``create_bucket()``. Give each test its own
    bucket, and never stop this one: use ``seaweed_private`` for outages."""
    yield from _seaweed(tmp_path_factory.mktemp("seaweed"))


@pytest.fixture
def seaweed_private(tmp_path: Path) -> Iterator[SeaweedS3]:
    """A SeaweedFS S3 server of this test's own, free to ``stop()`` and ``restart()``."""
    yield from _seaweed(tmp_path / "seaweed")
